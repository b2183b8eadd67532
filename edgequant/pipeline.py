"""The study in one call: train a zoo model on a registered dataset, then deploy it.

    config -> dataset (registry) -> zoo model -> float training (float.keras, history.json)
      -> the one flow Study (calibration = train split, validation = val split,
         evaluation = the labelled test split, train = train split)
      -> flow.run.execute: the same stages, measurement and bundle as a user's deployment

`tools/pipeline.py` is a thin binary over `run`; notebooks and tests call it directly. A config
with `model.path` (configs/deploy.py) names the user's own model: nothing is trained and the
run is `flow.run.run`. Either way the folder holds one bundle format: deploy.json,
manifest.json, report.md and report.html.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgequant import atomic, config_check, datasets, distribute, rundir, usermodel, zoo
from edgequant.data import sources
from edgequant.data.dataset import Dataset
from edgequant.flow import run as flow_run
from edgequant.flow.measure import budget_keys
from edgequant.flow.prepare import capped, classes, unused_budget
from edgequant.flow.study import Study
from edgequant.train import fit

log = logging.getLogger(__name__)


def load_data(config) -> Dataset:
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


def study_of(config, out_dir: Path, data: Dataset, model, trained: dict) -> Study:
    """The flow's Study for a model the study trained: the registry's splits in their roles
    (calibration and QAT on train, choices on val, the report on the labelled test split)."""
    user_model = usermodel.from_keras(model, trained["path"], "tf_keras")

    def split(which: str, role: str) -> sources.Split:
        part = data.require(which).renamed(user_model.input_names)
        return sources.Split(part.source, part.indices, role)

    calibration = split("train", "calibration")
    cal_set = calibration.subset(config.quantize.calibration_size, config.seed, "calibration set")
    samples, _ = cal_set.arrays()
    evaluation = capped(config, split("test", "evaluation"))
    labels_output, class_names = classes(user_model, evaluation.source, evaluation)
    study = Study(
        config,
        out_dir,
        user_model,
        calibration,
        evaluation,
        split("val", "validation"),
        samples,
        datasets.preprocessing(tuple(config.model.input_shape)),
        labels_output,
        class_names,
        train=split("train", "train"),
        trained=trained,
    )
    study.warnings += unused_budget(config, budget_keys(study))
    return study


def train(config, out_dir: Path, verbose: int = 2) -> tuple[Dataset, object, dict]:
    """Loads the data and trains the float model into `out_dir` (float.keras, history.json)."""
    data = load_data(config)
    log.info("dataset: %s", data.info())
    model = build_model(config, data.num_classes)
    result = fit.train(model, data, config, out_dir, verbose=verbose)
    widen = config.model.get("widen")
    if widen is not None and widen.factor != 1:  # a hard case: see zoo.widen_activation_range
        zoo.widen_activation_range(
            model, widen.bn_layer, widen.next_conv, widen.channel, widen.factor
        )
        with distribute.output_dir(out_dir) as out, atomic.target(out / "float.keras") as tmp:
            model.save(tmp)
    trained = {
        "model": config.model.name,
        "path": result.model_path,
        "val_accuracy": result.val_accuracy,
        "train_seconds": result.seconds,
        "epochs": len(result.history.get("loss", [])),
        "history": "history.json",
        "dataset": data.info(),
    }
    return data, model, trained


# The study's stages are the flow's own (plain, diagnose, qat, recovery): one list for every run.
STAGES = flow_run.STAGES


def run(config, workdir: str | Path, verbose: int = 2) -> dict:
    """Trains the config's model and deploys it; returns deploy.json (also written).

    Every stage that fails is one line in result["errors"]; the others still run and every
    result that could be measured is written. The workdir is replaced only by a complete run
    (edgequant/rundir.py). Multi-worker (TF_CONFIG): every worker runs every stage, since
    training steps are collective, but only the chief writes `workdir`; the others get a
    temporary folder.
    """
    if config.model.get("path"):
        return flow_run.run(config, workdir)
    config_check.validate(config)
    with (
        distribute.output_dir(workdir) as out,
        rundir.staged(out, inputs=(config.data.dir,)) as staging,
    ):
        data, model, trained = train(config, staging, verbose)
        study = study_of(config, staging, data, model, trained)
        return flow_run.execute(study, out, stages=STAGES)


def failures(result: dict) -> list[str]:
    """One line per failed stage, variant or device run (the flow records each in
    result["errors"]): the binary exits non-zero on any."""
    return [f"{e['name']}: {e['error']}" for e in result.get("errors", [])]
