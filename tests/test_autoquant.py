"""The recovery ladder with an accuracy target on a study's own model (configs/mnist_autoquant.py's
settings on the tiny config): where it stops, which rungs each target climbs, what it records.
tests/test_recovery.py climbs the same ladder from a user's model."""

import pytest

from edgequant import pipeline
from edgequant.quantize import convert

pytestmark = pytest.mark.slow


def _run(tmp_path, max_drop_pp: float, target: str = "", recipes=(), min_top1: float = 0.0):
    from configs import mnist_autoquant
    from configs import test as test_config

    config = test_config.get_config()
    ladder = mnist_autoquant.get_config()
    config.target = target or ladder.target
    config.quantize.recipes = recipes or ladder.quantize.recipes
    config.quantize.aeq_recipes = ()
    config.budget.max_drop_pp = max_drop_pp
    config.budget.min_top1 = min_top1  # 1.0: unreachable, so every rung runs
    config.recovery.qat_epochs = 1
    config.recovery.large_calibration_size = 100
    config.recovery.denylist_k = (1,)
    config.bench.enabled = False
    return pipeline.run(config, tmp_path, verbose=0)


def test_the_ladder_stops_at_the_first_rung_that_meets_the_budget(tmp_path):
    result = _run(tmp_path, max_drop_pp=100.0)
    (plain,) = result["recovery"]
    assert plain["step"] == "plain" and plain["name"] == "uint8" and plain["meets_budget"]
    assert [v["name"] for v in result["variants"]] == ["uint8"]
    assert result["recommended"] == "uint8"


def test_an_unmet_budget_climbs_every_edgetpu_rung_and_keeps_every_trial(tmp_path):
    result = _run(tmp_path, max_drop_pp=0.0, min_top1=1.0)
    steps = [t["step"] for t in result["recovery"]]
    assert steps == ["plain", "calibration", "granularity", "qat"]  # no float layers on Edge TPU
    assert not any(t["meets_budget"] for t in result["recovery"])
    assert all("top1" in t and "logits" in t["sqnr_db"] for t in result["recovery"])
    by_name = {v["name"]: v for v in result["variants"]}
    assert set(by_name) == {"uint8", "uint8_cal100", "uint8_per_tensor_cal100", "qat_uint8"}
    assert convert.read_recipe(tmp_path / "uint8_cal100.tflite").calibration_size == 100
    qat = by_name["qat_uint8"]
    assert qat["gate"] == "pass" and qat["recipe"]["qat"]["epochs"] == 1
    assert 0.5 <= qat["qat"]["agreement"] <= 1 and qat["qat"]["seconds"] > 0
    assert (tmp_path / "tensorboard" / "recovery_qat" / "validation").is_dir()
    assert result["recommended"] is None


def test_a_cpu_target_tries_16_bit_activations_and_float_layers_before_qat(tmp_path):
    result = _run(tmp_path, max_drop_pp=0.0, min_top1=1.0, target="cpu", recipes=("int8",))
    steps = [t["step"] for t in result["recovery"]]
    assert steps == [
        "plain",
        "calibration",
        "granularity",
        "16-bit activations",
        "mixed precision k=1",
        "qat",
    ]
    mixed = {v["name"]: v for v in result["variants"]}["mixed_k1"]
    assert mixed["activations"] == "mixed" and len(mixed["recipe"]["float_layers"]) == 1
