"""The bad-input probe as tests (issue 21 item 7): one test per case of tests/probe/cases*.py.

Each case runs the real binary over files it makes and must get the verdict its table states
(`clean` or `accepted`); a test fails while a case is silent, lost, unsafe, a traceback, a hang,
refused or unclear, so CI shows what a hostile user would hit. The session shares one kit
(tiny models, data, a real bundle), one loopback sshd and the worker's zygote (run_tool's),
so a case costs a fraction of a second to a few seconds instead of TensorFlow's start-up.
`python -m tests.probe` prints the same cases' totals by verdict and class.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import shared_zygote
from tests.probe import cases, verdict


@pytest.fixture(scope="session")
def probe(tmp_path_factory):
    """The shared kit, zygote and sshd; with PROBE_JSON=path, the totals are written there too
    (the same summary as `python -m tests.probe --output_json=path`)."""
    session = cases.Session(tmp_path_factory.mktemp("probe"), shared_zygote())
    yield session
    session.close()
    if os.environ.get("PROBE_JSON") and session.results:
        cases.write(cases.summarize(session.results), session.results, os.environ["PROBE_JSON"])


def _param(c):
    marks = [pytest.mark.slow] if c.slow else []
    if c.open:
        marks.append(pytest.mark.xfail(strict=not c.flaky, reason=f"open: {c.open}"))
    return pytest.param(c.id, id=c.id, marks=marks)


@pytest.mark.parametrize("case_id", [_param(c) for c in cases.ALL])
def test_case(probe, case_id):
    c = cases.BY_ID[case_id]
    r = probe.run(c)
    assert r.verdict.name == c.good, (
        f"{c.klass}/{c.id}: {r.verdict.name} ({r.verdict.reason}); exit {r.exit}; "
        f"{c.tool} {' '.join(c.args)}\n{r.stderr_tail}"
    )


def test_every_class_has_ten_cases_of_its_own():
    own = {k: sum(c.klass == k and not c.issue for c in cases.ALL) for k in cases.CLASSES}
    assert all(n >= 10 for n in own.values()), own


def test_the_verdicts_rank_worst_first():
    """A run that both lost a file and printed a traceback is `lost`: the worse one wins."""
    from tests.probe.runner import Outcome

    o = Outcome(1, "", "Traceback (most recent call last):\nboom", 0.1)
    common = {"exits": (2,), "needles": (), "good": "clean", "problem": None}
    assert verdict.judge(o, lost=["a (deleted)"], code_ran=False, **common).name == "lost"
    assert verdict.judge(o, lost=["a"], code_ran=True, **common).name == "unsafe"
    assert verdict.judge(o, lost=[], code_ran=False, **common).name == "traceback"
    hang = Outcome(None, "", "", 60.0)
    assert verdict.judge(hang, lost=[], code_ran=False, **common).name == "hang"
    ok = Outcome(0, "", "", 0.1)
    assert verdict.judge(ok, lost=[], code_ran=False, **common).name == "silent"
