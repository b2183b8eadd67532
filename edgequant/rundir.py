"""A run folder always describes exactly one run: build the new run beside it, swap it in at the end.

    with rundir.staged(workdir) as staging:
        ... write every artifact, results.json, manifest.json and the report into `staging` ...
    # here `workdir` holds exactly the new run; the previous one is gone

Why staging and not writing in place: a re-run that dies halfway would otherwise leave the new
run's `float.keras` beside the old run's `results.json` and manifest (hashes that no longer
match), and a re-run with fewer recipes would leave the old run's extra `.tflite` files for the
new manifest to list. With staging:

- the new run is written to `<workdir>.staging-<pid>` (same parent, so the final rename stays on
  one filesystem and is atomic);
- when the body finishes, the old workdir is renamed to `<workdir>.previous-<pid>`, the staging
  folder is renamed to `<workdir>`, and the old one is deleted. SIGINT/SIGTERM are held back
  during the two renames;
- if the body fails or is interrupted, the staging folder is deleted and `<workdir>` is untouched:
  the previous complete run survives, or no folder exists;
- a process killed with SIGKILL (or a power cut) can leave a staging folder, or stop between the
  two renames; the next run into the same workdir finishes or undoes that swap and deletes stale
  staging folders of processes that are gone (`recover`);
- the manifest is computed over the staging folder, which holds only files this run made.

A workdir is only ever replaced when it is empty or a run folder (it holds the `.edgequant-run`
marker or a `manifest.json`, or only tools/train.py's outputs), so `--workdir=.` or a typo naming
a folder of the user's own files fails with one line instead of deleting them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgequant import atomic
from edgequant.errors import UserError

MARKER = ".edgequant-run"
STAGING = ".staging-"
PREVIOUS = ".previous-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _siblings(workdir: Path, kind: str) -> list[tuple[int, Path]]:
    """(pid, path) of `<workdir><kind><pid>` folders beside `workdir`."""
    out = []
    if not workdir.parent.is_dir():
        return out
    prefix = workdir.name + kind
    for p in workdir.parent.iterdir():
        if p.name.startswith(prefix) and p.name[len(prefix) :].isdigit():
            out.append((int(p.name[len(prefix) :]), p))
    return sorted(out)


# What tools/train.py leaves in its workdir: a pipeline may take that folder over.
TRAIN_OUTPUTS = {"float.keras", "history.json", "tensorboard"}


def is_run_folder(path: Path) -> bool:
    """True for a folder a run may replace: a finished run, or tools/train.py's output."""
    if (path / MARKER).is_file() or (path / "manifest.json").is_file():
        return True
    return {p.name for p in path.iterdir()} <= TRAIN_OUTPUTS


def check_target(workdir: str | Path) -> Path:
    """The absolute workdir, after refusing what cannot or must not be replaced by a run."""
    workdir = Path(os.path.abspath(workdir))
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"workdir {workdir} is an existing file, not a folder; choose another path")
    if workdir == Path(workdir.anchor) or workdir == Path.home():
        raise UserError(f"refusing to use {workdir} as a workdir; name a folder for this run")
    if workdir.is_dir() and any(workdir.iterdir()) and not is_run_folder(workdir):
        entries = sorted(p.name for p in workdir.iterdir())
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise UserError(
            f"workdir {workdir} holds files that are not an edgequant run ({shown}); "
            "a run replaces its whole workdir, so use a new or empty folder"
        )
    for folder in workdir.parents:
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"cannot create workdir {workdir}: {folder} is a file")
            break
    return workdir


def recover(workdir: str | Path) -> None:
    """Finishes or undoes a swap a killed run left half-done, and removes dead runs' staging."""
    workdir = Path(os.path.abspath(workdir))
    for kind in (STAGING, PREVIOUS):
        for pid, path in _siblings(workdir, kind):
            if pid != os.getpid() and _pid_alive(pid):
                raise UserError(
                    f"another run (pid {pid}) is writing {workdir} ({path.name}); "
                    "wait for it to finish or stop it"
                )
    for pid, previous in _siblings(workdir, PREVIOUS):
        staging = workdir.with_name(f"{workdir.name}{STAGING}{pid}")
        if not workdir.exists():
            # Killed between the two renames. The swap starts only once the new run is complete,
            # so a surviving staging folder is a complete run: promote it; otherwise restore.
            os.rename(staging if staging.is_dir() else previous, workdir)
            atomic.fsync_dir(workdir.parent)
        if previous.exists():
            shutil.rmtree(previous, ignore_errors=True)
    for _, staging in _siblings(workdir, STAGING):
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Holds SIGINT/SIGTERM back for a few renames, then delivers them to the usual handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        for s in pending[:1]:
            signal.raise_signal(s)


def swap(staging: Path, workdir: Path) -> None:
    """Moves the complete `staging` folder to `workdir`, deleting the previous run."""
    with _signals_held():
        if workdir.exists():
            previous = workdir.with_name(f"{workdir.name}{PREVIOUS}{os.getpid()}")
            os.rename(workdir, previous)
            os.rename(staging, workdir)
            atomic.fsync_dir(workdir.parent)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.rename(staging, workdir)
            atomic.fsync_dir(workdir.parent)


def kept(workdir: str | Path) -> str:
    """One clause saying what an interrupted run leaves in `workdir`."""
    workdir = Path(workdir)
    if workdir.is_dir() and (workdir / "manifest.json").is_file():
        return f"{workdir} still holds the previous complete run; the partial new run was removed"
    return f"nothing was kept: the partial run was removed and {workdir} is unchanged"


@contextlib.contextmanager
def staged(workdir: str | Path) -> Iterator[Path]:
    """Yields a fresh staging folder; on success it replaces `workdir`, on failure it is deleted."""
    target = check_target(workdir)
    staging = target.with_name(f"{target.name}{STAGING}{os.getpid()}")
    try:
        recover(target)
        try:
            staging.mkdir(parents=True)
        except OSError as e:  # read-only, permission, full disk: name the workdir the user gave
            raise OSError(e.errno, e.strerror, str(target)) from None
        atomic.write_json(staging / MARKER, {"pid": os.getpid(), "started": time.time()})
        yield staging
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            e.kept = kept(workdir)  # read by cli.run's one-line interrupt message
        if isinstance(e, OSError) and isinstance(e.filename, str):
            # A full disk while writing staging/float.keras: name where the file was going.
            final = relocate(e.filename, staging, workdir)
            if final != e.filename:
                raise OSError(e.errno, e.strerror, final) from e
        raise
    swap(staging, target)


def relocate(obj, staging: str | Path, workdir: str | Path):
    """`obj` (JSON-like) with every path string under `staging` rewritten to be under `workdir`.

    Stages record artifact paths as they write them, inside the staging folder; results.json
    must name where they will live after the swap.
    """
    old, new = str(staging), str(workdir)
    if isinstance(obj, dict):
        return {k: relocate(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(relocate(v, old, new) for v in obj)
    if isinstance(obj, str) and (obj == old or obj.startswith(old + os.sep)):
        return new + obj[len(old) :]
    return obj


def verify(workdir: str | Path) -> list[str]:
    """Every way `workdir` fails to describe exactly one run; empty when it is consistent.

    Checks that the manifest's files exist and match their sha256, that no artifact the
    manifest does not list sits in the folder (a stale file of an older run), and that no
    staging or half-swapped folder of a dead run is left beside it.
    """
    import json

    from edgequant.bench import device_runner
    from edgequant.report import manifest

    workdir = Path(workdir)
    problems = []
    man_path = workdir / "manifest.json"
    if not man_path.is_file():
        return [f"{workdir}: no manifest.json"]
    listed = json.loads(man_path.read_text())["artifacts_sha256"]
    for name, digest in listed.items():
        path = workdir / name
        if not path.is_file():
            problems.append(f"{name}: listed but missing")
        elif device_runner.sha256_file(path) != digest:
            problems.append(f"{name}: sha256 does not match the manifest")
    present = manifest.build_artifacts(workdir)
    for name in sorted(set(present) - set(listed)):
        problems.append(f"{name}: in the folder but not in the manifest (stale)")
    for kind in (STAGING, PREVIOUS):
        for pid, path in _siblings(Path(os.path.abspath(workdir)), kind):
            if not _pid_alive(pid):
                problems.append(f"{path.name}: left by a dead run")
    return problems
