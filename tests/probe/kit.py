"""The probe's shared inputs, made once per session in one folder: tiny models of every format
and tiny data, plus one good bundle that cases copy as "the previous result".

Everything is small on purpose (8x8x3 images, 3 classes, 60 samples, a 2-layer CNN): a probe
case is about how a binary treats its input, not about accuracy, and ~100 cases must fit in a
few minutes of CPU. The models are not trained: the deploy cases set an open accuracy budget.
A model that runs code at load writes `SENTINEL` (the verdict's test for "unsafe").
"""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import numpy as np

SENTINEL = "code_ran.txt"
CLASSES = ("cat", "dog", "owl")
# A deploy as cheap as it gets: CPU target, 16 calibration samples, no bench, no recovery, any
# accuracy drop allowed (the models are untrained); the recipes are set once, by the caller
# (a repeated --config.quantize.recipes concatenates its values).
RECIPES = "--config.quantize.recipes=fp32,int8"
FAST = (
    "--target=cpu",
    "--config.bench.enabled=false",
    "--config.recovery.enabled=false",
    "--config.quantize.calibration_size=16",
    "--config.budget.max_drop_pp=100",
)


@dataclasses.dataclass
class Kit:
    root: Path
    device_python: str
    ssh_config: str = ""  # the session's loopback sshd (tests/sshd.py), alias loopdev
    destination: str = ""
    refusing: str = ""  # user@127.0.0.1:PORT where nothing listens

    def fields(self) -> dict[str, str]:
        return {"k": str(self.root), "py": self.device_python, "ssh": self.ssh_config,
                "dest": self.destination, "dead": self.refusing}  # fmt: skip


def _cnn(keras, shape=(8, 8, 3), lam=None):
    inp = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    if lam is not None:
        x = keras.layers.Lambda(lam, name="hook")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def _images(folder: Path, rng, per_class: int = 8, ext: str = "png") -> None:
    from PIL import Image

    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / c / f"{i}.{ext}")


def images(folder: Path, seed: int = 0, per_class: int = 8, ext: str = "png") -> Path:
    """Class folders of 8x8 RGB images (used by cases that damage their own copy)."""
    _images(folder, np.random.default_rng(seed), per_class, ext)
    return folder


def build(root: Path) -> None:
    """Writes every model and data file; the bundle is made by the caller (a real deploy)."""
    import keras
    import tensorflow as tf
    import tf_keras

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    _cnn(keras).save(root / "cnn.keras")
    nan = _cnn(keras)
    for w in nan.weights:
        w.assign(np.full(w.shape, np.nan, np.float32))
    nan.save(root / "nan.keras")
    sentinel = str(root / SENTINEL)
    hook = eval(f"lambda x, p={sentinel!r}: (open(p, 'w').write('ran'), x)[1]")  # noqa: S307
    _cnn(keras, lam=hook).save(root / "lambda.keras")
    _cnn(tf_keras, lam=hook).save(root / "lambda.h5")
    _cnn(tf_keras).save(root / "tfk.h5")
    big = keras.Input((4096, 4096, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(big))
    keras.Model(big, keras.layers.Dense(3, name="probs")(pooled)).save(root / "huge.keras")

    class Ints(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.int32, name="ids")])
        def serve(self, ids):
            return {"probs": tf.nn.softmax(tf.cast(ids[:, :3], tf.float32))}

    ints = Ints()
    tf.saved_model.save(ints, str(root / "ints_sm"), signatures={"serving_default": ints.serve})
    x = rng.uniform(0, 1, (60, 8, 8, 3)).astype(np.float32)
    rng.integers(0, 3, 60)  # drawn as before, so the images below stay the same
    np.savez(root / "data.npz", image=x)  # unlabelled: the fidelity (SQNR) budget
    np.save(root / "x.npy", x)
    _images(root / "images", rng)
    with zipfile.ZipFile(root / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", b'{"keras_version": "3.5.0"' + b" " * (64 << 20) + b"}")
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"")
    (root / "bomb.keras").write_bytes((root / "bomb.keras").read_bytes())


def copy_bundle(kit: Kit, dest: Path) -> Path:
    shutil.copytree(kit.root / "bundle", dest, symlinks=True)
    return dest
