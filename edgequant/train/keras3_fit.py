"""Fine-tuning of a fake-quantized Keras 3 clone (keras3_clone.QatModel).

Targets are labels for a one-output classifier, or arrays by output name: given, or the float
model's own outputs (distillation, no labels needed). Activation ranges start from a few batches
before the first gradient step. One machine trains with Keras `fit`; under a tf.distribute
strategy a plain `strategy.run` loop trains a replica, since Keras 3's `fit` fails across workers.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgequant.errors import UserError
from edgequant.train.keras3_clone import QatModel, activate, predict, prepare


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    seconds: float
    epochs: int
    history: dict
    distilled: bool  # True when the targets were the float model's outputs


def _check_inputs(qat: QatModel, x: dict) -> int:
    """The number of samples; UserError when names or shapes do not match the model."""
    from edgequant.tensors import shapes_match

    if not isinstance(x, dict):
        raise UserError("QAT inputs must be a dict of input name -> float32 array")
    missing = [n for n in qat.input_names if n not in x]
    if missing:
        raise UserError(f"QAT training data has no input(s) {missing}; it has {sorted(x)}")
    sizes = set()
    for name, t in zip(qat.input_names, qat.model.inputs, strict=True):
        got = np.shape(x[name])[1:]
        if not shapes_match(got, tuple(t.shape[1:])):
            raise UserError(
                f"QAT training data for input '{name}' has samples of shape {list(got)}; "
                f"the model takes {list(t.shape[1:])}"
            )
        sizes.add(len(x[name]))
    if len(sizes) != 1 or 0 in sizes:
        raise UserError(f"QAT training inputs must have one, non-zero length; got {sorted(sizes)}")
    return sizes.pop()


def _is_probability(y: np.ndarray) -> bool:
    return (
        y.ndim == 2
        and y.shape[-1] > 1
        and bool(np.all(y >= 0))
        and np.allclose(y.sum(-1), 1, atol=1e-3)
    )


def _targets_and_losses(qat: QatModel, x: dict, targets, float_model):
    """(target arrays in output order, losses, distilled). Labels train a one-output classifier;
    otherwise the targets are per output name (given, or the float model's outputs)."""
    import keras

    reference = float_model if float_model is not None else qat.float_model
    names = qat.output_names
    if targets is None or isinstance(targets, dict):
        distilled = targets is None
        if distilled:
            if reference is None:
                raise UserError("QAT without labels distils the float model: give float_model")
            targets = predict(reference, x)
        missing = [n for n in names if n not in targets]
        if missing:
            raise UserError(f"QAT targets have no output(s) {missing}; they have {sorted(targets)}")
        ys = [np.asarray(targets[n], np.float32) for n in names]
        losses = [
            keras.losses.CategoricalCrossentropy()
            if _is_probability(y)
            else keras.losses.MeanSquaredError()
            for y in ys
        ]
        return ys, losses, distilled
    labels = np.asarray(targets)
    if len(names) != 1:
        raise UserError(
            f"labels train a one-output classifier; this model has {len(names)} outputs "
            f"({', '.join(names)}): train without labels (distillation) or give targets by name"
        )
    shape = tuple(qat.model.outputs[0].shape)
    if len(shape) != 2 or (shape[-1] or 0) < 2:
        raise UserError(
            f"labels need a classifier output [N, classes]; output '{names[0]}' is {list(shape)}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError("QAT labels must be one integer class per sample")
    if labels.min() < 0 or labels.max() >= shape[-1]:
        raise UserError(
            f"QAT labels run {labels.min()}..{labels.max()} but the model has {shape[-1]} classes"
        )
    sample = (
        predict(reference, {k: v[:32] for k, v in x.items()})[names[0]]
        if reference is not None
        else None
    )
    probs = sample is not None and _is_probability(sample)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    return [labels.astype(np.int64)], [loss], False


def fine_tune(
    qat: QatModel,
    x: dict,
    targets=None,
    epochs: int = 1,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    float_model=None,
    strategy=None,
    verbose: int = 0,
) -> FineTuneResult:
    """Fine-tunes the QAT model in place: on integer `targets` (labels) for a one-output
    classifier, on `targets` by output name, or, with none, on the float model's outputs
    (distillation: no labels needed). NaN loss stops training with a UserError, so the caller
    keeps its PTQ variants. Under a tf.distribute `strategy` a replica is built in its scope,
    trained, and its weights copied back; nothing is written, so any worker may call this.
    """

    import keras
    import tensorflow as tf

    n = _check_inputs(qat, x)
    ys, losses, distilled = _targets_and_losses(qat, x, targets, float_model)
    for name, y in zip(qat.output_names, ys, strict=True):
        if len(y) != n:
            raise UserError(f"QAT targets for '{name}' have {len(y)} samples, the inputs {n}")
    keras.utils.set_random_seed(seed)
    activate(qat, everything=False)
    xs = [np.asarray(x[k], np.float32) for k in qat.input_names]
    start = time.perf_counter()
    _initialise_ranges(qat.model, xs, batch_size)
    model = qat.model
    if strategy is not None:
        with strategy.scope():
            model = prepare(qat.float_model, qat.layers, qat.per_channel).model
        model.set_weights(qat.model.get_weights())
    # One input or output is given bare: Keras warns about a 1-tuple for a one-input model.
    data = tf.data.Dataset.from_tensor_slices(
        (xs[0] if len(xs) == 1 else tuple(xs), ys[0] if len(ys) == 1 else tuple(ys))
    )
    data = data.shuffle(n, seed=seed).batch(batch_size)
    if strategy is None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=list(losses))
        fit = model.fit(
            data,
            epochs=epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
        history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    else:
        loss = _fit_distributed(model, data, losses, learning_rate, epochs, batch_size, strategy)
        history = {"loss": loss}
    loss = history.get("loss", [])
    if any(not np.isfinite(v) for v in loss):
        at = next(i for i, v in enumerate(loss) if not np.isfinite(v)) + 1
        raise UserError(
            f"QAT diverged: the loss became NaN in epoch {at} (learning rate {learning_rate:g}); "
            "lower qat learning_rate; the PTQ variants stand"
        )
    if model is not qat.model:
        qat.model.set_weights(model.get_weights())
    return FineTuneResult(time.perf_counter() - start, len(loss), history, distilled)


def _fit_distributed(model, data, losses, learning_rate, epochs, batch_size, strategy) -> list:
    """The training steps under a tf.distribute strategy, as a plain loop: Keras 3's `fit`
    fails across workers (it MEAN-reduces a distributed batch to build the model, and its
    scalar logs with axis=0). Each replica's per-sample loss is summed over the global batch
    (tf.distribute's rule); returns the mean loss of each epoch, stopping at a non-finite one."""
    import keras
    import tensorflow as tf

    per_sample = [type(f).from_config({**f.get_config(), "reduction": None}) for f in losses]
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        ys = y if isinstance(y, tuple) else (y,)
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            preds = pred if isinstance(pred, list | tuple) else [pred]
            loss = tf.add_n(
                [tf.reduce_sum(f(t, p)) for f, t, p in zip(per_sample, ys, preds, strict=True)]
            ) / float(batch_size)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def step(x, y):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y)), axis=None)

    history = []
    for _ in range(epochs):
        total, steps = 0.0, 0
        for x, y in strategy.experimental_distribute_dataset(data):
            total, steps = total + float(step(x, y)), steps + 1
        history.append(total / max(steps, 1))
        if not np.isfinite(history[-1]):
            break
    return history


def _initialise_ranges(model, xs: list, batch_size: int, batches: int = 8) -> None:
    """Sets every activation range from a few batches before the first gradient step, so
    training starts from calibrated ranges rather than from [0, 0]."""
    n = len(xs[0])
    for s in range(0, min(n, batches * batch_size), batch_size):
        feed = [v[s : s + batch_size] for v in xs]
        model(feed[0] if len(feed) == 1 else feed, training=True)
