"""Your model, your data: a verified Edge TPU or CPU bundle from a user's model and data.

    model (any format) + data -> preprocessing spec -> calibration / evaluation splits
      -> variants (TFLiteConverter recipes, or the AI Edge Quantizer for a float .tflite)
      -> one streamed evaluation pass (accuracy with labels, fidelity to float always)
      -> recovery when the plain full-integer variant misses the budget
      -> Edge TPU gate, analyzer and compiler (target edgetpu) -> host latency
      -> the bundle: .tflite + recipe JSON, preprocessing.json, labels.txt, report, deploy.json

`tools/deploy.py`, `configs/deploy.py` (through `tools/pipeline.py`), `edgequant.deploy(...)`
and notebook 04 all call `run`. Nothing here knows MNIST: inputs and outputs are the model's
own names, classes come from the data, and there is no default dataset (calibrating a user's
model on our digits is the exact pitfall quantization guides warn about).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np

from edgequant import atomic, config_check, rundir, usermodel
from edgequant.data import preprocess, sources, stats
from edgequant.data.dataset import Dataset, Split
from edgequant.errors import UserError
from edgequant.evaluate import artifact, metrics
from edgequant.evaluate.runner import SignatureModel
from edgequant.quantize import aeq, convert, recipes

log = logging.getLogger(__name__)
TARGETS = ("edgetpu", "cpu")
MIN_CALIBRATION = 100  # fewer samples than this: a warning in the report (TF's guide: 100-500)
STATS_SAMPLES = 256  # evaluation samples the data statistics compare with calibration


@dataclasses.dataclass
class Study:
    """Everything a deployment shares: config, model, data splits, spec, measured variants."""

    config: object
    out_dir: Path
    model: usermodel.UserModel
    calibration: sources.Split
    evaluation: sources.Split
    validation: sources.Split  # calibration-side data not in the calibration set: for choices
    samples: dict[str, np.ndarray]  # the calibration set, by input name
    preprocessing: preprocess.Preprocessing | None
    labels_output: str | None
    class_names: list[str] | None
    warnings: list[str] = dataclasses.field(default_factory=list)
    repair: dict | None = None  # what --fix rewrote (edgetpu/repair.py), before and after

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A variant to build: a converter recipe (or AEQ recipe) and why it is tried."""

    name: str
    recipe: recipes.Recipe | None
    aeq_recipe: str | None = None
    samples: int | None = None  # calibration samples (None: the configured size)
    step: str = "plain"
    denylist: tuple[str, ...] = ()  # layers kept in float
    worst_k: int = 0  # recovery: keep the k worst layers in float (resolved into `denylist`)


# --- set-up -----------------------------------------------------------------------------------


def preprocessing_resolver(config, model: usermodel.UserModel):
    p = config.preprocess
    cache: list[preprocess.Preprocessing] = []

    def resolve() -> preprocess.Preprocessing:
        if not cache:
            image_inputs = [t for t in model.inputs if len(t.sample_shape) == 3]
            if len(model.inputs) != 1 or not image_inputs:
                raise UserError(
                    "image data feeds a model with one [H, W, C] input; this model takes "
                    + ", ".join(f"{t.name} {list(t.sample_shape)}" for t in model.inputs)
                )
            cache.append(
                preprocess.resolve(
                    image_inputs[0].sample_shape,
                    model.normalizes_input(),
                    input_range=preprocess.parse_floats(p.input_range, "input_range"),
                    mean=preprocess.parse_floats(p.mean, "mean"),
                    std=preprocess.parse_floats(p.std, "std"),
                    color=p.color,
                    resize=preprocess.parse_floats(p.resize, "resize"),
                    fit=p.fit,
                    method=p.method,
                    embedded=preprocess.embedded_in(model),  # a bundle's model: its own spec
                )
            )
        return cache[0]

    return resolve


def _open(config, path: str, model, resolve) -> sources.Source:
    d = config.data
    features = dict(
        pair.split(":", 1) for pair in str(d.tfrecord_features).split(",") if ":" in pair
    )
    return sources.open_source(
        path,
        model.inputs,
        resolve,
        kind=d.kind,
        tfrecord_features=features,
        label_key=d.label_key,
        max_corrupt=d.max_corrupt_fraction,
        class_names=sources.read_class_names(d.labels) if d.labels else None,
    )


def open_data(config, model: usermodel.UserModel, path: str) -> sources.Source:
    """One source for `model` from a deploy-style config (what quantize/evaluate binaries use)."""
    return _open(config, path, model, preprocessing_resolver(config, model))


def evaluate_model(config, model: usermodel.UserModel, split: sources.Split) -> dict:
    """Accuracy (with labels) of one loaded model of any format on `split`."""
    runner = (
        SignatureModel(model.path, config.evaluate.batch_size, signature=model.signature)
        if model.format == "tflite"
        else model
    )
    labels_output, class_names = _classes(model, split.source, split)
    if labels_output is None:
        raise UserError(f"{split.source.description} has no labels: accuracy needs labels")
    out = metrics.evaluate(
        split,
        {"model": runner},
        "model",
        labels_output=labels_output,
        num_classes=len(class_names),
        class_names=class_names,
        batch_size=config.evaluate.batch_size,
    )["model"]
    return {"accuracy": out["top1"], **out, "output": labels_output}


def quantize_model(config, recipe_name: str, out_dir: str | Path) -> Path:
    """One converter recipe applied to the user's model, calibrated on config.data.path."""
    recipe = recipes.get(recipe_name, config.quantize.weights, config.quantize.calibration_size)
    validate(config, needs_data=recipe.needs_calibration)
    model = usermodel.load(config.model.path, config.model.signature)
    samples = None
    spec = None
    if recipe.needs_calibration:
        source = open_data(config, model, config.data.path)
        split = sources.everything(source, "calibration")
        samples, _ = split.subset(recipe.calibration_size, config.seed).arrays()
        spec = source.preprocessing
        n = len(next(iter(samples.values())))
        recipe = dataclasses.replace(recipe, calibration_size=n)  # what was really used
    content = convert.convert(model, recipe, samples)
    out_dir = Path(out_dir)
    path = convert.write(content, recipe, out_dir, spec)
    if spec is not None:
        spec.save(out_dir / f"{recipe.name}.preprocessing.json")
    return path


def validate(config, needs_data: bool = True) -> None:
    """Checks the whole config before any work starts (one line naming the bad keys)."""
    if not config.model.get("path"):
        raise UserError("no model: pass --model=PATH (a .keras/.h5 file, SavedModel or .tflite)")
    if needs_data and not config.data.get("path"):
        raise UserError(
            "no calibration data: pass --data=PATH (an image folder, .npy/.npz, .tfrecord or "
            "module:function); edgequant never calibrates your model on a default dataset"
        )
    config_check.validate(config)


def prepare(config, out_dir: str | Path) -> Study:
    """Loads the model and data, resolves preprocessing, makes the splits and calibration set."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out_dir {out_dir} is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = usermodel.load(config.model.path, config.model.signature)
    if model.format == "tflite" and config.target == "edgetpu":
        raise UserError(
            "a float .tflite can only go through the AI Edge Quantizer, which keeps float I/O; "
            "the Edge TPU needs uint8 I/O from TFLiteConverter: give the Keras or SavedModel model"
        )
    resolve = preprocessing_resolver(config, model)
    seed = config.seed
    source = _open(config, config.data.path, model, resolve)
    if config.data.eval_path:
        calibration = sources.everything(source, "calibration")
        evaluation = sources.everything(
            _open(config, config.data.eval_path, model, resolve), "evaluation"
        )
        held_out = False
    else:
        calibration, evaluation = sources.holdout(source, config.data.holdout_fraction, seed)
        held_out = True
    if config.data.max_eval and len(evaluation) > config.data.max_eval:
        evaluation = evaluation.subset(config.data.max_eval, seed, "evaluation")
    cal_set = calibration.subset(config.quantize.calibration_size, seed, "calibration set")
    rest = np.setdiff1d(calibration.indices, cal_set.indices)
    validation = sources.Split(source, rest, "validation") if len(rest) else cal_set
    validation = validation.subset(config.recovery.validation_size, seed + 1, "validation")
    samples, _ = cal_set.arrays()
    warnings = []
    if len(cal_set) < MIN_CALIBRATION:
        warnings.append(
            f"only {len(cal_set)} calibration samples (fewer than {MIN_CALIBRATION}): "
            "activation ranges may miss the tails; give more data"
        )
    if held_out:
        warnings.append(
            f"no --eval_data: a seeded {config.data.holdout_fraction:.0%} of --data "
            f"({len(evaluation)} samples) is held out for evaluation and never calibrates"
        )
    labels_output, class_names = _classes(model, source, evaluation)
    spec = source.preprocessing
    repaired = None
    if config.edgetpu.get("fix"):
        model, repaired = _repair(model, samples, config.edgetpu.approximate)
    return Study(
        config,
        out_dir,
        model,
        calibration,
        evaluation,
        validation,
        samples,
        spec,
        labels_output,
        class_names,
        warnings,
        repaired,
    )


def _repair(model, samples, approximate: bool) -> tuple[usermodel.UserModel, dict]:
    """The Edge TPU repair (edgetpu/repair.py) on a Keras model, before any conversion: the
    variants are made from the rewritten model, under the original model's names."""
    from edgequant.edgetpu.repair import repair

    if model.keras is None:
        raise UserError(f"--fix rewrites Keras models; this one is a {model.format}")
    result = repair(model.keras, [samples[n] for n in model.input_names], approximate)
    repaired = usermodel.from_keras(result.model, model.path, model.format, names_from=model)
    repaired.inputs, repaired.outputs = model.inputs, model.outputs
    return repaired, {**result.to_dict(), "summary": result.summary()}


def _classes(model, source, evaluation) -> tuple[str | None, list[str] | None]:
    """(the output the labels score, class names); refuses a class-count mismatch.

    Folder labels name every class, so the classifier output must have exactly that many
    scores; array labels are indices, so any classifier output with more scores than the
    largest label fits.
    """
    if evaluation.labels is None:
        return None, None
    named = evaluation.source.class_names or source.class_names
    if named:
        return metrics.classifier_output(model.outputs, len(named)), list(named)
    top = int(evaluation.labels.max())
    if source.labels is not None:
        top = max(top, int(source.labels.max()))
    fits = [t for t in model.outputs if metrics.is_classifier_shaped(t.shape) and t.shape[-1] > top]
    if not fits:
        metrics.classifier_output(model.outputs, top + 1)  # raises, naming the shapes
    return fits[0].name, [str(i) for i in range(fits[0].shape[-1])]


# --- variants ---------------------------------------------------------------------------------


def plain_candidates(study: Study) -> list[Candidate]:
    q = study.config.quantize
    if study.model.format == "tflite":
        return [Candidate(f"aeq_{r}", None, r) for r in q.aeq_recipes]
    names = ("uint8",) if study.config.target == "edgetpu" else tuple(q.recipes)
    out = [
        Candidate(r.name, r) for r in (recipes.get(n, q.weights, q.calibration_size) for n in names)
    ]
    if study.config.target == "cpu":
        out += [Candidate(f"aeq_{r}", None, r) for r in q.aeq_recipes]
    return out


def _float_path(study: Study) -> Path:
    """The float reference: the fp32 conversion of the model (or the user's float .tflite)."""
    if study.model.format == "tflite":
        return Path(study.model.path)
    path = study.out_dir / "fp32.tflite"
    if not path.is_file():
        recipe = recipes.get("fp32")
        content = convert.convert(study.model, recipe)
        convert.write(content, recipe, study.out_dir, study.preprocessing)
    return path


def build(study: Study, c: Candidate) -> dict:
    """Converts one candidate and describes it (not yet measured)."""
    samples = study.samples
    if c.samples is not None and c.samples != len(next(iter(samples.values()))):
        samples, _ = study.calibration.subset(c.samples, study.config.seed, "calibration").arrays()
    n = len(next(iter(samples.values())))
    mixed = False  # float ops the converter kept on its own (int8_fallback)
    if c.aeq_recipe:
        path = aeq.quantize(
            _float_path(study), c.aeq_recipe, samples, study.out_dir, study.preprocessing
        )
        recipe = convert.read_recipe(path)
    elif c.denylist:
        from edgequant.diagnose import layers

        # denylisted_model debugs on the first 8 samples itself
        content = layers.denylisted_model(
            study.model, samples, samples, list(c.denylist), c.recipe.weights.value
        )
        recipe = dataclasses.replace(
            recipes.mixed(c.denylist, c.recipe.weights.value, n, c.step), name=c.name
        )
        path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    else:
        recipe = dataclasses.replace(c.recipe, name=c.name, calibration_size=n)
        content = convert.convert(study.model, recipe, samples)
        path = convert.write(content, recipe, study.out_dir, study.preprocessing)
        # int8_fallback keeps float the ops the converter could not quantize
        mixed = recipe.mode is recipes.Mode.INT8_FALLBACK and bool(convert.float_ops(content))
    return describe(c.name, path, recipe, n, c.step, mixed)


def describe(name, path, recipe: recipes.Recipe, n: int, step: str, mixed: bool = False) -> dict:
    """A variant entry of deploy.json, before measurement (the recipe as its dict). `mixed`:
    float ops remain that the recipe did not ask for (int8_fallback's fallback)."""
    info = artifact.describe(path)
    weights, activations = recipe.precision
    activations = "mixed" if mixed else activations
    full_integer = info["input_dtype"] in ("uint8", "int8") and activations in ("int8", "int16")
    return {
        "name": name,
        "path": str(path),
        "target": "edgetpu" if info["input_dtype"] == "uint8" and full_integer else "cpu",
        "input_dtype": info["input_dtype"],
        "output_dtype": info["output_dtype"],
        "size_bytes": info["size_bytes"],
        "weights": weights,
        "activations": activations,
        "calibration_samples": n,
        "step": step,
        "recipe": recipe.to_dict(),
        "op_histogram": info["op_histogram"],
        "gate": None,
        "edgetpu": None,
        "latency_ms": None,
    }


def measure(study: Study, variants: list[dict], split: sources.Split, float_path: Path) -> dict:
    """Metrics of the float reference and every variant, in one pass over `split`."""
    bs = study.config.evaluate.batch_size
    models = {"float": SignatureModel(float_path, bs, signature=None)}
    for v in variants:
        models[v["name"]] = SignatureModel(v["path"], bs, signature=None)
    return metrics.evaluate(
        split,
        models,
        "float",
        labels_output=study.labels_output,
        num_classes=study.num_classes,
        class_names=study.class_names,
        batch_size=bs,
    )


def within_budget(study: Study, m: dict, float_m: dict) -> tuple[bool, str]:
    """The budget: top-1 drop in pp with labels, else the worst output's SQNR."""
    b = study.config.budget
    if "top1" in m and "top1" in float_m:
        drop = 100 * (float_m["top1"] - m["top1"])
        return drop <= b.max_drop_pp, f"top-1 {drop:+.2f} pp vs float (budget {b.max_drop_pp} pp)"
    worst = min(m["sqnr_db"].values())
    return worst >= b.min_sqnr_db, f"worst-output SQNR {worst:.1f} dB (budget {b.min_sqnr_db} dB)"


# --- recovery ---------------------------------------------------------------------------------


def recovery_candidates(study: Study, failing: dict) -> list[Candidate]:
    """Cheapest first, as quantization guides advise: more calibration data, the other weight
    granularity, 16-bit activations (CPU: the Edge TPU is 8-bit only), the worst layers in
    float (CPU only). QAT needs the user's training data and labels."""
    cfg = study.config.recovery
    q = study.config.quantize
    if failing["recipe"].get("backend") != "tflite-converter":
        return []
    mode = failing["recipe"]["mode"]
    big = min(cfg.large_calibration_size, len(study.calibration))
    other = "per_tensor" if q.weights == "per_channel" else "per_channel"
    out = []
    if big > len(next(iter(study.samples.values()))):
        out.append(
            Candidate(
                f"{mode}_cal{big}",
                recipes.get(mode, q.weights, big),
                samples=big,
                step="calibration",
            )
        )
    r = recipes.get(mode, other, big)
    out.append(Candidate(f"{r.name}_cal{big}", r, samples=big, step="granularity"))
    if study.config.target == "cpu":
        out.append(
            Candidate(
                "int16x8",
                recipes.get("int16x8", q.weights, q.calibration_size),
                step="16-bit activations",
            )
        )
        if study.model.keras is not None and len(study.model.inputs) == 1:
            for k in cfg.denylist_k:
                out.append(
                    Candidate(
                        f"mixed_k{k}",
                        recipes.get("int8_fallback", q.weights),
                        step=f"mixed precision k={k}",
                        worst_k=k,
                    )
                )
    return out


def _layers_by_error(study: Study) -> list[str]:
    """The model's layers, worst int8 error first (one QuantizationDebugger run)."""
    from edgequant.diagnose import layers

    val, _ = study.validation.subset(32, study.config.seed).arrays()
    errors = layers.layer_errors(study.model, study.samples, val, study.config.quantize.weights)
    return [e.tensor_name for e in errors]


def recover(study: Study, failing: dict, float_path: Path, trials: list[dict]) -> list[dict]:
    """Tries recovery candidates on the validation data until one meets the budget.

    Choices are judged on calibration-side data the calibration set did not use (never on the
    evaluation data, which only reports). Returns the variants built, winner last.
    """
    built = []
    float_val = None
    ranking: list[str] | None = None  # computed once, when the first mixed candidate is tried
    for c in recovery_candidates(study, failing):
        if c.worst_k:
            ranking = _layers_by_error(study) if ranking is None else ranking
            c = dataclasses.replace(c, denylist=tuple(ranking[: c.worst_k]))
        try:
            v = build(study, c)
        except (UserError, ValueError, RuntimeError) as e:
            trials.append({"step": c.step, "name": c.name, "error": str(e).splitlines()[0]})
            continue
        m = measure(study, [v], study.validation, float_path)
        float_val = float_val or m["float"]
        ok, why = within_budget(study, m[v["name"]], float_val)
        trials.append({"step": c.step, "name": c.name, "meets_budget": ok, "on_validation": why})
        log.info("recovery %s: %s (%s)", c.name, why, "meets the budget" if ok else "misses")
        built.append(v)
        if ok:
            break
    if built and trials[-1].get("meets_budget"):
        return built
    why_not = study.model.qat_support() or (
        None if study.config.recovery.train_data else "QAT needs --train_data (labelled)"
    )
    if why_not:
        trials.append({"step": "qat", "name": "qat", "skipped": why_not})
        return built
    try:
        v = build_qat(study, failing)
    except (UserError, ValueError, RuntimeError) as e:
        trials.append({"step": "qat", "name": "qat", "error": str(e).splitlines()[0]})
        return built
    m = measure(study, [v], study.validation, float_path)
    ok, why = within_budget(study, m[v["name"]], m["float"])
    trials.append({"step": "qat", "name": v["name"], "meets_budget": ok, "on_validation": why})
    return [*built, v]


def build_qat(study: Study, failing: dict) -> dict:
    """Quantization-aware fine-tuning of a tf_keras classifier on the user's labelled training
    data (config.recovery.train_data), then the failing variant's recipe on the QAT model."""
    from edgequant.train import fit, qat

    cfg = study.config.recovery
    model = study.model
    if len(model.inputs) != 1 or len(model.outputs) != 1 or study.labels_output is None:
        raise UserError("QAT here fine-tunes one-input, one-output classifiers with labelled data")
    source = _open(study.config, cfg.train_data, model, lambda: study.preprocessing)
    if source.labels is None:
        raise UserError(f"--train_data {cfg.train_data} has no labels")
    x, y = sources.everything(source, "train").subset(cfg.qat_samples, study.config.seed).arrays()
    x = x[model.input_names[0]]
    qat_model = qat.apply(qat.annotate(model.keras), study.config.quantize.weights == "per_tensor")
    probe = qat_model.predict(x[:64], verbose=0)
    from_logits = not np.allclose(probe.sum(-1), 1.0, atol=1e-3) or probe.min() < 0
    # The one training loop (fit.run_loop) validates on a tenth of the samples it is given.
    n_val = max(1, len(y) // 10)
    data = Dataset(
        "recovery", cfg.train_data, Split(x[n_val:], y[n_val:]), Split(x[:n_val], y[:n_val]), None
    )
    tuned = fit.run_loop(
        qat_model,
        data,
        study.config,
        study.out_dir,
        epochs=cfg.qat_epochs,
        learning_rate=cfg.qat_learning_rate,
        log_name="recovery_qat",
        from_logits=from_logits,
        verbose=0,
    )
    mode = failing["recipe"]["mode"]
    recipe = recipes.get(
        mode, study.config.quantize.weights, study.config.quantize.calibration_size
    )
    from edgequant.train.qat_stage import annotated_layers

    n = len(next(iter(study.samples.values())))
    recipe = dataclasses.replace(
        recipe,
        name=f"qat_{mode}",
        calibration_size=n,
        qat=recipes.QatSettings(
            cfg.qat_epochs,
            cfg.qat_learning_rate,
            per_tensor=study.config.quantize.weights == "per_tensor",
            annotated=annotated_layers(qat_model),
            samples=len(data.train),
        ),
    )
    content = convert.convert(
        usermodel.from_keras(qat_model, names_from=model), recipe, study.samples
    )
    path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    entry = describe(recipe.name, path, recipe, n, "qat")
    entry["qat_val_accuracy"] = tuned.val_accuracy  # the fake-quant Keras model, held-out tenth
    return entry


# --- Edge TPU, latency, recommendation --------------------------------------------------------


def edgetpu_checks(study: Study, variants: list[dict]) -> None:
    from edgequant.edgetpu import stage as edgetpu_stage

    cfg = study.config.edgetpu
    for v in filter(edgetpu_stage.is_edgetpu_variant, variants):
        entry = edgetpu_stage.check_variant(v, cfg, study.out_dir / "edgetpu")
        v["gate"] = "pass" if entry["gate"]["passed"] else "fail"
        v["edgetpu"] = {"mapped": entry["mapped_count"], "total": entry["op_count"], **entry}


def latency(study: Study, variants: list[dict]) -> None:
    from edgequant.bench import latency as bench_latency

    if not study.config.bench.enabled:
        return
    for v in variants:
        v.update(bench_latency.measure(v["path"], study.config.bench))


def recommend(study: Study, variants: list[dict]) -> str | None:
    """The fastest variant within the budget for the target (Edge TPU: gate passed)."""
    ok = [v for v in variants if v.get("within_budget")]
    if study.config.target == "edgetpu":
        ok = [v for v in ok if v["gate"] == "pass"]
    else:
        ok = [v for v in ok if v["name"] != "fp32"] or ok
    if not ok:
        return None

    def speed(v):
        lat = v.get("latency_ms") or {}
        return (lat.get("p50", math.inf), v["size_bytes"])

    return min(ok, key=speed)["name"]


# --- the whole flow ---------------------------------------------------------------------------


def run(config, out_dir: str | Path) -> dict:
    """Deploys `config.model.path` with `config.data`; writes the bundle, returns deploy.json.

    The bundle is built in a staging folder and swapped into `out_dir` only when complete
    (edgequant/rundir.py): an interrupted deployment never leaves a half bundle.
    """
    validate(config)
    with rundir.staged(out_dir) as staging:
        return _run(config, staging, Path(out_dir))


def _run(config, staging: Path, out_dir: Path) -> dict:
    study = prepare(config, staging)
    float_path = _float_path(study)
    variants, errors = [], []
    for c in plain_candidates(study):
        try:
            variants.append(build(study, c))
        except (UserError, ValueError, RuntimeError) as e:
            log.error("%s: %s", c.name, e)
            errors.append({"name": c.name, "error": str(e).splitlines()[0]})
    trials: list[dict] = []
    if config.recovery.enabled:
        plain = next(
            (v for v in variants if v["name"] in ("uint8", "int8") and v["step"] == "plain"), None
        )
        if plain is not None:
            m = measure(study, [plain], study.validation, float_path)
            ok, why = within_budget(study, m[plain["name"]], m["float"])
            trials.append(
                {"step": "plain", "name": plain["name"], "meets_budget": ok, "on_validation": why}
            )
            if not ok:
                variants += recover(study, plain, float_path, trials)
    measured = measure(study, variants, study.evaluation, float_path)
    float_metrics = measured.pop("float")
    for v in variants:
        v["metrics"] = measured[v["name"]]
        v["within_budget"], v["budget"] = within_budget(study, v["metrics"], float_metrics)
    if config.target == "edgetpu" or any(v["input_dtype"] == "uint8" for v in variants):
        edgetpu_checks(study, variants)
    latency(study, variants)
    return bundle(study, variants, float_metrics, trials, errors, out_dir)


def _finite(x):
    """JSON has no Infinity: an exact match (infinite SQNR) is written as null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def bundle(study: Study, variants, float_metrics, trials, errors, final_dir: Path) -> dict:
    """Writes deploy.json, preprocessing.json, labels.txt and the report into the staging
    folder, with every path named as it will be once the folder is swapped into `final_dir`."""
    from edgequant.report import deploy_report, html

    cal_src, ev_src = study.calibration.source, study.evaluation.source
    calib_x = study.samples
    eval_x, _ = study.evaluation.subset(
        min(len(study.evaluation), STATS_SAMPLES), study.config.seed
    ).arrays()
    data_stats = stats.compare(calib_x, eval_x, study.config.seed)
    study.warnings += [
        f"input '{k}': calibration and evaluation data differ (distance {s['distance']:.2f}; "
        "check that both come from the same distribution and preprocessing)"
        for k, s in data_stats.items()
        if s["mismatch"]
    ]
    result = {
        "model": study.model.describe(),
        "target": study.config.target,
        "preprocessing": study.preprocessing.to_dict() if study.preprocessing else None,
        "calibration": {
            "source": cal_src.description,
            "n": len(next(iter(calib_x.values()))),
            "pool": len(study.calibration),
            "corrupt_skipped": len(cal_src.corrupt),
        },
        "evaluation": {
            "source": ev_src.description,
            "n": float_metrics["n"],
            "labels": study.labels_output is not None,
            "held_out_from_data": ev_src is cal_src,
            "corrupt_skipped": len(ev_src.corrupt) if ev_src is not cal_src else 0,
        },
        "data_stats": data_stats,
        "float": {"path": study.model.path, "metrics": float_metrics},
        "variants": variants,
        "recovery": trials,
        "errors": errors,
        "warnings": study.warnings,
        "repair": study.repair,
        "recommended": recommend(study, variants),
        "config": json.loads(study.config.to_json_best_effort()),
    }
    if study.preprocessing is not None:
        study.preprocessing.save(study.out_dir / "preprocessing.json")
    if study.class_names:
        (study.out_dir / "labels.txt").write_text("\n".join(study.class_names) + "\n")
    result = rundir.relocate(_finite(result), study.out_dir, final_dir)
    atomic.write_text(study.out_dir / "deploy.json", json.dumps(result, indent=1, default=str))
    deploy_report.write(result, study.out_dir)
    html.write(study.out_dir)
    return result
