"""The accuracy-targeted search's stop rule, budget and outputs, on the tiny config."""

import json

import pytest

from edgequant import pipeline
from edgequant.quantize import convert, recipes

pytestmark = pytest.mark.slow


def _run(tmp_path, **autoquant):
    from configs import mnist_autoquant
    from configs import test as test_config

    config = test_config.get_config()
    config.quantize.recipes = ()
    config.quantize.aeq_recipes = ()
    config.autoquant = mnist_autoquant.get_config().autoquant
    config.autoquant.qat_epochs = 1
    config.autoquant.large_calibration_size = 100
    for k, v in autoquant.items():
        config.autoquant[k] = v
    return pipeline.run(config, tmp_path, verbose=0)


def test_search_stops_at_the_first_step_that_meets_the_target(tmp_path):
    results = _run(tmp_path, max_drop_pp=100.0)
    a = results["autoquant"]
    assert a["met"] and len(a["trials"]) == 1 and a["winner"]["step"] == "ptq"
    lines = (tmp_path / "autoquant.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["meets_target"]
    assert (tmp_path / "autoquant_best.tflite").is_file()
    best = convert.read_recipe(tmp_path / "autoquant_best.tflite")
    assert "step 'ptq'" in best.note and best.mode is recipes.Mode.UINT8
    assert convert.read_recipe(tmp_path / "autoquant" / "trial0_ptq.tflite").calibration_size == 50
    assert any(v["name"] == "autoquant_best" for v in results["variants"])


def test_unmet_target_tries_every_edgetpu_step_within_budget_and_keeps_the_best(tmp_path):
    results = _run(tmp_path, max_drop_pp=-100.0)  # unreachable
    a = results["autoquant"]
    steps = [t["step"] for t in a["trials"]]
    assert not a["met"] and steps == [
        "ptq",
        "calibration",
        "granularity",
        "qat",
    ]  # no float layers on Edge TPU
    assert a["winner"]["val_accuracy"] == max(t["val_accuracy"] for t in a["trials"])
    assert "Not met" in a["summary"]


def test_cpu_target_may_keep_layers_in_float_and_the_budget_caps_trials(tmp_path):
    results = _run(tmp_path, max_drop_pp=-100.0, target="cpu", max_trials=4, max_float_layers=1)
    steps = [t["step"] for t in results["autoquant"]["trials"]]
    assert steps == ["ptq", "calibration", "granularity", "float_layers"]
