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


def parse_floats(text: str, flag: str) -> tuple[float, ...] | None:
    """'0,1' -> (0.0, 1.0); '' -> None; one-line error naming the flag otherwise."""
    if text is None or str(text).strip() == "":
        return None
    if isinstance(text, list | tuple):
        return tuple(float(v) for v in text)
    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated numbers, got '{text}'") from None


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
) -> Preprocessing:
    """The spec for an image input of `input_shape` (H, W, C), from what the user said.

    No silent guess: when the user gives no value mapping, the only mapping taken without
    asking is 0..255 for a model that starts with its own Rescaling/Normalization layer.
    """
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(
            f"image data needs a model input of shape [H, W, 1 or 3]; this model takes "
            f"{[d if d is not None else -1 for d in input_shape]}: give arrays (.npy/.npz) instead"
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
    name = metadata.name
    return name.decode() if isinstance(name, bytes) else str(name)


def read_embedded(content: bytes) -> Preprocessing | None:
    """The spec embedded by `embed`, or None."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for m in model.metadata or []:
        if _name(m) == METADATA_NAME:
            data = bytes(np.asarray(model.buffers[m.buffer].data, np.uint8))
            return Preprocessing.from_dict(json.loads(data))
    return None
