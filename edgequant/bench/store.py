"""An append-only JSONL results store that survives crashes and re-runs.

Each result (success or structured error) is one line, written with a single write() under an
exclusive lock and fsync'ed, so a killed run leaves every finished line intact and no torn
line. The key (model sha256, device, settings) lets a re-run skip what already succeeded.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path


def key(model_sha256: str, device: str, settings: dict) -> str:
    return json.dumps([model_sha256, device, settings], sort_keys=True)


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write is ignored, never fatal
        return out

    def done(self) -> set[str]:
        """Keys of successful results."""
        return {r["key"] for r in self.records() if "error" not in r and "key" in r}
