"""The bundle: deploy.json, preprocessing.json, labels.txt, tradeoff.png, manifest.json (the
sha256 of every artifact), report.md and report.html."""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgequant import atomic, rundir
from edgequant.data import stats
from edgequant.flow.bounds import STATS_SAMPLES  # evaluation samples the statistics hold
from edgequant.flow.study import Study


def _finite(x):
    """JSON has no Infinity: an exact match (infinite SQNR) is written as null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write(study: Study, found: dict, final_dir: Path) -> dict:
    """Writes deploy.json, preprocessing.json, labels.txt and the report into the staging
    folder, with every path named as it will be once the folder is swapped into `final_dir`.

    `found` is what the stages and measurements produced: variants, float_metrics,
    recommended, errors, recovery, and any stage's own section (qat, diagnosis, autoquant,
    devices...), kept as is."""
    from edgequant.report import html, manifest, plots, writer

    cal_src, ev_src = study.calibration.source, study.evaluation.source
    calib_x = study.samples
    eval_x, _ = study.evaluation.subset(
        min(len(study.evaluation), STATS_SAMPLES), study.config.seed
    ).arrays()
    data_stats = stats.compare(calib_x, eval_x, study.config.seed)
    study.warnings += [
        f"input '{k}': calibration and evaluation data differ (distance {s['distance']:.2f}; "
        "check that both come from the same distribution and preprocessing)"
        for k, s in data_stats.items()
        if s["mismatch"]
    ]
    float_metrics = found.pop("float_metrics")
    result = {
        "model": study.model.describe(),
        "target": study.config.target,
        "preprocessing": study.preprocessing.to_dict() if study.preprocessing else None,
        "calibration": {
            "source": cal_src.description,
            "n": len(next(iter(calib_x.values()))),
            "pool": len(study.calibration),
            "corrupt_skipped": len(cal_src.skipped),
            "skipped": [s.to_dict() for s in cal_src.skipped],  # every file left out, and why
        },
        "evaluation": {
            "source": ev_src.description,
            "n": float_metrics["n"],
            "labels": study.labels_output is not None,
            "held_out_from_data": ev_src is cal_src,
            "corrupt_skipped": len(ev_src.skipped) if ev_src is not cal_src else 0,
            "skipped": [s.to_dict() for s in ev_src.skipped] if ev_src is not cal_src else [],
        },
        "data_stats": data_stats,
        "float": {"path": study.model.path, "metrics": float_metrics},
        "variants": found.pop("variants"),
        "recovery": found.pop("recovery"),
        "errors": found.pop("errors"),
        "warnings": study.warnings,
        "repair": study.repair,
        "trained": study.trained,
        "recommended": found.pop("recommended"),
        "task": study.task.record() if getattr(study, "task", None) is not None else None,
        **found,
        "config": json.loads(study.config.to_json_best_effort()),
    }
    if study.preprocessing is not None:
        study.preprocessing.save(study.out_dir / "preprocessing.json")
    if study.class_names:
        (study.out_dir / "labels.txt").write_text("\n".join(study.class_names) + "\n")
    result = rundir.relocate(_finite(result), study.out_dir, final_dir)
    out = study.out_dir
    atomic.write_text(out / "deploy.json", json.dumps(result, indent=1, default=str))
    if result["evaluation"]["labels"] and any(v.get("latency_ms") for v in result["variants"]):
        plots.tradeoff(result, out / "tradeoff.png")
    # Written last of the JSON files: it holds the sha256 of every artifact and JSON beside it.
    sources_info = {"calibration": cal_src.description, "evaluation": ev_src.description}
    man = manifest.build(study.config, sources_info, out)
    atomic.write_json(out / "manifest.json", man)
    writer.write(result, out, man)
    html.write(out)
    return result
