"""The pipeline's QAT stage: fine-tune the float model with fake quantization, convert it to
full-integer uint8 and int8 (`qat_uint8`, `qat_int8`), and measure Keras-vs-TFLite parity.

Parity matters because a gap between the QAT Keras model and its converted TFLite model is a
silent failure users keep hitting: the report states the agreement rate of their predictions.
"""

from __future__ import annotations

import logging

import numpy as np

from edgequant.quantize import convert, recipes
from edgequant.study import Artifact
from edgequant.train import qat

log = logging.getLogger(__name__)


def annotated_layers(qat_model) -> tuple[str, ...]:
    """The layers `qat.apply` wrapped for fake quantization (no-op-configured ones included)."""
    return tuple(
        layer.layer.name
        for layer in qat_model.layers
        if type(layer).__name__.startswith("QuantizeWrapper")
    )


def qat_settings(qat_model, cfg, per_tensor: bool) -> recipes.QatSettings:
    """What the qat config block asked for, and the layers it resolved to, for the recipe."""
    return recipes.QatSettings(
        epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        layers=tuple(cfg.layers),
        noop_layers=tuple(cfg.noop_layers),
        per_tensor=per_tensor,
        annotated=annotated_layers(qat_model),
    )


def qat_stage(study, results: dict) -> list[Artifact]:
    cfg = study.config.get("qat")
    if cfg is None or not cfg.enabled:
        return []
    from edgequant.evaluate import accuracy

    test = study.data.require("test")
    per_tensor = study.config.quantize.weights == "per_tensor"
    # Built plain: fine_tune trains a copy inside the tf.distribute strategy and copies the
    # weights back, so prediction and conversion below need no collective ops.
    model = qat.apply(
        qat.annotate(study.model, tuple(cfg.layers), tuple(cfg.noop_layers)), per_tensor
    )
    tuned = qat.fine_tune(model, study.data, study.config, study.workdir)
    batch_size = study.config.evaluate.batch_size
    keras_eval = accuracy.evaluate_keras(model, study.x_test, test.y, batch_size)
    keras_acc = keras_eval.accuracy
    summary = {
        "keras_accuracy": keras_acc,
        "val_accuracy": tuned.val_accuracy,
        "seconds": tuned.seconds,
        "layers": list(cfg.layers),
        "per_tensor": per_tensor,
        "parity": {},
    }
    made = []
    settings = qat_settings(model, cfg, per_tensor)
    for mode in ("uint8", "int8"):
        recipe = recipes.Recipe(
            f"qat_{mode}",
            recipes.Mode(mode),
            study.config.quantize.weights,
            len(study.representative[: study.config.quantize.calibration_size]),
            qat=settings,
        )
        path = convert.write(
            convert.convert(model, recipe, study.representative), recipe, study.workdir
        )
        tflite_probs = accuracy.BatchedModel(path, study.config.evaluate.batch_size).predict(
            study.x_test
        )
        agreement = float(np.mean(tflite_probs.argmax(-1) == keras_eval.predicted))
        summary["parity"][recipe.name] = agreement
        made.append(
            Artifact(
                recipe.name, path, {"recipe": recipe.to_dict(), "qat_keras_agreement": agreement}
            )
        )
        log.info("%s: QAT Keras vs TFLite agreement %.4f", recipe.name, agreement)
    if cfg.nbit:
        nbit_model = qat.apply(
            qat.annotate(study.model, tuple(cfg.layers), tuple(cfg.noop_layers)),
            per_tensor,
            tuple(cfg.nbit),
        )
        qat.fine_tune(nbit_model, study.data, study.config, study.workdir, log_name="qat_nbit")
        summary["nbit"] = {
            "weight_bits": cfg.nbit[0],
            "activation_bits": cfg.nbit[1],
            "keras_accuracy": accuracy.evaluate_keras(
                nbit_model, study.x_test, test.y, batch_size
            ).accuracy,
            "deployable": False,
            "note": "simulated in Keras only: TFLite kernels support 8-bit, so this model "
            "cannot be converted for deployment",
        }
    results["qat"] = summary
    return made
