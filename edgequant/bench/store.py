"""An append-only JSONL results store that survives crashes, re-runs and concurrent writers.

Each result (success or structured error) is one line, written with a single write() under an
exclusive lock and fsync'ed, so a killed run leaves every finished line intact and no torn
line. The key (model sha256, device, settings) lets a re-run skip what already succeeded, and
`append` refuses a second success for a key (checked under the same lock), so even two fleets
sharing one store record each job's success exactly once. Errors are attempts: a later
success supersedes them (`latest`).

Reading is strict about everything except a crash's trace: a record cut by a writer killed
mid-line (it starts a JSON object and stops short) is skipped and its line number kept in
`Contents.torn_lines`, so the tools can say so; a line that is not a JSON object at all (garbage,
a hand edit, another file's format) is an error naming the file and line, never a silent skip.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections import Counter
from pathlib import Path

from edgequant.errors import UserError


def key(model_sha256: str, device: str, settings: dict) -> str:
    return json.dumps([model_sha256, device, settings], sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Contents:
    """What a store file holds: its records, the line of each, and the torn lines skipped."""

    records: list[dict]
    lines: list[int]  # 1-based line number of each record
    torn_lines: list[int]  # records cut by a crash mid-write (skipped)


def _is_torn(line: bytes, error: json.JSONDecodeError) -> bool:
    """A JSON object that stops short: what a writer killed mid-line leaves behind."""
    text = line.strip()
    return text.startswith(b"{") and (not text.endswith(b"}") or error.pos >= len(text))


def parse(lines: list[bytes], path: str | Path = "<store>", first_line: int = 1) -> Contents:
    """Records of JSONL lines; a torn record is skipped (listed), any other bad line raises."""
    records, numbers, torn = [], [], []
    for n, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if _is_torn(line, e):
                torn.append(n)
                continue
            raise UserError(f"{path} line {n}: not a results record (not JSON: {e.msg})") from None
        except UnicodeDecodeError:
            raise UserError(f"{path} line {n}: not a results record (not UTF-8 text)") from None
        if not isinstance(record, dict):
            raise UserError(
                f"{path} line {n}: not a results record (a JSON {type(record).__name__}, "
                "not an object)"
            )
        records.append(record)
        numbers.append(n)
    return Contents(records, numbers, torn)


def success_key(record: dict) -> str | None:
    """The key a successful record holds (None for an error or a record without a key)."""
    k = record.get("key")
    return k if "error" not in record and isinstance(k, str) else None


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = 0  # bytes of the file already folded into _done
        self._lines = 0  # whole lines in those bytes (for the line numbers of errors)
        self._done: set[str] = set()

    def _catch_up(self, fd: int) -> None:
        """Folds lines appended since the last look (by anyone) into the done set."""
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # only whole lines; a torn tail is read again next time
        for r in parse(data[:end].splitlines(), self.path, self._lines + 1).records:
            if success_key(r):
                self._done.add(success_key(r))
        self._offset += end
        self._lines += data[:end].count(b"\n")

    def append(self, record: dict) -> bool:
        """Appends one record; returns False (writing nothing) for a second success of a key."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            if success_key(record) in self._done:
                return False
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a writer killed mid-line: never glue onto its fragment
            os.write(fd, line)
            os.fsync(fd)
            if success_key(record):
                self._done.add(success_key(record))
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self) -> Contents:
        if not self.path.is_file():
            return Contents([], [], [])
        return parse(self.path.read_bytes().splitlines(), self.path)

    def records(self) -> list[dict]:
        return self.read().records

    def done(self) -> set[str]:
        """Keys of successful results."""
        return {success_key(r) for r in self.records() if success_key(r)}

    def latest(self) -> dict[str, dict]:
        """The current record of each key: its success if any, else its last error."""
        out: dict[str, dict] = {}
        for r in self.records():
            k = r.get("key")
            if isinstance(k, str) and ("error" in out.get(k, {"error": ""})):  # a success is final
                out[k] = r
        return out

    def duplicates(self) -> dict[str, int]:
        """Keys with more than one success (must be empty)."""
        counts = Counter(success_key(r) for r in self.records() if success_key(r))
        return {k: n for k, n in counts.items() if n > 1}
