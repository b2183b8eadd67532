"""Loose ends of issue 21's items 1-3: every model-loading tool takes the one trust flag, the
Python API has its alias, the bench rules have one home (config_check and the board runner use
them), and the unsafe loaders nobody called are gone."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgequant
from edgequant import config_check, workspace
from edgequant.bench import device_runner, settings
from edgequant.errors import UserError
from tests.conftest import REPO, assert_one_line_error, run_tool
from tests.test_model_safety import _save_lambda_model


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """A tf_keras .h5 whose Lambda writes a witness file when it runs, and labelled data."""
    import tf_keras

    d = tmp_path_factory.mktemp("evil")
    path, witness = _save_lambda_model(tf_keras, d, "evil.h5")
    np.savez(d / "d.npz", x=np.zeros((8, 4), np.float32), labels=np.arange(8) % 2)
    return path, witness, d / "d.npz"


@pytest.mark.slow  # a tool subprocess
def test_evaluate_refuses_a_model_that_runs_code_without_the_trust_flag(evil, tmp_path):
    path, witness, data = evil
    proc = run_tool("evaluate", f"--model={path}", f"--data={data}")
    assert_one_line_error(proc, "'evil'", "Lambda", "--trust_model_code")
    assert not witness.exists()


@pytest.mark.slow  # a tool subprocess
def test_evaluate_with_the_trust_flag_loads_and_scores_it(evil, tmp_path):
    path, witness, data = evil
    proc = run_tool("evaluate", f"--model={path}", f"--data={data}", "--trust_model_code")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and witness.exists()
    witness.unlink()


@pytest.mark.slow  # a tool subprocess
def test_folder_eval_refuses_it_without_the_trust_flag(evil, tmp_path):
    path, witness, _ = evil
    (tmp_path / "imgs").mkdir()
    proc = run_tool("benchmarks/folder_eval", f"--model={path}", f"--folder={tmp_path / 'imgs'}")
    assert_one_line_error(proc, "'evil'", "Lambda", "--trust_model_code")
    assert not witness.exists()


def test_the_python_api_has_the_trust_alias(evil, tmp_path):
    path, witness, data = evil
    with pytest.raises(UserError, match="--trust_model_code"):
        edgequant.deploy(path, data, tmp_path / "a", target="cpu")
    assert not witness.exists()
    # Trusted, the model loads (its code runs) and the run goes on to the data checks: labels
    # of -1 stop it there, before any conversion.
    np.savez(tmp_path / "neg.npz", x=np.zeros((8, 4), np.float32), labels=np.full(8, -1))
    with pytest.raises(UserError, match="below 0"):
        edgequant.deploy(path, tmp_path / "neg.npz", tmp_path / "b", trust_model_code=True)
    assert witness.exists()
    witness.unlink()


def test_the_unsafe_loaders_nobody_called_are_gone():
    from edgequant.edgetpu import keras_graph
    from edgequant.train import fit

    assert not hasattr(keras_graph, "load") and not hasattr(fit, "load_model")


# --- the bench rules: one home, used by config_check and by the runner on a board ------------

BENCH_CASES = {
    "num_runs -5": ({"num_runs": -5}, "num_runs=-5 must be at least 1"),
    "num_runs 0": ({"num_runs": 0}, "num_runs=0"),
    "num_runs a float": ({"num_runs": 2.5}, "num_runs=2.5"),
    "negative warm-up runs": ({"warmup_runs": -1}, "warmup_runs=-1 must be 0 or more"),
    "negative min_secs": ({"min_secs": -1.0}, "min_secs=-1.0 must be a number >= 0"),
    "max_secs 0": ({"max_secs": 0.0}, "max_secs=0.0 must be a number > 0"),
    "max below min": ({"min_secs": 3.0, "max_secs": 2.0}, "max_secs=2.0 is below min_secs=3.0"),
    "infinite warm-up time": ({"warmup_min_secs": float("inf")}, "warmup_min_secs=inf"),
    "a negative thread count": ({"threads": (1, -2)}, "threads=-2"),
    "NaN max_secs": ({"max_secs": float("nan")}, "max_secs=nan"),
}


@pytest.mark.parametrize("case", sorted(BENCH_CASES))
def test_config_check_uses_the_bench_settings_rules(case):
    keys, needle = BENCH_CASES[case]
    c = workspace.config("deploy")
    for k, v in keys.items():
        with c.bench.ignore_type():
            c.bench[k] = v
    with pytest.raises(ValueError) as e:
        config_check.validate(c)
    assert f"bench.{needle}" in str(e.value), str(e.value)
    flat = {k: v for k, v in keys.items() if k != "threads"}
    if flat:  # the same rule, the same words, where every Settings is made
        with pytest.raises(ValueError, match=needle.split("=")[0]):
            settings.Settings(**flat)


RUNNER_CASES = {
    "num_runs -5": (["--num_runs=-5"], "num_runs=-5"),
    "max_secs 0": (["--max_secs=0"], "max_secs=0.0"),
    "warm-up -1": (["--warmup_runs=-1"], "warmup_runs=-1"),
    "threads -3": (["--threads=-3"], "threads=-3"),
    "seed -1": (["--seed=-1"], "seed=-1"),
    "parity nan": (["--parity_lsb=nan"], "parity_lsb=nan"),
    "max below min": (["--min_secs=5", "--max_secs=1"], "max_secs=1.0 is below min_secs=5.0"),
    "min_secs inf": (["--min_secs=inf"], "min_secs=inf"),
    "warm-up time negative": (["--warmup_min_secs=-0.5"], "warmup_min_secs=-0.5"),
    "two at once": (["--num_runs=0", "--max_secs=-1"], "num_runs=0"),
}


@pytest.mark.parametrize("case", sorted(RUNNER_CASES))
def test_the_board_runner_refuses_bad_settings_in_one_line(case, coral_dir):
    """device_runner.py as a board runs it: alone, under the device Python (3.7-compatible)."""
    args, needle = RUNNER_CASES[case]
    model = next(coral_dir.glob("*_quant.tflite"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "edgequant/bench/device_runner.py"), str(model), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout.strip().splitlines()
    assert len(out) == 1 and proc.stderr == "", proc.stdout + proc.stderr
    error = json.loads(out[0])
    assert error["kind"] == "runner" and needle in error["error"], error


def test_the_runner_and_the_host_share_one_rule_set():
    assert settings.problems(settings.DEFAULT) == []
    bad = dict(settings.DEFAULT.to_dict(), num_runs=-5)
    assert device_runner.setting_problems(bad) == [
        "num_runs=-5 must be at least 1 (measured invokes)"
    ]
