"""Seeded, class-stratified splits.

Every split is a pure function of (labels, fractions, seed), so two runs with the same seed see
exactly the same images in train, validation and test, and nothing from test leaks into training,
calibration or model selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Splits indices into len(fractions) + 1 disjoint, class-stratified, sorted index arrays.

    Part i holds `fractions[i]` of every class; the extra last part takes the remainder.
    Each class is shuffled with a seeded permutation and cut at the same fractions.
    """
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split fractions {list(fractions)} must be >= 0 and sum to <= 1")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        bounds = [*np.round(np.cumsum(fractions) * len(idx)).astype(int), len(idx)]
        start = 0
        for part, end in zip(parts, bounds, strict=True):
            part.append(idx[start:end])
            start = end
    return [np.sort(np.concatenate(p)) if p else np.empty(0, int) for p in parts]


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Picks n indices with classes as balanced as the data allows (round-robin over classes)."""
    if n <= 0:
        return np.empty(0, dtype=int)
    rng = np.random.default_rng(seed)
    per_class = [
        np.flatnonzero(labels == c)[rng.permutation(int(np.sum(labels == c)))]
        for c in np.unique(labels)
    ]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and any(depth < len(p) for p in per_class):
        for p in per_class:
            if depth < len(p) and len(picked) < n:
                picked.append(int(p[depth]))
        depth += 1
    return np.asarray(sorted(picked), dtype=int)
