"""The one QAT: fine-tune the float model with fake quantization on `study.train`, convert it
with a full-integer recipe, and measure Keras-vs-TFLite parity.

Two routes behind one stage, chosen by the model's kind: tf_keras models go through tfmot
(`train/qat.py`, the study's loop `fit.run_loop`); Keras 3 models, which tfmot cannot annotate,
through the Keras 3-native fake quantization of `train/keras3_qat.py`. A Keras 3 labelled
one-output classifier trains on its labels; anything else (no labels, a regressor, several
outputs) by distillation from the float model's outputs, by output name.

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

    model: object  # the fake-quantized tf_keras model, or a keras3_qat.QatModel
    settings: recipes.QatSettings
    val_accuracy: float | None  # the fake-quant Keras model on the validation split (labels)
    seconds: float
    epochs: int
    distilled: bool = False  # trained on the float model's outputs, not on labels


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


def is_keras3(study: Study) -> bool:
    """The Keras 3 route (keras3_qat) rather than tfmot's."""
    return study.model.keras is not None and not study.model.is_tf_keras


def why_not(study: Study) -> str | None:
    """Why QAT cannot run on this study (None: it can)."""
    training_split(study)
    if is_keras3(study):
        return _why_not_keras3(study)
    if study.model.qat_support():
        return study.model.qat_support()
    if study.train is None or study.train.labels is None:
        return "QAT needs labelled training data (--train_data)"
    if len(study.model.inputs) != 1 or study.labels_output is None:
        return "QAT here fine-tunes one-input classifiers with labelled data"
    return None


def _why_not_keras3(study: Study) -> str | None:
    from edgequant.train import keras3_qat

    try:
        bad = keras3_qat.unsupported(study.model.keras)
    except UserError as e:  # a subclassed model: one line saying so
        return str(e)
    if bad:
        names = ", ".join(f"{name} ({cls})" for name, cls in bad)
        return f"Keras 3 QAT cannot simulate layer(s) {names}; the PTQ variants still apply"
    if study.train is None:
        return "QAT needs training data: pass --train_data=PATH (labels optional)"
    return None


def check_training_data(study: Study) -> None:
    """Refuses (UserError) training data whose classes do not fit the model, or that names
    other classes than the evaluation data, before any work: labels would train the wrong
    scores. Shapes are checked when the source opens (sources.open_source)."""
    from edgequant.flow.prepare import classes

    train = training_split(study)
    if train is None or train.labels is None or not _classifier(study):
        return
    _, names = classes(study.model, train.source, train)
    if study.class_names and train.source.class_names and names != study.class_names:
        raise UserError(
            f"the training data's classes {names[:5]}... do not match the evaluation data's "
            f"{study.class_names[:5]}...: give both the same class folders (or --labels)"
        )


def _classifier(study: Study) -> bool:
    """One output shaped [N, classes]: labels can train it."""
    return len(study.model.outputs) == 1 and metrics.is_classifier_shaped(
        study.model.outputs[0].shape
    )


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
    if is_keras3(study):
        return _fine_tune_keras3(study, epochs, learning_rate, tuple(layers), max_samples)
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


def layer_regex(layers) -> str | None:
    """config.qat.layers as the Keras 3 route's regex: ("*",) is every layer; other entries
    are regular expressions (re.search), any of which selects a layer."""
    layers = tuple(layers)
    return None if layers in ((), ("*",)) else "|".join(f"(?:{p})" for p in layers)


def _fine_tune_keras3(
    study: Study, epochs: int, learning_rate: float, layers: tuple, max_samples: int
) -> Tuned:
    """The Keras 3 route: labels for a labelled one-output classifier, else distillation."""
    from edgequant.train import keras3_qat

    check_training_data(study)
    cfg = study.config
    per_channel = cfg.quantize.weights != "per_tensor"
    qat = keras3_qat.prepare(study.model.keras, layer_regex(layers), per_channel)
    train = study.train.subset(max_samples or len(study.train), cfg.seed, "train")
    x, labels = train.arrays()
    targets = labels if labels is not None and _classifier(study) else None
    result = keras3_qat.fine_tune(
        qat,
        x,
        targets,
        epochs,
        learning_rate,
        batch_size=cfg.recovery.qat_batch_size,
        seed=cfg.seed,
        strategy=_strategy(cfg),
    )
    settings = recipes.QatSettings(
        epochs,
        learning_rate,
        layers=layers,
        per_tensor=not per_channel,
        annotated=qat.quantized,
        samples=len(train),
    )
    val = None
    if study.validation.labels is not None and study.labels_output:
        bs = cfg.evaluate.batch_size
        m = metrics.evaluate(
            study.validation,
            {"keras": keras3_qat.export(qat)},
            "keras",
            labels_output=study.labels_output,
            num_classes=study.num_classes,
            batch_size=bs,
        )
        val = m["keras"]["top1"]
    return Tuned(qat, settings, val, result.seconds, result.epochs, result.distilled)


def _strategy(config):
    """The multi-worker strategy when the run is distributed (config.distribute), else None:
    the engine then trains a replica in its scope and copies the weights back."""
    if (config.get("distribute", "none") or "none") == "none":
        return None
    return fit.strategy(config)


def build(study: Study, tuned: Tuned, mode: str, step: str) -> dict:
    """The QAT model converted with `mode` (uint8/int8): a variant entry with its parity."""
    n = len(next(iter(study.samples.values())))
    recipe = recipes.Recipe(
        f"qat_{mode}", recipes.Mode(mode), study.config.quantize.weights, n, qat=tuned.settings
    )
    if is_keras3(study):
        from edgequant.train import keras3_qat

        keras = keras3_qat.export(tuned.model)
    else:
        keras = usermodel.from_keras(tuned.model, names_from=study.model)
    content = convert.convert(keras, recipe, study.samples)
    path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    entry = variants.describe(recipe.name, path, recipe, n, step)
    entry["qat"] = {
        **parity(study, keras, path),
        "val_accuracy": tuned.val_accuracy,
        "seconds": tuned.seconds,
        "epochs": tuned.epochs,
        "distilled": tuned.distilled,
        "route": "keras3" if is_keras3(study) else "tfmot",
    }
    log.info("%s: QAT Keras vs TFLite %s", recipe.name, entry["qat"])
    return entry


def parity(study: Study, keras: usermodel.UserModel, path) -> dict:
    """The fake-quant Keras model and its .tflite on the evaluation data, in one pass: the
    Keras model's accuracy (labels), how often the two predict the same class (classifier
    outputs) and the SQNR of the .tflite against the Keras model per output: the fake-quant
    simulation must predict the integer model."""
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
    out = {"sqnr_db": m["tflite"]["sqnr_db"]}
    for key, (model, metric) in {
        "keras_accuracy": ("keras", "top1"),
        "agreement": ("tflite", "agreement"),
        "agreement_by_output": ("tflite", "agreement_by_output"),
    }.items():
        if metric in m[model]:
            out[key] = m[model][metric]
    return out


def qat_stage(study: Study, result: dict) -> list[dict]:
    """config.qat.enabled: one fine-tuning, converted to qat_uint8 (and qat_int8 unless the
    target is the Edge TPU, which runs uint8 I/O only). A failure is one line in
    result["errors"]; the PTQ variants stay."""
    cfg = study.config.get("qat")
    if cfg is None or not cfg.enabled:
        return []
    modes = ("uint8",) if study.config.get("target") == "edgetpu" else ("uint8", "int8")
    try:
        tuned = fine_tune(study, cfg.epochs, cfg.learning_rate, "qat", cfg.layers, cfg.noop_layers)
        made = [build(study, tuned, mode, "qat") for mode in modes]
    except (UserError, ValueError, RuntimeError) as e:
        result["errors"].append({"name": "qat", "error": str(e).splitlines()[0]})
        return []
    result["qat"] = {
        "route": made[0]["qat"]["route"],
        "val_accuracy": tuned.val_accuracy,
        "seconds": tuned.seconds,
        "epochs": tuned.epochs,
        "distilled": tuned.distilled,
        "keras_accuracy": made[0]["qat"].get("keras_accuracy"),
        "parity": {v["name"]: v["qat"].get("agreement") for v in made},
        "sqnr_db": {v["name"]: v["qat"]["sqnr_db"] for v in made},
        "settings": tuned.settings.to_dict(),
    }
    if cfg.nbit and not is_keras3(study):  # tfmot's n-bit scheme; Keras 3 simulates 8 bits
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
