"""Benchmark: one worker against N local workers on the same config (accuracy and wall time).

  python benchmarks/multi_worker.py [--config=configs/test_multi_worker.py] [--workers=2] \
      [--output_json=runs/bench/multi_worker.json]

Runs tools/pipeline.py once with `distribute=none`, then through tools/launch.py with N workers
(`distribute=multi_worker`), one after the other, and reports each run's wall time, float
training and QAT seconds, and float / QAT Keras test accuracy from the chief's results.json.
On one machine N workers share its cores, so wall time measures the collective overhead, not
a speed-up; the accuracies must agree (same global batches).
"""

from __future__ import annotations

from absl import flags

from edgequant import cli

_CONFIG = flags.DEFINE_string("config", "configs/test_multi_worker.py", "Config file.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Local workers for the distributed run.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench/multi_worker", "Run folders go here.")
_OUT = flags.DEFINE_string("output_json", "runs/bench/multi_worker.json", "Write numbers here.")
cli.define_verbose_flag()


def _run(argv: list[str], workdir) -> dict:
    import json
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise cli.UserError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {tail}")
    r = json.loads((workdir / "results.json").read_text())
    qat = r.get("qat") or {}
    return {
        "wall_s": round(wall, 2),
        "train_s": round(r["float"]["train_seconds"], 2),
        "qat_s": round(qat.get("seconds", 0.0), 2),
        "float_accuracy": r["float"]["accuracy"],
        "qat_accuracy": qat.get("keras_accuracy"),
    }


def main(argv):
    import shutil
    from pathlib import Path

    root = Path(_WORKDIR.value)
    single_dir, multi_dir = root / "single", root / f"workers{_WORKERS.value}"
    for d in (single_dir, multi_dir):
        shutil.rmtree(d, ignore_errors=True)
    config = f"--config={_CONFIG.value}"
    single = _run(
        ["tools/pipeline.py", config, "--config.distribute=none", f"--workdir={single_dir}"],
        single_dir,
    )
    multi = _run(
        ["tools/launch.py", f"--workers={_WORKERS.value}", "--", "tools/pipeline.py", config,
         "--config.distribute=multi_worker", f"--workdir={multi_dir}"],
        multi_dir,
    )  # fmt: skip
    report = {"config": _CONFIG.value, "workers": _WORKERS.value, "single": single, "multi": multi}
    for name, r in (("1 worker", single), (f"{_WORKERS.value} workers", multi)):
        print(
            f"{name}: wall {r['wall_s']:.1f} s (train {r['train_s']:.1f} s, QAT {r['qat_s']:.1f} s)"
            f", float accuracy {100 * r['float_accuracy']:.2f}%, QAT accuracy "
            f"{100 * (r['qat_accuracy'] or 0):.2f}%"
        )
    diff = 100 * abs(multi["float_accuracy"] - single["float_accuracy"])
    print(f"float accuracy difference: {diff:.2f} pp")
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
