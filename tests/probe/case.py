"""A probe case: one real run of one binary over files the case makes, and its verdict.

A case names its class, the binary, its arguments (templates: {d} the case's own folder, {k}
the shared kit, {py} the device's python, {ssh} / {dest} / {dead} the loopback sshd's config,
a live and a refusing destination), what it expects (the exit statuses and the words the one
error line must hold, or a success), and `good`: "clean" or "accepted", the verdict it must get.
`issue` quotes the issue 21 example it covers, if any.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from tests import memcap, sshd
from tests.probe import kit as kit_mod
from tests.probe import runner, verdict

ERROR = (1, 2)  # a refused input (2: a UserError before work; 1: a run that failed)


@dataclasses.dataclass
class Case:
    id: str
    klass: str  # outputs | models | data | flags | devices | interrupts
    tool: str
    args: tuple[str, ...]
    exits: tuple[int, ...] = ERROR
    needles: tuple[str, ...] = ()
    good: str = "clean"
    setup: Callable[[Path, kit_mod.Kit], None] | None = None
    check: Callable[[Path, runner.Outcome], str | None] | None = None
    signals: tuple = ()  # ((glob template or seconds, signum), ...)
    during: Callable[[Path, int], None] | None = None  # (case folder, pid) once started
    env: tuple[tuple[str, str], ...] = ()
    out: str | None = "out"  # the run's own output folder, relative to {d}
    fresh: bool = False  # a plain `python tools/X.py`, TensorFlow imported by the case itself
    tmpfs: str = ""  # a folder (template) the run sees as a private tmpfs mount point
    memory_cap: int = 0  # bytes: the run joins a real cgroup memory cap of this size (memcap.py)
    timeout: float = 60
    slow: bool = False
    issue: str = ""
    # A known open bug: the one-line reason this case is not clean yet. The test is then a
    # strict xfail (it fails the day the case turns clean, so the mark cannot outlive the bug).
    open: str = ""
    flaky: bool = False  # open and not reproducible every run: a non-strict xfail


@dataclasses.dataclass
class Result:
    case: Case
    verdict: verdict.Verdict
    exit: int | None
    seconds: float
    stderr_tail: str


def _fill(template: str, fields: dict[str, str]) -> str:
    return template.format(**fields)


def _stop_own_server(d: Path) -> None:
    """A case's private sshd ends with the case, whether or not the case killed it already."""
    info = d / "_probe" / "server.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        for p in [*sshd._descendants(pid), pid]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def execute(case: Case, kit: kit_mod.Kit, zygote: runner.Zygote | None, root: Path) -> Result:
    """Makes the case's folder and files, snapshots what the user has, runs, compares, judges."""
    d = root / case.id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    fields = {**kit.fields(), "d": str(d)}
    if case.setup:
        case.setup(d, kit)
    own = d / "_probe" / "server.json"  # a case's private sshd (cases_data._own_server)
    fields["own"] = json.loads(own.read_text())["dest"] if own.exists() else ""
    out_dir = d / case.out if case.out else None
    sentinel = kit.root / kit_mod.SENTINEL
    sentinel.unlink(missing_ok=True)
    before = verdict.snapshot(d, kit.root)
    args = [_fill(a, fields) for a in case.args]
    signals = tuple(
        (w if isinstance(w, int | float) else _fill(w, fields), s) for w, s in case.signals
    )
    env = {k: _fill(v, fields) for k, v in case.env}
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] += os.pathsep + str(runner.REPO)
    during = (lambda pid: case.during(d, pid)) if case.during else None
    use = None if case.fresh or zygote is None else zygote
    cap = (
        memcap.make(f"probe-{case.id}-{os.getpid()}", case.memory_cap) if case.memory_cap else None
    )
    try:
        outcome = runner.run(use, case.tool, args, d, env=env, timeout=case.timeout,
                             signals=signals, during=during, tmpfs=_fill(case.tmpfs, fields),
                             cgroup=str(cap or ""))  # fmt: skip
    finally:
        if cap is not None:
            memcap.remove(cap)
    failed = outcome.exit != 0
    _stop_own_server(d)
    code_ran = sentinel.exists()
    sentinel.unlink(missing_ok=True)
    after = verdict.snapshot(d, kit.root)
    lost = verdict.lost_files(before, after, out_dir, failed)
    problem = case.check(d, outcome) if case.check and outcome.exit is not None else None
    # The case's folder name holds its id: needles must match what the line says, not the path.
    said = dataclasses.replace(outcome, stderr=outcome.stderr.replace(str(d), "{d}"))
    v = verdict.judge(said, exits=case.exits, needles=case.needles, good=case.good,
                      lost=lost, code_ran=code_ran, problem=problem)  # fmt: skip
    tail = "\n".join(outcome.stderr.strip().splitlines()[-3:])
    return Result(case, v, outcome.exit, outcome.seconds, tail)
