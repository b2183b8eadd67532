"""The model's input contract for images, as data: decode -> color -> resize -> value mapping.

A model trained on pixels in [-1, 1] and calibrated on pixels in [0, 1] converts without a word
and loses its accuracy: the value mapping is the single most common silent mistake users make
(research/byom.md). So it is never guessed. It is a typed spec, saved as `preprocessing.json`
beside every artifact and embedded in the `.tflite` metadata, applied by one function to
calibration, evaluation and benchmark inputs alike. Arrays (`.npy`/`.npz`, TFRecord tensors, a
callable's samples) are model-ready and never pass through it.

Value mapping, from a pixel p in 0..255 to the model input x, exactly one of:
  input_range (lo, hi):  x = lo + p / 255 * (hi - lo)      e.g. (0, 1), (-1, 1), (0, 255)
  mean, std (per channel, in pixel units): x = (p - mean) / std
For a uint8 Edge TPU model with input_range (0, 1), the converter picks input scale 1/255 and
zero point 0, so the stored pixel value is the quantized input itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import numpy as np

from edgequant.jsondata import JsonData

COLORS = ("rgb", "grayscale")
FITS = ("stretch", "crop", "pad")  # resize as is / center-crop to the aspect / letterbox
METHODS = ("bilinear", "nearest", "area", "bicubic")
METADATA_NAME = "edgequant.preprocessing"


@dataclasses.dataclass(frozen=True)
class Preprocessing(JsonData):
    size: tuple[int, int]  # model input (height, width)
    color: str = "rgb"
    fit: str = "stretch"
    method: str = "bilinear"
    input_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: str = "user"  # who chose the value mapping: user | model (its own Rescaling layer)

    NOUN = "preprocessing"

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        for field, valid in (("color", COLORS), ("fit", FITS), ("method", METHODS)):
            if getattr(self, field) not in valid:
                raise ValueError(
                    f"unknown {field} '{getattr(self, field)}'; valid: {', '.join(valid)}"
                )
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"resize must be two positive integers H,W, got {self.size}")
        has_range = self.input_range is not None
        has_norm = self.mean is not None or self.std is not None
        if has_range == has_norm:
            raise ValueError(
                "give exactly one value mapping: --input_range=LO,HI or --mean=... --std=..."
            )
        if has_range:
            if len(self.input_range) != 2:
                raise ValueError(f"input_range must be two numbers LO,HI, got {self.input_range}")
            lo, hi = (float(v) for v in self.input_range)
            if not hi > lo:
                raise ValueError(f"input_range must have LO < HI, got {lo},{hi}")
            object.__setattr__(self, "input_range", (lo, hi))
        else:
            if self.mean is None or self.std is None:
                raise ValueError("--mean and --std go together")
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
            if len(mean) not in (1, self.channels) or len(std) not in (1, self.channels):
                raise ValueError(
                    f"--mean/--std need 1 or {self.channels} values for {self.color} images"
                )
            if any(s <= 0 for s in std):
                raise ValueError("--std values must be positive")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    def scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """x = p * scale + offset, per channel: both mappings are one affine map."""
        c = self.channels
        if self.input_range is not None:
            lo, hi = self.input_range
            return np.full(c, (hi - lo) / 255.0, np.float32), np.full(c, lo, np.float32)
        mean = np.broadcast_to(np.asarray(self.mean, np.float32), (c,))
        std = np.broadcast_to(np.asarray(self.std, np.float32), (c,))
        return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# The written form of each list-valued flag: (how many numbers, the form to name in an error).
FORMS = {
    "input_range": (2, "LO,HI (e.g. 0,1 or -1,1)"),
    "resize": (2, "H,W (e.g. 224,224)"),
    "mean": (None, "one number or one per channel (e.g. 127.5 or 123.675,116.28,103.53)"),
    "std": (None, "one number or one per channel (e.g. 127.5 or 58.4,57.1,57.4)"),
}


def parse_floats(text: str, flag: str) -> tuple[float, ...] | None:
    """'0,1' -> (0.0, 1.0); '' -> None; one-line error naming the flag and its form otherwise.

    The count is checked here, where the flag's name is known: a spec built from '1' would
    otherwise fail deep inside with Python's "not enough values to unpack".
    """
    if text is None or str(text).strip() == "":
        return None
    count, form = FORMS.get(flag, (None, "comma-separated numbers"))
    shown = ",".join(str(v) for v in text) if isinstance(text, list | tuple) else str(text)
    bad = ValueError(f"--{flag}={shown}: expected {form}")
    try:
        values = tuple(
            float(v) for v in (text if isinstance(text, list | tuple) else shown.split(","))
        )
    except (TypeError, ValueError):
        raise bad from None
    if (count is not None and len(values) != count) or not all(math.isfinite(v) for v in values):
        raise bad
    if flag == "resize" and not all(v == int(v) and v > 0 for v in values):
        raise bad
    return values


def resolve(
    input_shape: Sequence[int | None],
    model_normalizes: bool,
    *,
    input_range: Sequence[float] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    color: str = "",
    resize: Sequence[int] | None = None,
    fit: str = "stretch",
    method: str = "bilinear",
    embedded: Preprocessing | None = None,
) -> Preprocessing:
    """The spec for an image input of `input_shape` (H, W, C), from what the user said.

    No silent guess: when the user gives no value mapping, the only mapping taken without
    asking is 0..255 for a model that starts with its own Rescaling/Normalization layer.
    A model that carries its spec (`embedded`, from `embedded_in`) is fed by that spec: what
    the user said is only checked against it, and a contradiction names both values.
    """
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(
            f"image data needs a model input of shape [H, W, 1 or 3]; this model takes "
            f"{[d if d is not None else -1 for d in input_shape]}: give arrays (.npy/.npz) instead"
        )
    if embedded is not None:
        return _check_against(
            embedded, input_shape, input_range, mean, std, color, resize, fit, method
        )
    channels = int(input_shape[-1])
    color = color or ("grayscale" if channels == 1 else "rgb")
    if (3 if color == "rgb" else 1) != channels:
        raise ValueError(
            f"--color={color} gives {3 if color == 'rgb' else 1} channel(s), "
            f"the model input has {channels}"
        )
    if resize:
        size = tuple(int(v) for v in resize)
    elif input_shape[0] and input_shape[1]:
        size = (int(input_shape[0]), int(input_shape[1]))
    else:
        raise ValueError("the model input has no fixed height/width: pass --resize=H,W")
    source = "user"
    if input_range is None and mean is None and std is None:
        if not model_normalizes:
            raise ValueError(
                "the model does not start with a Rescaling/Normalization layer, so its pixel "
                "range is unknown: pass --input_range=LO,HI (e.g. 0,1 or -1,1) or --mean/--std"
            )
        input_range, source = (0.0, 255.0), "model"
    return Preprocessing(
        size,
        color,
        fit,
        method,
        tuple(input_range) if input_range is not None else None,
        tuple(mean) if mean is not None else None,
        tuple(std) if std is not None else None,
        source,
    )


def _numbers(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _mapping(spec: Preprocessing) -> str:
    if spec.input_range is not None:
        return f"input_range {_numbers(spec.input_range)}"
    return f"mean {_numbers(spec.mean)} std {_numbers(spec.std)}"


def _check_against(embedded, input_shape, input_range, mean, std, color, resize, fit, method):
    """`embedded` itself, once nothing the user said contradicts it or the model's input.

    Two value mappings that are the same affine map agree (--input_range=-1,1 is
    --mean=127.5 --std=127.5). fit and method at their defaults count as not given: the
    config cannot tell a default from a choice, and the embedded spec is the model's contract.
    """
    if int(input_shape[-1]) != embedded.channels:
        raise ValueError(
            f"the model's embedded preprocessing gives {embedded.channels} channel(s) "
            f"({embedded.color}), its input has {input_shape[-1]}: the model file is inconsistent"
        )
    fixed = tuple(int(d) for d in input_shape[:2] if d)
    if len(fixed) == 2 and fixed != embedded.size:
        raise ValueError(
            f"the model's embedded preprocessing resizes to {_numbers(embedded.size)}, its input "
            f"is {_numbers(fixed)}: the model file is inconsistent"
        )
    said = []
    if input_range is not None or mean is not None or std is not None:
        user = Preprocessing(
            embedded.size,
            embedded.color,
            input_range=tuple(input_range) if input_range is not None else None,
            mean=tuple(mean) if mean is not None else None,
            std=tuple(std) if std is not None else None,
        )
        if not all(
            np.allclose(a, b, rtol=1e-6, atol=1e-9)
            for a, b in zip(user.scale_offset(), embedded.scale_offset(), strict=True)
        ):
            flags = (
                f"--input_range={_numbers(user.input_range)}"
                if user.input_range is not None
                else f"--mean={_numbers(user.mean)} --std={_numbers(user.std)}"
            )
            said.append((flags, _mapping(embedded)))
    if color and color != embedded.color:
        said.append((f"--color={color}", f"color {embedded.color}"))
    if resize and tuple(int(v) for v in resize) != embedded.size:
        said.append((f"--resize={_numbers(resize)}", f"size {_numbers(embedded.size)}"))
    if fit != "stretch" and fit != embedded.fit:
        said.append((f"--fit={fit}", f"fit {embedded.fit}"))
    if method != "bilinear" and method != embedded.method:
        said.append((f"--method={method}", f"method {embedded.method}"))
    if said:
        raise ValueError(
            "; ".join(f"{flag} contradicts the model's embedded {theirs}" for flag, theirs in said)
            + " (drop the flag: the model carries its preprocessing)"
        )
    return embedded


def apply_tf(image, spec: Preprocessing):
    """uint8 image tensor [H, W, C] or a batch [N, H, W, C] (any size, C = 1 or 3) -> float32
    model input [h, w, c] (or [N, h, w, c])."""
    import tensorflow as tf

    x = tf.cast(image, tf.float32)  # color conversion in float: the device twin does the same
    if spec.color == "grayscale" and x.shape[-1] == 3:
        x = tf.image.rgb_to_grayscale(x)
    elif spec.color == "rgb" and x.shape[-1] == 1:
        x = tf.image.grayscale_to_rgb(x)
    h, w = spec.size
    if spec.fit == "crop":
        x = _center_crop_to_aspect(x, h / w)
    if spec.fit == "pad":
        x = tf.image.resize_with_pad(x, h, w, method=spec.method)
    else:
        x = tf.image.resize(x, (h, w), method=spec.method)
    if spec.method != "nearest":  # interpolated values stay valid pixels
        x = tf.clip_by_value(x, 0.0, 255.0)
    scale, offset = spec.scale_offset()
    return x * scale + offset


def _center_crop_to_aspect(x, aspect: float):
    import tensorflow as tf

    shape = tf.shape(x)
    hh, ww = tf.cast(shape[-3], tf.float32), tf.cast(shape[-2], tf.float32)
    crop_h = tf.cast(tf.minimum(hh, ww * aspect), tf.int32)
    crop_w = tf.cast(tf.minimum(ww, hh / aspect), tf.int32)
    top = (shape[-3] - crop_h) // 2
    left = (shape[-2] - crop_w) // 2
    return x[..., top : top + crop_h, left : left + crop_w, :]


def apply_batch(images: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """uint8 [N, H, W] or [N, H, W, C] in memory -> float32 [N, h, w, c] (same ops as apply_tf)."""
    import tensorflow as tf

    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if len(x) == 0:
        return np.zeros((0, *spec.size, spec.channels), np.float32)
    chunks = [apply_tf(tf.constant(x[i : i + 4096]), spec).numpy() for i in range(0, len(x), 4096)]
    return np.concatenate(chunks)


def embed(content: bytes, spec: Preprocessing) -> bytes:
    """The .tflite with the spec as a named metadata buffer, so the model carries its contract."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    # The AI Edge Quantizer stores large constants after the flatbuffer (a buffer's offset and
    # size into the file); re-serializing drops that tail, so those bytes move inline first.
    for b in model.buffers:
        if getattr(b, "offset", 0) > 1:
            b.data = np.frombuffer(content[b.offset : b.offset + b.size], np.uint8)
            b.offset, b.size = 0, 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(spec.to_json().encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(metadata) -> str:
    name = metadata.Name() if hasattr(metadata, "Name") else metadata.name
    return name.decode() if isinstance(name, bytes) else str(name)


def read_embedded(content: bytes, where: str = "the model") -> Preprocessing | None:
    """The spec embedded by `embed`, or None.

    Reads the flatbuffer in place (only the metadata entries and the one buffer they name are
    touched), so a large model costs no copy. Bytes that are not a .tflite, or a spec that does
    not parse, are a one-line error naming `where`.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if _name(entry) != METADATA_NAME:
                continue
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength():
                data = buffer.DataAsNumpy().tobytes()
            else:  # a model over 2 GB keeps its buffers after the flatbuffer
                data = bytes(content[buffer.Offset() : buffer.Offset() + buffer.Size()])
            break
        else:
            return None
    except Exception:  # noqa: BLE001 - any failure to walk untrusted bytes means "not a model"
        raise ValueError(f"{where} is not a valid .tflite: its metadata cannot be read") from None
    try:
        return Preprocessing.from_dict(json.loads(data))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: its embedded preprocessing is invalid: {e}") from None


def embedded_in(model) -> Preprocessing | None:
    """The spec a loaded model carries: a .tflite's embedded one, or None (any other format,
    or a .tflite written without one)."""
    if getattr(model, "format", None) != "tflite":
        return None
    return read_model(model.path)


def read_model(path) -> Preprocessing | None:
    """The spec embedded in the .tflite at `path`, or None (also when it is not a .tflite)."""
    from pathlib import Path

    path = Path(path)
    with open(path, "rb") as f:
        if f.read(8)[4:8] != b"TFL3":
            return None
    return read_embedded(path.read_bytes(), str(path))
