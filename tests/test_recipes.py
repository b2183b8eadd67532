"""The typed recipe beside every .tflite: every kind round-trips, old files load, and a real
pipeline run leaves no model without the recipe that made it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edgequant import atomic
from edgequant.data import preprocess
from edgequant.quantize import convert, recipes
from edgequant.quantize.recipes import Backend, Mode, QatSettings, Recipe

KINDS = {
    "ptq": recipes.get("uint8", "per_tensor", 123),
    "mixed": Recipe(
        "mixed_k2", Mode.INT8_FALLBACK, calibration_size=50, float_layers=("conv_a", "dense_b")
    ),
    "aeq": recipes.aeq("static_wi8_ai16", 64),
    "aeq_uncalibrated": recipes.aeq("dynamic_wi8_afp32", 0),
    "qat": Recipe(
        "qat_int8",
        Mode.INT8,
        calibration_size=100,
        qat=QatSettings(
            3,
            2e-4,
            layers=("conv*",),
            noop_layers=("reshape",),
            per_tensor=True,
            annotated=("conv_1", "conv_2", "reshape"),
            samples=500,
        ),
    ),
    "autoquant_trial": Recipe(
        "trial3_qat", Mode.UINT8, qat=QatSettings(1, 1e-3), note="autoquant: QAT 1 epoch(s)"
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_recipe_kind_round_trips_exactly_through_json(kind, tmp_path):
    r = KINDS[kind]
    back = Recipe.from_dict(json.loads(r.to_json()))
    assert back == r and back.to_dict() == r.to_dict()
    assert Recipe.load(r.save(tmp_path / "r.recipe.json")) == r
    assert isinstance(back.backend, Backend) and (back.qat is None) == (r.qat is None)
    if r.qat is not None:
        assert isinstance(back.qat, QatSettings) and back.qat.layers == r.qat.layers


def test_readers_of_deploy_json_find_every_field_in_the_dict():
    d = KINDS["aeq"].to_dict()
    assert d["backend"] == "ai-edge-quantizer" and d["mode"] is None
    assert d["aeq_recipe"] == "static_wi8_ai16"
    d = KINDS["qat"].to_dict()
    assert d["backend"] == "tflite-converter" and d["mode"] == "int8"
    assert d["qat"]["epochs"] == 3 and d["qat"]["annotated"] == ["conv_1", "conv_2", "reshape"]


def test_a_recipe_file_from_before_the_new_fields_still_loads(tmp_path):
    old = {"name": "uint8", "mode": "uint8", "weights": "per_channel", "calibration_size": 500}
    atomic.write_json(tmp_path / "uint8.recipe.json", old)
    r = Recipe.load(tmp_path / "uint8.recipe.json")
    assert r == recipes.get("uint8", calibration_size=500)
    assert r.backend is Backend.TFLITE_CONVERTER and r.float_layers == () and r.qat is None


def test_unknown_keys_fail_with_their_name_at_either_level():
    d = KINDS["qat"].to_dict()
    with pytest.raises(ValueError, match="unknown recipe field.*'epochs'"):
        Recipe.from_dict({**d, "epochs": 3})
    with pytest.raises(ValueError, match="unknown qat setting field.*'lr'"):
        Recipe.from_dict({**d, "qat": {**d["qat"], "lr": 1e-3}})


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "x", "mode": None}, "needs a mode"),
        ({"name": "x", "mode": "int8", "aeq_recipe": "static_wi8_ai8"}, "no aeq_recipe"),
        ({"name": "x", "mode": None, "backend": "ai-edge-quantizer"}, "names its aeq_recipe"),
        ({"name": "x", "mode": "uint8", "float_layers": ["a"]}, "int8_fallback"),
        ({"name": "x", "mode": "int8", "backend": "tvm"}, "'tvm' is not a valid Backend"),
        ({"name": "x", "mode": "int8", "qat": {"epochs": 1.5, "learning_rate": 1}}, "integer"),
    ],
)
def test_a_recipe_that_contradicts_itself_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Recipe.from_dict(fields)


def test_the_one_writer_puts_model_recipe_and_embedded_spec_side_by_side(
    tiny_model, representative, tmp_path
):
    spec = preprocess.Preprocessing((28, 28), "grayscale", input_range=(0.0, 1.0))
    recipe = recipes.get("uint8", calibration_size=20)
    path = convert.write(
        convert.convert(tiny_model, recipe, representative), recipe, tmp_path, spec
    )
    assert path == tmp_path / "uint8.tflite"
    assert convert.read_recipe(path) == recipe
    assert preprocess.read_embedded(path.read_bytes()) == spec
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uint8.recipe.json", "uint8.tflite"]


# --- every .tflite a real run writes has its recipe ---------------------------------------------


def assert_every_tflite_has_its_recipe(folder: Path) -> dict[str, Recipe]:
    """Every model under `folder` has a `<stem>.recipe.json` that loads as a Recipe named after
    it. Compiled `*_edgetpu.tflite` files are edgetpu_compiler's output for a source model that
    sits beside them with its own recipe, so they are the one exception."""
    found = {}
    for path in sorted(folder.rglob("*.tflite")):
        if path.name.endswith("_edgetpu.tflite") or atomic.is_tmp(path):
            continue
        recipe = convert.read_recipe(path)
        assert recipe.name == path.stem, path
        found[path.relative_to(folder).as_posix()] = recipe
    assert found, f"no .tflite under {folder}"
    return found


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The tiny pipeline with every stage that writes a model: PTQ, diagnosis (mixed_k1), AEQ,
    QAT and every rung of the recovery ladder."""
    from edgequant import pipeline, workspace

    mnist_qat = workspace.config_module("mnist_qat")
    test_config = workspace.config_module("test")

    config = test_config.get_config()
    config.quantize.recipes = ("fp32", "int8", "uint8")
    config.quantize.aeq_recipes = ("dynamic_wi8_afp32",)
    config.bench.enabled = False
    config.diagnose.enabled = True
    config.diagnose.denylist_k = (1,)
    config.qat = mnist_qat.get_config().qat
    config.qat.epochs = 1
    config.qat.nbit = ()
    config.budget.min_top1 = 1.0  # unreachable: every rung of the recovery ladder runs
    config.recovery.large_calibration_size = 100
    config.recovery.denylist_k = (1,)
    config.recovery.qat_epochs = 1  # the rung's model and recipe are what is checked here
    workdir = tmp_path_factory.mktemp("recipes_run")
    results = pipeline.run(config, workdir, verbose=0)
    return workdir, results, config


@pytest.mark.slow
def test_every_model_of_a_pipeline_run_has_a_typed_recipe(full_run):
    workdir, results, config = full_run
    found = assert_every_tflite_has_its_recipe(workdir)
    assert {
        "fp32.tflite",
        "uint8.tflite",
        "aeq_dynamic_wi8_afp32.tflite",
        "mixed_k1.tflite",
        "qat_uint8.tflite",
        "qat_int8.tflite",
        "int8_cal100.tflite",
        "int8_per_tensor_cal100.tflite",
        "int16x8.tflite",
    } <= found.keys()
    for v in results["variants"]:  # deploy.json carries the same typed recipe
        if "recipe" in v:
            assert Recipe.from_dict(v["recipe"]) == found[Path(v["path"]).name], v["name"]
    assert found["aeq_dynamic_wi8_afp32.tflite"].backend is Backend.AI_EDGE_QUANTIZER


@pytest.mark.slow
def test_qat_recipes_record_epochs_learning_rate_and_layers(full_run):
    workdir, _, config = full_run
    for mode in ("uint8", "int8"):
        r = convert.read_recipe(workdir / f"qat_{mode}.tflite")
        assert r.mode is Mode(mode) and r.qat is not None
        assert (r.qat.epochs, r.qat.learning_rate) == (1, config.qat.learning_rate)
        assert r.qat.layers == tuple(config.qat.layers) and r.qat.noop_layers == ()
        # the whole tiny CNN is annotated: at least its convolutions and dense layers
        assert len(r.qat.annotated) >= 3, r.qat.annotated


@pytest.mark.slow
def test_mixed_precision_recipe_records_the_float_layers(full_run):
    workdir, results, _ = full_run
    r = convert.read_recipe(workdir / "mixed_k1.tflite")
    worst = results["diagnosis"]["worst_layers"][0]["tensor_name"]
    assert r.mode is Mode.INT8_FALLBACK and r.float_layers == (worst,)


@pytest.mark.slow
def test_every_recovery_rung_is_a_variant_with_its_typed_recipe(full_run):
    workdir, results, _ = full_run
    rungs = [t for t in results["recovery"] if "meets_budget" in t]
    steps = [t["step"] for t in rungs]
    assert steps == [
        "plain",
        "calibration",
        "granularity",
        "16-bit activations",
        "mixed precision k=1",
        "qat",
    ]
    by_name = {v["name"]: v for v in results["variants"]}
    for t in rungs:
        v = by_name[t["name"]]
        assert Recipe.from_dict(v["recipe"]) == convert.read_recipe(v["path"]), t["name"]
    assert convert.read_recipe(workdir / "int8_cal100.tflite").calibration_size == 100


def test_precision_is_what_each_recipe_stores():
    """The module docstring's table, the AEQ names, and float layers as "mixed" activations."""
    table = {
        "fp32": ("float32", "float32"),
        "dynamic_range": ("int8", "float32"),
        "float16": ("float16", "float32"),
        "int8": ("int8", "int8"),
        "int16x8": ("int8", "int16"),
    }
    for name, expected in table.items():
        assert recipes.get(name).precision == expected, name
    assert recipes.aeq("static_wi8_ai16", 8).precision == ("int8", "int16")
    assert recipes.aeq("weight_only_wi4_afp32", 8).precision == ("int4", "float32")
    mixed = dataclasses.replace(recipes.get("int8_fallback"), float_layers=("dense/MatMul",))
    assert mixed.precision == ("int8", "mixed")
