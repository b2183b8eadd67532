"""Your model, your data: models of several families and formats, data written by the tests,
through the real loaders, converters and interpreters, and the bundle they produce."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import edgequant
from edgequant import usermodel
from edgequant.data import preprocess, sources
from edgequant.data.folders import write_image_folder
from edgequant.errors import UserError
from tests.conftest import assert_one_line_error, ready, run_tool

QUICK = {"bench.enabled": False, "recovery.enabled": False}


def _keras3():
    import keras

    return keras


def _tf_keras():
    import tf_keras

    return tf_keras


@pytest.fixture(scope="module")
def digit_folder(digits, tmp_path_factory):
    """300 real digits as PNG class folders (c0..c9), 30 per class."""
    idx = np.concatenate([np.flatnonzero(digits.train.y == c)[:30] for c in range(10)])
    root = tmp_path_factory.mktemp("data") / "digits"
    return write_image_folder(root, digits.train.x[idx], digits.train.y[idx])


@pytest.fixture(scope="module")
def keras3_digit_model(digits, tmp_path_factory):
    """A Keras 3 CNN (the format TF 2.16+ saves by default) trained briefly on real digits."""
    keras = _keras3()
    keras.utils.set_random_seed(0)
    # Functional, as most users' models are (notebook 04 shows a Sequential one).
    pixels = keras.Input((28, 28, 1), name="pixels")
    hidden = keras.layers.MaxPooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(pixels))
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(
        keras.layers.Flatten()(hidden)
    )
    model = keras.Model(pixels, probs)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = digits.train.x[:1500, ..., None] / 255.0
    model.fit(x, digits.train.y[:1500], epochs=2, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("k3") / "digits.keras"
    model.save(path)
    return path


# --- formats ------------------------------------------------------------------------------------


def test_format_is_detected_from_content_not_extension(keras3_digit_model, tiny_model, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(keras3_digit_model.read_bytes())
    assert usermodel.detect_format(renamed) == "keras3"
    tiny_model.save(tmp_path / "legacy.h5")
    (tmp_path / "legacy.h5").rename(tmp_path / "legacy.keras")
    assert usermodel.detect_format(tmp_path / "legacy.keras") == "h5"
    tiny_model.save(tmp_path / "tf.keras")
    assert usermodel.detect_format(tmp_path / "tf.keras") == "tf_keras"
    (tmp_path / "junk.keras").write_bytes(b"not a model at all")
    with pytest.raises(UserError, match="unrecognised model format"):
        usermodel.detect_format(tmp_path / "junk.keras")
    with pytest.raises(UserError, match="not a SavedModel"):
        usermodel.detect_format(tmp_path)


def test_keras3_model_converts_with_its_own_names_and_matches_keras(keras3_digit_model, digits):
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.quantize import convert, recipes

    m = usermodel.load(keras3_digit_model)
    assert m.format == "keras3" and m.input_names == ["pixels"] and m.output_names == ["probs"]
    assert "tf_keras" in m.qat_support()  # Keras 3: PTQ only, and the reason says why
    content = convert.convert(m, recipes.get("fp32"))
    path = keras3_digit_model.parent / "fp32.tflite"
    path.write_bytes(content)
    x = {"pixels": (digits.test.x[:16, ..., None] / 255.0).astype(np.float32)}
    got = SignatureModel(path).predict(x)["probs"]
    np.testing.assert_allclose(got, m.predict(x)["probs"], atol=1e-5)


@pytest.fixture(scope="module")
def three_output_saved_model(tmp_path_factory):
    """A SavedModel with a custom signature whose three outputs share one shape: only their
    names tell them apart (TFLite orders them StatefulPartitionedCall:0..2 its own way)."""
    import tensorflow as tf

    class Heads(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def predict(self, features):
            h = tf.matmul(features, self.w)
            return {"gamma": 3.0 * h + 5.0, "alpha": h, "beta": -2.0 * h}

    module = Heads()
    path = tmp_path_factory.mktemp("sm") / "heads"
    tf.saved_model.save(module, str(path), signatures={"predict": module.predict})
    return path


def test_saved_model_reports_sqnr_under_its_own_output_names(three_output_saved_model, tmp_path):
    data = tmp_path / "features.npy"
    np.save(data, np.random.default_rng(1).normal(size=(400, 6)).astype(np.float32))
    result = edgequant.deploy(
        three_output_saved_model,
        data,
        tmp_path / "out",
        signature="predict",
        target="cpu",
        **{"quantize.recipes": ("fp32", "int8"), **QUICK},
    )
    assert [o["name"] for o in result["model"]["outputs"]] == ["alpha", "beta", "gamma"]
    by_name = {v["name"]: v for v in result["variants"]}
    assert set(by_name["int8"]["metrics"]["sqnr_db"]) == {"alpha", "beta", "gamma"}
    # fp32 equals the float reference output by output; a name mix-up would give ~0 dB.
    fp32 = by_name["fp32"]["metrics"]["sqnr_db"]
    assert all(v is None or v > 100 for v in fp32.values()), fp32
    assert all(v > 25 for v in by_name["int8"]["metrics"]["sqnr_db"].values())
    assert result["evaluation"]["labels"] is False and "top1" not in by_name["int8"]["metrics"]


def test_saved_model_unknown_signature_lists_the_available_ones(three_output_saved_model):
    with pytest.raises(UserError, match="no signature 'serving_default'; available: predict"):
        usermodel.load(three_output_saved_model)


def test_two_input_two_output_model_takes_npz_arrays_by_input_name(tmp_path):
    keras = _tf_keras()
    a = keras.Input((8,), name="signal")
    b = keras.Input((3,), name="context")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model(
        [a, b],
        [
            keras.layers.Dense(4, activation="softmax", name="kind")(h),
            keras.layers.Dense(1, name="level")(h),
        ],
    )
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "data.npz",
        context=rng.normal(size=(300, 3)).astype(np.float32),
        signal=rng.normal(size=(300, 8)).astype(np.float32),
        labels=rng.integers(0, 4, 300),
    )
    result = edgequant.deploy(
        tmp_path / "two.keras",
        tmp_path / "data.npz",
        tmp_path / "out",
        target="cpu",
        **{"quantize.recipes": ("int8",), **QUICK},
    )
    (v,) = result["variants"]
    assert set(v["metrics"]["sqnr_db"]) == {"kind", "level"}
    assert "top1" in v["metrics"] and "top1" in result["float"]["metrics"]
    assert v["metrics"]["agreement_by_output"].keys() == {"kind"}  # level is one value
    assert v["metrics"]["agreement"] > 0.9
    # An image feeds one input: the device runner's image mode refuses this model by name.
    from edgequant.bench import device_runner

    np.save(tmp_path / "image.npy", np.zeros((8, 8), np.uint8))
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    with pytest.raises(device_runner.RunnerError, match="this one has 2 inputs"):
        device_runner.run_image(v["path"], tmp_path / "image.npy", spec, runtime="litert")


# --- images --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_bundle(keras3_digit_model, digit_folder, tmp_path_factory):
    """tools/deploy.py run once as a user would: Keras 3 model, PNG class folders, Edge TPU."""
    out = tmp_path_factory.mktemp("bundle")
    proc = run_tool(
        "deploy",
        f"--model={keras3_digit_model}",
        f"--data={digit_folder}",
        "--input_range=0,1",
        "--target=edgetpu",
        f"--out_dir={out}",
        "--config.bench.num_runs=5",
        "--config.bench.min_secs=0.01",
        "--config.budget.max_drop_pp=5",  # 60 evaluation digits: one digit is 1.7 pp
    )
    return proc, out


def test_keras3_png_class_folders_give_a_gated_edgetpu_bundle(digit_bundle):
    proc, out = digit_bundle
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "deploy.json").read_text())
    (v,) = result["variants"]
    assert v["name"] == "uint8" and v["target"] == "edgetpu" and v["gate"] == "pass"
    assert (v["input_dtype"], v["output_dtype"], v["weights"], v["activations"]) == (
        "uint8",
        "uint8",
        "int8",
        "int8",
    )
    assert v["edgetpu"]["mapped"] == v["edgetpu"]["total"] > 0
    assert abs(v["metrics"]["top1"] - result["float"]["metrics"]["top1"]) <= 0.02
    assert result["evaluation"] == {**result["evaluation"], "n": 60, "labels": True}
    assert result["recommended"] == "uint8" and v["latency_ms"]["p50"] > 0
    assert (out / "labels.txt").read_text().split() == [f"c{i}" for i in range(10)]
    spec = preprocess.Preprocessing.from_dict(json.loads((out / "preprocessing.json").read_text()))
    assert preprocess.read_embedded((out / "uint8.tflite").read_bytes()) == spec
    assert spec.input_range == (0.0, 1.0) and spec.color == "grayscale"
    assert "Recommended: `uint8`" in (out / "report.md").read_text()
    assert (out / "report.html").stat().st_size > 1000
    assert "recommended: uint8" in proc.stdout


def test_every_model_in_the_bundle_has_its_typed_recipe(digit_bundle):
    from tests.test_recipes import assert_every_tflite_has_its_recipe

    _, out = digit_bundle
    found = assert_every_tflite_has_its_recipe(out)
    assert {"fp32.tflite", "uint8.tflite"} <= found.keys()
    assert found["uint8.tflite"].mode.value == "uint8" and found["uint8.tflite"].qat is None
    result = json.loads((out / "deploy.json").read_text())
    assert result["variants"][0]["recipe"] == found["uint8.tflite"].to_dict()


@pytest.mark.parametrize(
    "spec",
    [
        preprocess.Preprocessing((20, 24), "rgb", input_range=(-1, 1)),
        preprocess.Preprocessing((9, 50), "grayscale", method="nearest", input_range=(0, 1)),
        preprocess.Preprocessing((64, 64), "rgb", mean=(120, 110, 100), std=(60, 55, 50)),
    ],
)
def test_the_device_runner_preprocesses_an_image_like_the_host(spec):
    from edgequant.bench import device_runner

    image = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    host = preprocess.apply_batch(image[None], spec)[0]
    device = device_runner.preprocess_image(image, spec.to_dict())
    assert device.shape == host.shape
    np.testing.assert_allclose(device, host, atol=2e-4)


def test_a_board_classifies_a_real_image_with_the_bundles_preprocessing(
    digit_bundle, digits, tmp_path
):
    import subprocess

    from edgequant.bench.remote import RUNNER
    from edgequant.evaluate.runner import SignatureModel
    from tests.conftest import REPO

    _, out = digit_bundle
    image = digits.test.x[7]
    np.save(tmp_path / "digit.npy", image)
    device_python = REPO / ".venv-device" / "bin" / "python"  # numpy<2 + tflite-runtime
    proc = subprocess.run(
        [
            str(device_python),
            str(RUNNER),
            str(out / "uint8.tflite"),
            "--runtime=tflite_runtime",
            f"--image={tmp_path / 'digit.npy'}",
            f"--preprocessing={out / 'preprocessing.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    board = json.loads(proc.stdout.strip().splitlines()[-1])
    spec = preprocess.Preprocessing.from_dict(json.loads((out / "preprocessing.json").read_text()))
    host = SignatureModel(out / "uint8.tflite").predict(
        {"pixels": preprocess.apply_batch(image[None], spec)}
    )["probs"][0]
    (scores,) = board["outputs"].values()
    assert board["runtime"] == "tflite-runtime"
    np.testing.assert_allclose(scores, host, atol=2 / 256)  # within 2 LSB of the uint8 output
    assert board["top5"][0] == int(np.argmax(host))


def test_h5_with_a_flat_unlabelled_jpeg_folder_reports_agreement_and_sqnr(
    tiny_model, digits, tmp_path
):
    tiny_model.save(tmp_path / "legacy.h5")
    flat = write_image_folder(tmp_path / "flat", digits.val.x[:120], fmt="jpg")
    result = edgequant.deploy(
        tmp_path / "legacy.h5", flat, tmp_path / "out", input_range=(0, 1), **QUICK
    )
    assert result["model"]["format"] == "h5"
    (v,) = result["variants"]
    assert result["evaluation"]["labels"] is False and "top1" not in v["metrics"]
    assert v["metrics"]["agreement"] > 0.9
    assert min(v["metrics"]["sqnr_db"].values()) > 15
    assert result["float"]["metrics"]["n"] == 24  # the seeded 20% held out of 120


def test_rgb_mobilenet_v2_on_jpeg_folders_resizes_and_normalizes(digits, tmp_path):
    keras = _tf_keras()
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=3
    )
    model.save(tmp_path / "mnv2.keras")
    rgb = np.repeat(digits.train.x[:90, ..., None], 3, axis=-1)
    folder = write_image_folder(tmp_path / "rgb", rgb, np.arange(90) % 3, fmt="jpg")
    result = edgequant.deploy(
        tmp_path / "mnv2.keras",
        folder,
        tmp_path / "out",
        mean=(127.5,),
        std=(127.5,),
        **QUICK,
    )
    assert result["preprocessing"]["size"] == [32, 32] and result["preprocessing"]["color"] == "rgb"
    (v,) = result["variants"]
    assert v["gate"] == "pass" and v["edgetpu"]["total"] > 50


def test_model_with_its_own_rescaling_layer_needs_no_range_flag(digit_folder, tmp_path):
    keras = _keras3()
    model = keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.save(tmp_path / "rescale.keras")
    result = edgequant.deploy(tmp_path / "rescale.keras", digit_folder, tmp_path / "out", **QUICK)
    assert result["preprocessing"]["source"] == "model"
    assert result["preprocessing"]["input_range"] == [0.0, 255.0]
    assert result["preprocessing"]["size"] == [14, 14]  # 28x28 files resized to the model


def test_segmentation_net_reports_fidelity_per_pixel_output(tmp_path):
    keras = _keras3()
    inp = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.UpSampling2D()(h)
    out = keras.layers.Conv2D(5, 1, activation="softmax", name="mask")(h)
    keras.Model(inp, out).save(tmp_path / "seg.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((200, 16, 16, 3), np.float32))
    result = edgequant.deploy(tmp_path / "seg.keras", tmp_path / "x.npy", tmp_path / "out", **QUICK)
    (v,) = result["variants"]
    assert list(v["metrics"]["sqnr_db"]) == ["mask"] and v["metrics"]["sqnr_db"]["mask"] > 20
    assert "agreement" not in v["metrics"]  # [N, 16, 16, 5] is not classifier-shaped


# --- data sources --------------------------------------------------------------------------------


def test_tfrecord_float_features_stream_the_same_samples_as_arrays(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, 50)
    with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as w:
        for xi, yi in zip(x, y, strict=True):
            feat = {
                "reading": tf.train.Feature(float_list=tf.train.FloatList(value=xi.ravel())),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(yi)])),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString())
    inputs = [usermodel.TensorInfo("window", (None, 4, 3))]
    src = sources.open_source(
        str(tmp_path / "d.tfrecord"), inputs, None, tfrecord_features={"window": "reading"}
    )
    assert (src.kind, src.size) == ("tfrecord", 50)
    split = sources.Split(src, np.array([3, 7, 49]), "some")
    got, labels = split.arrays()
    np.testing.assert_array_equal(got["window"], x[[3, 7, 49]])
    np.testing.assert_array_equal(labels, y[[3, 7, 49]])


def test_callable_source_yields_samples_and_labels(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    for i in range(30):\n"
        "        yield np.full((2, 2), i, np.float32), i % 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    src = sources.open_source("mydata:samples", [usermodel.TensorInfo("x", (None, 2, 2))], None)
    x, y = sources.Split(src, np.array([0, 29]), "s").arrays()
    assert src.size == 30 and x["x"][1, 0, 0] == 29 and list(y) == [0, 2]


def test_holdout_is_seeded_disjoint_and_stratified(digit_folder):
    spec = preprocess.Preprocessing((28, 28), "grayscale", input_range=(0, 1))
    src = sources.open_source(
        str(digit_folder), [usermodel.TensorInfo("p", (None, 28, 28, 1))], lambda: spec
    )
    cal, ev = sources.holdout(src, 0.2, seed=3)
    cal2, ev2 = sources.holdout(src, 0.2, seed=3)
    assert np.array_equal(ev.indices, ev2.indices) and not set(cal.indices) & set(ev.indices)
    assert len(ev) == 60 and np.bincount(ev.labels).tolist() == [6] * 10


def test_a_labels_file_maps_folder_names_to_the_models_class_order(digit_folder, tmp_path):
    spec = preprocess.Preprocessing((28, 28), "grayscale", input_range=(0, 1))
    inputs = [usermodel.TensorInfo("p", (None, 28, 28, 1))]
    by_sort = sources.open_source(str(digit_folder), inputs, lambda: spec)
    reverse = [f"c{i}" for i in range(9, -1, -1)]
    by_file = sources.open_source(str(digit_folder), inputs, lambda: spec, class_names=reverse)
    assert by_file.class_names == reverse
    order = np.argsort(by_sort.paths)
    np.testing.assert_array_equal(
        by_file.labels[np.argsort(by_file.paths)], 9 - by_sort.labels[order]
    )
    with pytest.raises(UserError, match=r"class folder\(s\) \['c0'\]"):
        sources.open_source(str(digit_folder), inputs, lambda: spec, class_names=reverse[:-1])


def test_folder_streams_in_batches_not_all_at_once(digit_folder):
    spec = preprocess.Preprocessing((28, 28), "grayscale", input_range=(0, 1))
    src = sources.open_source(
        str(digit_folder), [usermodel.TensorInfo("p", (None, 28, 28, 1))], lambda: spec
    )
    sizes = [len(y) for _, y in sources.everything(src, "all").batches(64)]
    assert sizes == [64, 64, 64, 64, 44]


# --- preprocessing -------------------------------------------------------------------------------


def test_value_mappings_are_one_affine_map_per_channel():
    r = preprocess.Preprocessing((4, 4), "rgb", input_range=(-1, 1))
    scale, offset = r.scale_offset()
    np.testing.assert_allclose(np.array([0, 255]) * scale[0] + offset[0], [-1, 1], atol=1e-6)
    n = preprocess.Preprocessing((4, 4), "rgb", mean=(120, 110, 100), std=(60, 55, 50))
    scale, offset = n.scale_offset()
    np.testing.assert_allclose(120 * scale[0] + offset[0], 0, atol=1e-6)
    np.testing.assert_allclose(160 * scale[2] + offset[2], 1.2, atol=1e-6)


def test_preprocessing_crop_and_pad_keep_the_aspect():
    img = np.zeros((1, 20, 40, 1), np.uint8)
    img[:, :, 10:30] = 255  # a centred white square 20x20 in a 20x40 frame
    crop = preprocess.apply_batch(
        img, preprocess.Preprocessing((10, 10), "grayscale", "crop", input_range=(0, 1))
    )
    assert crop.shape == (1, 10, 10, 1) and crop.min() > 0.99  # only the square survives
    pad = preprocess.apply_batch(
        img, preprocess.Preprocessing((10, 10), "grayscale", "pad", input_range=(0, 1))
    )
    assert pad[0, 0, 5, 0] == 0 and pad[0, 5, 5, 0] > 0.99  # letterboxed: top rows are padding


def test_no_silent_pixel_range_guess():
    with pytest.raises(ValueError, match="--input_range"):
        preprocess.resolve((28, 28, 1), model_normalizes=False)
    with pytest.raises(ValueError, match="exactly one value mapping"):
        preprocess.Preprocessing((2, 2), input_range=(0, 1), mean=(0,), std=(1,))
    with pytest.raises(ValueError, match="model input has 1"):
        preprocess.resolve((28, 28, 1), False, input_range=(0, 1), color="rgb")


# --- bad input, one line each ---------------------------------------------------------------------


def deploy_tool(model, *args):
    return run_tool("deploy", f"--model={model}", "--config.bench.enabled=false", *args)


def test_deploy_without_data_is_refused(keras3_digit_model, tmp_path):
    proc = deploy_tool(keras3_digit_model, f"--out_dir={tmp_path}")
    assert_one_line_error(proc, "no calibration data", "never calibrates")


def test_deploy_images_without_a_value_mapping_names_the_flag(
    keras3_digit_model, digit_folder, tmp_path
):
    proc = deploy_tool(keras3_digit_model, f"--data={digit_folder}", f"--out_dir={tmp_path}")
    assert_one_line_error(proc, "--input_range=LO,HI")


def test_deploy_arrays_with_the_wrong_channels_name_both_shapes(keras3_digit_model, tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((10, 28, 28, 3), np.float32))
    proc = deploy_tool(
        keras3_digit_model, f"--data={tmp_path / 'rgb.npy'}", f"--out_dir={tmp_path / 'out'}"
    )
    assert_one_line_error(proc, "shape [28, 28, 3]", "expects [28, 28, 1]")


def test_deploy_empty_folder_is_refused(keras3_digit_model, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = deploy_tool(
        keras3_digit_model,
        f"--data={tmp_path / 'empty'}",
        "--input_range=0,1",
        f"--out_dir={tmp_path / 'out'}",
    )
    assert_one_line_error(proc, "no images")


def test_deploy_single_class_folder_is_refused(keras3_digit_model, digits, tmp_path):
    write_image_folder(tmp_path / "one", digits.train.x[:5], np.zeros(5, int))
    proc = deploy_tool(
        keras3_digit_model,
        f"--data={tmp_path / 'one'}",
        "--input_range=0,1",
        f"--out_dir={tmp_path / 'out'}",
    )
    assert_one_line_error(proc, "one class folder")


def test_corrupt_images_are_skipped_and_counted_or_refused_above_the_threshold(
    keras3_digit_model, digits, tmp_path
):
    idx = np.arange(0, 200 * 17, 17)  # the stored digits are grouped by class: spread the pick
    folder = write_image_folder(tmp_path / "some_bad", digits.train.x[idx], digits.train.y[idx])
    (folder / "c3" / "broken.png").write_bytes(b"\x00garbage" * 10)
    result = edgequant.deploy(
        keras3_digit_model, folder, tmp_path / "out", input_range=(0, 1), **QUICK
    )
    assert result["calibration"]["corrupt_skipped"] == 1
    assert result["float"]["metrics"]["n"] + result["calibration"]["pool"] == 200
    for i in range(5):
        (folder / "c4" / f"bad{i}.jpg").write_bytes(os.urandom(100))
    with pytest.raises(UserError, match="6 of 206 files .* at most 1% may be skipped"):
        edgequant.deploy(keras3_digit_model, folder, tmp_path / "out2", input_range=(0, 1), **QUICK)


def test_class_count_mismatch_is_refused(tiny_model, digits, tmp_path):
    tiny_model.save(tmp_path / "ten.keras")
    folder = write_image_folder(tmp_path / "three", digits.train.x[:30], np.arange(30) % 3)
    with pytest.raises(UserError, match="labels have 3 classes but no model output has 3"):
        edgequant.deploy(
            tmp_path / "ten.keras", folder, tmp_path / "out", input_range=(0, 1), **QUICK
        )


def test_the_pipeline_with_a_model_path_deploys_instead_of_training(tiny_model, digits, tmp_path):
    tiny_model.save(tmp_path / "user.keras")
    idx = np.arange(0, 3000, 10)
    np.savez(tmp_path / "digits.npz", x=ready(digits.train.x[idx]), labels=digits.train.y[idx])
    proc = run_tool(
        "pipeline",
        "--config=configs/deploy.py",
        f"--workdir={tmp_path / 'run'}",
        f"--config.model.path={tmp_path / 'user.keras'}",
        f"--config.data.path={tmp_path / 'digits.npz'}",
        "--config.bench.enabled=false",
        "--config.budget.max_drop_pp=5",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "run" / "deploy.json").read_text())
    assert not (tmp_path / "run" / "float.keras").exists()  # nothing was trained
    assert result["model"]["format"] == "tf_keras" and result["recommended"] == "uint8"
    assert result["evaluation"]["n"] == 60 and "top1" in result["float"]["metrics"]


@pytest.mark.slow
def test_deploy_fix_converts_the_repaired_model_and_maps_it_fully(tmp_path):
    from tests.test_edgetpu_repair import _demo

    _demo(_tf_keras()).save(tmp_path / "demo.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(120, 16, 16, 3)))
    result = edgequant.deploy(
        tmp_path / "demo.keras",
        tmp_path / "x.npy",
        tmp_path / "out",
        **{"edgetpu.fix": True, "edgetpu.approximate": True, **QUICK},
    )
    repair = result["repair"]
    assert repair["before"]["mapped"] < repair["before"]["total"]  # LeakyReLU, GELU, batch
    assert repair["after"]["mapped"] == repair["after"]["total"] and not repair["after"]["gate"]
    (v,) = result["variants"]
    assert v["gate"] == "pass" and v["edgetpu"]["mapped"] == v["edgetpu"]["total"]
    names = usermodel.load(tmp_path / "demo.keras").output_names
    assert [o["name"] for o in result["model"]["outputs"]] == names  # the user's names
    assert min(v["metrics"]["sqnr_db"].values()) > 20
    assert "Edge TPU repair" in (tmp_path / "out" / "report.md").read_text()


def test_an_unknown_deploy_option_names_itself(tmp_path):
    with pytest.raises(ValueError, match="unknown deploy option 'budget.max_dorp_pp'"):
        edgequant.deploy("m.keras", "data", tmp_path, **{"budget.max_dorp_pp": 1.0})
    with pytest.raises(ValueError, match="unknown deploy option 'colour'"):
        edgequant.deploy("m.keras", "data", tmp_path, colour="rgb")
