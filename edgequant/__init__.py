"""edgequant: a user's Keras model and data -> quantized, verified, compiled, benchmarked.

The Python API mirrors `tools/deploy.py`:

    import edgequant
    result = edgequant.deploy("my_model.keras", "images/", "bundle", input_range=(0, 1))
    print(result["recommended"])
"""

from __future__ import annotations

from pathlib import Path


def deploy_config(config, out_dir: str | Path) -> dict:
    """Runs a deployment from a configs/deploy.py-style config; returns deploy.json's content."""
    from edgequant.flow import run

    return run.run(config, out_dir)


def deploy(model: str | Path, data: str | Path, out_dir: str | Path, **options) -> dict:
    """Deploys `model` calibrated on `data` into `out_dir`.

    Options are configs/deploy.py keys, flat where unambiguous: eval_data, target,
    input_range=(lo, hi), mean, std, color, resize, signature, trust_model_code=True (let
    the model file run the code it carries, as --trust_model_code), device="name" or a list
    (the first is the target; inventory, ssh_config, remote_python as in tools/deploy.py),
    qat=True with train_data=PATH (and qat_layers=REGEX, qat_epochs, qat_learning_rate),
    task="detection" with annotations=PATH (postprocess_from, anchors: flow/tasks.py), or
    any dotted key such as `budget.max_drop_pp=0.5`. Unknown keys fail with the list of valid
    ones. A step that failed (a device, a recipe) is a line in result["errors"]; the other
    results are kept.
    """
    from edgequant import workspace
    from edgequant.config_check import set_key

    config = workspace.config("deploy")
    config.model.path = str(model)
    config.data.path = str(data)
    aliases = {
        "eval_data": "data.eval_path",
        "labels": "data.labels",
        "train_data": "recovery.train_data",
        "signature": "model.signature",
        "trust_model_code": "model.trust_code",
        "device": "bench.devices",
        **{f"qat_{k}": f"qat.{k}" for k in ("layers", "epochs", "learning_rate")},
        "qat": "qat.enabled",
        **{k: f"bench.{k}" for k in ("inventory", "ssh_config", "remote_python")},
        **{k: f"task.{k}" for k in ("annotations", "postprocess_from", "anchors")},
        "task": "task.kind",
        **{k: f"preprocess.{k}" for k in ("input_range", "mean", "std", "color", "resize")},
    }
    for key, value in options.items():
        dotted = aliases.get(key, key)
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, list | tuple) and dotted.startswith("preprocess."):
            value = ",".join(str(v) for v in value)
        if dotted in ("bench.devices", "qat.layers"):
            value = (value,) if isinstance(value, str) else tuple(value)
        try:
            set_key(config, dotted, value)
        except ValueError:
            raise ValueError(
                f"unknown deploy option '{key}'; valid: {sorted(aliases)} or config keys"
            ) from None
    return deploy_config(config, out_dir)


def summary(result: dict) -> str:
    """A few lines for the terminal: every variant's key numbers and the recommendation."""
    lines = []
    for v in result["variants"]:
        m = v.get("metrics", {})
        sqnr = [s for s in (m.get("sqnr_db") or {}).values() if s is not None]
        acc = f"top-1 {100 * m['top1']:.2f}%  " if "top1" in m else ""
        acc += "".join(
            f"{label} {100 * m[k]:.2f}  "
            for k, label in (("map50", "mAP@0.5"), ("map", "mAP"), ("miou", "mIoU"))
            if m.get(k) is not None
        )
        agree = f"agreement {100 * m['agreement']:.2f}%  " if "agreement" in m else ""
        worst = f"worst SQNR {min(sqnr):.1f} dB  " if sqnr else ""
        tpu = (
            f"edgetpu {v['edgetpu']['mapped']}/{v['edgetpu']['total']}  "
            if v.get("edgetpu")
            else ""
        )
        on = [
            f"{name} p50 {d['p50']:.3f} ms  " if d.get("p50") is not None else f"{name} failed  "
            for name, d in (v.get("devices") or {}).items()
        ]
        host = f"host p50 {v['latency_ms']['p50']:.3f} ms  " if v.get("latency_ms") else ""
        lines.append(
            f"{v['name']:>24}  {acc}{agree}{worst}{tpu}{host}{''.join(on)}"
            f"{v['size_bytes'] / 1024:.0f} KB"
        )
    fm = result["float"]["metrics"]
    if "top1" in fm:
        lines.insert(0, f"{'float':>24}  top-1 {100 * fm['top1']:.2f}%")
    task = [(label, fm[k]) for k, label in (("map50", "mAP@0.5"), ("miou", "mIoU")) if k in fm]
    if task:
        lines.insert(0, f"{'float':>24}  {task[0][0]} {100 * task[0][1]:.2f}")
    rec = result["recommended"]
    lines.append(f"recommended: {rec}" if rec else "no variant meets the budget:")
    lines += [f"  {u['name']}: {u['reason']}" for u in ([] if rec else result.get("unmet", []))]
    if result.get("ranked_by"):
        lines.append(result["ranked_by"])
    lines += [f"FAILED: {e['name']}: {e['error']}" for e in result.get("errors", [])]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)
