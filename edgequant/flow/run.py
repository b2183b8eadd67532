"""THE front door: `run(config, out_dir)` deploys a model with its data; `execute(study,
final_dir)` runs every stage on a prepared Study (the MNIST study calls it on the model it
trained).

    model (any format) + data -> preprocessing spec -> calibration / evaluation splits
      -> STAGES (plain variants, diagnosis, QAT on request, recovery ladder)
      -> one streamed evaluation pass (accuracy with labels, fidelity to float always)
      -> Edge TPU gate, analyzer and compiler -> host latency -> devices (flow/devices.py)
      -> recommendation -> the bundle (flow/bundle.py)

`tools/deploy.py`, `configs/deploy.py` (through `tools/pipeline.py`), `edgequant.deploy(...)`
and notebook 04 all call `run`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from edgequant import distribute, rundir
from edgequant.diagnose import stage as diagnose
from edgequant.errors import UserError
from edgequant.flow import bundle, devices, stages, truth, variants
from edgequant.flow import tasks as flow_tasks
from edgequant.flow.measure import measure, within_budget
from edgequant.flow.prepare import prepare, validate
from edgequant.flow.study import Study
from edgequant.train import qat_stage

log = logging.getLogger(__name__)
# Every run's stages, a deployment's and the study's: diagnosis and QAT run when the config
# enables them (config.diagnose.enabled, config.qat.enabled / --qat).
STAGES = (stages.plain, diagnose.diagnose_stage, qat_stage.qat_stage, stages.recovery)


def run(config, out_dir: str | Path) -> dict:
    """Deploys `config.model.path` with `config.data`; writes the bundle, returns deploy.json.

    The bundle is built in a staging folder and swapped into `out_dir` only when complete
    (edgequant/rundir.py): an interrupted deployment never leaves a half bundle.
    """
    validate(config)
    if (config.get("distribute", "none") or "none") != "none":
        from edgequant.train import fit

        fit.strategy(config)  # multi-worker collectives are set up before any other TF op
    # Multi-worker (TF_CONFIG): every worker runs the stages (QAT steps are collective); only
    # the chief writes out_dir, the others a temporary folder (edgequant/distribute.py).
    with (
        distribute.output_dir(out_dir) as out,
        rundir.staged(out, inputs=inputs(config), failed=unusable) as staging,
    ):
        study = prepare(config, staging)
        if config.qat.enabled:  # asked for: data it cannot train on is refused before any work
            qat_stage.check_training_data(study)
        return execute(study, Path(out))


def inputs(config) -> tuple[str, ...]:
    """The user's files a run reads: the output folder may never hold or replace them."""
    d = config.data
    return tuple(
        p
        for p in (config.model.path, d.path, d.eval_path, d.labels, config.recovery.train_data)
        + tuple(config.task.get(k) for k in ("annotations", "anchors") if "task" in config)
        if p
    )


def unusable(staging: Path) -> str | None:
    """Why a finished bundle must not replace a previous good one (rundir's `failed`): a
    bundle with no recommended variant is a failed deployment, kept only where nothing is lost."""
    import json

    result = json.loads((staging / "deploy.json").read_text())
    asked = [e["error"] for e in result.get("errors", []) if e["name"] == "qat"]
    if asked:  # --qat was asked for: a bundle without it is not the result the user wanted
        return f"QAT failed: {asked[0]}"
    if result.get("recommended"):
        return None
    why = "; ".join(f"{u['name']}: {u['reason']}" for u in result.get("unmet", []))
    return "no variant meets the budget" + (f" ({why})" if why else "")


def execute(study: Study, final_dir: Path, stages: tuple = STAGES) -> dict:
    """Every stage in order on `study` (whose out_dir is the staging folder), then the
    measurement, Edge TPU checks, latency, devices, recommendation and the bundle; returns
    deploy.json with its paths named as they will be under `final_dir`.

    `stages` (default STAGES) lets a caller add its own, e.g. the study's QAT or search stages
    (protocol: flow/study.py); a section a stage adds to `result` is written as is."""
    result: dict = {"variants": [], "recovery": [], "errors": []}
    for stage in stages:
        try:
            result["variants"] += stage(study, result)
        except (UserError, ValueError, RuntimeError, OSError) as e:
            # A stage is expected to record its own failures; one that raises anyway loses
            # only its own variants, never the others' (as the study's pipeline always did).
            log.error("stage %s failed: %s", stage.__name__, e)
            result["errors"].append({"name": stage.__name__, "error": str(e).splitlines()[0]})
    found = result["variants"] = flow_tasks.refuse_quantized_nms(result["variants"], result)
    measured = measure(study, found, study.evaluation, variants.float_path(study))
    result["float_metrics"] = measured.pop("float")
    for v in found:
        v["metrics"] = measured[v["name"]]
        v["within_budget"], v["budget"] = within_budget(
            study, v["metrics"], result["float_metrics"]
        )
    # The Edge TPU target always needs the gate (recommend reads it); a CPU run checks its
    # uint8 variants unless the config turns the Edge TPU checks off.
    uint8 = any(v["input_dtype"] == "uint8" for v in found)
    if study.config.target == "edgetpu" or (uint8 and study.config.edgetpu.get("enabled", True)):
        edgetpu_checks(study, found)
    latency(study, found)
    devices.measure_on_devices(study, found, result)
    device, result["ranked_by"] = devices.latency_key(study, found)
    result["recommended"] = recommend(study, found, device)
    if result["recommended"] is None:
        result["unmet"] = truth.why_none(study, found, result["errors"], device)
    return bundle.write(study, result, final_dir)


def edgetpu_checks(study: Study, variants: list[dict]) -> None:
    from edgequant.edgetpu import stage as edgetpu_stage

    cfg = study.config.edgetpu
    for v in filter(edgetpu_stage.is_edgetpu_variant, variants):
        entry = edgetpu_stage.check_variant(v, cfg, study.out_dir / "edgetpu")
        v["gate"] = "pass" if entry["gate"]["passed"] else "fail"
        v["edgetpu"] = {"mapped": entry["mapped_count"], "total": entry["op_count"], **entry}


def latency(study: Study, variants: list[dict]) -> None:
    from edgequant.bench import latency as bench_latency

    if not study.config.bench.enabled:
        return
    task = getattr(study, "task", None)
    tail = task.tail_path if task is not None else None
    for v in variants:
        v.update(bench_latency.measure(v["path"], study.config.bench, tail))
        flow_tasks.end_to_end(study, v)


def recommend(study: Study, variants: list[dict], device: str | None = None) -> str | None:
    """The fastest variant within the budget for the target (Edge TPU: gate passed): fastest
    on `device` when given (the target board; a variant that did not run there is out), else
    on the host CPU; ties go to the smaller."""
    ok = [v for v in variants if v.get("within_budget")]
    if device is not None:
        ok = [v for v in ok if devices.device_p50(v, device) is not None]
    if study.config.target == "edgetpu":
        ok = [v for v in ok if v["gate"] == "pass"]
    else:
        ok = [v for v in ok if v["name"] != "fp32"] or ok
    if not ok:
        return None

    def speed(v):
        if device is not None:
            p50 = devices.device_p50(v, device)
        else:
            p50 = (v.get("latency_ms") or {}).get("p50")
        return (math.inf if p50 is None else p50, v["size_bytes"])

    return min(ok, key=speed)["name"]
