"""The device inventory (`configs/devices.toml`): where each board is and how to run there.

[devices.coral-devboard]
ssh = "mendel@coral.local"        # an ~/.ssh/config alias, or user@host[:port]
python = "/usr/bin/python3"       # remote Python with numpy + tflite_runtime (or ai_edge_litert)
workdir = "~/.cache/edgequant"    # models and the runner are cached here by content hash
edgetpu = true                    # benchmark *_edgetpu.tflite through libedgetpu
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tomllib

from edgequant import workspace
from edgequant.bench.ssh import Destination

_FIELDS = {"ssh", "python", "workdir", "edgetpu"}
_TYPES = {"ssh": str, "python": str, "workdir": str, "edgetpu": bool}
_TYPE_NAMES = {str: "string", bool: "boolean (true or false)"}
DEFAULT = workspace.path("configs/devices.toml")


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    destination: Destination
    python: str = "python3"
    workdir: str = "~/.cache/edgequant"
    edgetpu: bool = False


def load(path: str | Path) -> dict[str, Device]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"device inventory not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    table = data.get("devices", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: 'devices' must be tables [devices.NAME], got {table!r:.40}")
    devices = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: device '{name}' must be a table [devices.{name}]")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ValueError(
                f"{path}: device '{name}' has unknown key(s) {sorted(unknown)}; valid: {sorted(_FIELDS)}"
            )
        if "ssh" not in entry:
            raise ValueError(f"{path}: device '{name}' needs an 'ssh' destination")
        for key, kind in _TYPES.items():
            if key in entry and not isinstance(entry[key], kind):
                raise ValueError(
                    f"{path}: device '{name}': {key} must be a {_TYPE_NAMES[kind]}, "
                    f"got {entry[key]!r:.40}"
                )
        devices[name] = Device(
            name,
            Destination.parse(entry["ssh"]),
            entry.get("python", "python3"),
            entry.get("workdir", "~/.cache/edgequant"),
            entry.get("edgetpu", False),
        )
    return devices


def locate(inventory: str | Path | None) -> Path | None:
    """The inventory file, or None when none is wanted ("" or None).

    A relative path that does not exist from the current directory is looked up from the
    project root, so `configs/devices.toml` works from anywhere; a file found in neither place
    is an error, never a silent "no inventory".
    """
    if not inventory:
        return None
    path = Path(inventory).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and workspace.path(str(path)).is_file():
        return workspace.path(str(path))
    raise FileNotFoundError(f"device inventory not found: {inventory}")


def resolve(spec: str, inventory: str | Path | None = None, python: str | None = None) -> Device:
    """A device by inventory name, or an ad-hoc `user@host:port` (with --remote_python)."""
    inventory = locate(inventory)
    if inventory:
        devices = load(inventory)
        if spec in devices:
            d = devices[spec]
            return dataclasses.replace(d, python=python or d.python)
        if "@" not in spec and ":" not in spec:
            raise ValueError(
                f"unknown device '{spec}'; devices in {inventory}: {', '.join(devices) or 'none'}"
            )
    return Device(spec, Destination.parse(spec), python or "python3")
