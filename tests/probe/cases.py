"""The probe's case table and the loop that runs it (pytest and `python -m tests.probe` share it).

Classes: outputs, models, data, flags, devices, interrupts. The tables live in cases_out.py
(outputs, models, flags) and cases_data.py (data, devices, interrupts).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests import sshd
from tests.probe import case as case_mod
from tests.probe import cases_data, cases_out, kit, runner

CLASSES = ("outputs", "models", "data", "flags", "devices", "interrupts")
ALL: list[case_mod.Case] = [
    *cases_out.outputs(),
    *cases_out.models(),
    *cases_data.data(),
    *cases_out.flags(),
    *cases_data.devices(),
    *cases_data.interrupts(),
]
BY_ID = {c.id: c for c in ALL}
assert len(BY_ID) == len(ALL), "case ids must be unique"


class Session:
    """The shared pieces, made once: the kit (models, data, a real bundle), the zygote that runs
    the binaries, and the loopback sshd with a refusing port beside it. A `zygote` given (the
    test worker's own) is used and left running; without one the session starts and closes its
    own (`python -m tests.probe`)."""

    def __init__(self, root: Path, zygote: runner.Zygote | None = None) -> None:
        self.root = root
        self.results: list[case_mod.Result] = []
        root.mkdir(parents=True, exist_ok=True)
        self.server = sshd.make_server(root / "_sshd")
        self.server.start()
        self.kit = kit.Kit(
            root / "_kit",
            str(runner.REPO / ".venv-device" / "bin" / "python"),
            str(self.server.ssh_config),
            "loopdev",
            f"root@127.0.0.1:{sshd.free_port()}",
        )
        shutil.rmtree(self.kit.root, ignore_errors=True)
        kit.build(self.kit.root)
        self._own_zygote = zygote is None
        self.zygote = zygote or runner.Zygote()
        self._deploy_bundle()

    def _deploy_bundle(self) -> None:
        """The previous good result every "keep the bundle" case copies: a real deploy over the
        image folder, evaluated on all of it (so evaluate.py's accuracy can be compared)."""
        k = self.kit.root
        args = [f"--model={k}/cnn.keras", f"--data={k}/images", f"--eval_data={k}/images",
                "--input_range=0,255", f"--out_dir={k}/bundle", *kit.FAST, kit.RECIPES]  # fmt: skip
        scratch = self.root / "_bundle_log"
        scratch.mkdir(exist_ok=True)
        o = runner.run(self.zygote, "deploy", args, scratch, timeout=300)
        if o.exit != 0:
            raise RuntimeError(f"the probe's bundle did not deploy: {o.stderr[-2000:]}")

    def run(self, c: case_mod.Case) -> case_mod.Result:
        self.results.append(case_mod.execute(c, self.kit, self.zygote, self.root))
        return self.results[-1]

    def close(self) -> None:
        if self._own_zygote:
            self.zygote.close()
        self.server.stop()


def summarize(results: list[case_mod.Result]) -> dict:
    """Totals by verdict, cases per class, and every case that is not clean or accepted."""
    from tests.probe.verdict import VERDICTS

    totals = dict.fromkeys(VERDICTS, 0)
    per_class: dict[str, dict[str, int]] = {}
    for r in results:
        totals[r.verdict.name] += 1
        row = per_class.setdefault(r.case.klass, {"cases": 0})
        row["cases"] += 1
        row[r.verdict.name] = row.get(r.verdict.name, 0) + 1
    return {
        "totals": totals,
        "per_class": per_class,
        "cases": len(results),
        "issue_examples": sum(bool(r.case.issue) for r in results),
        "seconds": round(sum(r.seconds for r in results), 1),
        "not_good": [
            {
                "id": r.case.id,
                "class": r.case.klass,
                "verdict": r.verdict.name,
                "want": r.case.good,
                "reason": r.verdict.reason,
                "issue": r.case.issue,
            }
            for r in results
            if r.verdict.name != r.case.good
        ],  # fmt: skip
    }


def write(summary: dict, results: list[case_mod.Result], path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": r.case.id, "class": r.case.klass, "tool": r.case.tool,
             "args": list(r.case.args), "verdict": r.verdict.name, "reason": r.verdict.reason,
             "exit": r.exit, "seconds": r.seconds, "stderr_tail": r.stderr_tail}
            for r in results]  # fmt: skip
    tmp = f"{path}.tmp-{os.getpid()}"
    Path(tmp).write_text(json.dumps({**summary, "results": rows}, indent=1))
    os.replace(tmp, path)
