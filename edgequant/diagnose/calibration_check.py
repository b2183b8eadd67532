"""Warns about calibration sets that will give bad activation ranges.

Two usual causes of int8 accuracy collapse: too few calibration samples (ranges miss the tails)
and calibration data that is not distributed like real inputs (wrong preprocessing, one class).
"""

from __future__ import annotations

import numpy as np


def check(representative: np.ndarray, eval_x: np.ndarray, min_size: int) -> list[str]:
    warnings = []
    if len(representative) < min_size:
        warnings.append(
            f"calibration set has {len(representative)} samples, fewer than the configured "
            f"minimum {min_size}: activation ranges may miss rare values"
        )
    c_lo, c_hi = float(representative.min()), float(representative.max())
    e_lo, e_hi = float(np.percentile(eval_x, 0.1)), float(np.percentile(eval_x, 99.9))
    span = max(e_hi - e_lo, 1e-12)
    width = (c_hi - c_lo) / span
    if not 0.5 <= width <= 2.0 or abs(c_lo - e_lo) > 0.25 * span or abs(c_hi - e_hi) > 0.25 * span:
        warnings.append(
            f"calibration values span [{c_lo:.3g}, {c_hi:.3g}] but evaluation data spans "
            f"[{e_lo:.3g}, {e_hi:.3g}]: check that both use the same preprocessing"
        )
    c_mean, e_mean, e_std = (
        float(representative.mean()),
        float(eval_x.mean()),
        float(eval_x.std()) or 1.0,
    )
    if abs(c_mean - e_mean) > 0.5 * e_std:
        warnings.append(
            f"calibration mean {c_mean:.3g} differs from evaluation mean {e_mean:.3g} by more "
            "than half a standard deviation"
        )
    return warnings
