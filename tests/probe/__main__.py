"""The probe's totals: `python -m tests.probe [--output_json=runs/probe.json] [--only=data,...]`.

Runs every case (or the named classes/ids) as tests/test_probe.py does, prints the totals by
verdict, the cases per class and each case whose verdict is not the one its table states.
Exit status: 0 when every case got its stated verdict, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from tests.probe import cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_json", default=None)
    parser.add_argument("--only", default="", help="classes or case ids, comma-separated")
    parser.add_argument("--scratch", default="runs/probe_scratch")
    parser.add_argument("--no_slow", action="store_true", help="skip the cases marked slow")
    a = parser.parse_args()
    only = {x for x in a.only.split(",") if x}
    todo = [c for c in cases.ALL if (not only or c.klass in only or c.id in only)
            and not (a.no_slow and c.slow)]  # fmt: skip
    start = time.monotonic()
    shutil.rmtree(a.scratch, ignore_errors=True)
    session = cases.Session(Path(a.scratch).resolve())
    ready = time.monotonic() - start
    results = []
    try:
        for c in todo:
            r = session.run(c)
            results.append(r)
            print(f"{r.verdict.name:>9} {r.seconds:6.1f}s {c.klass}/{c.id} {r.verdict.reason}",
                  flush=True)  # fmt: skip
    finally:
        session.close()
    s = cases.summarize(results)
    s["wall_seconds"] = round(time.monotonic() - start, 1)
    s["setup_seconds"] = round(ready, 1)
    print("\ntotals:", " ".join(f"{k}={v}" for k, v in s["totals"].items()))
    for klass, row in s["per_class"].items():
        print(f"  {klass:<11}", " ".join(f"{k}={v}" for k, v in row.items()))
    print(f"{s['cases']} cases ({s['issue_examples']} issue 21 examples), wall "
          f"{s['wall_seconds']} s (setup {s['setup_seconds']} s)")  # fmt: skip
    for row in s["not_good"]:
        print(f"NOT {row['want'].upper()}: {row['class']}/{row['id']}: {row['verdict']}: "
              f"{row['reason']}")  # fmt: skip
    if a.output_json:
        cases.write(s, results, a.output_json)
    return 0 if not s["not_good"] else 1


if __name__ == "__main__":
    sys.exit(main())
