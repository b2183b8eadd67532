"""A bundle's .tflite carries its preprocessing: every tool that reads it feeds images by that
spec without a flag, and a flag that contradicts it is one line naming both values.

The bundle is deployed with input_range 0..255 (the model was trained on raw pixels), so a
tool that guessed the common 0..1 would score near chance instead of the bundle's accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgequant
from edgequant.bench import device_runner
from edgequant.data import preprocess
from edgequant.data.folders import write_image_folder
from tests.conftest import DATA, assert_one_line_error, run_tool


def _stratified(split, per_class: int, skip: int = 0) -> np.ndarray:
    # The offline digits are stored sorted by class: take the same number of each.
    return np.concatenate(
        [np.flatnonzero(split.y == c)[skip : skip + per_class] for c in range(10)]
    )


@pytest.fixture(scope="module")
def bundle(digits, tmp_path_factory):
    import tf_keras as keras

    root = tmp_path_factory.mktemp("contract")
    train = _stratified(digits.train, 60)
    keras.utils.set_random_seed(0)
    pixels = keras.Input((28, 28, 1), name="pixels")
    h = keras.layers.MaxPooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(pixels))
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.Flatten()(h))
    model = keras.Model(pixels, probs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x = digits.train.x[train, ..., None].astype(np.float32)  # raw pixels 0..255
    model.fit(x, digits.train.y[train], epochs=4, batch_size=32, verbose=0)
    model.save(root / "raw_pixels.keras")
    cal = _stratified(digits.train, 10, skip=100)
    ev = _stratified(digits.test, 10)
    data = write_image_folder(root / "data", digits.train.x[cal], digits.train.y[cal])
    evaluation = write_image_folder(root / "eval", digits.test.x[ev], digits.test.y[ev])
    result = edgequant.deploy(
        root / "raw_pixels.keras",
        data,
        root / "bundle",
        eval_data=evaluation,
        input_range=(0, 255),
        target="cpu",
        **{
            "quantize.recipes": ("uint8",),
            "bench.enabled": False,
            "recovery.enabled": False,
            "budget.max_drop_pp": 100.0,
        },
    )
    return root / "bundle", evaluation, result


def _evaluate(model, folder, *flags, out=None):
    extra = [f"--output_json={out}"] if out else []
    return run_tool("evaluate", f"--model={model}", f"--data={folder}", *flags, *extra)


def test_the_bundle_is_far_from_what_a_guessed_range_would_give(bundle):
    _, _, result = bundle
    (v,) = result["variants"]
    assert v["metrics"]["top1"] > 0.6, v["metrics"]  # chance is 0.1
    assert result["preprocessing"]["input_range"] == [0.0, 255.0]


@pytest.mark.parametrize("name", ["uint8", "fp32"])
def test_evaluate_on_a_bundle_model_gives_deploy_json_accuracy_without_a_flag(
    bundle, name, tmp_path
):
    out_dir, evaluation, result = bundle
    out = tmp_path / "e.json"
    proc = _evaluate(out_dir / f"{name}.tflite", evaluation, out=out)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    by_name = {v["name"]: v["metrics"] for v in result["variants"]}
    want = by_name.get(name) or result["float"]["metrics"]
    assert got["n"] == want["n"] == result["evaluation"]["n"]
    assert got["top1"] == want["top1"] and got["top5"] == want["top5"]


@pytest.mark.parametrize("flags", [("--input_range=0,255",), ("--mean=0", "--std=1")])
def test_a_flag_that_agrees_with_the_embedded_spec_is_accepted(bundle, flags, tmp_path):
    out_dir, evaluation, result = bundle
    out = tmp_path / "e.json"
    proc = _evaluate(out_dir / "uint8.tflite", evaluation, *flags, out=out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["top1"] == result["variants"][0]["metrics"]["top1"]


CONTRADICTIONS = [
    (
        ("--input_range=0,1",),
        "--input_range=0,1 contradicts the model's embedded input_range 0,255",
    ),
    (("--input_range=-1,1",), "--input_range=-1,1 contradicts the model's embedded input_range"),
    (("--mean=127.5", "--std=127.5"), "--mean=127.5 --std=127.5 contradicts"),
    (
        ("--config.preprocess.resize=14,14",),
        "--resize=14,14 contradicts the model's embedded size 28,28",
    ),
    (
        ("--config.preprocess.color=rgb",),
        "--color=rgb contradicts the model's embedded color grayscale",
    ),
    (("--config.preprocess.fit=crop",), "--fit=crop contradicts the model's embedded fit stretch"),
    (("--config.preprocess.method=nearest",), "--method=nearest contradicts"),
    (("--input_range=0,1", "--config.preprocess.fit=pad"), "embedded input_range 0,255; --fit=pad"),
]


@pytest.mark.parametrize(
    "flags,named", CONTRADICTIONS, ids=[" ".join(f) for f, _ in CONTRADICTIONS]
)
def test_a_flag_that_contradicts_the_embedded_spec_names_both_values(bundle, flags, named):
    out_dir, evaluation, _ = bundle
    assert_one_line_error(_evaluate(out_dir / "uint8.tflite", evaluation, *flags), named)


def test_folder_eval_uses_the_embedded_spec_and_never_guesses(bundle, tmp_path):
    out_dir, evaluation, result = bundle
    out = tmp_path / "f.json"
    args = (f"--model={out_dir / 'uint8.tflite'}", f"--folder={evaluation}", "--repeats=1")
    proc = run_tool("benchmarks/folder_eval", *args, f"--output_json={out}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["top1"] == result["variants"][0]["metrics"]["top1"]
    assert_one_line_error(
        run_tool("benchmarks/folder_eval", *args, "--input_range=0,1"),
        "--input_range=0,1 contradicts the model's embedded input_range 0,255",
    )


def test_folder_eval_on_a_model_without_a_spec_asks_for_the_range(bundle):
    _, evaluation, _ = bundle
    model = DATA / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    proc = run_tool("benchmarks/folder_eval", f"--model={model}", f"--folder={evaluation}")
    assert_one_line_error(proc, "pixel range is unknown", "--input_range=LO,HI")


# --- the spec itself: host and device readers, bad files --------------------------------------------


def test_the_device_reads_the_same_embedded_spec_as_the_host(bundle):
    out_dir, _, _ = bundle
    for name in ("uint8.tflite", "fp32.tflite"):
        host = preprocess.read_model(out_dir / name)
        assert host == preprocess.Preprocessing.load(out_dir / "preprocessing.json")
        assert device_runner.embedded_preprocessing(out_dir / name) == host.to_dict()
    coral = DATA / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    assert preprocess.read_model(coral) is None
    assert device_runner.embedded_preprocessing(coral) is None


def test_the_device_runner_classifies_an_image_by_the_embedded_spec(bundle, digits, tmp_path):
    out_dir, _, _ = bundle
    model = out_dir / "uint8.tflite"
    image = tmp_path / "digit.npy"
    np.save(image, digits.test.x[_stratified(digits.test, 1)][3])  # a real "3"
    embedded = device_runner.run_image(model, image, runtime="litert")
    given = device_runner.run_image(model, image, out_dir / "preprocessing.json", "litert")
    assert embedded["outputs"] == given["outputs"]
    assert embedded["top5"][0] == 3
    wrong = json.loads((out_dir / "preprocessing.json").read_text())
    (tmp_path / "wrong.json").write_text(json.dumps({**wrong, "input_range": [0, 1]}))
    with pytest.raises(device_runner.RunnerError, match=r"input_range \[0, 1\] vs \[0.0, 255.0\]"):
        device_runner.run_image(model, image, tmp_path / "wrong.json", "litert")


def test_a_model_without_a_spec_needs_preprocessing_json_on_the_device(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8), np.uint8))
    coral = DATA / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    with pytest.raises(device_runner.RunnerError, match="carries no preprocessing"):
        device_runner.run_image(coral, tmp_path / "x.npy", runtime="litert")


def test_a_cut_or_garbage_model_is_one_error_naming_it(bundle, tmp_path):
    out_dir, _, _ = bundle
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((out_dir / "uint8.tflite").read_bytes()[:64])
    with pytest.raises(ValueError, match="cut.tflite is not a valid .tflite"):
        preprocess.read_model(cut)
    with pytest.raises(device_runner.RunnerError, match="cannot read the preprocessing"):
        device_runner.embedded_preprocessing(cut)
    assert preprocess.read_model(DATA / "coral" / "README.md") is None  # not a .tflite at all


def test_an_embedded_spec_that_does_not_fit_the_model_input_is_refused():
    spec = preprocess.Preprocessing((28, 28), "grayscale", input_range=(0, 255))
    with pytest.raises(ValueError, match="gives 1 channel"):
        preprocess.resolve((28, 28, 3), False, embedded=spec)
    with pytest.raises(ValueError, match="resizes to 28,28, its input is 32,32"):
        preprocess.resolve((32, 32, 1), False, embedded=spec)
    assert preprocess.resolve((None, None, 1), False, embedded=spec) == spec
