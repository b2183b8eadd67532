"""benchmarks/keras3_qat.py --part=deploy: Keras 3 QAT end to end through `tools/deploy.py`.

Keras 3 models are trained here (outside edgequant), Fashion-MNIST is written as PNG folders,
and each case is one `tools/deploy.py ... --qat --train_data=...` run whose numbers are read
from its deploy.json (the same measurement pass as the PTQ variants):
  (a) a Conv/BN CNN, labelled class folders, --target=edgetpu: float vs uint8 PTQ vs qat_uint8
      top-1 on the 10,000 test images, gate, ops mapped;
  (b) the depthwise net with 64x-spread channel ranges, per-tensor weights: PTQ vs QAT;
  (c) the two-output net with unlabelled (flat) folders: distillation, worst-output SQNR;
  (d) Keras-vs-TFLite parity of each QAT variant, and (a)'s QAT under tools/launch.py
      --workers=2 (chief-only writes) against one worker, on a small training folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUICK = ("--config.bench.enabled=False", "--config.recovery.enabled=False")


def _pixels(x: np.ndarray) -> np.ndarray:
    return np.round(x[..., 0] * 255).astype(np.uint8)


def _folders(root: Path, x_train, y_train, x_test, y_test) -> dict[str, Path]:
    """PNG folders, written once: labelled class folders c0..c9 and flat unlabelled ones."""
    from edgequant.data.folders import write_image_folder

    n = len(x_train)
    plan = {
        "test": (x_test, y_test),
        "calib": (x_train[n - 1000 :], y_train[n - 1000 :]),
        "train": (x_train[:20000], y_train[:20000]),
        "train_small": (x_train[:2000], y_train[:2000]),
        "calib_flat": (x_train[n - 1000 :], None),
        "train_flat": (x_train[20000:30000], None),
    }
    out = {}
    for name, (x, y) in plan.items():
        folder = root / name
        if not (root / f"{name}.done").exists():
            write_image_folder(folder, _pixels(x), y)
            (root / f"{name}.done").write_text(str(len(x)))
        out[name] = folder
    return out


def deploy(model: Path, out: Path, *args: str, workers: int = 1) -> tuple[dict, float]:
    """One tools/deploy.py run (as a user types it); deploy.json and the wall time."""
    cmd = [sys.executable, "tools/deploy.py", f"--model={model}", f"--out_dir={out}",
           "--input_range=0,1", *QUICK, *args]  # fmt: skip
    if workers > 1:
        cmd = [sys.executable, "tools/launch.py", f"--workers={workers}", "--", *cmd[1:],
               "--config.distribute=multi_worker"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not (out / "deploy.json").exists():
        raise RuntimeError(f"{' '.join(cmd)} wrote no deploy.json: {proc.stderr[-2000:]}")
    return json.loads((out / "deploy.json").read_text()), seconds


def summarize(result: dict, seconds: float) -> dict:
    """The numbers of one deploy.json: float, every variant, and the QAT section."""
    fm = result["float"]["metrics"]
    out = {"wall_s": round(seconds, 1), "float_top1": fm.get("top1"), "errors": result["errors"]}
    for v in result["variants"]:
        m = v["metrics"]
        entry = {"top1": m.get("top1"), "sqnr_db": m.get("sqnr_db"), "n": m["n"]}
        if fm.get("top1") is not None and m.get("top1") is not None:
            entry["drop_pp"] = round(100 * (fm["top1"] - m["top1"]), 2)
        if v.get("edgetpu"):
            entry["gate"] = v["gate"]
            entry["ops_mapped"] = f"{v['edgetpu']['mapped']}/{v['edgetpu']['total']}"
        if v.get("qat"):
            entry["qat"] = v["qat"]
        out[v["name"]] = entry
    out["qat"] = result.get("qat")
    return out


def _fit(model, x, y, epochs: int):
    import keras

    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)


def _cnn(keras):
    """A plain Keras 3 CNN with BatchNormalization after each convolution."""
    layers = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = inp
    for i, filters in enumerate((16, 32)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(layers.BatchNormalization(name=f"bn{i}")(x))
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.Dense(64, activation="relu", name="hidden")(layers.Flatten(name="flat")(x))
    return keras.Model(inp, layers.Dense(10, activation="softmax", name="probs")(x))


def run(
    data,
    workdir: str,
    qat_epochs: int,
    float_epochs: int,
    builders: dict,
    cases=("a", "b", "c", "d"),
) -> dict:
    """Cases (a)-(d); `builders` are benchmarks/keras3_qat.py's models and re-parametrisation
    (passed in: importing that script again would define its flags twice)."""
    import keras

    x_train, y_train, x_test, y_test = data
    root = Path(workdir) / "deploy"
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    f = _folders(root / "fashion", x_train, y_train, x_test, y_test)
    report: dict = {"png_write_s": round(time.perf_counter() - start, 1)}
    common = (f"--data={f['calib']}", f"--eval_data={f['test']}")

    if "a" in cases or "d" in cases:
        report.update(_case_a(keras, root, f, common, x_train, y_train, qat_epochs, float_epochs))
    if "b" in cases:
        report.update(_case_b(keras, root, f, common, data, qat_epochs, float_epochs, builders))
    if "c" in cases:
        report.update(_case_c(keras, root, f, data, qat_epochs, float_epochs, builders))
    if "d" in cases:
        report["d_workers"] = workers(root, f)
    return report


def _case_a(keras, root, f, common, x_train, y_train, qat_epochs, float_epochs) -> dict:
    """(a) a CNN trained outside edgequant, labelled PNG folders, Edge TPU."""
    report = {}
    keras.utils.set_random_seed(0)
    cnn = _cnn(keras)
    _fit(cnn, x_train, y_train, float_epochs)
    cnn.save(root / "cnn.keras")
    sha = _sha256(root / "cnn.keras")
    result, s = deploy(root / "cnn.keras", root / "a", *common, "--target=edgetpu", "--qat",
                       f"--train_data={f['train']}", f"--qat_epochs={qat_epochs}",
                       "--qat_learning_rate=1e-5")  # fmt: skip
    report["a_cnn_edgetpu"] = summarize(result, s)
    report["a_cnn_edgetpu"]["float_model_unchanged"] = _sha256(root / "cnn.keras") == sha
    return report


def _case_b(keras, root, f, common, data, qat_epochs, float_epochs, builders) -> dict:
    """(b) per-tensor weights on the depthwise net with spread channel ranges."""
    x_train, y_train, _, _ = data
    keras.utils.set_random_seed(0)
    dw = builders["classifier"](keras)
    _fit(dw, x_train, y_train, float_epochs)
    builders["imbalance"](dw, 0)
    dw.save(root / "depthwise.keras")
    result, s = deploy(root / "depthwise.keras", root / "b", *common, "--target=edgetpu",
                       "--config.quantize.weights=per_tensor", "--qat",
                       f"--train_data={f['train']}", f"--qat_epochs={3 * qat_epochs}",
                       "--qat_learning_rate=1e-4")  # fmt: skip
    return {"b_per_tensor_depthwise": summarize(result, s)}


def _case_c(keras, root, f, data, qat_epochs, float_epochs, builders) -> dict:
    """(c) two outputs, unlabelled folders: distillation QAT vs PTQ, worst-output SQNR."""
    x_train, y_train, _, _ = data
    keras.utils.set_random_seed(1)
    two = builders["two_output"](keras)
    two.compile(keras.optimizers.Adam(2e-3), ["sparse_categorical_crossentropy", "mse"])
    two.fit(x_train, [y_train, builders["thumbnails"](x_train)], batch_size=128,
            epochs=float_epochs, verbose=0)  # fmt: skip
    builders["imbalance"](two, 1)
    two.save(root / "two_output.keras")
    result, s = deploy(root / "two_output.keras", root / "c", f"--data={f['calib_flat']}",
                       f"--eval_data={f['test']}", "--target=edgetpu", "--qat",
                       f"--train_data={f['train_flat']}", f"--qat_epochs={qat_epochs}",
                       "--qat_learning_rate=2e-5")  # fmt: skip
    c = summarize(result, s)
    c["ptq_worst_sqnr_db"] = min(c["uint8"]["sqnr_db"].values())
    c["qat_worst_sqnr_db"] = min(c["qat_uint8"]["sqnr_db"].values())
    return {"c_two_output_distillation": c}


def workers(root: Path, f: dict) -> dict:
    """(a)'s model, QAT on 2,000 images: one worker, then two (tools/launch.py)."""
    out = {}
    for n in (1, 2):
        result, s = deploy(root / "cnn.keras", root / f"d{n}", f"--data={f['calib']}",
                           f"--eval_data={f['test']}", "--target=edgetpu", "--qat",
                           f"--train_data={f['train_small']}", "--qat_epochs=1",
                           "--qat_learning_rate=1e-5", workers=n)  # fmt: skip
        out[f"workers_{n}"] = summarize(result, s)
    one, two = (out[f"workers_{n}"]["qat_uint8"]["top1"] for n in (1, 2))
    out["qat_uint8_top1_difference_pp"] = round(100 * (two - one), 2)
    return out


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
