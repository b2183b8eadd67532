"""Loading a model is safe by default: no code from the file runs, no archive inflates unchecked.

Issue 21 item 2, with real crafted files: a tf_keras `.h5` whose Lambda layer would write a file
when the model loads (deploy.py and edgetpu_fix.py must refuse it and the file must not
appear), and a 3 MB `.keras` whose `metadata.json` inflates to 3 GiB (refused in seconds, without
the memory). Then a matrix of model files of our own: code in every Keras format and depth,
bombs in every member, oversized graphs, and the safe files that must still load.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgequant import modelfile, usermodel
from edgequant.errors import UserError
from tests.conftest import REPO, assert_one_line_error, run_tool

# The Lambda's body: writes the file its code names when it runs (at load: Keras calls each
# layer on symbolic inputs to rebuild the graph). Built with eval so the path is a constant of
# the marshalled code, as in an attacker's file, not a closure the test could be providing.
_EVIL = "lambda x: (open({path!r}, 'a').write('ran'), x)[1]"


def _lambda_model(k, path: Path, where: str = "top"):
    """A tiny functional model with a Lambda that writes `path` when called."""
    fn = eval(_EVIL.format(path=str(path)))  # noqa: S307 - the attack under test
    inp = k.Input((4,), name="x")
    h = k.layers.Dense(3, name="dense")(inp)
    if where == "top":
        h = k.layers.Lambda(fn, name="evil")(h)
    elif where == "nested":
        inner_in = k.Input((3,))
        inner = k.Model(inner_in, k.layers.Lambda(fn, name="evil_inner")(inner_in), name="sub")
        h = inner(h)
    elif where == "wrapped":
        h = k.layers.Reshape((1, 3))(h)
        h = k.layers.TimeDistributed(k.layers.Lambda(fn, name="evil_td"), name="td")(h)
        h = k.layers.Flatten()(h)
    out = k.layers.Dense(2, name="y")(h)
    return k.Model(inp, out)


def _save_lambda_model(k, folder: Path, name: str, where: str = "top") -> tuple[Path, Path]:
    """(model file, file its Lambda writes); the saving call itself runs the Lambda once."""
    witness = folder / f"{name}.ran"
    model = _lambda_model(k, witness, where)
    path = folder / name
    model.save(path)
    witness.unlink(missing_ok=True)  # building the model ran it: start from nothing
    return path, witness


@pytest.fixture(scope="module")
def evil_h5(tmp_path_factory) -> tuple[Path, Path]:
    import tf_keras

    folder = tmp_path_factory.mktemp("evil")
    return _save_lambda_model(tf_keras, folder, "evil.h5")


def _bomb_zip(path: Path, name: str, size: int, other: dict[str, bytes] | None = None) -> None:
    """A real zip whose member `name` inflates to `size` bytes of JSON-ish text.

    Deflating 3 GiB takes a minute; with a full flush after every 1 MiB chunk each chunk's
    compressed form is the same bytes, so it is computed once and repeated (a valid stream)."""
    chunk = b" " * (1 << 20)
    head, tail = b'{"keras_version": "3.5.0", "pad": "', b'"}'
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(size - len(head) - len(tail), len(chunk))
    tail = b" " * rest + tail
    last = c.compress(tail) + c.flush()
    crc = zlib.crc32(head)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    total = len(head) + n * len(chunk) + len(tail)
    compressed = len(first) + n * len(block) + len(last)
    with open(path, "wb") as f:
        entries = [_stored_member(f, k.encode(), v) for k, v in (other or {}).items()]
        offset = f.tell()
        fname = name.encode()
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, compressed, total,
                            len(fname), 0) + fname)  # fmt: skip
        f.write(first)
        for _ in range(n):
            f.write(block)
        f.write(last)
        entries.append((fname, 8, crc, compressed, total, offset))
        _central_directory(f, entries)


def _stored_member(f, fname: bytes, data: bytes) -> tuple:
    offset, crc = f.tell(), zlib.crc32(data)
    f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data),
                        len(fname), 0) + fname + data)  # fmt: skip
    return (fname, 0, crc, len(data), len(data), offset)


def _central_directory(f, entries) -> None:
    start = f.tell()
    for fname, method, crc, csize, size, offset in entries:
        f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                            csize, size, len(fname), 0, 0, 0, 0, 0, offset) + fname)  # fmt: skip
    end = f.tell()
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), end - start,
                        start, 0))  # fmt: skip


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "model.keras"
    _bomb_zip(path, "metadata.json", 3 << 30)
    return path


def _run_measured(*args: str) -> tuple[subprocess.CompletedProcess, float, int]:
    """A binary run with its wall time and its own peak memory (ru_maxrss, KiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, time.monotonic() - start, usage.ru_maxrss


# ---------------------------------------------------------------- the examples of issue 21


def test_an_h5_lambda_does_not_run_in_deploy(evil_h5, tmp_path):
    path, witness = evil_h5
    np.save(tmp_path / "x.npy", np.zeros((8, 4), np.float32))
    proc = run_tool(
        "deploy", f"--model={path}", f"--data={tmp_path / 'x.npy'}", f"--out_dir={tmp_path / 'b'}"
    )
    assert_one_line_error(proc, "'evil'", "Lambda", "--trust_model_code")
    assert not witness.exists(), "the model file's code ran"
    assert not (tmp_path / "b").exists()


def test_an_h5_lambda_does_not_run_in_edgetpu_fix(evil_h5, tmp_path):
    path, witness = evil_h5
    proc = run_tool("edgetpu_fix", f"--model={path}", f"--out={tmp_path / 'fixed.h5'}")
    assert_one_line_error(proc, "'evil'", "Lambda", "--trust_model_code")
    assert not witness.exists(), "the model file's code ran"
    assert not (tmp_path / "fixed.h5").exists()


def test_trust_model_code_is_the_one_switch_that_lets_the_code_run(tmp_path):
    import tf_keras

    path, witness = _save_lambda_model(tf_keras, tmp_path, "trusted.h5")
    proc = run_tool(
        "edgetpu_fix", f"--model={path}", f"--out={tmp_path / 'fixed.h5'}", "--trust_model_code"
    )
    assert "--trust_model_code" not in proc.stderr, proc.stderr  # not refused
    assert witness.exists(), "with --trust_model_code the model loads as Keras would load it"


def test_a_zip_bomb_keras_is_refused_in_seconds_without_the_memory(bomb, tmp_path):
    assert bomb.stat().st_size < 4 << 20  # a 3 MB file ...
    with zipfile.ZipFile(bomb) as z:
        assert z.getinfo("metadata.json").file_size == 3 << 30  # ... that inflates to 3 GiB
    np.save(tmp_path / "x.npy", np.zeros((8, 4), np.float32))
    proc, seconds, peak_kib = _run_measured(
        str(REPO / "tools" / "deploy.py"),
        f"--model={bomb}",
        f"--data={tmp_path / 'x.npy'}",
        f"--out_dir={tmp_path / 'b'}",
    )
    assert_one_line_error(proc, "metadata.json", "3072.0 MiB", "zip bomb")
    print(f"zip bomb refused in {seconds:.1f} s, peak {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 1_500_000, f"peak {peak_kib} KiB"  # TensorFlow's import is most of it
    assert seconds < 120


def test_the_bomb_is_a_real_stream_that_inflates(bomb):
    """The crafted archive is not a fake header: its first megabytes inflate as declared."""
    with zipfile.ZipFile(bomb) as z, z.open("metadata.json") as f:
        start = f.read(5 << 20)
    assert start.startswith(b'{"keras_version": "3.5.0", "pad": "') and len(start) == 5 << 20


# ---------------------------------------------------------------- model files: the matrix


def _keras3():
    import keras

    return keras


def _tf_keras():
    import tf_keras

    return tf_keras


def _saved_model_with_huge_graph(folder: Path) -> Path:
    sm = folder / "sm"
    sm.mkdir()
    with open(sm / "saved_model.pb", "wb") as f:  # sparse: no disk used
        f.truncate((2 << 30) + 1)
    return sm


def _plain(k, folder: Path, name: str) -> Path:
    inp = k.Input((4,), name="x")
    model = k.Model(inp, k.layers.Dense(2, name="y")(inp))
    model.save(folder / name)
    return folder / name


def _weights_bomb(folder: Path) -> Path:
    path = folder / "weights_bomb.keras"
    _bomb_zip(path, "model.weights.h5", 256 << 20, {"metadata.json": b'{"keras_version": "3.5"}'})
    return path


def _config_bomb(folder: Path) -> Path:
    path = folder / "config_bomb.keras"
    _bomb_zip(path, "config.json", 128 << 20, {"metadata.json": b'{"keras_version": "3.5"}'})
    return path


def _not_keras_zip(folder: Path) -> Path:
    path = folder / "photos.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hello")
    return path


def _damaged_zip(folder: Path) -> Path:
    path = folder / "cut.keras"
    _plain(_keras3(), folder, "whole.keras")
    data = (folder / "whole.keras").read_bytes()
    path.write_bytes(data[:22] + data[-22:])  # a header and an end record, nothing between
    return path


# name -> (make(folder) -> path, the error's words or None when the file must load)
CASES = {
    "h5 Lambda at the top": (
        lambda d: _save_lambda_model(_tf_keras(), d, "top.h5")[0],
        ("'evil'", "Lambda"),
    ),
    "h5 Lambda in a nested model": (
        lambda d: _save_lambda_model(_tf_keras(), d, "nested.h5", "nested")[0],
        ("'evil_inner'", "Lambda"),
    ),
    "h5 Lambda inside TimeDistributed": (
        lambda d: _save_lambda_model(_tf_keras(), d, "td.h5", "wrapped")[0],
        ("'evil_td'", "Lambda"),
    ),
    "tf_keras .keras Lambda": (
        lambda d: _save_lambda_model(_tf_keras(), d, "tfk.keras")[0],
        ("'evil'", "Lambda"),
    ),
    "Keras 3 .keras Lambda": (
        lambda d: _save_lambda_model(_keras3(), d, "k3.keras")[0],
        ("'evil'", "Lambda"),
    ),
    "Keras 3 .keras Lambda renamed .h5": (
        lambda d: _save_lambda_model(_keras3(), d, "k3.keras")[0].rename(d / "k3_renamed.h5"),
        ("'evil'", "Lambda"),
    ),
    "Keras 3 legacy .h5 Lambda": (
        lambda d: _save_lambda_model(_keras3(), d, "k3_legacy.h5")[0],
        ("'evil'", "Lambda"),
    ),
    "metadata.json bomb": (
        lambda d: _bomb_zip(d / "m.keras", "metadata.json", 64 << 20) or d / "m.keras",
        ("metadata.json", "zip bomb"),
    ),
    "config.json bomb": (_config_bomb, ("config.json", "zip bomb")),
    "weights member bomb (ratio)": (_weights_bomb, ("model.weights.h5", "inflate")),
    "saved_model.pb over 2 GiB": (_saved_model_with_huge_graph, ("saved_model.pb", "2 GiB")),
    "a zip that is not a Keras archive": (_not_keras_zip, ("not a Keras model archive",)),
    "a damaged zip": (_damaged_zip, ("cut.keras",)),
    "plain tf_keras .h5 loads": (lambda d: _plain(_tf_keras(), d, "ok.h5"), None),
    "plain Keras 3 .keras loads": (lambda d: _plain(_keras3(), d, "ok.keras"), None),
    "plain tf_keras .keras loads": (lambda d: _plain(_tf_keras(), d, "ok_tfk.keras"), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_model_files_load_safely(case, tmp_path):
    make, needles = CASES[case]
    path = make(tmp_path)
    if needles is None:
        model = usermodel.load(path)
        assert [t.name for t in model.inputs] == ["x"]
        return
    with pytest.raises(UserError) as e:
        usermodel.load(path)
    line = str(e.value)
    assert "\n" not in line
    for needle in needles:
        assert needle in line, line
    assert not list(tmp_path.glob("*.ran")), "the model file's code ran"


def test_a_refused_lambda_loads_with_trust_code(tmp_path):
    path, witness = _save_lambda_model(_tf_keras(), tmp_path, "trusted.h5")
    model = usermodel.load(path, trust_code=True)
    assert witness.exists() and model.format == "h5"


def test_code_layers_finds_every_lambda_at_any_depth():
    config = {"layers": [{"class_name": "Dense", "config": {"name": "d"}},
                         {"class_name": "TimeDistributed", "config": {"layer": {
                             "class_name": "Lambda", "config": {"name": "inner"}}}}]}  # fmt: skip
    assert modelfile.code_layers(config) == ["inner"]
    assert modelfile.code_layers({"class_name": "Dense", "config": {}}) == []
