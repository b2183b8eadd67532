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


def test_a_config_builds_on_another_through_the_workspace():
    deploy, mnist = workspace.config("deploy"), workspace.config("mnist")
    assert set(mnist.keys()) <= set(deploy.keys()) and deploy.seed == mnist.seed
    assert deploy.model.path == "" and mnist.model.name == "mnist_cnn"
    assert workspace.config_module("mnist") is workspace.config_module("mnist")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown configs module 'nope'; valid: deploy, mnist"):
        workspace.config("nope")
    with pytest.raises(ValueError, match="valid models: mnist_cnn, mobilenet_v2"):
        zoo.build("nope", (8, 8, 1), 2)
