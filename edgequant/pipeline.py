"""The whole study in one call: data -> float training -> each PTQ recipe -> evaluate -> bench ->
report. `tools/pipeline.py` is a thin binary over `run`; notebooks and tests call it directly.

A recipe that fails (for example a full-integer recipe that would keep a float op) is recorded
with its one-line reason and the others still run: the workdir always ends with every result
that could be measured, and `run` reports the failures so the binary exits non-zero.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgequant import atomic, config_check, distribute, progress, rundir, zoo
from edgequant import data as datasets
from edgequant.bench import device_runner, latency
from edgequant.bench import stage as bench_stage
from edgequant.data import calibration
from edgequant.diagnose import stage as diagnose_stage
from edgequant.edgetpu import stage as edgetpu_stage
from edgequant.errors import UserError
from edgequant.evaluate import accuracy
from edgequant.evaluate import artifact as tflite_artifact
from edgequant.quantize import aeq, convert, recipes
from edgequant.report import html, manifest, markdown, plots
from edgequant.search import autoquant
from edgequant.study import Artifact, Study
from edgequant.train import fit, qat_stage

log = logging.getLogger(__name__)


def load_data(config) -> datasets.Dataset:
    """The config's dataset, preprocessed once. The tf.distribute strategy is made first:
    preprocessing runs TF ops, and multi-worker collectives must be configured before any."""
    fit.strategy(config)
    return datasets.load(config.data, tuple(config.model.input_shape), config.seed)


def build_model(config, num_classes: int):
    """The config's model with seeded initial weights (same seed, same model)."""
    fit.set_seed(config.seed)
    # Made first: multi-worker collectives must be set up before any TF op. The model itself is
    # built plain; fit.train trains a copy inside the strategy's scope (see fit.replica).
    fit.strategy(config)
    return zoo.build(
        config.model.name,
        tuple(config.model.input_shape),
        num_classes,
        **config.model.options,
    )


def describe_variant(study: Study, artifact: Artifact) -> dict:
    """Inspects, evaluates and benchmarks one .tflite artifact: one results.json variant entry.

    Every variant, whatever made it (a converter recipe, QAT, another quantizer), goes through
    this one function, so all rows of the comparison are measured the same way.
    """
    path = artifact.path
    info = tflite_artifact.describe(path)
    test = study.data.require("test")
    acc = accuracy.evaluate_tflite(path, study.x_test, test.y, study.config.evaluate.batch_size)
    variant = {
        "name": artifact.name,
        "path": str(path),
        **artifact.extra,
        **info,
        "accuracy": acc.accuracy,
        "eval": acc.to_dict(),
    }
    if study.config.bench.enabled:
        variant.update(latency.measure(path, study.config.bench))
    return variant


def ptq_stage(study: Study, results: dict) -> list[Artifact]:
    """One variant per configured converter recipe; a failing recipe is recorded, not fatal."""
    q = study.config.quantize
    made = []
    for name in progress.track(q.recipes, "variants", unit="variant"):
        recipe = recipes.get(name, q.weights, q.calibration_size)
        try:
            content = convert.convert(study.model, recipe, study.representative)
            path = convert.write(content, recipe, study.workdir)
            made.append(Artifact(recipe.name, path, {"recipe": recipe.to_dict()}))
        except UserError as e:
            log.error("%s", e)
            results["errors"].append({"name": recipe.name, "error": str(e)})
    return made


# Stages after float training, in order. Each takes (study, results), returns the artifacts it
# made (the pipeline measures them), may add its own section or errors to results, and skips
# itself when its config block is absent. To add a stage: write it in its own module, list it.
STAGES = (
    ptq_stage,
    diagnose_stage.diagnose_stage,
    aeq.aeq_stage,
    qat_stage.qat_stage,
    autoquant.autoquant_stage,
    edgetpu_stage.edgetpu_stage,
    bench_stage.devices_stage,
)


def host_info() -> dict:
    """The host's benchmark environment (the same collector the device runner uses)."""
    from importlib import metadata

    return {
        **device_runner.collect_environment(),
        "runtime": "ai-edge-litert",
        "runtime_version": metadata.version("ai-edge-litert"),
    }


def prepare(config, workdir: str | Path, verbose: int = 2) -> tuple[Study, dict]:
    """Loads data, trains the float model and measures it: the start every stage builds on.
    `run` has validated the config before it made the staging folder."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = load_data(config)
    log.info("dataset: %s", data.info())
    model = build_model(config, data.num_classes)
    trained = fit.train(model, data, config, workdir, verbose=verbose)
    widen = config.model.get("widen")
    if widen is not None and widen.factor != 1:  # a hard case: see zoo.widen_activation_range
        zoo.widen_activation_range(
            model, widen.bn_layer, widen.next_conv, widen.channel, widen.factor
        )
        with atomic.target(trained.model_path) as tmp:
            model.save(tmp)
    test = data.require("test")
    float_acc = accuracy.evaluate_keras(model, test.x, test.y, config.evaluate.batch_size)
    representative = calibration.build(
        data.require("train"),
        config.quantize.calibration_size,
        config.seed,
        tuple(config.model.input_shape),
    )
    study = Study(config, workdir, data, model, representative)
    results = {
        "model": config.model.name,
        "float": {
            "path": trained.model_path,
            "accuracy": float_acc.accuracy,
            "n": float_acc.n,
            "val_accuracy": trained.val_accuracy,
            "train_seconds": trained.seconds,
        },
        "variants": [],
        "errors": [],
        "dataset": data.info(),
        "host": host_info(),
    }
    return study, results


def run(config, workdir: str | Path, verbose: int = 2) -> dict:
    """Runs the study; writes results.json, manifest.json, report.md, tradeoff.png.

    A config with `model.path` (configs/deploy.py) names the user's own model: nothing is
    trained, and the run is a deployment (`edgequant.deployment`), written as deploy.json.
    A stage that fails is recorded in results["errors"]; the other stages still run and every
    result that could be measured is written. The workdir is replaced only by a complete run
    (edgequant/rundir.py).
    """
    if config.model.get("path"):
        from edgequant import deployment

        return deployment.run(config, workdir)
    config_check.validate(config)
    # Multi-worker (TF_CONFIG): every worker runs every stage, since training steps are
    # collective, but only the chief writes `workdir`; the others get a temporary folder.
    with (
        distribute.output_dir(workdir) as out,
        rundir.staged(out, inputs=(config.data.dir,)) as staging,
    ):
        study, results = prepare(config, staging, verbose)
        for stage in STAGES:
            try:
                for artifact in stage(study, results) or ():
                    results["variants"].append(describe_variant(study, artifact))
            except (UserError, ValueError, RuntimeError, OSError) as e:
                log.error("stage %s failed: %s", stage.__name__, e)
                results["errors"].append({"name": stage.__name__, "error": str(e).splitlines()[0]})
        results = rundir.relocate(results, staging, out)
        write_outputs(results, config, study.workdir)
    return results


def write_outputs(results: dict, config, workdir: Path) -> None:
    atomic.write_json(workdir / "results.json", results)
    plots.tradeoff(results, workdir / "tradeoff.png")
    man = manifest.build(config, results["dataset"], workdir)
    atomic.write_json(workdir / "manifest.json", man)
    markdown.write(results, man, workdir)
    html.write(workdir)
