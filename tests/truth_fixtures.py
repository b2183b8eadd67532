"""Tiny real models and data files shared by the truthful-data, bounded-work and one-line-failure
tests (issue 21 items 4-6). Built once per module by the fixtures that call them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgequant import workspace

QUICK = {
    "target": "cpu",
    "bench.enabled": False,
    "recovery.enabled": False,
    "edgetpu.enabled": False,
    "quantize.recipes": ("int8",),
}


def config(model: Path | str, data: Path | str, **keys):
    """A deploy config for `model` on `data` with QUICK settings and dotted `keys` on top."""
    c = workspace.config("deploy")
    c.model.path = str(model)
    c.data.path = str(data)
    c.preprocess.input_range = "0,1"
    for dotted, value in {**QUICK, **keys}.items():
        node = c
        *parents, name = dotted.split(".")
        for p in parents:
            node = node[p]
        with node.ignore_type():
            node[name] = value
    return c


def image_model(folder: Path, shape=(8, 8, 3), classes: int = 3, name: str = "img.keras") -> Path:
    """A tf_keras classifier on `shape` images (untrained: the tests check data, not skill)."""
    import tf_keras as k

    k.utils.set_random_seed(0)
    inp = k.Input(shape, name="pixels")
    h = k.layers.GlobalAveragePooling2D()(inp)
    out = k.layers.Dense(classes, activation="softmax", name="probs")(h)
    path = folder / name
    k.Model(inp, out).save(path)
    return path


def vector_model(folder: Path, name: str = "vec.keras", dtype: str = "float32", nan=False) -> Path:
    """A tf_keras classifier of 4 features -> 3 classes (input `dtype`; NaN weights if `nan`)."""
    import tf_keras as k

    k.utils.set_random_seed(0)
    inp = k.Input((4,), name="x", dtype=dtype)
    h = k.layers.Rescaling(1.0, name="cast")(inp)  # Rescaling casts an integer input to float
    # 4 x 300 weights: above the 1,024 below which the converter leaves weights in float
    h = k.layers.Dense(300, activation="relu", name="hidden")(h)
    dense = k.layers.Dense(3, activation="softmax", name="probs")
    model = k.Model(inp, dense(h))
    if nan:
        w, b = dense.get_weights()
        dense.set_weights([np.full_like(w, np.nan), b])
    path = folder / name
    model.save(path)
    return path


def two_input_model(folder: Path) -> Path:
    import tf_keras as k

    a, b = k.Input((4,), name="a"), k.Input((4,), name="b")
    out = k.layers.Dense(3, activation="softmax", name="probs")(k.layers.Concatenate()([a, b]))
    path = folder / "two.keras"
    k.Model([a, b], out).save(path)
    return path


def tflite_variants(folder: Path, keras_path: Path) -> dict[str, Path]:
    """The vector model as a float .tflite and as every quantized recipe (real conversions)."""
    from edgequant import usermodel
    from edgequant.quantize import convert, recipes

    model = usermodel.load(keras_path)
    x = {"x": np.random.default_rng(0).random((32, 4), np.float32)}
    out = {}
    for name in ("fp32", "int8", "uint8", "dynamic_range", "float16"):
        recipe = recipes.get(name)
        content = convert.convert(model, recipe, x if recipe.needs_calibration else None)
        out[name] = convert.write(content, recipe, folder / name)
    return out


def png_folder(root: Path, n_per_class: int, classes=("a", "b", "c"), size=8) -> Path:
    """Real PNGs in class folders: `n_per_class` random images each."""
    from edgequant.data.folders import write_image_folder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_per_class * len(classes), size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    return write_image_folder(root, images, labels, class_names=list(classes))


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cuts a file after its header (a PNG's signature and IHDR survive)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(40, int(len(data) * keep))])


def vectors(n: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 4), np.float32), np.arange(n) % classes
