"""The one QAT: fine-tune the float model with fake quantization on `study.train`, convert it
with a full-integer recipe, and measure Keras-vs-TFLite parity.

Two callers: the QAT stage (config.qat.enabled: `qat_uint8` and `qat_int8`, plus an optional
n-bit simulation) and the recovery ladder's last rung (search/ladder.py). Parity matters
because a gap between the QAT Keras model and its converted TFLite model is a silent failure
users keep hitting: each QAT variant states the agreement rate of their predictions.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgequant import usermodel
from edgequant.data import sources
from edgequant.data.dataset import Dataset
from edgequant.errors import UserError
from edgequant.evaluate import metrics
from edgequant.evaluate.runner import SignatureModel
from edgequant.flow import variants
from edgequant.flow.study import Study
from edgequant.quantize import convert, recipes
from edgequant.train import fit, qat

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Tuned:
    """A fine-tuned QAT model and what its training cost."""

    model: object  # the fake-quantized tf_keras model
    settings: recipes.QatSettings
    val_accuracy: float  # the fake-quant Keras model on the validation split
    seconds: float
    epochs: int


def annotated_layers(qat_model) -> tuple[str, ...]:
    """The layers `qat.apply` wrapped for fake quantization (no-op-configured ones included)."""
    return tuple(
        layer.layer.name
        for layer in qat_model.layers
        if type(layer).__name__.startswith("QuantizeWrapper")
    )


def training_split(study: Study) -> sources.Split | None:
    """The labelled training data: the study's train split, else a deployment's
    config.recovery.train_data, opened with the model's preprocessing."""
    path = study.config.recovery.get("train_data")
    if study.train is None and path:
        from edgequant.flow.prepare import open_source

        source = open_source(study.config, path, study.model, lambda: study.preprocessing)
        study.train = sources.everything(source, "train")
    return study.train


def why_not(study: Study) -> str | None:
    """Why QAT cannot run on this study (None: it can)."""
    training_split(study)
    if study.model.qat_support():
        return study.model.qat_support()
    if study.train is None or study.train.labels is None:
        return "QAT needs labelled training data (--train_data)"
    if len(study.model.inputs) != 1 or study.labels_output is None:
        return "QAT here fine-tunes one-input classifiers with labelled data"
    return None


def fine_tune(
    study: Study,
    epochs: int,
    learning_rate: float,
    log_name: str,
    layers=("*",),
    noop_layers=(),
    nbit=(),
    max_samples: int = 0,
) -> Tuned:
    """Fake-quantizes `study.model` (the `layers` patterns) and fine-tunes it with the one
    training loop on study.train, validating on study.validation (never the evaluation data)."""
    reason = why_not(study)
    if reason:
        raise UserError(reason)
    per_tensor = study.config.quantize.weights == "per_tensor"
    qat_model = qat.apply(
        qat.annotate(study.model.keras, tuple(layers), tuple(noop_layers)),
        per_tensor,
        tuple(nbit) or None,
    )
    train = study.train.subset(max_samples or len(study.train), study.config.seed, "train")
    val = study.validation
    if val.labels is None:  # unlabelled calibration-side data: validate on a tenth of train
        n_val = max(1, len(train) // 10)
        train, val = (
            sources.Split(train.source, train.indices[n_val:], "train"),
            sources.Split(train.source, train.indices[:n_val], "validation"),
        )
    # A classifier ending in softmax is trained on probabilities; one ending in logits is not.
    x, _ = fit.features(train.subset(64, study.config.seed))
    probe = qat_model.predict(x, verbose=0)
    probe = probe[study.labels_output] if isinstance(probe, dict) else probe
    from_logits = not np.allclose(probe.sum(-1), 1.0, atol=1e-3) or probe.min() < 0
    data = Dataset("qat", train.source.description, train, val, None)
    # A deployment's config has no train block: the recovery block names the batch size.
    batch_size = None if study.config.get("train") else study.config.recovery.qat_batch_size
    run = fit.run_loop(
        qat_model,
        data,
        study.config,
        study.out_dir,
        epochs=epochs,
        learning_rate=learning_rate,
        log_name=log_name,
        from_logits=from_logits,
        batch_size=batch_size,
        verbose=0,
    )
    settings = recipes.QatSettings(
        epochs,
        learning_rate,
        layers=tuple(layers),
        noop_layers=tuple(noop_layers),
        per_tensor=per_tensor,
        annotated=annotated_layers(qat_model),
        samples=len(train),
    )
    return Tuned(qat_model, settings, run.val_accuracy, run.seconds, run.epochs)


def build(study: Study, tuned: Tuned, mode: str, step: str) -> dict:
    """The QAT model converted with `mode` (uint8/int8): a variant entry with its parity."""
    n = len(next(iter(study.samples.values())))
    recipe = recipes.Recipe(
        f"qat_{mode}", recipes.Mode(mode), study.config.quantize.weights, n, qat=tuned.settings
    )
    keras = usermodel.from_keras(tuned.model, names_from=study.model)
    content = convert.convert(keras, recipe, study.samples)
    path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    entry = variants.describe(recipe.name, path, recipe, n, step)
    entry["qat"] = {
        **parity(study, keras, path),
        "val_accuracy": tuned.val_accuracy,
        "seconds": tuned.seconds,
        "epochs": tuned.epochs,
    }
    log.info("%s: QAT Keras vs TFLite agreement %.4f", recipe.name, entry["qat"]["agreement"])
    return entry


def parity(study: Study, keras: usermodel.UserModel, path) -> dict:
    """The fake-quant Keras model and its .tflite on the evaluation data, in one pass: the
    Keras model's accuracy and how often the two predict the same class."""
    bs = study.config.evaluate.batch_size
    m = metrics.evaluate(
        study.evaluation,
        {"keras": keras, "tflite": SignatureModel(path, bs, signature=None)},
        "keras",
        labels_output=study.labels_output,
        num_classes=study.num_classes,
        class_names=study.class_names,
        batch_size=bs,
    )
    return {"keras_accuracy": m["keras"]["top1"], "agreement": m["tflite"]["agreement"]}


def qat_stage(study: Study, result: dict) -> list[dict]:
    """config.qat.enabled: one fine-tuning, converted to qat_uint8 and qat_int8."""
    cfg = study.config.get("qat")
    if cfg is None or not cfg.enabled:
        return []
    try:
        tuned = fine_tune(study, cfg.epochs, cfg.learning_rate, "qat", cfg.layers, cfg.noop_layers)
        made = [build(study, tuned, mode, "qat") for mode in ("uint8", "int8")]
    except (UserError, ValueError, RuntimeError) as e:
        result["errors"].append({"name": "qat", "error": str(e).splitlines()[0]})
        return []
    result["qat"] = {
        "val_accuracy": tuned.val_accuracy,
        "seconds": tuned.seconds,
        "epochs": tuned.epochs,
        "keras_accuracy": made[0]["qat"]["keras_accuracy"],
        "parity": {v["name"]: v["qat"]["agreement"] for v in made},
        "settings": tuned.settings.to_dict(),
    }
    if cfg.nbit:
        result["qat"]["nbit"] = simulate_nbit(study, cfg)
    return made


def simulate_nbit(study: Study, cfg) -> dict:
    """Fine-tunes with fewer bits than TFLite kernels run: a Keras-only accuracy estimate."""
    tuned = fine_tune(
        study, cfg.epochs, cfg.learning_rate, "qat_nbit", cfg.layers, cfg.noop_layers, cfg.nbit
    )
    keras = usermodel.from_keras(tuned.model, names_from=study.model)
    bs = study.config.evaluate.batch_size
    m = metrics.evaluate(
        study.evaluation,
        {"keras": keras},
        "keras",
        labels_output=study.labels_output,
        num_classes=study.num_classes,
        batch_size=bs,
    )
    return {
        "weight_bits": cfg.nbit[0],
        "activation_bits": cfg.nbit[1],
        "keras_accuracy": m["keras"]["top1"],
        "deployable": False,
        "note": "simulated in Keras only: TFLite kernels support 8-bit, so this model "
        "cannot be converted for deployment",
    }
