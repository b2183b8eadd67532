"""manifest.json: everything needed to say where a run's numbers came from.

Versions of the whole stack, the seed, the full config, the dataset source and split sizes, and
the sha256 of every artifact, so any .tflite in a run folder can be traced and re-made.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from edgequant import atomic

PACKAGES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "numpy",
    "ml-collections",
)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_artifacts(workdir: str | Path) -> dict[str, str]:
    """{relative path: sha256} of every model and JSON file in `workdir` (not the manifest)."""
    workdir = Path(workdir)
    return {
        str(p.relative_to(workdir)): sha256(p)
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
        and p.suffix in (".tflite", ".keras", ".json")
        and p.name != "manifest.json"
        and not atomic.is_tmp(p)  # a write a killed process never finished
    }


def build(config, dataset_info: dict, workdir: str | Path) -> dict:
    artifacts = build_artifacts(workdir)
    return {
        "versions": versions(),
        "seed": config.seed,
        "config": json.loads(config.to_json_best_effort()),
        "dataset": dataset_info,
        "artifacts_sha256": artifacts,
    }
