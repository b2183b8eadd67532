"""Settings that describe a model, as typed data: frozen dataclasses that round-trip to JSON and
are written beside the artifact they describe (recipes, preprocessing specs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgequant import atomic


class JsonData:
    """to_json / from_dict / save / load for a frozen dataclass with a `to_dict`.

    `from_dict` refuses unknown fields, so a misspelled key in a hand-edited file fails with
    its name instead of being dropped.
    """

    NOUN = "field"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.NOUN} field(s) {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        atomic.write_text(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))
