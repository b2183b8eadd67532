"""A run owns only its own folder: it never deletes the user's files, inputs or folders.

Issue 21 item 1, each example with real files and, where the binary matters, tools/deploy.py in
a subprocess: a folder of the user's files with a `manifest.json`, `--model=D/float.keras
--out_dir=D`, a user folder named `bundle.previous-20240105`, a failing re-run (NaN weights), an
interrupted re-run, and an `--out_dir` that is a mount point (a tmpfs in a private mount
namespace, `unshare -rm`). Then a matrix of output folders of our own through `rundir.staged`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgequant import atomic, inplace, rundir
from edgequant.errors import UserError
from tests.conftest import REPO, assert_one_line_error, run_tool, signal_when

FAST = ("--config.bench.enabled=false", "--target=edgetpu", "--config.recovery.enabled=false")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> Path:
    """A tiny tf_keras model (and one whose weights are NaN) and its calibration arrays."""
    import tf_keras as k

    folder = tmp_path_factory.mktemp("inputs")
    k.utils.set_random_seed(0)  # unseeded, about one init in ten misses the 20 dB budget
    inp = k.Input((4,), name="x")
    model = k.Model(inp, k.layers.Dense(3, name="y")(k.layers.Dense(8, activation="relu")(inp)))
    model.save(folder / "good.keras")
    for w in model.weights:
        w.assign(np.full(w.shape, np.nan, np.float32))
    model.save(folder / "nan.keras")
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.normal(size=(64, 4)).astype(np.float32))
    return folder


def _deploy(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """tools/deploy.py's flags for a fast deployment of model on data into out."""
    return [f"--model={model}", f"--data={data}", f"--out_dir={out}", *FAST, *extra]


@pytest.fixture(scope="module")
def bundle(user_files, tmp_path_factory) -> Path:
    """A good bundle, deployed beside user folders whose names look like a dead run's."""
    parent = tmp_path_factory.mktemp("runs")
    (parent / "bundle.previous-20240105").mkdir()
    (parent / "bundle.previous-20240105" / "thesis.tex").write_text("precious")
    (parent / "bundle.staging-1").mkdir()  # pid 1 is alive: this is no run of ours either
    (parent / "bundle.staging-1" / "notes.txt").write_text("mine")
    out = parent / "bundle"
    proc = run_tool("deploy", *_deploy(user_files / "good.keras", user_files / "x.npy", out))
    assert proc.returncode == 0, proc.stderr
    return out


# ---------------------------------------------------------------- the examples of issue 21


def test_a_folder_of_user_files_with_a_manifest_is_not_replaced(user_files, tmp_path):
    (tmp_path / "manifest.json").write_text('{"mine": true}')
    (tmp_path / "thesis.tex").write_text("precious")
    before = _snapshot(tmp_path)
    proc = run_tool(
        "deploy", f"--model={user_files / 'good.keras'}", f"--data={user_files / 'x.npy'}",
        f"--out_dir={tmp_path}", *FAST,
    )  # fmt: skip
    assert_one_line_error(proc, str(tmp_path), "not an edgequant run", "--out_dir")
    assert _snapshot(tmp_path) == before
    assert [p for p in tmp_path.parent.iterdir() if p.name.startswith(f"{tmp_path.name}.")] == []


def test_the_models_own_training_folder_is_refused_as_out_dir(user_files, tmp_path):
    """`--model=D/float.keras --out_dir=D` (the workdir tools/train.py wrote)."""
    shutil.copy(user_files / "good.keras", tmp_path / "float.keras")
    (tmp_path / "history.json").write_text("{}")
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events").write_text("e")
    before = _snapshot(tmp_path)
    proc = run_tool(
        "deploy", f"--model={tmp_path / 'float.keras'}", f"--data={user_files / 'x.npy'}",
        f"--out_dir={tmp_path}", *FAST,
    )  # fmt: skip
    assert_one_line_error(proc, f"--out_dir {tmp_path}", f"input {tmp_path / 'float.keras'}")
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
def test_a_users_folder_named_like_a_dead_run_is_kept(bundle):
    parent = bundle.parent
    assert (parent / "bundle.previous-20240105" / "thesis.tex").read_text() == "precious"
    assert (parent / "bundle.staging-1" / "notes.txt").read_text() == "mine"
    assert rundir.read_marker(bundle)["status"] == "complete"
    assert json.loads((bundle / "deploy.json").read_text())["recommended"]


@pytest.mark.slow
def test_a_failing_rerun_keeps_the_previous_good_bundle(bundle, user_files):
    before = _snapshot(bundle)
    proc = run_tool("deploy", *_deploy(user_files / "nan.keras", user_files / "x.npy", bundle))
    # A broken float model is refused before any work, so the good bundle is never touched.
    assert_one_line_error(proc, "NaN or Inf", "the float model itself is broken")
    assert _snapshot(bundle) == before
    assert sorted(p.name for p in bundle.parent.iterdir()) == [
        "bundle", "bundle.previous-20240105", "bundle.staging-1",
    ]  # fmt: skip


@pytest.mark.slow
def test_an_interrupted_rerun_says_the_previous_bundle_was_kept(bundle, user_files):
    """The old message said "nothing was kept" for a deploy bundle (it has no manifest.json)."""
    before = _snapshot(bundle)
    pids: list[int] = []

    def staging(pid: int) -> Path:
        return bundle.with_name(f"bundle.staging-{pid}")

    at = signal_when(lambda pid: (staging(pid) / "fp32.tflite").exists(), signal.SIGTERM)
    args = _deploy(user_files / "good.keras", user_files / "x.npy", bundle)
    proc = run_tool("deploy", *args, during=lambda pid: (pids.append(pid), at(pid)))
    err = proc.stderr
    assert proc.returncode == 143, err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        f"error: interrupted by SIGTERM: {bundle} still holds the previous complete run; "
        "the partial new run was removed"
    ]
    assert _snapshot(bundle) == before
    assert not staging(pids[0]).exists()


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and (
        subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    )


@pytest.mark.slow
@pytest.mark.platform_limit("needs unshare -rm (a private mount namespace) to mount a tmpfs")
def test_an_out_dir_that_is_a_mount_point_gets_the_bundle_in_place(user_files, tmp_path):
    """Two runs into a tmpfs mount point (rename(2) of it is EBUSY): the first fills it, the
    second (fewer variants) replaces exactly the first's files; the bundle is copied out before
    the private namespace, and the mount with it, goes away."""
    if not _can_unshare():
        pytest.skip("unshare -rm is not permitted here")
    mnt, copy1, copy2 = tmp_path / "mnt", tmp_path / "first", tmp_path / "second"
    mnt.mkdir()
    deploy = [sys.executable, str(REPO / "tools" / "deploy.py")]
    second = " ".join([*deploy, *_deploy(user_files / "good.keras", user_files / "x.npy", mnt)])
    first = second.replace("--target=edgetpu", "--target=cpu")  # more variants than edgetpu
    script = (
        f'mount -t tmpfs tmpfs "{mnt}" && {first} && cp -a "{mnt}" "{copy1}" && '
        f'{second} && cp -a "{mnt}" "{copy2}"'
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for copy in (copy1, copy2):
        marker = rundir.read_marker(copy)
        assert marker["status"] == "complete"
        assert sorted(p.name for p in copy.iterdir()) == sorted([rundir.MARKER, *marker["entries"]])
        assert json.loads((copy / "deploy.json").read_text())["recommended"]
    assert "int16x8.tflite" in rundir.read_marker(copy1)["entries"]
    assert not (copy2 / "int16x8.tflite").exists()  # the first run's extra file went


# ---------------------------------------------------------------- output folders: the matrix


def _run(workdir, files: dict[str, bytes], inputs=(), failed=None) -> None:
    with rundir.staged(workdir, inputs=inputs, failed=failed) as staging:
        for name, data in files.items():
            atomic.write_bytes(staging / name, data)


def _refused(workdir, *needles: str, inputs=()) -> None:
    with pytest.raises(UserError) as e:
        _run(workdir, {"deploy.json": b"{}"}, inputs)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def case_missing_folder_is_created(d: Path):
    _run(d / "out", {"a.tflite": b"1"})
    assert sorted(p.name for p in (d / "out").iterdir()) == [rundir.MARKER, "a.tflite"]


def case_empty_folder_is_used(d: Path):
    (d / "out").mkdir()
    _run(d / "out", {"a.tflite": b"1"})
    assert (d / "out" / "a.tflite").read_bytes() == b"1"
    assert sorted(p.name for p in d.iterdir()) == ["out"]


def case_user_files_are_refused(d: Path):
    (d / "out").mkdir()
    (d / "out" / "photo.jpg").write_bytes(b"jpg")
    _refused(d / "out", "photo.jpg", "choose an empty or new --out_dir")
    assert (d / "out" / "photo.jpg").read_bytes() == b"jpg"


def case_train_outputs_without_a_marker_are_refused(d: Path):
    (d / "out").mkdir()
    for name in ("float.keras", "history.json"):
        (d / "out" / name).write_bytes(b"trained")
    _refused(d / "out", "float.keras")
    assert (d / "out" / "float.keras").read_bytes() == b"trained"


def case_a_file_added_to_a_run_folder_is_refused(d: Path):
    _run(d / "out", {"a.tflite": b"1"})
    (d / "out" / "notes.txt").write_text("mine")
    _refused(d / "out", "notes.txt", "is an edgequant run folder")
    assert (d / "out" / "notes.txt").read_text() == "mine"


def case_a_previous_run_is_replaced_without_stale_files(d: Path):
    _run(d / "out", {"a.tflite": b"1", "b.tflite": b"2"})
    _run(d / "out", {"a.tflite": b"new"})
    assert sorted(p.name for p in (d / "out").iterdir()) == [rundir.MARKER, "a.tflite"]
    assert sorted(p.name for p in d.iterdir()) == ["out"]


def case_a_junk_marker_is_not_ours(d: Path):
    (d / "out").mkdir()
    (d / "out" / rundir.MARKER).write_text("not json")
    (d / "out" / "x.txt").write_text("mine")
    _refused(d / "out", "x.txt")


def case_an_input_inside_is_refused(d: Path):
    (d / "out").mkdir()
    (d / "out" / "labels.txt").write_text("cat\ndog\n")
    _refused(d / "out", "labels.txt", inputs=("", None, str(d / "out" / "labels.txt")))


def case_an_input_inside_a_previous_run_is_refused(d: Path):
    _run(d / "out", {"uint8.tflite": b"model"})
    _refused(d / "out", "uint8.tflite", inputs=(d / "out" / "uint8.tflite",))
    assert (d / "out" / "uint8.tflite").read_bytes() == b"model"


def case_the_input_folder_itself_is_refused(d: Path):
    (d / "saved_model").mkdir()
    _refused(d / "saved_model", "holds the input", inputs=(d / "saved_model",))


def case_an_out_dir_inside_the_data_folder_is_refused(d: Path):
    (d / "images" / "cat").mkdir(parents=True)
    _refused(d / "images" / "bundle", "inside the input folder", inputs=(d / "images",))
    assert sorted(p.name for p in (d / "images").iterdir()) == ["cat"]


def case_an_input_reached_through_a_symlink_is_refused(d: Path):
    (d / "out").mkdir()
    (d / "out" / "m.keras").write_bytes(b"m")
    (d / "link.keras").symlink_to(d / "out" / "m.keras")
    _refused(d / "out", "link.keras", inputs=(d / "link.keras",))


def case_a_glob_of_records_inside_is_refused(d: Path):
    (d / "out").mkdir()
    (d / "out" / "a.tfrecord").write_bytes(b"r")
    _refused(d / "out", "*.tfrecord", inputs=(f"{d / 'out'}/*.tfrecord",))


def case_a_callable_or_url_input_is_no_path(d: Path):
    _run(d / "out", {"a.tflite": b"1"}, inputs=("mymodule:samples", "gs://bucket/data"))
    assert (d / "out" / "a.tflite").exists()


def case_user_siblings_named_like_runs_are_kept(d: Path):
    for name in ("out.previous-20240105", "out.staging-1", "out.staging-99999999"):
        (d / name).mkdir()
        (d / name / "mine.txt").write_text(name)
    _run(d / "out", {"a.tflite": b"1"})
    _run(d / "out", {"a.tflite": b"2"})
    for name in ("out.previous-20240105", "out.staging-1", "out.staging-99999999"):
        assert (d / name / "mine.txt").read_text() == name


def case_a_failed_run_keeps_a_good_previous_one(d: Path):
    _run(d / "out", {"a.tflite": b"good"})
    with pytest.raises(UserError, match="still holds the previous complete run"):
        _run(d / "out", {"a.tflite": b"bad"}, failed=lambda s: "no variant meets the budget")
    assert (d / "out" / "a.tflite").read_bytes() == b"good"
    assert sorted(p.name for p in d.iterdir()) == ["out"]


def case_a_failed_run_with_nothing_to_lose_is_kept_for_its_report(d: Path):
    _run(d / "out", {"report.md": b"why 1"}, failed=lambda s: "no variant")
    assert rundir.read_marker(d / "out")["status"] == "failed"
    _run(d / "out", {"report.md": b"why 2"}, failed=lambda s: "no variant")  # replaces a failed
    assert (d / "out" / "report.md").read_bytes() == b"why 2"
    with pytest.raises(KeyboardInterrupt) as e:
        with rundir.staged(d / "out"):
            raise KeyboardInterrupt
    assert "still holds the previous (failed) run" in e.value.kept


def case_an_error_in_the_run_keeps_the_previous_one(d: Path):
    _run(d / "out", {"deploy.json": b"old"})
    with pytest.raises(UserError, match="recovery failed"), rundir.staged(d / "out") as s:
        atomic.write_bytes(s / "deploy.json", b"new")
        raise UserError("recovery failed")
    assert (d / "out" / "deploy.json").read_bytes() == b"old"
    assert sorted(p.name for p in d.iterdir()) == ["out"]


def case_an_interrupt_over_a_bundle_without_manifest_says_it_was_kept(d: Path):
    _run(d / "out", {"deploy.json": b"old"})
    with pytest.raises(KeyboardInterrupt) as e, rundir.staged(d / "out"):
        raise KeyboardInterrupt
    assert e.value.kept.startswith(f"{d / 'out'} still holds the previous complete run")
    with pytest.raises(KeyboardInterrupt) as e, rundir.staged(d / "new"):
        raise KeyboardInterrupt
    assert e.value.kept.startswith("nothing was kept")


def case_a_signal_a_library_swallowed_still_keeps_the_previous_run(d: Path):
    """Some libraries catch KeyboardInterrupt and carry on: the run then completes, but the
    pending Ctrl-C must still stop it before it replaces the previous bundle."""
    from edgequant import cli

    _run(d / "out", {"deploy.json": b"old"})
    cli._pending_signal = signal.SIGINT
    try:
        with pytest.raises(KeyboardInterrupt) as e, rundir.staged(d / "out") as s:
            atomic.write_bytes(s / "deploy.json", b"new")
    finally:
        cli._pending_signal = None
    assert e.value.kept.startswith(f"{d / 'out'} still holds the previous complete run")
    assert (d / "out" / "deploy.json").read_bytes() == b"old"
    assert sorted(p.name for p in d.iterdir()) == ["out"]


def case_a_symlinked_out_dir_is_written_in_place(d: Path):
    (d / "real").mkdir()
    (d / "out").symlink_to(d / "real")
    assert inplace.needed(d / "out")
    _run(d / "out", {"a.tflite": b"1", "b.tflite": b"2"})
    _run(d / "out", {"a.tflite": b"new"})
    assert (d / "out").is_symlink()
    assert sorted(p.name for p in (d / "real").iterdir()) == [rundir.MARKER, "a.tflite"]
    assert (d / "real" / "a.tflite").read_bytes() == b"new"
    assert sorted(p.name for p in d.iterdir()) == ["out", "real"]


def case_a_symlinked_out_dir_with_user_files_is_refused(d: Path):
    (d / "real").mkdir()
    (d / "real" / "mine.txt").write_text("x")
    (d / "out").symlink_to(d / "real")
    _refused(d / "out", "mine.txt")


def case_an_interrupted_in_place_run_keeps_the_previous_files(d: Path):
    (d / "real").mkdir()
    (d / "out").symlink_to(d / "real")
    _run(d / "out", {"a.tflite": b"old"})
    with pytest.raises(KeyboardInterrupt), rundir.staged(d / "out") as s:
        atomic.write_bytes(s / "a.tflite", b"new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in (d / "real").iterdir()) == [rundir.MARKER, "a.tflite"]
    assert (d / "real" / "a.tflite").read_bytes() == b"old"


def case_an_in_place_commit_killed_midway_is_finished_by_the_next_run(d: Path):
    """The state a SIGKILL leaves after phase 1 and half of phase 2 (see inplace.py)."""
    child = subprocess.Popen(["true"])
    child.wait()  # a dead pid (kept referenced: a dropped Popen may be reaped by the next one)
    pid = child.pid
    real = d / "real"
    real.mkdir()
    rundir.write_marker(real, {"pid": 1, "status": "complete", "entries": ["a", "b"]})
    staging, previous = real / f"{inplace.STAGING}{pid}", real / f"{inplace.PREVIOUS}{pid}"
    staging.mkdir()
    previous.mkdir()
    (previous / "a").write_text("old a")
    (previous / "b").write_text("old b")
    rundir.write_marker(previous, {"pid": pid, "status": "moved"})
    (real / "a").write_text("new a")  # moved in before the kill
    (staging / "c").write_text("new c")  # not yet
    rundir.write_marker(staging, {"pid": pid, "status": "complete", "entries": ["a", "c"]})
    inplace.recover(real)
    assert sorted(p.name for p in real.iterdir()) == [rundir.MARKER, "a", "c"]
    assert (real / "a").read_text() == "new a" and (real / "c").read_text() == "new c"


def case_an_out_dir_that_is_a_file_or_a_dangling_link_is_refused(d: Path):
    (d / "f").write_text("x")
    _refused(d / "f", "is an existing file")
    (d / "dangling").symlink_to(d / "nowhere")
    _refused(d / "dangling", "symlink to a missing folder")


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("case", list(CASES))
def test_output_folders(case, tmp_path):
    CASES[case](tmp_path)
