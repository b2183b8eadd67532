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
    out = metrics.evaluate(
        split,
        models,
        "float",
        labels_output=study.labels_output,
        num_classes=study.num_classes,
        class_names=study.class_names,
        batch_size=bs,
    )
    if getattr(study, "task", None) is not None:  # detection/segmentation: mAP or mIoU too
        from edgequant.flow import tasks

        paths = {"float": float_path, **{v["name"]: v["path"] for v in variants}}
        for name, m in tasks.measure(study, paths).items():
            out[name].update(m)
    return out


def budget_keys(study: Study) -> tuple[str, ...]:
    """The config.budget keys that judge this study's variants (the others do not apply)."""
    task = getattr(study, "task", None)
    kind = getattr(task, "kind", None)
    if kind == "detection":
        return ("max_drop_map_pp",)
    if kind == "segmentation":
        return ("max_drop_miou_pp",)
    if study.labels_output is not None:
        return ("max_drop_pp", "min_top1")
    return ("min_sqnr_db",)


# The metric each budget key judges: (metric in the measured dict, its name).
_METRIC = {
    "max_drop_map_pp": ("map50", "mAP@0.5"),
    "max_drop_miou_pp": ("miou", "mIoU"),
    "max_drop_pp": ("top1", "top-1"),
}


def within_budget(study: Study, m: dict, float_m: dict) -> tuple[bool, str]:
    """The budget `budget_keys` names for this study (one decision, also behind the unused-key
    warning): mAP@0.5 / mIoU drop in points for a detector / segmenter with annotations,
    top-1 drop in pp (and the optional absolute top-1 floor) with labels, else the worst
    output's SQNR. Where the judging metric was not measured on these samples (the recovery
    ladder's validation split comes from --data, which may be unlabelled when --eval_data is
    labelled), the worst SQNR judges, and the reason says so."""
    b = study.config.budget
    key = budget_keys(study)[0]
    metric, what = _METRIC.get(key, (None, None))
    if metric is not None and metric in m and metric in float_m:
        if key != "max_drop_pp":
            drop, budget = 100 * (float_m[metric] - m[metric]), b[key]
            return drop <= budget, f"{what} {drop:+.2f} points vs float (budget {budget} points)"
        # rounded: 0.98 - 0.97 is 1.0000000000000009 pp in floating point, not over a 1 pp budget
        drop = round(100 * (float_m["top1"] - m["top1"]), 9)
        why = f"top-1 {drop:+.2f} pp vs float (budget {b.max_drop_pp} pp)"
        floor = b.get("min_top1", 0.0)
        if not floor:
            return drop <= b.max_drop_pp, why
        why += f", {m['top1']:.2%} vs the floor {floor:.2%}"
        return drop <= b.max_drop_pp and m["top1"] >= floor, why
    worst = min(m["sqnr_db"].values())
    why = f"worst-output SQNR {worst:.1f} dB (budget {b.min_sqnr_db} dB)"
    if metric is not None:
        why = f"{what} not measured on these samples: {why}"
    return worst >= b.min_sqnr_db, why
