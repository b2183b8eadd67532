"""Measurement: the float reference and every variant in one streamed pass, and the budget."""

from __future__ import annotations

from pathlib import Path

from edgequant.data import sources
from edgequant.evaluate import metrics
from edgequant.evaluate.runner import SignatureModel
from edgequant.flow.study import Study


def measure(study: Study, variants: list[dict], split: sources.Split, float_path: Path) -> dict:
    """Metrics of the float reference and every variant, in one pass over `split`."""
    bs = study.config.evaluate.batch_size
    models = {"float": SignatureModel(float_path, bs, signature=None)}
    for v in variants:
        models[v["name"]] = SignatureModel(v["path"], bs, signature=None)
    return metrics.evaluate(
        split,
        models,
        "float",
        labels_output=study.labels_output,
        num_classes=study.num_classes,
        class_names=study.class_names,
        batch_size=bs,
    )


def within_budget(study: Study, m: dict, float_m: dict) -> tuple[bool, str]:
    """The budget: top-1 drop in pp with labels, else the worst output's SQNR."""
    b = study.config.budget
    if "top1" in m and "top1" in float_m:
        # rounded: 0.98 - 0.97 is 1.0000000000000009 pp in floating point, not over a 1 pp budget
        drop = round(100 * (float_m["top1"] - m["top1"]), 9)
        return drop <= b.max_drop_pp, f"top-1 {drop:+.2f} pp vs float (budget {b.max_drop_pp} pp)"
    worst = min(m["sqnr_db"].values())
    return worst >= b.min_sqnr_db, f"worst-output SQNR {worst:.1f} dB (budget {b.min_sqnr_db} dB)"
