"""A model and its data -> a Study: preprocessing, splits, calibration set, classes.

Nothing here knows MNIST: inputs and outputs are the model's own names, classes come from the
data, and there is no default dataset (calibrating a user's model on our digits is the exact
pitfall quantization guides warn about). The quantize/evaluate binaries reuse `open_data`,
`evaluate_model` and `quantize_model`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgequant import config_check, usermodel
from edgequant.data import checks, preprocess, sources
from edgequant.errors import UserError
from edgequant.evaluate import metrics
from edgequant.evaluate.runner import SignatureModel
from edgequant.flow import bounds, truth
from edgequant.flow.measure import budget_keys
from edgequant.flow.study import Study
from edgequant.quantize import convert, recipes

MIN_CALIBRATION = 100  # fewer samples than this: a warning in the report (TF's guide: 100-500)


def preprocessing_resolver(config, model: usermodel.UserModel):
    """A function giving the image preprocessing spec, resolved on first call: only image
    data needs one, and arrays or TFRecords must not be refused for a missing pixel range."""
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


def open_source(config, path: str, model, resolve) -> sources.Source:
    """A streamed source at `path` for the model's named inputs, read with config.data's keys."""
    d = config.data
    features = dict(
        pair.split(":", 1) for pair in str(d.tfrecord_features).split(",") if ":" in pair
    )
    names = sources.read_class_names(d.labels) if d.labels else None
    source = sources.open_source(
        path,
        model.inputs,
        resolve,
        kind=d.kind,
        tfrecord_features=features,
        label_key=d.label_key,
        max_corrupt=d.max_corrupt_fraction,
        class_names=names,
        label_required=d.label_key != "label",  # the user named a key: it must be there
        max_samples=d.get("max_samples", 100_000),
    )
    if names and source.labels is not None and source.class_names is None:
        # index labels (arrays, TFRecord, callable) with a labels.txt: it names the classes
        checks.refuse_labels_outside(
            source.labels, len(names), source.description, f"{d.labels} names {len(names)}"
        )
        source.class_names = list(names)
    return source


def open_data(config, model: usermodel.UserModel, path: str) -> sources.Source:
    """One source for `model` from a deploy-style config (what quantize/evaluate binaries use)."""
    return open_source(config, path, model, preprocessing_resolver(config, model))


def evaluate_model(config, model: usermodel.UserModel, split: sources.Split) -> dict:
    """Accuracy (with labels) of one loaded model of any format on `split`."""
    runner = (
        SignatureModel(model.path, config.evaluate.batch_size, signature=model.signature)
        if model.format == "tflite"
        else model
    )
    labels_output, class_names = classes(model, split.source, split)
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
    model = usermodel.load(
        config.model.path, config.model.signature, config.model.get("trust_code", False)
    )
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
    qat = config.get("qat")
    if qat is not None and qat.enabled and not config.recovery.get("train_data"):
        raise UserError(
            "--qat needs training data: pass --train_data=PATH (an image folder, .npy/.npz, "
            ".tfrecord or module:function; labels optional)"
        )
    config_check.validate(config)


def prepare(config, out_dir: str | Path) -> Study:
    """Loads the model and data, resolves preprocessing, makes the splits and calibration set."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out_dir {out_dir} is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = usermodel.load(
        config.model.path, config.model.signature, config.model.get("trust_code", False)
    )
    if model.format == "tflite" and config.target == "edgetpu":
        raise UserError(
            "a float .tflite can only go through the AI Edge Quantizer, which keeps float I/O; "
            "the Edge TPU needs uint8 I/O from TFLiteConverter: give the Keras or SavedModel model"
        )
    truth.refuse_non_float_reference(model, config)
    resolve = preprocessing_resolver(config, model)
    seed = config.seed
    source = open_source(config, config.data.path, model, resolve)
    if config.data.eval_path:
        calibration = sources.everything(source, "calibration")
        eval_source = open_source(config, config.data.eval_path, model, resolve)
        truth.refuse_other_classes(source, eval_source)
        evaluation = sources.everything(eval_source, "evaluation")
        held_out = False
    else:
        calibration, evaluation = sources.holdout(source, config.data.holdout_fraction, seed)
        held_out = True
    evaluation = capped(config, evaluation)
    cal_set = calibration.subset(config.quantize.calibration_size, seed, "calibration set")
    rest = np.setdiff1d(calibration.indices, cal_set.indices)
    validation = sources.Split(source, rest, "validation") if len(rest) else cal_set
    validation = validation.subset(config.recovery.validation_size, seed + 1, "validation")
    per_sample = bounds.check_memory(
        source,
        model.inputs,
        len(cal_set),
        len(evaluation),
        config.evaluate.batch_size,
        bounds.available_bytes(),
    )
    warnings = []
    bounded = bounds.batch_size(per_sample, config.evaluate.batch_size)
    if bounded < config.evaluate.batch_size:
        warnings.append(
            f"batches of {bounded} sample(s), not {config.evaluate.batch_size}: one sample is "
            f"{per_sample / (1 << 20):.0f} MiB of float32"
        )
        config.evaluate.batch_size = bounded
    samples, _ = cal_set.arrays()
    truth.refuse_non_finite_outputs(model, samples, config.data.path, bounded)
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
    labels_output, class_names = classes(model, source, evaluation)
    spec = source.preprocessing
    repaired = None
    if config.edgetpu.get("fix"):
        model, repaired = _repair(model, samples, config.edgetpu.approximate)
    # Training data (QAT): the same data kinds and preprocessing as --data.
    train_path = config.recovery.get("train_data")
    train = (
        sources.everything(open_source(config, train_path, model, resolve), "train")
        if train_path
        else None
    )
    study = Study(
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
        train=train,
    )
    from edgequant.flow import tasks

    tasks.setup(study)  # detection/segmentation: ground truth, the body/tail split
    study.warnings += unused_budget(config, budget_keys(study))
    return study


def capped(config, evaluation: sources.Split) -> sources.Split:
    """At most config.data.max_eval seeded samples of the evaluation split (0: all of it)."""
    cap = config.data.get("max_eval", 0)
    return (
        evaluation.subset(cap, config.seed, "evaluation")
        if 0 < cap < len(evaluation)
        else evaluation
    )


def unused_budget(config, used: tuple[str, ...]) -> list[str]:
    """A warning for each budget key set away from its default that this data cannot judge
    (a top-1 budget on unlabelled data would otherwise be silently replaced by SQNR)."""
    from edgequant import workspace

    default = workspace.config("base").budget
    given = [k for k in config.budget if k not in used and config.budget[k] != default.get(k)]
    return [
        f"budget.{k}={config.budget[k]} is not used: this data is judged by "
        + " and ".join(f"budget.{u}={config.budget[u]}" for u in used)
        for k in given
    ]


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


def classes(model, source, evaluation) -> tuple[str | None, list[str] | None]:
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
