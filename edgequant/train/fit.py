"""Float training from the config: seeded, optionally augmented, saved in the workdir.

Augmentation (small rotations, shifts, zoom) runs in the tf.data pipeline, not in the model, so
the saved model and everything converted from it contain no random layers. On the 5,000 offline
digits it is what lifts a small CNN from ~96% to ~98.5% on unseen digits.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from edgequant import atomic
from edgequant.data import mnist


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model_path: str
    history: dict
    val_accuracy: float
    seconds: float


def set_seed(seed: int) -> None:
    """Seeds Python, numpy and TF and asks TF for deterministic kernels (same seed, same model)."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # already enabled or unsupported: still seeded
        pass


_STRATEGIES: dict[str, object] = {}


def strategy(config):
    """The tf.distribute strategy of `config.distribute`: none, mirrored or multi_worker.

    `mirrored` replicates over every local device (on a CPU-only machine: the logical CPU
    devices, e.g. two made with tf.config.set_logical_device_configuration); `multi_worker`
    reads the cluster from TF_CONFIG. Strategies are made once per process, as TF requires.
    """
    import tensorflow as tf

    kind = config.get("distribute", "none") or "none"
    if kind not in _STRATEGIES:
        if kind == "none":
            _STRATEGIES[kind] = tf.distribute.get_strategy()
        elif kind == "mirrored":
            devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
            _STRATEGIES[kind] = tf.distribute.MirroredStrategy(devices=devices)
        elif kind == "multi_worker":
            _STRATEGIES[kind] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise ValueError(f"unknown distribute '{kind}'; valid: none, mirrored, multi_worker")
    return _STRATEGIES[kind]


def _augmenter(cfg, seed: int):
    import tf_keras as keras

    layers = []
    if cfg.rotation_deg:
        layers.append(
            keras.layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="constant", seed=seed)
        )
    if cfg.shift:
        layers.append(
            keras.layers.RandomTranslation(
                cfg.shift, cfg.shift, fill_mode="constant", seed=seed + 1
            )
        )
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="constant", seed=seed + 2))
    return keras.Sequential(layers, name="augment") if layers else None


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment=None, shuffle=True
):
    """A tf.data pipeline over preprocessed arrays; `augment` is a Keras layer applied per batch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=1)
    return ds.prefetch(2)


def compile_model(model, learning_rate: float, steps: int) -> None:
    """Adam with cosine decay over the whole run: one schedule for float training and QAT."""
    import tf_keras as keras

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",  # zoo models end in softmax
        metrics=["accuracy"],
    )


def train(model, data: mnist.Dataset, config, workdir: str | Path, verbose: int = 2) -> TrainResult:
    """Trains `model` on data.train, validates on data.val, saves `<workdir>/float.keras`."""
    import time

    t = config.train
    input_shape = tuple(model.input_shape[1:])
    train_split, val_split = data.require("train"), data.require("val")
    x_train = mnist.preprocess(train_split.x, input_shape)
    x_val = mnist.preprocess(val_split.x, input_shape)
    set_seed(config.seed)
    augment = _augmenter(t.augment, config.seed) if t.augment.enabled else None
    ds = make_dataset(x_train, train_split.y, t.batch_size, config.seed, augment)
    steps = t.epochs * math.ceil(len(x_train) / t.batch_size)
    with strategy(config).scope():
        compile_model(model, t.learning_rate, steps)
    Path(workdir).mkdir(parents=True, exist_ok=True)  # fails with one line before training
    start = time.perf_counter()
    import tf_keras as keras

    board = keras.callbacks.TensorBoard(
        str(Path(workdir) / "tensorboard" / "float"), write_graph=False
    )
    hist = model.fit(
        ds,
        epochs=t.epochs,
        validation_data=(x_val, val_split.y),
        verbose=verbose,
        callbacks=[board],
    )
    seconds = time.perf_counter() - start
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "float.keras"
    with atomic.target(path) as tmp:
        model.save(tmp)
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    atomic.write_json(workdir / "history.json", history)
    return TrainResult(str(path), history, history["val_accuracy"][-1], seconds)


def load_model(path: str | Path):
    """Loads a saved tf_keras model with a one-line error for missing or unreadable files."""
    import tf_keras as keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ValueError(
            f"cannot load Keras model {path}: {str(e).splitlines()[0][:200]}"
        ) from None
