"""The zoo and the configs load from the workspace by path, not as top-level packages."""

import os
import subprocess
import sys

import pytest

from edgequant import workspace, zoo
from edgequant.errors import UserError

PROBE = """
import importlib.util, sys
from edgequant import workspace, zoo
print(importlib.util.find_spec("models"), importlib.util.find_spec("configs"))
print(",".join(zoo.names()), workspace.config("deploy").target)
"""


def test_models_and_configs_are_not_installed_as_top_level_names(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "None None",
        "mnist_cnn,mobilenet_v2,seg_tiny,ssd_tiny edgetpu",
    ]


def _keys(config, prefix="") -> set[str]:
    out = set()
    for k, v in config.items():
        out |= _keys(v, f"{prefix}{k}.") if hasattr(v, "items") else {prefix + k}
    return out


def test_a_config_builds_on_another_through_the_workspace():
    base, deploy, mnist = (workspace.config(n) for n in ("base", "deploy", "mnist"))
    assert _keys(base) <= _keys(deploy) and _keys(base) <= _keys(mnist)
    assert deploy.seed == mnist.seed == base.seed
    assert deploy.model.path == "" and mnist.model.name == "mnist_cnn"
    assert workspace.config_module("mnist") is workspace.config_module("mnist")


def test_the_base_config_and_the_deployment_name_no_dataset_model_or_training():
    base, deploy = workspace.config("base"), workspace.config("deploy")
    for config in (base, deploy):
        assert "train" not in config
        assert not {"name", "dir", "download", "val_fraction"} & set(config.data.keys())
    # A deployment may run under tools/launch.py (QAT steps are collective); the base never.
    assert "distribute" not in base and deploy.distribute == "none"
    assert "model" not in base and set(deploy.model.keys()) == {"path", "signature", "trust_code"}
    # Every other config still builds, on the study or the base, with its own keys intact.
    assert workspace.config("mnist_qat").qat.enabled and workspace.config("test").train.epochs == 1
    assert workspace.config("test_multi_worker").qat.nbit == ()
    assert workspace.config("mnist_autoquant").budget.max_drop_pp == 0.5  # the ladder's target
    assert workspace.config("mnist_edgetpu").model.name == "mobilenet_v2"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(
        UserError, match=r"unknown configs module 'nope'; valid: base, deploy, mnist"
    ):
        workspace.config("nope")
    with pytest.raises(ValueError, match="valid models: mnist_cnn, mobilenet_v2"):
        zoo.build("nope", (8, 8, 1), 2)


def test_a_study_key_given_to_the_deployment_config_says_where_it_lives_now():
    from edgequant import config_check

    hint = config_check.moved_key_hint(["--x", "--config.data.dir=imgs"], "'dir'")
    assert hint.startswith("--config.data.dir: a deployment reads data.path")
    assert config_check.moved_key_hint(["--config.data.path=imgs"], "'path'") is None
    from tests.conftest import assert_one_line_error, run_tool

    proc = run_tool("pipeline", "--config=configs/deploy.py", "--config.train.epochs=3")
    assert_one_line_error(
        proc, "--config.train.epochs: training settings belong to configs/mnist.py"
    )
