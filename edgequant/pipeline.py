"""The whole study in one call: data -> float training -> each PTQ recipe -> evaluate -> bench ->
report. `tools/pipeline.py` is a thin binary over `run`; notebooks and tests call it directly.

A recipe that fails (for example a full-integer recipe that would keep a float op) is recorded
with its one-line reason and the others still run: the workdir always ends with every result
that could be measured, and `run` reports the failures so the binary exits non-zero.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import models
from edgequant import atomic, config_check, progress, rundir
from edgequant.bench import device_runner
from edgequant.bench import stage as bench_stage
from edgequant.cli import UserError
from edgequant.data import calibration, mnist
from edgequant.diagnose import stage as diagnose_stage
from edgequant.edgetpu import stage as edgetpu_stage
from edgequant.evaluate import accuracy, inspect
from edgequant.quantize import aeq, convert, recipes
from edgequant.report import html, manifest, markdown, plots
from edgequant.search import autoquant
from edgequant.train import fit, qat_stage

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Study:
    """What the stages share: config, data, the float model and its preprocessed splits."""

    config: object
    workdir: Path
    data: mnist.Dataset
    model: object = None  # the trained float tf_keras model
    x_test: object = None  # preprocessed test images (labels: data.test.y)
    representative: object = None  # calibration samples from the training split

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.model.input_shape)


def load_data(config) -> mnist.Dataset:
    d = config.data
    if d.name != "mnist":
        raise ValueError(f"unknown dataset '{d.name}'; valid datasets: mnist")
    return mnist.load(d.dir, d.download, config.seed, d.val_fraction)


def build_model(config):
    """The config's model with seeded initial weights (same seed, same model)."""
    fit.set_seed(config.seed)
    with fit.strategy(config).scope():
        return models.build(
            config.model.name,
            tuple(config.model.input_shape),
            mnist.NUM_CLASSES,
            **config.model.options,
        )


def measure_latency(path: str | Path, bench_cfg) -> list[dict]:
    """Host latency at each configured thread count (0 = all cores), warm-up excluded."""
    runs = []
    for threads in bench_cfg.threads:
        n = threads or os.cpu_count()
        r = device_runner.benchmark(
            str(path),
            runtime="litert",
            num_threads=n,
            num_runs=bench_cfg.num_runs,
            min_secs=bench_cfg.min_secs,
            warmup_runs=bench_cfg.warmup_runs,
        )
        runs.append(
            {
                "threads": n,
                "latency_ms": r["latency_ms"],
                "init_ms": r["init_ms"],
                "first_invoke_ms": r["first_invoke_ms"],
                "runtime": r["runtime"],
                "runtime_version": r["runtime_version"],
            }
        )
    return runs


def describe_variant(study: Study, name: str, path: str | Path, **extra) -> dict:
    """Inspects, evaluates and benchmarks one .tflite artifact: one results.json variant entry.

    Every variant, whatever made it (a converter recipe, QAT, another quantizer), goes through
    this one function, so all rows of the comparison are measured the same way.
    """
    info = inspect.describe(path)
    test = study.data.require("test")
    acc = accuracy.evaluate_tflite(path, study.x_test, test.y, study.config.evaluate.batch_size)
    variant = {
        "name": name,
        "path": str(path),
        **extra,
        **info,
        "accuracy": acc.accuracy,
        "eval": acc.to_dict(),
    }
    if study.config.bench.enabled:
        runs = measure_latency(path, study.config.bench)
        variant["latency_runs"] = runs
        variant["latency_ms"] = {
            **{k: runs[0]["latency_ms"][k] for k in ("p50", "p90", "p99")},
            "threads": runs[0]["threads"],
        }
    return variant


def ptq_stage(study: Study, results: dict) -> None:
    """One variant per configured converter recipe; a failing recipe is recorded, not fatal."""
    q = study.config.quantize
    for name in progress.track(q.recipes, "variants", unit="variant"):
        recipe = recipes.get(name, q.weights, q.calibration_size)
        try:
            content = convert.convert(study.model, recipe, study.representative)
            path = convert.write(content, recipe, study.workdir)
            results["variants"].append(
                describe_variant(study, recipe.name, path, recipe=recipe.to_dict())
            )
        except UserError as e:
            log.error("%s", e)
            results["errors"].append({"name": recipe.name, "error": str(e)})


# Stages after float training, in order. Each takes (study, results), appends to
# results["variants"] / results["errors"] or adds its own section, and skips itself when its
# config block is absent. To add a stage: write it in its own module and list it here.
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
    """Loads data, trains the float model and measures it: the start every stage builds on."""
    config_check.validate(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    study = Study(config, workdir, load_data(config))
    log.info("dataset: %s", study.data.info())
    study.model = build_model(config)
    trained = fit.train(study.model, study.data, config, workdir, verbose=verbose)
    widen = config.model.get("widen")
    if widen is not None and widen.factor != 1:  # a hard case: see models.widen_activation_range
        models.widen_activation_range(
            study.model, widen.bn_layer, widen.next_conv, widen.channel, widen.factor
        )
        with atomic.target(trained.model_path) as tmp:
            study.model.save(tmp)
    test = study.data.require("test")
    study.x_test = mnist.preprocess(test.x, study.input_shape)
    float_acc = accuracy.evaluate_keras(
        study.model, study.x_test, test.y, config.evaluate.batch_size
    )
    study.representative = calibration.build(
        study.data.require("train"),
        config.quantize.calibration_size,
        config.seed,
        study.input_shape,
    )
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
        "dataset": study.data.info(),
        "host": host_info(),
    }
    return study, results


def run(config, workdir: str | Path, verbose: int = 2) -> dict:
    """Runs the study; writes results.json, manifest.json, report.md, tradeoff.png."""
    config_check.validate(config)
    with rundir.staged(workdir) as staging:  # the workdir is replaced only by a complete run
        study, results = prepare(config, staging, verbose)
        for stage in STAGES:
            stage(study, results)
        results = rundir.relocate(results, staging, workdir)
        write_outputs(results, config, study.workdir)
    return results


def write_outputs(results: dict, config, workdir: Path) -> None:
    atomic.write_json(workdir / "results.json", results)
    plots.tradeoff(results, workdir / "tradeoff.png")
    man = manifest.build(config, results["dataset"], workdir)
    atomic.write_json(workdir / "manifest.json", man)
    markdown.write(results, man, workdir)
    html.write(workdir)
