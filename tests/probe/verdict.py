"""What a probe case's run means for the user, in one word.

The promise a binary makes (issue 21): bad input gets one `error:` line naming the problem and a
non-zero exit; good input gets its result; and never, in any case, a traceback, a silent wrong
result, a lost file, code run from a model file or a hang. The verdicts, worst first:

  unsafe     a model file ran its code (the kit's sentinel file appeared)
  lost       a file the user had before the run (outside the run's own --out_dir, or inside it
             when the run failed: a failure never replaces a previous result) is gone or changed
  hang       the run did not end within its timeout
  traceback  a Python traceback on stderr
  silent     exit 0 where an error was due, or a success whose result is wrong (the case's check)
  refused    legitimate input refused (non-zero exit where success was due)
  unclear    the right failure, but not one `error:` line naming its cause
  clean      the expected one-line error and exit, or the expected success
  accepted   odd but legitimate input handled as it should be (a case that expects success)
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from tests.probe.runner import Outcome

BAD = ("unsafe", "lost", "hang", "traceback", "silent", "refused", "unclear")
GOOD = ("clean", "accepted")
VERDICTS = (*BAD, *GOOD)
# the probe's capture files in a case folder, and its own things (a private sshd) under _probe/
_OWN = (".stdout", ".stderr", ".rc")


@dataclasses.dataclass
class Verdict:
    name: str
    reason: str


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (what the user had before the run)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")) if folder.is_dir() else ():
            mine = p.name in _OWN or "_probe" in p.relative_to(folder).parts
            if p.is_file() and not p.is_symlink() and not mine:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def lost_files(before: dict[str, str], after: dict[str, str], out_dir: Path | None,
               failed: bool) -> list[str]:  # fmt: skip
    """Files deleted or changed; inside out_dir only when the run failed (a success may
    replace its own previous result)."""
    lost = []
    for path, digest in before.items():
        mine = out_dir is not None and Path(path).is_relative_to(out_dir)
        if mine and not failed:
            continue
        if after.get(path) != digest:
            lost.append(path + (" (deleted)" if path not in after else " (changed)"))
    return lost


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(("error:", "FATAL"))]


def judge(
    outcome: Outcome,
    *,
    exits: tuple[int, ...],
    needles: tuple[str, ...],
    good: str,
    lost: list[str],
    code_ran: bool,
    problem: str | None,
) -> Verdict:
    """The one verdict for a run; exits are the expected statuses (0 alone: a success);
    problem is what the case's own check found wrong in the result (None: nothing)."""
    err = outcome.stderr
    tail = (error_lines(err) or err.strip().splitlines() or ["(no stderr)"])[-1][:200]
    if code_ran:
        return Verdict("unsafe", "the model's code ran at load")
    if lost:
        return Verdict("lost", "; ".join(lost[:3]))
    if outcome.exit is None:
        return Verdict("hang", f"no exit after {outcome.seconds:.0f} s")
    if "Traceback (most recent call last)" in err:
        last = [ln for ln in err.splitlines() if ln.strip()][-1][:200]
        return Verdict("traceback", last)
    if problem:
        return Verdict("silent" if outcome.exit == 0 else "unclear", problem)
    if outcome.exit not in exits:
        if outcome.exit == 0:
            return Verdict("silent", f"exit 0, expected {exits}: {outcome.stdout[-150:]!r}")
        if exits == (0,):
            return Verdict("refused", f"exit {outcome.exit}: {tail}")
        return Verdict("unclear", f"exit {outcome.exit}, expected {exits}: {tail}")
    if 0 not in exits:
        lines = error_lines(err)
        if len(lines) != 1:
            return Verdict("unclear", f"{len(lines)} error lines: {tail}")
        missing = [n for n in needles if n.lower() not in lines[0].lower()]
        if missing:
            return Verdict("unclear", f"error line does not name {missing}: {lines[0][:200]}")
    return Verdict(good, "")
