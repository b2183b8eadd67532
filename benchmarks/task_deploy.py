"""The user's path for a detector or segmenter, shared by benchmarks/detection.py and
benchmarks/segmentation.py: `tools/deploy.py --target=edgetpu --annotations=...` run as a user
would (a subprocess, the exact command kept in the JSON), optionally with a loopback sshd device
(tests/sshd.py, the device venv's tflite-runtime) so the body-only and end-to-end (body + float
postprocess tail) latencies come from the device runner on the host and on a device.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def deploy(model, data, eval_images, annotations, out_dir, loopback: bool, *extra: str) -> dict:
    """Runs tools/deploy.py; returns the numbers the issue asks for, and the command."""
    args = [
        sys.executable,
        str(REPO / "tools" / "deploy.py"),
        f"--model={model}",
        f"--data={data}",
        f"--eval_data={eval_images}",
        f"--annotations={annotations}",
        "--task=auto",
        "--target=edgetpu",
        "--input_range=0,1",
        f"--out_dir={out_dir}",
        "--inventory=",
        *extra,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if loopback:
            sys.path.insert(0, str(REPO))
            from tests import sshd

            server = sshd.make_server(Path(tmp) / "sshd")
            server.start()
            python = REPO / ".venv-device" / "bin" / "python"
            args += ["--device=loopdev", f"--ssh_config={server.ssh_config}"]
            args += [f"--remote_python={python}"]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
        finally:
            if server is not None:
                server.stop()
    shown = " ".join(a for a in args[1:] if "ssh_config" not in a and "remote_python" not in a)
    if proc.returncode != 0 and not (Path(out_dir) / "deploy.json").is_file():
        return {"command": shown, "error": proc.stderr.strip().splitlines()[-1:]}
    return summarize(json.loads((Path(out_dir) / "deploy.json").read_text()), shown, proc)


def summarize(result: dict, command: str, proc) -> dict:
    task = result["task"]
    keys = ("map50", "map") if task["kind"] == "detection" else ("miou", "pixel_accuracy")
    fm = result["float"]["metrics"]
    out = {
        "command": command,
        "exit_code": proc.returncode,
        "errors": result["errors"],
        "task": task["kind"],
        "postprocess": task["postprocess"],
        "tail": task["tail"],
        "float": {k: fm[k] for k in keys},
        "recommended": result["recommended"],
        "variants": {},
    }
    for v in result["variants"]:
        m = v["metrics"]
        e = v.get("edgetpu") or {}
        out["variants"][v["name"]] = {
            **{k: m[k] for k in keys},
            f"delta_{keys[0]}_points": 100 * (m[keys[0]] - fm[keys[0]]),
            "within_budget": v["within_budget"],
            "budget": v["budget"],
            "gate": v["gate"],
            "edgetpu_mapped": f"{e.get('mapped')}/{e.get('total')}" if e else None,
            "body_p50_ms": (v.get("latency_ms") or {}).get("p50"),
            "end_to_end_p50_ms": (v.get("end_to_end_latency_ms") or {}).get("p50"),
            "body_plus_tail_p50_ms": (v.get("end_to_end_latency_ms") or {}).get(
                "body_plus_tail_p50"
            ),
            "cpu_numpy_postprocess_ms": m.get("postprocess_ms"),
            "devices": {
                d: {"body_p50_ms": x.get("p50"), "end_to_end_p50_ms": x.get("end_to_end_p50")}
                for d, x in (v.get("devices") or {}).items()
            },
        }
    return out
