"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Every artifact, result, manifest and report goes through here. The bytes go to a temporary file
in the same folder (a rename is atomic only within one filesystem), are flushed and fsynced, and
the file is renamed over its final name; the folder is fsynced too so the rename itself survives
a power cut (rename(2) is atomic for readers, but durable only once the directory entry is on
disk: see the Linux fsync(2) man page and LWN "Ensuring data reaches disk").
A failed or interrupted write removes its temporary file and leaves the final name untouched.

Temporary names start with "." and contain ".tmp-<pid>", so listings that skip hidden files
(the manifest) never see them, and a file left by a killed process is recognisably stale.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def tmp_path_for(path: str | Path) -> Path:
    """The temporary sibling of `path`; it keeps the suffix, which savers such as Keras need."""
    path = Path(path)
    return path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")


def is_tmp(path: str | Path) -> bool:
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


def fsync_dir(folder: str | Path) -> None:
    """Makes renames and new entries in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    if path.is_dir():  # a saver that writes a folder (SavedModel): sync its files
        for p in sorted(path.rglob("*")):
            if p.is_file():
                _fsync_file(p)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def target(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path for a writer that needs a file name; renames it to `path` on success.

        with atomic.target(workdir / "float.keras") as tmp:
            model.save(tmp)

    On any exception (including an interrupt) the temporary file is removed and `path` is left
    as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp}")
        _fsync_file(tmp)
        if path.is_dir() and not path.is_symlink():
            _remove(path)  # os.replace cannot replace a folder
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        if e.filename is None:  # a failed write(2) (ENOSPC) names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        _remove(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically writes `data` to `path`; returns `path`. (The file is closed before `target`
    syncs it to disk and renames it.)"""
    path = Path(path)
    with target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: object, indent: int | None = 1) -> Path:
    return write_text(path, json.dumps(obj, indent=indent))
