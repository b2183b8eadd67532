"""The report's task section (detection / segmentation, edgequant/flow/tasks.py): float vs every
variant in mAP or mIoU, the CPU postprocess split and why, body vs end-to-end latency."""

from __future__ import annotations


def _f(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def section(result: dict) -> list[str]:
    task = result.get("task")
    if not task:
        return []
    ann = task["annotations"]
    detection = task["kind"] == "detection"
    keys = (
        (("map50", "mAP@0.5"), ("map", "mAP@0.5:0.95"))
        if detection
        else (
            ("miou", "mIoU"),
            ("pixel_accuracy", "pixel acc."),
        )
    )
    head = "| model | " + " | ".join(f"{label} %" for _, label in keys)
    head += " | vs float points | body p50 ms | end-to-end p50 ms | CPU postprocess ms/image |"
    lines = [
        f"## {task['kind'].capitalize()}",
        "",
        f"Ground truth: {ann['images']} images, {ann['format']} annotations `{ann['source']}`, "
        f"classes {', '.join(ann['classes'])}"
        + (
            f"; {len(ann['unannotated'])} images without annotation not scored"
            if ann["unannotated"]
            else ""
        )
        + ".",
        "",
        head,
        "|---|" + "---:|" * (len(keys) + 4),
    ]
    fm = result["float"]["metrics"]
    first = keys[0][0]
    rows = [("float (body fp32)", fm, {}, None)] + [
        (
            v["name"],
            v.get("metrics") or {},
            v.get("latency_ms") or {},
            v.get("end_to_end_latency_ms"),
        )
        for v in result["variants"]
    ]
    for name, m, lat, e2e in rows:
        vals = " | ".join(_f(None if m.get(k) is None else 100 * m[k], ".2f") for k, _ in keys)
        delta = (
            None if m.get(first) is None or fm.get(first) is None else 100 * (m[first] - fm[first])
        )
        lines.append(
            f"| {name} | {vals} | {_f(delta, '+.2f')} | {_f(lat.get('p50'), '.3f', '')} "
            f"| {_f((e2e or {}).get('p50'), '.3f', '')} | {_f(m.get('postprocess_ms'), '.3f')} |"
        )
    on_devices = [
        (d, v["name"], x)
        for v in result["variants"]
        for d, x in (v.get("devices") or {}).items()
        if x.get("p50") is not None
    ]
    if on_devices:
        lines += ["", "| device | variant | body p50 ms | end-to-end p50 ms (body + tail) |"]
        lines.append("|---|---|---:|---:|")
        lines += [
            f"| {d} | {name} | {x['p50']:.3f} | {_f(x.get('end_to_end_p50'), '.3f', 'no tail')} |"
            for d, name, x in on_devices
        ]
    post = task["postprocess"]
    if post.get("chosen_by") == "none":
        where = (
            "the model ends at its raw outputs; the postprocess (SSD decode + NMS with the "
            "anchors, or upsampling + argmax) runs in numpy on the CPU"
        )
    else:
        reasons = "; ".join(f"`{k}`: {v}" for k, v in (post.get("reasons") or {}).items())
        where = (
            f"split {'at --postprocess_from' if post['chosen_by'] == 'user' else 'automatically'}"
            f" before {', '.join(f'`{n}`' for n in post['start_layers'])} (body outputs "
            f"{', '.join(f'`{n}`' for n in post['cut_layers'])}); the float tail `{task['tail']}` "
            f"runs on the CPU after every variant's body. {reasons + '. ' if reasons else ''}"
            f"{post['why']}"
        )
    lines += [
        "",
        f"Postprocess: {where}. End-to-end = body + tail chained in the device runner (when "
        "there is a tail) + the numpy postprocess per image; body p50 is the body alone.",
        "",
    ]
    return lines
