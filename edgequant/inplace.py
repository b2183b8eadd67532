"""A run into a folder that cannot be renamed: a mount point or a symlink (rundir.staged).

The marker both read and write lives in runmarker.py.

rename(2) of a mount point fails with EBUSY, and renaming a symlink moves the link, not the
folder it names: the old code finished the whole run and then stranded it in a staging folder.
Here the run is staged inside the folder itself, in a hidden folder carrying our marker, so every
file stays on the same filesystem; at the end, with SIGINT/SIGTERM held back:

1. `.edgequant-previous-<pid>` is made (marked) and every entry the previous run's marker lists
   is moved into it; its marker then says `moved` (phase 1 done);
2. every entry of the staging folder is moved in, and the folder's marker is replaced by the new
   run's, which lists exactly those entries;
3. the previous and staging folders are deleted.

Only entries a marker lists are ever moved or deleted: the user's other files (refused up front
by rundir, except `lost+found`) are never touched. A run killed during the commit is finished by
the next run (`recover`): phase 1 is idempotent until its marker says `moved`, and step 2 moves
only what is still in the staging folder, so no new file is mistaken for an old one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from edgequant import atomic, runmarker

STAGING = ".edgequant-staging-"
PREVIOUS = ".edgequant-previous-"


def _mount_points() -> set[str]:
    """Every mount point of this process's namespace (/proc/self/mountinfo, field 5)."""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return set()
    unescape = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space as \040
    return {unescape.sub(lambda m: chr(int(m.group(1), 8)), ln.split()[4]) for ln in lines}


def needed(workdir: Path) -> bool:
    """True when `workdir` exists and cannot be renamed: a symlink or a mount point (a bind
    mount on the same filesystem too, which os.path.ismount misses)."""
    if not workdir.is_dir():
        return False
    if workdir.is_symlink() or os.path.ismount(workdir):
        return True
    return os.path.realpath(workdir) in _mount_points()


def staging_path(workdir: Path) -> Path:
    return Path(os.path.realpath(workdir)) / f"{STAGING}{os.getpid()}"


def _own(folder: Path) -> list[tuple[int, Path]]:
    """(pid, path) of our marked staging/previous folders inside `folder`."""
    out = []
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        for prefix in (STAGING, PREVIOUS):
            rest = p.name[len(prefix) :]
            if p.name.startswith(prefix) and rest.isdigit() and runmarker.is_ours(p):
                out.append((int(rest), p))
    return sorted(out)


def own_folders(folder: Path) -> list[str]:
    return [p.name for _, p in _own(Path(folder))]


def dead_folders(folder: Path) -> list[str]:
    return [p.name for pid, p in _own(Path(folder)) if not runmarker.pid_alive(pid)]


def _move(src: Path, dst: Path) -> None:
    if os.path.lexists(src):
        os.rename(src, dst)


def _finish(real: Path, pid: int) -> None:
    """Phases 1-3 for the run `pid`; safe to repeat after any interruption (see the docstring)."""
    staging, previous = real / f"{STAGING}{pid}", real / f"{PREVIOUS}{pid}"
    new = runmarker.read_marker(staging)
    if new is not None and new.get("status") in runmarker.FINAL:
        if (runmarker.read_marker(previous) or {}).get("status") != "moved":
            old = (runmarker.read_marker(real) or {}).get("entries")
            if old is None:  # an older edgequant's run folder, or an empty one: all but ours
                old = [p.name for p in real.iterdir() if p.name not in runmarker.IGNORED]
            previous.mkdir(exist_ok=True)
            for name in old:
                if name != runmarker.MARKER and not name.startswith((STAGING, PREVIOUS)):
                    _move(real / name, previous / name)
            runmarker.write_marker(previous, {"pid": pid, "status": "moved"})
        for name in new["entries"]:
            _move(staging / name, real / name)
        runmarker.write_marker(real, new)
        atomic.fsync_dir(real)
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def commit(staging: Path, workdir: Path) -> None:
    """Puts the complete run in `staging` (inside `workdir`) in place of the previous one."""
    with runmarker.signals_held():
        _finish(Path(os.path.realpath(workdir)), os.getpid())


def recover(workdir: Path) -> None:
    """Finishes a commit a killed run left half-done; removes dead runs' staging folders."""
    real = Path(os.path.realpath(workdir))
    for pid, path in _own(real):
        if pid != os.getpid() and runmarker.pid_alive(pid):
            from edgequant.errors import UserError

            raise UserError(
                f"another run (pid {pid}) is writing {workdir} ({path.name}); "
                "wait for it to finish or stop it"
            )
    for pid in sorted({pid for pid, _ in _own(real)}):
        if (real / f"{PREVIOUS}{pid}").exists():
            _finish(real, pid)  # the commit had started: complete it
        else:
            shutil.rmtree(real / f"{STAGING}{pid}", ignore_errors=True)
