"""Issue 21 item 6, one line for every failure: a user's data callable that raises or returns
None, a model that outputs NaN, and "no variant meets the budget" with the reason of each
variant, in the summary, deploy.json, the report and the refusal to replace a good bundle."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import edgequant
from edgequant.errors import UserError
from edgequant.flow import prepare, truth
from tests import truth_fixtures as tf_
from tests.conftest import assert_one_line_error, run_tool
from tests.truth_fixtures import config


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"vec": tf_.vector_model(d), "nan": tf_.vector_model(d, "nan.keras", nan=True)}


def _module(tmp_path, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text("import numpy as np\n\n" + body)
    sys.path.insert(0, str(tmp_path))
    return f"{name}:data"


# name -> (module body, needles of the one line)
CALLABLE_CASES = {
    "raises at once": (
        "def data():\n    raise RuntimeError('db down')\n",
        ("raised RuntimeError", "db down"),
    ),
    "raises midway": (
        "def data():\n    for i in range(10):\n        yield np.zeros(4, np.float32)\n"
        "    raise OSError('disk gone')\n",
        ("raised OSError", "disk gone"),
    ),
    "returns None": ("def data():\n    pass\n", ("returned None", "iterable")),
    "yields None": ("def data():\n    yield None\n", ("yielded None as sample 0",)),
    "is not a function": ("data = 42\n", ("is a int, not a function",)),
    "its module raises on import": (
        "raise ValueError('bad import')\ndef data():\n    return []\n",
        ("cannot import data callable", "bad import"),
    ),
    "yields no samples": ("def data():\n    return []\n", ("yielded no samples",)),
    "a sample without the input's key": (
        "def data():\n    return [{'y': np.zeros(4, np.float32)}]\n",
        ("keys ['y']", "['x']"),
    ),
    "a sample that is not numeric": ("def data():\n    return ['abc']\n", ("not numeric",)),
    "a sample of the wrong shape": (
        "def data():\n    return [np.zeros(5, np.float32)]\n",
        ("sample 0",),
    ),
    "raises KeyError with an empty message": (
        "def data():\n    return {}['k']\n",
        ("raised KeyError",),
    ),
}


@pytest.mark.parametrize("case", sorted(CALLABLE_CASES))
def test_a_data_callable_that_fails_is_one_line_naming_it(case, models, tmp_path):
    body, needles = CALLABLE_CASES[case]
    name = "cb_" + "".join(c if c.isalnum() else "_" for c in case)
    spec = _module(tmp_path, name, body)
    with pytest.raises(UserError) as e:
        prepare.prepare(config(models["vec"], spec), tmp_path / "out")
    msg = str(e.value)
    assert name in msg and "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg


def test_a_model_that_outputs_nan_is_refused_naming_the_output(models, tmp_path):
    x, y = tf_.vectors(40)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    with pytest.raises(UserError) as e:
        prepare.prepare(config(models["nan"], tmp_path / "d.npz"), tmp_path / "out")
    assert "output 'probs' is NaN or Inf" in str(e.value) and "weights" in str(e.value)
    assert not list((tmp_path / "out").glob("*.tflite"))


def test_the_binary_says_a_failing_callable_in_one_line(models, tmp_path, monkeypatch):
    import os

    _module(tmp_path, "cb_binary", "def data():\n    raise RuntimeError('db down')\n")
    monkeypatch.setenv("PYTHONPATH", f"{os.environ.get('PYTHONPATH', '')}:{tmp_path}")
    proc = run_tool(
        "deploy", f"--model={models['vec']}", "--data=cb_binary:data",
        f"--out_dir={tmp_path / 'b'}", "--target=cpu",
    )  # fmt: skip
    assert_one_line_error(proc, "cb_binary:data", "raised RuntimeError", "db down")
    assert not (tmp_path / "b").exists()


# --- "no variant meets the budget" says why each variant failed ------------------------------


class _Study:
    """What truth.why_none reads of a study: its config's target."""

    def __init__(self, target):
        self.config = config("m", "d", target=target)


WHY_CASES = {
    "top-1 drop": (
        "cpu", [{"name": "int8", "within_budget": False, "budget": "top-1 -3.00 pp vs float"}], [],
        {"int8": "misses the budget: top-1 -3.00 pp vs float"},
    ),
    "SQNR": (
        "cpu", [{"name": "int8", "within_budget": False, "budget": "worst-output SQNR 9.1 dB"}], [],
        {"int8": "SQNR 9.1 dB"},
    ),
    "gate failure": (
        "edgetpu",
        [{"name": "uint8", "within_budget": True, "gate": "fail",
          "edgetpu": {"gate": {"grouped": [{"text": "[io] model: float input"}]}}}],
        [], {"uint8": "fails the Edge TPU gate ([io] model: float input)"},
    ),
    "budget and gate": (
        "edgetpu", [{"name": "uint8", "within_budget": False, "budget": "b", "gate": "fail"}], [],
        {"uint8": "misses the budget: b; fails the Edge TPU gate"},
    ),
    "conversion error": ("cpu", [], [{"name": "int16x8", "error": "converter said no"}],
                         {"int16x8": "failed: converter said no"}),
    "nothing built": ("cpu", [], [], {"-": "no variant was built"}),
    "not run on the target device": (
        "cpu",
        [{"name": "dynamic_range", "within_budget": True,
          "devices": {"pi": {"p50": None, "status": "unsupported: FULLY_CONNECTED v12"}}},
         {"name": "int8", "within_budget": True, "devices": {"pi": {"p50": 0.1}}}],
        [], {"dynamic_range": "did not run on the target device pi: unsupported: FULLY_"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(WHY_CASES))
def test_why_no_variant_is_recommended_names_each_cause(case):
    target, variants, errors, expected = WHY_CASES[case]
    device = "pi" if "device" in case else None
    unmet = truth.why_none(_Study(target), variants, errors, device)
    found = {u["name"]: u["reason"] for u in unmet}
    assert set(found) == set(expected)
    for name, reason in expected.items():
        assert reason in found[name], found


@pytest.mark.slow
def test_no_variant_meets_the_budget_says_why_everywhere(models, tmp_path):
    """A real deployment with a budget nothing meets: the reason of each variant is in the
    summary, deploy.json and report.md, and a re-run over a good bundle refuses naming them."""
    x, y = tf_.vectors(60)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    good = edgequant.deploy_config(config(models["vec"], tmp_path / "d.npz"), tmp_path / "good")
    assert good["recommended"] and "unmet" not in good
    impossible = {"budget.min_top1": 1.0}  # every variant would have to score 100%
    cfg = config(models["vec"], tmp_path / "d.npz", **impossible)
    result = edgequant.deploy_config(cfg, tmp_path / "bad")
    assert result["recommended"] is None
    unmet = {u["name"]: u["reason"] for u in result["unmet"]}
    assert set(unmet) == {v["name"] for v in result["variants"]}
    assert all("misses the budget: top-1" in r for r in unmet.values()), unmet
    assert json.loads((tmp_path / "bad" / "deploy.json").read_text())["unmet"] == result["unmet"]
    summary = edgequant.summary(result)
    report = (tmp_path / "bad" / "report.md").read_text()
    for name, reason in unmet.items():
        assert f"{name}: {reason}" in summary and reason in report
    with pytest.raises(UserError) as e:
        edgequant.deploy_config(
            config(models["vec"], tmp_path / "d.npz", **impossible), tmp_path / "good"
        )
    assert "misses the budget: top-1" in str(e.value) and "still holds the previous" in str(e.value)
