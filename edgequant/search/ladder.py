"""The recovery ladder: when the plain full-integer variant misses the budget, cheapest first.

Moved verbatim from the deployment (edgequant/flow); the flow's `recovery` stage calls
`recover`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from edgequant import usermodel
from edgequant.data import sources
from edgequant.data.dataset import Dataset, Split
from edgequant.errors import UserError
from edgequant.flow.measure import measure, within_budget
from edgequant.flow.prepare import open_source as _open
from edgequant.flow.study import Study
from edgequant.flow.variants import Candidate, build, describe
from edgequant.quantize import convert, recipes

log = logging.getLogger(__name__)


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
