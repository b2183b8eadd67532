"""Per-layer quantization error with TFLite's QuantizationDebugger, and selective quantization.

The debugger runs the int8 model with a float shadow of every quantized tensor and reports each
layer's error. RMSE divided by the tensor's quantization scale is the comparable number: an RMSE
of about 0.29 scale steps (1/sqrt(12)) is the rounding floor, and layers far above it are the
ones worth keeping in float. The debugger only handles int8 activations, so it works on the
float-I/O int8 form; Edge TPU models cannot use a denylist (they must stay full-integer).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np

from edgequant import atomic
from edgequant.quantize import convert, recipes

ROUNDING_FLOOR = 1 / math.sqrt(12)


@dataclasses.dataclass(frozen=True)
class LayerError:
    rank: int
    tensor_name: str
    op_name: str
    rmse_over_scale: float
    mean_squared_error: float
    max_abs_error: float
    scale: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _debugger(model, representative: np.ndarray, debug_x: np.ndarray, weights: str, denylist=()):
    import tensorflow as tf

    recipe = recipes.get("int8_fallback", weights, len(representative))
    conv = convert.make_converter(model, recipe, representative)
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(denylist) or None, fully_quantize=False
    )

    samples = convert.as_samples(convert.as_user_model(model), debug_x)
    if len(samples) != 1:  # the debugger feeds inputs by position, not by name
        raise ValueError("per-layer diagnosis handles one-input models only")
    (x,) = samples.values()

    def debug_gen():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    return tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=debug_gen, debug_options=options
    )


def layer_errors(
    model, representative: np.ndarray, debug_x: np.ndarray, weights: str = "per_channel"
) -> list[LayerError]:
    """Layers ranked by RMSE/scale, worst first."""
    debugger = _debugger(model, representative, debug_x, weights)
    debugger.run()
    with tempfile.NamedTemporaryFile("w+", suffix=".csv") as f:
        debugger.layer_statistics_dump(f)
        f.flush()
        f.seek(0)
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        scale = float(r.get("scale") or 0) or float("nan")
        mse = float(r.get("mean_squared_error") or 0)
        out.append((math.sqrt(mse) / scale if scale == scale else float("nan"), r, mse, scale))
    out.sort(key=lambda t: -t[0] if t[0] == t[0] else 0)
    return [
        LayerError(
            i + 1,
            r["tensor_name"],
            r.get("op_name", ""),
            e,
            mse,
            float(r.get("max_abs_error") or 0),
            s,
        )
        for i, (e, r, mse, s) in enumerate(out)
    ]


def write_csv(errors: list[LayerError], path: str | Path) -> Path:
    path = Path(path)
    with atomic.target(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(LayerError.__dataclass_fields__))
        w.writeheader()
        for e in errors:
            w.writerow(e.to_dict())
    return path


def plot(errors: list[LayerError], path: str | Path, top: int = 15) -> Path:
    from edgequant.report import plots

    plt = plots.pyplot()

    shown = errors[:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(shown) + 1.5))
    ax.barh(
        [f"{e.op_name} {e.tensor_name[-40:]}" for e in shown], [e.rmse_over_scale for e in shown]
    )
    ax.axvline(ROUNDING_FLOOR, color="gray", linestyle="--", label="rounding floor (1/sqrt(12))")
    ax.set_xlabel("RMSE / quantization scale [scale steps]")
    ax.set_title(f"Per-layer quantization error (int8), worst {len(shown)} layers")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return plots.save(fig, path)


def summary_sentence(errors: list[LayerError]) -> str:
    if not errors:
        return "No layer statistics were produced."
    worst = errors[:3]
    names = "; ".join(
        f"{e.tensor_name} ({e.op_name}, {e.rmse_over_scale:.2f} steps)" for e in worst
    )
    ok = sum(e.rmse_over_scale <= 2 * ROUNDING_FLOOR for e in errors)
    return (
        f"The worst layers are {names}; {ok} of {len(errors)} layers stay within twice the rounding "
        "floor. Keeping the worst ones in float (mixed precision, CPU only) or QAT targets them."
    )


def denylisted_model(
    model,
    representative: np.ndarray,
    debug_x: np.ndarray,
    tensor_names,
    weights: str = "per_channel",
) -> bytes:
    """The int8 model with the given tensors' ops kept in float (selective quantization)."""
    debug = {k: v[:8] for k, v in debug_x.items()} if isinstance(debug_x, dict) else debug_x[:8]
    debugger = _debugger(model, representative, debug, weights, denylist=tensor_names)
    return debugger.get_nondebug_quantized_model()
