"""A run owns only its own folder: build the new run apart, put it in place only when it succeeded.

    with rundir.staged(workdir, inputs=(model_path, data_path)) as staging:
        ... write every artifact, results.json, manifest.json and the report into `staging` ...
    # here `workdir` holds exactly the new run; the previous one is gone

Why staging and not writing in place: a re-run that dies halfway would otherwise leave the new
run's `float.keras` beside the old run's `results.json` and manifest (hashes that no longer
match), and a re-run with fewer recipes would leave the old run's extra `.tflite` files for the
new manifest to list. With staging:

- the new run is written to `<workdir>.staging-<pid>` (same parent, so the final rename stays on
  one filesystem and is atomic). Its first file is the marker `.edgequant-run` (a random run id,
  the pid, the status, and at the end the names of every entry the run wrote);
- only after the body finished (and `failed(staging)`, when given, found nothing wrong) the old
  workdir is renamed to `<workdir>.previous-<pid>`, the staging folder to `<workdir>`, and the
  old one deleted. SIGINT/SIGTERM are held back during the renames;
- if the body fails or is interrupted, the staging folder is deleted and `<workdir>` is untouched.
  A run that completes but failed (say no variant meets the budget) is put in place only when
  no successful previous result is there; otherwise it is refused with one line;
- a process killed with SIGKILL (or a power cut) can leave a staging folder, or stop between the
  renames; the next run into the same workdir finishes or undoes that swap and deletes stale
  staging folders of processes that are gone (`recover`).

Ownership. A workdir is replaced only when it is missing, empty, or holds our marker and nothing
the marker does not list: a folder of the user's files (even one with a `manifest.json` or a
model named float.keras) is refused with one line, and so is a run folder the user added files
to. A sibling named like ours (`bundle.previous-20240105`) is touched only when it carries our
marker (or is empty). A folder that holds an input of the run (the model, data, labels) is
refused before any work: replacing it would delete them.

In place (`inplace.py`). A mount point or a symlinked workdir cannot be renamed (EBUSY, or the
link itself would move): the run is staged inside it in a marked hidden folder and its entries
are moved in at the end, replacing only the entries the previous run's marker lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgequant import atomic
from edgequant.errors import UserError
from edgequant.runmarker import (  # the marker contract (tests read it here too)
    FINAL,
    IGNORED,
    MARKER,
    finish_marker,
    is_ours,
    new_marker,
    pid_alive,
    read_marker,
    signals_held,
    write_marker,
)

STAGING = ".staging-"
PREVIOUS = ".previous-"


def foreign_entries(folder: Path, skip: Iterable[str] = ()) -> list[str]:
    """Entries of `folder` no run of ours wrote: all of them when it carries no marker."""
    names = {p.name for p in folder.iterdir()} - IGNORED - set(skip)
    marker = read_marker(folder)
    if marker is None:
        return sorted(names)
    listed = marker.get("entries")
    if listed is None:  # a run folder of an older edgequant: its marker listed no entries
        return []
    return sorted(names - set(listed) - {MARKER})


def holds_result(folder: Path) -> str | None:
    """The status of the previous run in `folder` ("complete" or "failed"), None if there is none."""
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is None:
        return None
    return "failed" if marker.get("status") == "failed" else "complete"


def _siblings(workdir: Path, kind: str) -> list[tuple[int, Path]]:
    """(pid, path) of `<workdir><kind><pid>` folders beside `workdir` that a run of ours made."""
    out = []
    if not workdir.parent.is_dir():
        return out
    prefix = workdir.name + kind
    for p in workdir.parent.iterdir():
        if p.name.startswith(prefix) and p.name[len(prefix) :].isdigit() and is_ours(p):
            out.append((int(p.name[len(prefix) :]), p))
    return sorted(out)


def _refuse_foreign(workdir: Path, skip: Iterable[str] = ()) -> None:
    foreign = foreign_entries(workdir, skip)
    if not foreign:
        return
    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    if read_marker(workdir) is None:
        raise UserError(
            f"{workdir} holds files that are not an edgequant run ({shown}); a run replaces "
            "its whole output folder, so choose an empty or new --out_dir (or --workdir)"
        )
    raise UserError(
        f"{workdir} is an edgequant run folder but also holds files that run did not write "
        f"({shown}); move them out, or choose an empty or new --out_dir (or --workdir)"
    )


def check_target(workdir: str | Path) -> Path:
    """The absolute workdir, after refusing what cannot or must not be replaced by a run."""
    workdir = Path(os.path.abspath(os.path.expanduser(workdir)))
    if workdir.is_symlink() and not workdir.exists():
        raise UserError(f"{workdir} is a symlink to a missing folder; choose another path")
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"workdir {workdir} is an existing file, not a folder; choose another path")
    real = Path(os.path.realpath(workdir))
    if real == Path(real.anchor) or real == Path.home().resolve():
        raise UserError(f"refusing to use {workdir} as a workdir; name a folder for this run")
    for folder in workdir.parents:
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"cannot create workdir {workdir}: {folder} is a file")
            break
    return workdir


_GLOB = "*?["


def _input_path(value) -> Path | None:
    """The folder or file an input names, when it names one on disk (a glob: its fixed folder;
    `module:function` or a URL: none)."""
    if value is None or value == "" or "://" in str(value):
        return None
    text = os.path.expanduser(str(value))
    if any(c in text for c in _GLOB):
        text = os.path.dirname(text[: min(text.find(c) for c in _GLOB if c in text)]) or "."
    if not os.path.lexists(text):
        return None
    return Path(os.path.realpath(text))


def check_inputs(workdir: Path, inputs: Iterable) -> None:
    """Refuses a workdir that is, holds, or lies inside an input of the run.

    Replacing the workdir would delete an input inside it (`--model=D/float.keras --out_dir=D`),
    and a workdir inside an input folder (an image folder) would add the run's files to the data.
    """
    real = Path(os.path.realpath(workdir))
    for value in inputs:
        path = _input_path(value)
        if path is None:
            continue
        if path == real or real in path.parents:
            raise UserError(
                f"--out_dir {workdir} holds the input {value}: replacing the folder would "
                "delete it; choose an empty or new --out_dir"
            )
        if path.is_dir() and path in real.parents:
            raise UserError(
                f"--out_dir {workdir} lies inside the input folder {value}: the run would add "
                "its files to your input; choose an --out_dir outside it"
            )


def recover(workdir: str | Path) -> None:
    """Finishes or undoes a swap a killed run left half-done, and removes dead runs' staging.

    Only folders carrying our marker (or empty ones) are touched: a user's folder that merely
    has a name like ours stays.
    """
    from edgequant import inplace

    workdir = Path(os.path.abspath(workdir))
    for kind in (STAGING, PREVIOUS):
        for pid, path in _siblings(workdir, kind):
            if pid != os.getpid() and pid_alive(pid):
                raise UserError(
                    f"another run (pid {pid}) is writing {workdir} ({path.name}); "
                    "wait for it to finish or stop it"
                )
    for pid, previous in _siblings(workdir, PREVIOUS):
        staging = workdir.with_name(f"{workdir.name}{STAGING}{pid}")
        if not workdir.exists():
            # Killed between the renames: the staging folder is put in place only once its
            # marker says it is final, so such a folder is the complete new run.
            final = is_ours(staging) and (read_marker(staging) or {}).get("status") in FINAL
            os.rename(staging if final else previous, workdir)
            atomic.fsync_dir(workdir.parent)
        if previous.exists():
            shutil.rmtree(previous, ignore_errors=True)
    for _, staging in _siblings(workdir, STAGING):
        if not workdir.exists() and (read_marker(staging) or {}).get("status") in FINAL:
            os.rename(staging, workdir)  # killed after an empty workdir was removed
            atomic.fsync_dir(workdir.parent)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    if workdir.is_dir():
        inplace.recover(workdir)


def swap(staging: Path, workdir: Path) -> None:
    """Moves the complete `staging` folder to `workdir`, deleting the previous run."""
    with signals_held():
        if workdir.is_dir() and not any(workdir.iterdir()):
            os.rmdir(workdir)  # an empty folder: nothing to keep, so no previous to rename
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
    """One clause saying what an interrupted or failed run leaves in `workdir`."""
    workdir = Path(workdir)
    status = holds_result(workdir)
    if status == "complete":
        return f"{workdir} still holds the previous complete run; the partial new run was removed"
    if status == "failed":
        return f"{workdir} still holds the previous (failed) run; the partial new run was removed"
    return f"nothing was kept: the partial run was removed and {workdir} is unchanged"


@contextlib.contextmanager
def staged(
    workdir: str | Path,
    inputs: Iterable = (),
    failed: Callable[[Path], str | None] | None = None,
) -> Iterator[Path]:
    """Yields a fresh, marked staging folder; it replaces `workdir` only after complete success.

    `inputs`: every path the run reads (model, data, labels...): a workdir holding one is refused
    before any work. `failed(staging)`: called once the body returned; a reason string means the
    run completed but failed, and it then replaces only a workdir without a successful result
    (otherwise the previous result stays and a UserError says why).
    """
    from edgequant import cli, inplace

    target = check_target(workdir)
    check_inputs(target, inputs)
    in_place = inplace.needed(target)
    recover(target)
    if target.is_dir():
        _refuse_foreign(target, inplace.own_folders(target) if in_place else ())
    staging = inplace.staging_path(target) if in_place else staging_path(target)
    try:
        try:
            staging.mkdir(parents=True)
        except OSError as e:  # read-only, permission, full disk: name the workdir the user gave
            raise OSError(e.errno, e.strerror, str(target)) from None
        write_marker(staging, new_marker() | {"status": "running"})
        yield staging
        reason = failed(staging) if failed else None
        if reason and holds_result(target) == "complete":
            raise UserError(
                f"this run failed ({reason}); {target} still holds the previous complete run, "
                "unchanged (choose a new --out_dir to keep the failed run's report)"
            )
        finish_marker(staging, reason)
        cli.raise_if_interrupted()
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
    if in_place:
        inplace.commit(staging, target)
    else:
        swap(staging, target)


def staging_path(workdir: Path) -> Path:
    return workdir.with_name(f"{workdir.name}{STAGING}{os.getpid()}")


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
    from edgequant import inplace
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
    leftovers = [Path(p) for p in inplace.own_folders(workdir)]
    for name in sorted(set(present) - set(listed)):
        if not any(Path(name).is_relative_to(p) for p in leftovers):
            problems.append(f"{name}: in the folder but not in the manifest (stale)")
    for kind in (STAGING, PREVIOUS):
        for pid, path in _siblings(Path(os.path.abspath(workdir)), kind):
            if not pid_alive(pid):
                problems.append(f"{path.name}: left by a dead run")
    problems += [f"{name}: left by a dead run" for name in inplace.dead_folders(workdir)]
    return problems
