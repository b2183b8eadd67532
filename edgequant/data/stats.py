"""Calibration and evaluation data side by side, per input, so a mismatch is visible.

The one calibration check of the package: the training pipeline's diagnosis stage and a
deployment's bundle both call it (`check`, or `compare` + `warnings` when the per-input numbers
are reported too). It lives in the data layer because it is a statement about data, keyed by
input name like every sample, so multi-input models need no special case.

Two usual causes of int8 accuracy collapse: too few calibration samples (ranges miss the tails)
and calibration data that is not distributed like real inputs (wrong preprocessing, one class).

Calibration fixes every activation range: data from another distribution than the one the
model will see (other preprocessing, other sensor, handwritten digits for a face model) gives a
model that converts cleanly and fails in the field. The distance reported is the
1-Wasserstein distance between the two value distributions divided by the calibration
standard deviation: 0 for the same distribution, about 1 for a shift of one standard
deviation, scale-free so it reads the same for pixels in [0, 1] or [0, 255].
"""

from __future__ import annotations

import numpy as np

# Values sampled per input for the distance; enough for a stable estimate, cheap to sort.
_SAMPLE = 200_000
# Above this distance the report flags the pair.
MISMATCH = 0.25


def describe(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    return {
        "n": int(len(x)),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def _sample(x: np.ndarray, seed: int) -> np.ndarray:
    flat = np.asarray(x, np.float64).ravel()
    if flat.size > _SAMPLE:
        flat = np.random.default_rng(seed).choice(flat, _SAMPLE, replace=False)
    return np.sort(flat)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two 1-D samples: the area between their empirical CDFs."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def compare(
    calibration: dict[str, np.ndarray], evaluation: dict[str, np.ndarray], seed: int = 0
) -> dict[str, dict]:
    """Per input: both summaries and their scale-free distance (see module docstring)."""
    out = {}
    for name, cal in calibration.items():
        ev = evaluation[name]
        c, e = describe(cal), describe(ev)
        w = wasserstein(_sample(cal, seed), _sample(ev, seed + 1))
        distance = w / c["std"] if c["std"] > 0 else (0.0 if w == 0 else float("inf"))
        out[name] = {
            "calibration": c,
            "evaluation": e,
            "distance": distance,
            "mismatch": distance > MISMATCH,
        }
    return out


def warnings(comparison: dict[str, dict], n_calibration: int, min_size: int = 0) -> list[str]:
    """One sentence per problem in `compare`'s result: too few samples, a mismatched input."""
    out = []
    if n_calibration < min_size:
        out.append(
            f"calibration set has {n_calibration} samples, fewer than the configured "
            f"minimum {min_size}: activation ranges may miss rare values"
        )
    out += [
        f"input '{k}': calibration and evaluation data differ (distance {s['distance']:.2f}; "
        "check that both come from the same distribution and preprocessing)"
        for k, s in comparison.items()
        if s["mismatch"]
    ]
    return out


def check(
    calibration: dict[str, np.ndarray],
    evaluation: dict[str, np.ndarray],
    min_size: int = 0,
    seed: int = 0,
) -> list[str]:
    """The warnings for a calibration set against evaluation data, both keyed by input name."""
    n = len(next(iter(calibration.values())))
    return warnings(compare(calibration, evaluation, seed), n, min_size)
