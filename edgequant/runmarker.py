"""The run marker: how a folder says an edgequant run made it (used by rundir.py and inplace.py).

A leaf module below both: rundir decides what a run may replace, inplace commits a run into a
folder that cannot be renamed, and both read and write the same marker, so the contract lives
here rather than in one of the two (which would import each other in a circle).

The marker `.edgequant-run` is a small JSON file: a random run id, the pid, the status
(`running`, then one of FINAL), and at the end the names of every entry the run wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgequant import atomic

MARKER = ".edgequant-run"
# Entries a folder may hold that belong to nobody's run: a fresh filesystem's root has one.
IGNORED = frozenset({"lost+found"})
FINAL = ("complete", "failed")  # statuses written just before a run is put in place
_MARKER_MAX_BYTES = 1 << 20


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_marker(folder: Path) -> dict | None:
    """The run marker of `folder`, or None when it has none (or one we did not write)."""
    path = Path(folder) / MARKER
    try:
        if not path.is_file() or path.stat().st_size > _MARKER_MAX_BYTES:
            return None
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "pid" in marker else None


def new_marker() -> dict:
    return {"id": secrets.token_hex(8), "pid": os.getpid(), "started": time.time()}


def write_marker(folder: Path, marker: dict) -> None:
    atomic.write_json(Path(folder) / MARKER, marker, indent=None)


def is_ours(folder: Path) -> bool:
    """A folder edgequant made: it carries our marker, or it is empty (killed before the marker)."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    return read_marker(folder) is not None or not any(folder.iterdir())


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
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


def finish_marker(staging: Path, reason: str | None) -> dict:
    """The staging marker, final: its status and the entries the run wrote (what it will own)."""
    marker = read_marker(staging) or new_marker()
    marker["status"] = "failed" if reason else "complete"
    if reason:
        marker["reason"] = reason
    marker["finished"] = time.time()
    marker["entries"] = sorted(p.name for p in staging.iterdir() if p.name != MARKER)
    write_marker(staging, marker)
    return marker
