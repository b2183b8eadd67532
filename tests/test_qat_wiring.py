"""QAT on request in a deployment (issue 19): Keras 3 models through the one QAT stage, on
labels or by distillation, beside the PTQ variants, and every bad input as one line.

Tiny Keras 3 models, a few hundred real digits, one QAT epoch: the wiring, not the accuracy
(benchmarks/keras3_qat.py measures that on 10,000 Fashion-MNIST images).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import edgequant
from edgequant.data.folders import write_image_folder
from edgequant.errors import UserError
from tests.conftest import assert_one_line_error, run_tool

QUICK = {"bench.enabled": False, "recovery.enabled": False, "qat_epochs": 1}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


@pytest.fixture(scope="module")
def folders(digits, tmp_path_factory):
    """Real digits as PNG class folders: 200 to calibrate/evaluate, 300 to train on."""
    root = tmp_path_factory.mktemp("digits")
    idx = np.concatenate([np.flatnonzero(digits.train.y == c)[:50] for c in range(10)])
    data, train = idx.reshape(10, 50)[:, :20].ravel(), idx.reshape(10, 50)[:, 20:].ravel()
    return (
        write_image_folder(root / "data", digits.train.x[data], digits.train.y[data]),
        write_image_folder(root / "train", digits.train.x[train], digits.train.y[train]),
    )


@pytest.fixture(scope="module")
def cnn_path(keras, digits, tmp_path_factory):
    """A Keras 3 CNN with a folded BatchNormalization, trained outside edgequant."""
    keras.utils.set_random_seed(0)
    pixels = keras.Input((28, 28, 1), name="pixels")
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv")(pixels)
    x = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(name="bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(pixels, keras.layers.Dense(10, activation="softmax", name="probs")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.train.x[:1000, ..., None] / 255.0, digits.train.y[:1000], verbose=0)
    path = tmp_path_factory.mktemp("k3") / "cnn.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def qat_bundle(cnn_path, folders, tmp_path_factory):
    data, train = folders
    before = _sha256(cnn_path)
    out = tmp_path_factory.mktemp("qat") / "bundle"
    result = edgequant.deploy(
        cnn_path, data, out, input_range=(0, 1), target="edgetpu", qat=True, train_data=train,
        **QUICK, **{"budget.max_drop_pp": 100.0},
    )  # fmt: skip
    return result, out, before


@pytest.mark.slow
def test_keras3_qat_on_request_sits_beside_ptq_with_parity(qat_bundle, cnn_path):
    result, out, before = qat_bundle
    assert _sha256(cnn_path) == before  # the float model is only read
    assert not result["errors"]
    by_name = {v["name"]: v for v in result["variants"]}
    assert set(by_name) == {"uint8", "qat_uint8"}  # Edge TPU: uint8 I/O only
    v = by_name["qat_uint8"]
    assert v["gate"] == "pass" and v["edgetpu"]["mapped"] == v["edgetpu"]["total"] > 0
    assert v["metrics"]["n"] == by_name["uint8"]["metrics"]["n"] == 40  # one measurement pass
    q = v["qat"]
    assert (q["route"], q["epochs"], q["distilled"]) == ("keras3", 1, False)
    assert q["seconds"] > 0 and 0.9 <= q["agreement"] <= 1 and q["sqnr_db"]["probs"] > 20
    assert result["qat"]["settings"]["samples"] == 300
    recipe = json.loads((out / "qat_uint8.recipe.json").read_text())
    assert recipe["qat"]["epochs"] == 1 and recipe["qat"]["annotated"]
    report = (out / "report.md").read_text()
    assert "keras3 QAT on labels: 1 epoch(s)" in report and "- qat_uint8: " in report


@pytest.mark.slow
def test_distillation_qat_of_a_two_output_model_without_labels(keras, tmp_path):
    keras.utils.set_random_seed(0)
    signal = keras.Input((12,), name="signal")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(signal)
    model = keras.Model(
        signal,
        [
            keras.layers.Dense(3, activation="softmax", name="kind")(h),
            keras.layers.Dense(2, name="level")(h),
        ],
    )
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", signal=rng.normal(size=(200, 12)).astype(np.float32))
    np.savez(tmp_path / "train.npz", signal=rng.normal(size=(256, 12)).astype(np.float32))
    result = edgequant.deploy(
        tmp_path / "two.keras", tmp_path / "data.npz", tmp_path / "out", target="cpu",
        qat=True, train_data=tmp_path / "train.npz", qat_layers="hidden|kind|level",
        **QUICK, **{"quantize.recipes": ("int8",)},
    )  # fmt: skip
    assert not result["errors"]
    assert {v["name"] for v in result["variants"]} == {"int8", "qat_uint8", "qat_int8"}
    q = result["qat"]
    assert q["distilled"] and q["keras_accuracy"] is None
    for name in ("qat_uint8", "qat_int8"):
        assert (
            set(q["sqnr_db"][name]) == {"kind", "level"} and min(q["sqnr_db"][name].values()) > 15
        )
    assert q["settings"]["layers"] == ["hidden|kind|level"]


@pytest.mark.slow
def test_qat_without_training_data_is_one_line(cnn_path, folders, tmp_path):
    proc = run_tool(
        "deploy", f"--model={cnn_path}", f"--data={folders[0]}", "--input_range=0,1", "--qat",
        f"--out_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert_one_line_error(proc, "--qat needs training data: pass --train_data=PATH")
    assert not (tmp_path / "out").exists()


def test_training_data_of_other_classes_or_shapes_is_refused_before_any_work(
    cnn_path, folders, digits, tmp_path
):
    data, _ = folders
    idx = np.concatenate([np.flatnonzero(digits.train.y == c)[:10] for c in range(5)])
    five = write_image_folder(tmp_path / "five", digits.train.x[idx], digits.train.y[idx])
    with pytest.raises(UserError, match="10 scores|classes") as e:
        edgequant.deploy(cnn_path, data, tmp_path / "a", input_range=(0, 1), qat=True,
                         train_data=five, **QUICK)  # fmt: skip
    assert "\n" not in str(e.value)
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((20, 14, 14, 1), np.float32))
    with pytest.raises(UserError, match="pixels") as e:
        edgequant.deploy(cnn_path, data, tmp_path / "b", input_range=(0, 1), qat=True,
                         train_data=tmp_path / "wrong.npz", **QUICK)  # fmt: skip
    assert "\n" not in str(e.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_diverging_qat_is_reported_keeps_ptq_and_never_replaces_a_good_bundle(
    qat_bundle, cnn_path, folders, digits
):
    _, out, _ = qat_bundle
    kept = (out / "deploy.json").read_text()
    x = digits.train.x[:64, ..., None].astype(np.float32) / 255.0
    # Finite inputs (NaN data is refused before any work) so large that the float model's
    # activations overflow: Inf/NaN targets, a NaN loss.
    x[::2] = 3e38
    nan = out.parent / "nan.npz"
    np.savez(nan, pixels=x)
    with pytest.raises(UserError, match="QAT failed: QAT diverged: the loss became NaN") as e:
        edgequant.deploy(cnn_path, folders[0], out, input_range=(0, 1), target="edgetpu",
                         qat=True, train_data=nan, **QUICK)  # fmt: skip
    assert "still holds the previous complete run" in str(e.value)
    assert (out / "deploy.json").read_text() == kept
    fresh = out.parent / "fresh"
    # Nothing to keep: the failed bundle is written with its PTQ variant and the failure.
    result = edgequant.deploy(cnn_path, folders[0], fresh, input_range=(0, 1), target="edgetpu",
                              qat=True, train_data=nan, **QUICK)  # fmt: skip
    assert [v["name"] for v in result["variants"]] == ["uint8"]
    assert result["errors"][0]["name"] == "qat" and "NaN" in result["errors"][0]["error"]
    assert json.loads((fresh / "deploy.json").read_text())["errors"] == result["errors"]


def test_a_layer_keras3_qat_cannot_simulate_is_one_line_and_ptq_stays(keras, tmp_path):
    inp = keras.Input((6,), name="x")
    h = keras.layers.LeakyReLU(name="odd")(keras.layers.Dense(8, name="dense")(inp))
    keras.Model(inp, keras.layers.Dense(2, name="y")(h)).save(tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(120, 6)).astype(np.float32))
    result = edgequant.deploy(tmp_path / "m.keras", tmp_path / "d.npz", tmp_path / "out",
                              target="cpu", qat=True, train_data=tmp_path / "d.npz",
                              **QUICK, **{"quantize.recipes": ("int8",)})  # fmt: skip
    assert [v["name"] for v in result["variants"]] == ["int8"]
    assert result["errors"] == [
        {"name": "qat", "error": "Keras 3 QAT cannot simulate layer(s) odd (LeakyReLU); the PTQ "
         "variants still apply"}
    ]  # fmt: skip


def test_qat_layers_are_one_regex_for_keras3_and_every_layer_by_default():
    import re

    from edgequant.train.qat_stage import layer_regex

    assert layer_regex(("*",)) is None and layer_regex(()) is None
    pattern = re.compile(layer_regex(("conv", "dense$")))
    assert [n for n in ("conv1", "my_dense", "dense_2", "bn") if pattern.search(n)] == [
        "conv1",
        "my_dense",
    ]
