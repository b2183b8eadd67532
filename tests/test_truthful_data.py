"""Issue 21 item 4, truthful data: every file skipped is counted and named, unreadable types are
errors, classes agree across --data, --eval_data and labels.txt, labels and inputs are checked
before any work, and the float reference is float. Real files, real models, the real flow's
prepare (model load, sources, splits, calibration set) on each case."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from edgequant.errors import UserError
from edgequant.flow import prepare
from tests import truth_fixtures as tf_
from tests.truth_fixtures import config, png_folder, truncate, vectors


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    vec = tf_.vector_model(d)
    return {
        "img": tf_.image_model(d),
        "vec": vec,
        "two": tf_.two_input_model(d),
        "int32": tf_.vector_model(d, "int32.keras", "int32"),
        "uint8": tf_.vector_model(d, "uint8.keras", "uint8"),
        **{f"tflite_{k}": v for k, v in tf_.tflite_variants(d, vec).items()},
    }


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """A clean folder of 3 classes x 40 PNGs, copied by each case that damages it."""
    return png_folder(tmp_path_factory.mktemp("pngs") / "data", 40)


def _prepare(cfg, tmp_path):
    return prepare.prepare(cfg, tmp_path / "out")


def _copy(pngs, tmp_path):
    return shutil.copytree(pngs, tmp_path / "data")


def _files(folder, cls="a"):
    return sorted((folder / cls).iterdir())


# --- every skipped file counted and named; the limit applies to all of them ------------------


def _truncate_third(d):
    for i, p in enumerate(sorted(d.rglob("*.png"))):
        if i % 3 == 0:
            truncate(p)


def _jpeg(d, name="x.jpg", cut=False):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    (d / "a" / name).write_bytes(data[: len(data) // 2] if cut else data)


def _pil(d, cls, fmt, suffix, n=3):
    from PIL import Image

    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 50 * i, np.uint8)).save(d / cls / f"p{i}{suffix}", fmt)


# name -> (damage(folder), max_corrupt_fraction, expected: refused needles or skipped reasons)
SKIP_CASES = {
    "one truncated png of 120 is skipped and named": (
        lambda d: truncate(_files(d)[0]),
        0.01,
        {"a/000000.png": "does not decode"},
    ),
    "a third of the pngs truncated after a valid header is refused": (
        _truncate_third,
        0.01,
        ("40 of 120 files", "does not decode", "at most 1%"),
    ),
    "a truncated jpeg is skipped and named": (
        lambda d: _jpeg(d, cut=True),
        0.05,
        {"a/x.jpg": "does not decode"},
    ),
    "an empty png is skipped as too short": (
        lambda d: (d / "a" / "empty.png").write_bytes(b""),
        0.05,
        {"a/empty.png": "empty"},
    ),
    "text named .png is skipped as not decoding": (
        lambda d: (d / "b" / "fake.png").write_text("this is not an image, only its name is"),
        0.05,
        {"b/fake.png": "does not decode"},
    ),
    "a README in a class folder is skipped and named": (
        lambda d: (d / "c" / "README.txt").write_text("notes"),
        0.05,
        {"c/README.txt": "not an image file"},
    ),
    "three damaged files of three kinds are all named": (
        lambda d: (
            truncate(_files(d, "a")[1]),
            (d / "b" / "notes.md").write_text("x"),
            (d / "c" / "z.png").write_bytes(b"\x89PNG"),
        ),
        0.05,
        {"a/000001.png": "does not decode", "b/notes.md": "not an image", "c/z.png": "empty"},
    ),
    "skipped files of every reason count toward the limit": (
        lambda d: [(d / "a" / f"n{i}.txt").write_text("x") for i in range(3)],
        0.02,
        ("3 of 123 files", "not an image file", "at most 2%"),
    ),
    "the limit is the fraction of every file found, damaged ones included": (
        lambda d: [truncate(p) for p in _files(d, "b")[:2]],
        0.01,
        ("2 of 120 files", "max_corrupt_fraction"),
    ),
    "hidden files are not data and not counted": (
        lambda d: [(d / "a" / ".DS_Store").write_bytes(b"\0" * 64), (d / ".git").mkdir()],
        0.0,
        {},
    ),
    "webp and gif images are read, not skipped": (
        lambda d: (_pil(d, "a", "WEBP", ".webp"), _pil(d, "b", "GIF", ".gif")),
        0.0,
        {},
    ),
    "every file unreadable is refused, naming one": (
        lambda d: [p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40) for p in d.rglob("*.png")],
        1.0,
        ("no image in", "decodes"),
    ),
}


@pytest.mark.parametrize("case", sorted(SKIP_CASES))
def test_every_skipped_file_is_counted_and_named_and_limited(case, models, pngs, tmp_path):
    damage, limit, expected = SKIP_CASES[case]
    d = _copy(pngs, tmp_path)
    damage(d)
    cfg = config(models["img"], d, **{"data.max_corrupt_fraction": limit})
    if isinstance(expected, tuple):
        with pytest.raises(UserError) as e:
            _prepare(cfg, tmp_path)
        for needle in expected:
            assert needle in str(e.value), str(e.value)
        assert "\n" not in str(e.value)
        return
    study = _prepare(cfg, tmp_path)
    source = study.calibration.source
    named = {str(s.file).removeprefix(str(d) + "/"): s.reason for s in source.skipped}
    assert set(named) == set(expected), named
    for f, reason in expected.items():
        assert reason in named[f]
    info = source.info()
    assert info["corrupt_skipped"] == len(expected) and len(info["skipped"]) == len(expected)
    listed = sum(1 for p in d.rglob("*") if p.is_file() and ".DS_Store" not in p.name)
    assert source.size + len(expected) == listed  # nothing vanished uncounted


# --- a file type that cannot be read is an error naming the files ---------------------------

TYPE_CASES = {
    "a class folder of tiff": ("TIFF", ".tiff"),
    "tif suffix": ("TIFF", ".tif"),
    "ppm": ("PPM", ".ppm"),
    "ico": ("ICO", ".ico"),
    "tga": ("TGA", ".tga"),
    "upper-case TIFF suffix": ("TIFF", ".TIFF"),
    "jpeg 2000": ("JPEG2000", ".jp2"),
    "heic named file": (None, ".heic"),
    "avif named file": (None, ".avif"),
    "psd named file": (None, ".psd"),
}


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_an_image_type_that_cannot_be_decoded_is_an_error_naming_the_files(
    case, models, pngs, tmp_path
):
    fmt, suffix = TYPE_CASES[case]
    d = _copy(pngs, tmp_path)
    (d / "d").mkdir()
    if fmt:
        _pil(d, "d", fmt, suffix)
    else:
        for i in range(3):
            (d / "d" / f"p{i}{suffix}").write_bytes(b"\0" * 200)
    cfg = config(models["img"], d, **{"data.max_corrupt_fraction": 1.0})
    with pytest.raises(UserError) as e:
        _prepare(cfg, tmp_path)
    msg = str(e.value)
    assert "3 image file(s)" in msg and suffix.lower() in msg and "p0" in msg, msg


# --- class names across --data, --eval_data and labels.txt ----------------------------------


CLASS_CASES = {
    "eval lacks a class": (("a", "b"), None, ("different classes", "['a', 'b']", "'c'")),
    "eval has an extra class": (("a", "b", "c", "d"), None, ("different classes", "'d'")),
    "eval renamed a class": (("a", "b", "x"), None, ("different classes", "'x'")),
    "eval differs in case only": (("A", "b", "c"), None, ("different classes", "'A'")),
    "same class folders are accepted": (("a", "b", "c"), None, None),
    "labels.txt lets eval hold a subset": (("a", "c"), "a\nb\nc\n", None),
    "labels.txt in another order is the order": (("a", "b", "c"), "c\nb\na\n", None),
    "labels.txt not naming an eval folder": (("a", "b", "q"), "a\nb\nc\n", ("'q'", "labels")),
    "labels.txt not naming a data folder": (("a", "b"), "a\nb\n", ("'c'", "labels")),
    "eval without classes beside data with them": ((), None, None),
}


@pytest.mark.parametrize("case", sorted(CLASS_CASES))
def test_class_names_are_compared_across_data_eval_data_and_labels(case, models, pngs, tmp_path):
    classes, labels_txt, refused = CLASS_CASES[case]
    if classes:
        ev = png_folder(tmp_path / "eval", 10, classes=classes)
    else:  # a flat folder: unlabelled evaluation images
        ev = tmp_path / "eval"
        ev.mkdir()
        for p in sorted(pngs.rglob("*.png"))[:20]:
            shutil.copy(p, ev / f"{p.parent.name}_{p.name}")
    keys = {"data.eval_path": str(ev)}
    if labels_txt:
        (tmp_path / "labels.txt").write_text(labels_txt)
        keys["data.labels"] = str(tmp_path / "labels.txt")
    cfg = config(models["img"], pngs, **keys)
    if refused:
        with pytest.raises(UserError) as e:
            _prepare(cfg, tmp_path)
        for needle in refused:
            assert needle in str(e.value), str(e.value)
        return
    study = _prepare(cfg, tmp_path)
    if labels_txt:
        names = labels_txt.split()
        assert study.class_names == names
        # the evaluation labels index labels.txt, not the eval folder's own sorted names
        ev_src = study.evaluation.source
        for path, label in zip(ev_src.paths, ev_src.labels, strict=True):
            assert names[label] == path.split("/")[-2]
    elif classes:
        assert study.class_names == list(classes)


# --- labels outside [0, classes), label keys, non-finite inputs: refused before any work ------


def _npz(tmp_path, **arrays):
    np.savez(tmp_path / "d.npz", **arrays)
    return tmp_path / "d.npz"


def _example(features: dict) -> bytes:
    import tensorflow as tf

    def feature(v):
        if isinstance(v, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        v = np.atleast_1d(v)
        if np.issubdtype(v.dtype, np.integer):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=v.tolist()))
        return tf.train.Feature(float_list=tf.train.FloatList(value=v.tolist()))

    ex = tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    )
    return ex.SerializeToString()


def _tfrecord(tmp_path, records: list[dict | bytes]) -> str:
    import tensorflow as tf

    path = tmp_path / "d.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in records:
            w.write(r if isinstance(r, bytes) else _example(r))
    return str(path)


def _records(n=30, key="label", labels=None, x=None):
    xs, ys = vectors(n)
    xs = xs if x is None else x
    ys = ys if labels is None else labels
    return [{"x": xs[i], **({key: np.int64(ys[i])} if key else {})} for i in range(n)]


def _callable_module(tmp_path, body: str, name: str) -> str:
    """A module `name` in tmp_path with `def data():` and `body` (importable: on sys.path)."""
    import sys

    (tmp_path / f"{name}.py").write_text("import numpy as np\n\n" + body)
    sys.path.insert(0, str(tmp_path))
    return f"{name}:data"


def _with_nan(i, inf=False):
    x, _ = vectors(30)
    x[i, 2] = np.inf if inf else np.nan
    return x


INPUT_CASES = {
    # --- labels
    "npz label -1": (
        lambda t: _npz(t, x=vectors(30)[0], labels=np.r_[vectors(29)[1], -1]),
        {},
        ("label(s) below 0", "sample 29", "label -1"),
    ),
    "npz labels beyond labels.txt": (
        lambda t: _npz(t, x=vectors(30)[0], labels=np.r_[vectors(29)[1], 7]),
        {"data.labels": "LABELS3"},
        ("outside [0, 3)", "sample 29", "label 7"),
    ),
    "npz labels beyond the classifier's outputs": (
        lambda t: _npz(t, x=vectors(30)[0], labels=np.r_[vectors(29)[1], 5]),
        {},
        ("3",),
    ),
    "tfrecord label -1": (
        lambda t: _tfrecord(t, _records(labels=np.r_[np.zeros(29, int), -1])),
        {},
        ("below 0", "sample 29"),
    ),
    "tfrecord misspelled label key": (
        lambda t: _tfrecord(t, _records(key="lable")),
        {},
        ("no record has the label key 'label'", "'lable'", "'x'"),
    ),
    "tfrecord user's label key missing": (
        lambda t: _tfrecord(t, _records(key="label")),
        {"data.label_key": "class_id"},
        ("'class_id'", "['label', 'x']"),
    ),
    "tfrecord label in some records only": (
        lambda t: _tfrecord(t, _records()[:10] + _records(key=None)[10:]),
        {},
        ("record 10 has no label 'label'",),
    ),
    "tfrecord float label": (
        lambda t: _tfrecord(t, [{"x": r["x"], "label": np.float32(1.5)} for r in _records()]),
        {},
        ("record 0", "label feature 'label' must be one int64", "float_list"),
    ),
    "callable label -1": (
        lambda t: _callable_module(
            t,
            "def data():\n    return [(np.zeros(4, np.float32), -1 if i == 7 else i % 3) for i in range(30)]\n",
            "cb_neg",
        ),
        {},
        ("below 0", "sample 7"),
    ),
    "callable with labels on some samples only": (
        lambda t: _callable_module(
            t,
            "def data():\n    for i in range(30):\n        x = np.zeros(4, np.float32)\n"
            "        yield (x, 1) if i < 5 else x\n",
            "cb_mixed",
        ),
        {},
        ("sample 5 has no label",),
    ),
    # --- non-finite inputs
    "npy with NaN": (
        lambda t: (np.save(t / "d.npy", _with_nan(11)), t / "d.npy")[1],
        {},
        ("input 'x'", "sample 11", "NaN or Inf"),
    ),
    "npz with Inf": (lambda t: _npz(t, x=_with_nan(3, inf=True)), {}, ("input 'x'", "sample 3")),
    "npz second input with -Inf": (
        lambda t: _npz(t, a=vectors(30)[0], b=-_with_nan(17, inf=True)),
        {"model.path": "TWO"},
        ("input 'b'", "sample 17"),
    ),
    "NaN past the first chunk of a large array": (
        lambda t: (np.save(t / "d.npy", np.r_[vectors(5000)[0], _with_nan(4)]), t / "d.npy")[1],
        {},
        ("sample 5004",),
    ),
    "tfrecord NaN": (
        lambda t: _tfrecord(t, _records(x=_with_nan(6))),
        {},
        ("record 6", "'x'", "NaN or Inf"),
    ),
    "callable NaN": (
        lambda t: _callable_module(
            t,
            "def data():\n    for i in range(30):\n        x = np.ones(4, np.float32)\n"
            "        x[0] = np.nan if i == 12 else 0\n        yield x\n",
            "cb_nan",
        ),
        {},
        ("'cb_nan:data'", "input 'x'", "sample 12"),
    ),
    "callable Inf in a dict sample": (
        lambda t: _callable_module(
            t,
            "def data():\n    return [{'x': np.full(4, np.inf if i == 2 else 1, np.float32)}"
            " for i in range(30)]\n",
            "cb_inf",
        ),
        {},
        ("sample 2",),
    ),
    # --- TFRecord records unlike the first
    "tfrecord record with fewer values": (
        lambda t: _tfrecord(
            t,
            _records()[:3]
            + [{"x": np.zeros(3, np.float32), "label": np.int64(0)}]
            + _records()[4:],
        ),
        {},
        ("record 3 differs from record 0", "3 values, record 0 has 4"),
    ),
    "tfrecord record missing the input feature": (
        lambda t: _tfrecord(t, _records()[:2] + [{"label": np.int64(0)}] + _records()[3:]),
        {},
        ("record 2 differs", "'x' is missing"),
    ),
    "tfrecord record of another kind": (
        lambda t: _tfrecord(
            t, _records()[:4] + [{"x": np.arange(4), "label": np.int64(0)}] + _records()[5:]
        ),
        {},
        ("record 4 differs", "int64_list", "float_list"),
    ),
    "tfrecord record that is not an Example": (
        lambda t: _tfrecord(t, _records()[:5] + [b"\xff\xfe garbage"] + _records()[6:]),
        {},
        ("record 5 is not a tf.train.Example",),
    ),
    # --- accepted
    "tfrecord without any label-like key is unlabelled": (
        lambda t: _tfrecord(t, _records(key=None)),
        {},
        None,
    ),
    "npz labels within labels.txt": (
        lambda t: _npz(t, x=vectors(30)[0], labels=vectors(30)[1]),
        {"data.labels": "LABELS3"},
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_labels_keys_and_values_are_checked_before_any_work(case, models, tmp_path):
    make, keys, refused = INPUT_CASES[case]
    data = make(tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    keys = {k: str(tmp_path / "labels.txt") if v == "LABELS3" else v for k, v in keys.items()}
    keys = {k: str(models["two"]) if v == "TWO" else v for k, v in keys.items()}
    cfg = config(models["vec"], data, **keys)
    if refused is None:
        study = _prepare(cfg, tmp_path)
        assert len(study.calibration) + len(study.evaluation) == 30
        if "labels.txt" in case:
            assert study.class_names == ["a", "b", "c"]
        return
    with pytest.raises(UserError) as e:
        _prepare(cfg, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in refused:
        assert needle in msg, msg
    assert not list((tmp_path / "out").glob("*.tflite"))  # refused before any conversion


# --- a float reference must be float ---------------------------------------------------------

FLOAT_CASES = {
    "int8 tflite": (
        "tflite_int8",
        {"quantize.aeq_recipes": ("dynamic_wi8_afp32",)},
        ("already quantized", "int8"),
    ),
    "uint8 tflite": (
        "tflite_uint8",
        {"quantize.aeq_recipes": ("dynamic_wi8_afp32",)},
        ("already quantized", "uint8"),
    ),
    "dynamic-range tflite (float I/O)": (
        "tflite_dynamic_range",
        {"quantize.aeq_recipes": ("dynamic_wi8_afp32",)},
        ("already quantized",),
    ),
    "float16 tflite": (
        "tflite_float16",
        {"quantize.aeq_recipes": ("dynamic_wi8_afp32",)},
        ("already quantized", "float16"),
    ),
    "int8 tflite on the edgetpu target": ("tflite_int8", {"target": "edgetpu"}, ("float .tflite",)),
    "float tflite without an AEQ recipe": ("tflite_fp32", {}, ("aeq_recipes is empty",)),
    "keras model with an int32 input": ("int32", {}, ("input 'x' is int32", "float32")),
    "keras model with a uint8 input": ("uint8", {}, ("input 'x' is uint8",)),
    "float32 tflite with an AEQ recipe is accepted": (
        "tflite_fp32",
        {"quantize.aeq_recipes": ("dynamic_wi8_afp32",)},
        None,
    ),
    "float keras model is accepted": ("vec", {}, None),
}


@pytest.mark.parametrize("case", sorted(FLOAT_CASES))
def test_the_float_reference_must_be_float(case, models, tmp_path):
    model, keys, refused = FLOAT_CASES[case]
    data = _npz(tmp_path, x=vectors(30)[0], labels=vectors(30)[1])
    cfg = config(models[model], data, **keys)
    if refused is None:
        assert _prepare(cfg, tmp_path).model.path == str(models[model])
        return
    with pytest.raises(UserError) as e:
        _prepare(cfg, tmp_path)
    for needle in refused:
        assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_deploy_json_names_every_skipped_file(models, pngs, tmp_path):
    """The whole flow: a truncated PNG is named, with its reason, in deploy.json."""
    import edgequant

    d = _copy(pngs, tmp_path)
    truncate(_files(d, "b")[3])
    result = edgequant.deploy_config(
        config(models["img"], d, **{"data.max_corrupt_fraction": 0.05}), tmp_path / "bundle"
    )
    saved = json.loads((tmp_path / "bundle" / "deploy.json").read_text())
    for r in (result, saved):
        cal = r["calibration"]
        assert cal["corrupt_skipped"] == 1
        assert cal["skipped"] == [
            {"file": str(d / "b" / "000043.png"), "reason": cal["skipped"][0]["reason"]}
        ]
        assert "does not decode" in cal["skipped"][0]["reason"]
