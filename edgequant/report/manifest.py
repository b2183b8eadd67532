"""manifest.json: everything needed to say where a run's numbers came from.

Versions of the whole stack, the seed, the full config, the dataset source and split sizes, and
the sha256 of every artifact, so any .tflite in a run folder can be traced and re-made.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from edgequant import atomic
from edgequant.bench.device_runner import sha256_file as sha256  # the one sha256 helper

PACKAGES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "numpy",
    "ml-collections",
)


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
