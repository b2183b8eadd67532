"""An append-only JSONL results store that survives crashes, re-runs and concurrent writers.

Each result (success or structured error) is one line, written with a single write() under an
exclusive lock and fsync'ed, so a killed run leaves every finished line intact and no torn
line. The key (model sha256, device, settings) lets a re-run skip what already succeeded, and
`append` refuses a second success for a key (checked under the same lock), so even two fleets
sharing one store record each job's success exactly once. Errors are attempts: a later
success supersedes them (`latest`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from pathlib import Path


def key(model_sha256: str, device: str, settings: dict) -> str:
    return json.dumps([model_sha256, device, settings], sort_keys=True)


def _parse(lines: list[bytes]) -> list[dict]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write is ignored, never fatal
    return out


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = 0  # bytes of the file already folded into _done
        self._done: set[str] = set()

    def _catch_up(self, fd: int) -> None:
        """Folds lines appended since the last look (by anyone) into the done set."""
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # only whole lines; a torn tail is read again next time
        for r in _parse(data[:end].splitlines()):
            if "error" not in r and "key" in r:
                self._done.add(r["key"])
        self._offset += end

    def append(self, record: dict) -> bool:
        """Appends one record; returns False (writing nothing) for a second success of a key."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            if "error" not in record and record.get("key") in self._done:
                return False
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a writer killed mid-line: never glue onto its fragment
            os.write(fd, line)
            os.fsync(fd)
            if "error" not in record and "key" in record:
                self._done.add(record["key"])
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return _parse(self.path.read_bytes().splitlines())

    def done(self) -> set[str]:
        """Keys of successful results."""
        return {r["key"] for r in self.records() if "error" not in r and "key" in r}

    def latest(self) -> dict[str, dict]:
        """The current record of each key: its success if any, else its last error."""
        out: dict[str, dict] = {}
        for r in self.records():
            k = r.get("key")
            if k is not None and ("error" in out.get(k, {"error": ""})):  # a success is final
                out[k] = r
        return out

    def duplicates(self) -> dict[str, int]:
        """Keys with more than one success (must be empty)."""
        counts = Counter(r["key"] for r in self.records() if "error" not in r and "key" in r)
        return {k: n for k, n in counts.items() if n > 1}
