"""Executes the notebooks top to bottom with papermill, small and offline (what CI runs).

  python dev/run_notebooks.py [--only=01,03] [--out_dir=runs/notebooks]
Executed copies (with outputs) go to --out_dir; the committed notebooks stay output-free.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Small parameters per notebook so the whole set runs in about two minutes on 2 cores: one
# epoch, and configs/test.py's tiny CNN (the full CNN's int16x8 variants alone took 10 s to
# evaluate) or a quarter-width MobileNetV2. Every cell still runs; only the numbers are smaller.
# The host benchmark at its smallest: every variant is still timed, 10 runs after no warm-up.
TINY_BENCH = {"bench.num_runs": 10, "bench.min_secs": 0.05, "bench.warmup_min_secs": 0.0}
TINY_CNN = {
    "model.options.filters": [8, 16],
    "model.options.dense_units": 32,
    "train.augment.enabled": False,
    "data.max_eval": 300,
    **TINY_BENCH,
}
SMALL = {
    "01": {
        "epochs": 1,
        "calibration_size": 50,
        "bench_min_secs": 0.05,
        "workdir": "runs/notebooks/nb01",
        "overrides": TINY_CNN,
    },
    "02": {"epochs": 1, "qat_epochs": 1, "workdir": "runs/notebooks/nb02", "overrides": TINY_CNN},
    "03": {
        "epochs": 1,
        "bench_min_secs": 0.05,
        "workdir": "runs/notebooks/nb03",
        "overrides": {
            "model.options.alpha": 0.25,
            "model.options.last_channels": 64,
            "quantize.calibration_size": 50,
            "data.max_eval": 300,
            **TINY_BENCH,
        },
    },
    "04": {
        "epochs": 1,
        "bench_min_secs": 0.05,
        "workdir": "runs/notebooks/nb04",
        "overrides": TINY_BENCH,
    },
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,03")
    parser.add_argument("--out_dir", default="runs/notebooks")
    args = parser.parse_args(argv)
    import papermill

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out_dir = ROOT / args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in args.only.split(",") if p]
    failed = 0
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        prefix = nb.name[:2]
        if wanted and prefix not in wanted:
            continue
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb),
                str(out_dir / nb.name),
                parameters=SMALL.get(prefix, {}),
                cwd=str(ROOT / "notebooks"),
                kernel_name="python3",
                progress_bar=False,
            )
            print(f"ok      {nb.name} ({time.perf_counter() - start:.0f} s)")
        except Exception as e:  # noqa: BLE001 - papermill wraps the cell's error
            failed += 1
            print(f"FAILED  {nb.name}: {str(e).strip().splitlines()[-1][:300]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
