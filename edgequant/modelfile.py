"""A model file is read safely: sizes capped before reading, no code run unless the user trusts it.

Two ways a model file attacks its reader, both checked here before Keras or TensorFlow sees it:

- **Code at load.** A Lambda layer stores its Python function: a legacy `.h5` as marshalled
  bytecode, which tf_keras runs while deserialising (no safe mode applies to `.h5`). Keras 3
  refuses the same layer in a `.keras` archive (`safe_mode=True`). We refuse every Lambda layer,
  in every Keras format, by reading the model's JSON config first (the HDF5 `model_config`
  attribute, or the archive's `config.json`), and load with `safe_mode=True`. Only
  `trust_code=True` (`--trust_model_code`, config `model.trust_code`) lets such a model load.
- **Decompression bombs.** A `.keras` is a zip: a 3 MB file whose `metadata.json` inflates to
  3 GiB took 7 GB of memory to "detect". The archive's directory is inspected first: JSON
  members have a hard cap, and a large member that inflates more than `MAX_RATIO` times its
  stored size is refused (weights are float data that deflate barely shrinks; Keras stores them
  uncompressed). Python's zipfile never inflates past a member's declared size, so the declared
  sizes are a real bound. A SavedModel's `saved_model.pb` over protobuf's own 2 GiB limit, and an
  HDF5 `model_config` over the config cap, are refused the same way.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edgequant.errors import UserError

MAX_JSON_BYTES = {"metadata.json": 1 << 20, "config.json": 64 << 20}
MAX_CONFIG_BYTES = 64 << 20  # an HDF5 model_config attribute
MAX_RATIO = 50  # uncompressed / stored size, for a member above RATIO_FROM bytes
RATIO_FROM = 8 << 20
MAX_MEMBERS = 100_000
MAX_GRAPH_BYTES = (2 << 30) - 1  # protobuf cannot parse a larger saved_model.pb
TRUST_HINT = "pass --trust_model_code (config model.trust_code) only if you trust this file"
_CODE_CLASSES = ("Lambda", "__lambda__")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def check_archive(path: Path) -> zipfile.ZipFile:
    """The open archive, after refusing members whose declared size or ratio is a bomb."""
    try:
        z = zipfile.ZipFile(path)
        members = z.infolist()
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is a damaged zip file: {e}") from None
    if len(members) > MAX_MEMBERS:
        z.close()
        raise UserError(f"{path} holds {len(members)} files: not a Keras model archive")
    for m in members:
        cap = MAX_JSON_BYTES.get(m.filename)
        ratio = m.file_size / max(m.compress_size, 1)
        if cap is not None and m.file_size > cap:
            reason = f"{m.filename} would inflate to {_mib(m.file_size)} (limit {_mib(cap)})"
        elif m.file_size > RATIO_FROM and ratio > MAX_RATIO:
            reason = (
                f"{m.filename} would inflate {ratio:.0f} times, to {_mib(m.file_size)} "
                f"(a model member inflates at most {MAX_RATIO} times)"
            )
        else:
            continue
        z.close()
        raise UserError(f"{path}: refused before reading: {reason}; is it a zip bomb?")
    return z


def read_member(z: zipfile.ZipFile, name: str) -> bytes:
    """One member, read no further than its cap (check_archive has checked the declared size)."""
    cap = MAX_JSON_BYTES.get(name, MAX_CONFIG_BYTES)
    with z.open(name) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise UserError(f"{z.filename}: {name} is larger than {_mib(cap)}")
    return data


def read_metadata(path: Path) -> dict:
    """A `.keras` archive's metadata.json (capped), or a one-line error."""
    with check_archive(path) as z:
        try:
            return json.loads(read_member(z, "metadata.json"))
        except (KeyError, ValueError, zipfile.BadZipFile):
            raise UserError(f"{path} is a zip file but not a Keras model archive") from None


def read_config(path: Path, fmt: str) -> dict | None:
    """The model's JSON config, read without deserialising anything (None when absent)."""
    if fmt == "h5":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    return None
                size = f.attrs.get_id("model_config").get_storage_size()
                if size > MAX_CONFIG_BYTES:
                    raise UserError(
                        f"{path}: model_config is {_mib(size)} (limit {_mib(MAX_CONFIG_BYTES)})"
                    )
                text = f.attrs["model_config"]
        except OSError as e:
            raise UserError(f"{path}: unreadable HDF5 file: {e}") from None
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
    else:
        with check_archive(path) as z:
            if "config.json" not in z.namelist():
                return None
            text = read_member(z, "config.json")
    try:
        config = json.loads(text)
    except ValueError:
        raise UserError(f"{path}: the model config is not valid JSON") from None
    return config if isinstance(config, dict) else None


def code_layers(config) -> list[str]:
    """Names of the layers (at any depth: nested models, wrappers) whose config carries code."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") in _CODE_CLASSES:
            inner = config.get("config")
            found.append(str(inner.get("name", "?")) if isinstance(inner, dict) else "?")
        for value in config.values():
            found += code_layers(value)
    elif isinstance(config, list):
        for value in config:
            found += code_layers(value)
    return found


def check_keras(path: Path, fmt: str, trust_code: bool) -> None:
    """Refuses a Keras file whose loading would run code it carries, unless the user trusts it."""
    if trust_code:
        return
    names = code_layers(read_config(path, fmt))
    if names:
        shown = ", ".join(f"'{n}'" for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(
            f"{path}: Lambda layer {shown} holds Python code that would run when the model "
            f"loads; refused ({TRUST_HINT})"
        )


def check_saved_model(path: Path) -> None:
    graph = path / "saved_model.pb"
    if graph.is_file() and graph.stat().st_size > MAX_GRAPH_BYTES:
        raise UserError(
            f"{graph} is {_mib(graph.stat().st_size)}, over protobuf's 2 GiB limit: "
            "not a loadable SavedModel"
        )


def _h5_keras_version(path: Path) -> str:
    """The Keras that wrote an .h5 (Keras 3 writes 3.x): tf_keras cannot read Keras 3's."""
    import h5py

    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version", "")
    return version.decode() if isinstance(version, bytes) else str(version)


def load_keras(path: Path, fmt: str, trust_code: bool = False):
    """The Keras model in `path` ("keras3", "tf_keras" or "h5"), loaded with the Keras that wrote
    it, after `check_keras`; `safe_mode` stays on unless the user trusts the file."""
    check_keras(path, fmt, trust_code)
    try:
        if fmt == "keras3" or (fmt == "h5" and _h5_keras_version(path).startswith("3")):
            import keras

            return keras.models.load_model(path, compile=False, safe_mode=not trust_code)
        import tf_keras

        if fmt == "h5":  # safe_mode does not apply to .h5: check_keras did the refusing
            return tf_keras.models.load_model(path, compile=False)
        return tf_keras.models.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for a bad file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load {fmt} model {path}: {first}") from None
