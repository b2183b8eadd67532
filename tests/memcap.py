"""A real memory cap for one test process: a cgroup v1 memory child of this process's own cgroup.

Root can make one where the memory hierarchy is mounted writable (these machines: `4:memory:/...`
in /proc/self/cgroup). A process joins it by writing its pid to `cgroup.procs`; the folder is
removed once empty. `make()` returns None where no such cgroup can be made here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory folder (bounds.memory_cgroups reads /proc/self/cgroup)."""
    from edgequant.flow import bounds

    try:
        own = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    for _, folder, files in bounds.memory_cgroups(own, Path("/sys/fs/cgroup")):
        if files == bounds.V1_FILES and folder.is_dir():
            return folder
    return None


def make(name: str, limit: int) -> Path | None:
    """A fresh capped cgroup named `name` beside nothing else of ours; None if impossible."""
    parent = own_memory_cgroup()
    if parent is None:
        return None
    folder = parent / name
    try:
        folder.mkdir()
        (folder / "memory.limit_in_bytes").write_text(str(limit))
    except OSError:
        with contextlib.suppress(OSError):
            folder.rmdir()
        return None
    return folder


def available() -> bool:
    """Whether a capped cgroup can be made here (made and removed at once)."""
    folder = make("edgequant-memcap-probe", 1 << 30)
    if folder is None:
        return False
    remove(folder)
    return True


def remove(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
