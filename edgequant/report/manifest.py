"""manifest.json: everything needed to say where a run's numbers came from.

Versions of the whole stack, the project's git commit (and whether tracked files differ from it),
the seed, the full config, the dataset source and split sizes, and
the sha256 of every artifact, so any .tflite in a run folder can be traced and re-made.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from edgequant import atomic, workspace
from edgequant.bench.device_runner import sha256_file  # the one sha256 helper

PACKAGES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "numpy",
    "ml-collections",
)


def git_state(root: str | Path = workspace.ROOT) -> dict[str, str | bool]:
    """{"commit", "dirty"} of the project's git checkout, "unknown" for both outside one (an
    installed copy, an exported tarball, no git): the code that made a run is part of its story."""
    unknown: dict[str, str | bool] = {"commit": "unknown", "dirty": "unknown"}

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != Path(root).resolve():
        return unknown  # not a checkout, or a folder inside some other repository
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return unknown  # e.g. a fresh repository with no commit yet
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


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
        str(p.relative_to(workdir)): sha256_file(p)
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
        "git": git_state(),
        "seed": config.seed,
        "config": json.loads(config.to_json_best_effort()),
        "dataset": dataset_info,
        "artifacts_sha256": artifacts,
    }
