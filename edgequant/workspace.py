"""The workspace around the library: the model zoo in `models/` and the configs in `configs/`.

Neither folder is installed as a top-level package: names as common as `models` and `configs`
collide with other projects' packages of the same name in one site-packages. They are loaded
here by file path, under private module names, from the checkout the library runs from. A
config that builds on another loads it with `workspace.config_module("base")`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edgequant.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def path(relative: str) -> Path:
    """`relative` (e.g. "configs/base.py") inside the workspace, whatever the current folder."""
    return ROOT / relative


def names(folder: str) -> tuple[str, ...]:
    """The module names in a workspace folder (`models`, `configs`), private files excluded."""
    return tuple(sorted(p.stem for p in path(folder).glob("*.py") if not p.name.startswith("_")))


def module(folder: str, name: str) -> ModuleType:
    """Imports `<folder>/<name>.py` once per process; an unknown name lists the valid ones."""
    key = f"edgequant._workspace.{folder}.{name}"
    if key in sys.modules:
        return sys.modules[key]
    file = path(folder) / f"{name}.py"
    if not file.is_file():
        if not path(folder).is_dir():
            raise UserError(f"no {folder}/ folder in {ROOT}: it ships with the edgequant checkout")
        raise UserError(f"unknown {folder} module '{name}'; valid: {', '.join(names(folder))}")
    spec = importlib.util.spec_from_file_location(key, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[key]
        raise
    return mod


def config_module(name: str) -> ModuleType:
    """`configs/<name>.py`, for configs that build on another one and for the Python API."""
    return module("configs", name)


def config(name: str):
    """The ConfigDict of `configs/<name>.py`."""
    return config_module(name).get_config()
