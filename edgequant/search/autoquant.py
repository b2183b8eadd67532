"""Finds the cheapest quantization that meets an accuracy target, the way users are told to.

Steps, in order of cost: PTQ as configured -> a larger calibration set -> the other weight
granularity (per-tensor <-> per-channel) -> keeping the k worst layers in float (CPU targets
only: the Edge TPU needs full-integer uint8) -> QAT for N epochs. Each trial is judged on the
VALIDATION split (the test split is never used for a choice) against `max_drop_pp` percentage
points below the float model; the first trial that meets it wins. Every trial is appended to
`autoquant.jsonl` with its typed recipe, and each trial's model lands in `autoquant/` beside its
`<trial>.recipe.json`; the winner (or, if none meets the target, the best) is written as
`autoquant_best.tflite` with its recipe, and only then measured on the test split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from edgequant.data import calibration
from edgequant.evaluate import accuracy
from edgequant.quantize import convert, recipes
from edgequant.study import Artifact

log = logging.getLogger(__name__)
TARGETS = ("edgetpu", "cpu")


@dataclasses.dataclass(frozen=True)
class Trial:
    step: str
    description: str
    recipe: dict  # the trial's recipes.Recipe as a dict (name = the trial file's stem)
    path: str
    val_accuracy: float
    drop_pp: float
    meets_target: bool


def _other(weights: str) -> str:
    return "per_tensor" if weights == "per_channel" else "per_channel"


def candidates(study, cfg) -> Iterator[tuple[str, str, recipes.Recipe, Callable[[], bytes]]]:
    """(step, description, recipe, make() -> .tflite bytes) in order of cost."""
    q = study.config.quantize
    mode = "uint8" if cfg.target == "edgetpu" else "int8"
    train = study.data.require("train")

    def ptq(weights: str, size: int):
        rep = calibration.build(train, size, study.config.seed, study.input_shape)
        recipe = recipes.get(mode, weights, size)

        def make() -> bytes:
            return convert.convert(study.model, recipe, rep)

        return recipe, make

    big = min(cfg.large_calibration_size, len(train))
    yield (
        "ptq",
        f"PTQ {mode} {q.weights}, {q.calibration_size} calibration samples",
        *ptq(q.weights, q.calibration_size),
    )
    yield (
        "calibration",
        f"PTQ {mode} {q.weights}, {big} calibration samples",
        *ptq(q.weights, big),
    )
    yield (
        "granularity",
        f"PTQ {mode} {_other(q.weights)}, {big} calibration samples",
        *ptq(_other(q.weights), big),
    )
    if cfg.target == "cpu":
        from edgequant.diagnose import layers

        rep = calibration.build(train, big, study.config.seed, study.input_shape)
        x_val = study.data.require("val").x[:64]
        errors = layers.layer_errors(study.model, rep, x_val, q.weights)
        for k in range(1, cfg.max_float_layers + 1):
            names = [e.tensor_name for e in errors[:k]]

            def make(names=names) -> bytes:
                return layers.denylisted_model(study.model, rep, x_val, names, q.weights)

            recipe = recipes.mixed(names, q.weights, big)
            yield ("float_layers", f"int8 with the {k} worst layer(s) in float", recipe, make)
    if cfg.qat_epochs:
        qat_recipe = dataclasses.replace(
            recipes.get(mode, q.weights, big),
            qat=recipes.QatSettings(
                cfg.qat_epochs, cfg.qat_learning_rate, per_tensor=q.weights == "per_tensor"
            ),
        )

        def make_qat() -> bytes:
            from edgequant.train import qat

            model = qat.apply(qat.annotate(study.model), q.weights == "per_tensor")
            qat.fine_tune(
                model,
                study.data,
                study.config,
                study.workdir,
                epochs=cfg.qat_epochs,
                verbose=0,
                log_name="autoquant_qat",
                learning_rate=cfg.qat_learning_rate,
            )
            rep = calibration.build(train, big, study.config.seed, study.input_shape)
            return convert.convert(model, qat_recipe, rep)

        yield ("qat", f"QAT {cfg.qat_epochs} epoch(s), then {mode}", qat_recipe, make_qat)


def search(study, cfg) -> dict:
    """Runs the steps until one meets the target or the budget is spent."""
    if cfg.target not in TARGETS:
        raise ValueError(f"unknown autoquant target '{cfg.target}'; valid: {', '.join(TARGETS)}")
    out_dir = Path(study.workdir) / "autoquant"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(study.workdir) / "autoquant.jsonl"
    val = study.data.require("val")
    x_val = val.x
    batch_size = study.config.evaluate.batch_size
    float_val = accuracy.evaluate_keras(study.model, x_val, val.y, batch_size).accuracy
    trials: list[Trial] = []
    for i, (step, desc, recipe, make) in enumerate(candidates(study, cfg)):
        if i >= cfg.max_trials:
            log.warning("autoquant: budget of %d trials spent", cfg.max_trials)
            break
        recipe = dataclasses.replace(recipe, name=f"trial{i}_{step}", note=f"autoquant: {desc}")
        path = convert.write(make(), recipe, out_dir)
        acc = accuracy.evaluate_tflite(path, x_val, val.y, batch_size).accuracy
        drop = 100 * (float_val - acc)
        trial = Trial(step, desc, recipe.to_dict(), str(path), acc, drop, drop <= cfg.max_drop_pp)
        trials.append(trial)
        # The run is staged in another folder (rundir.staged): the log names the trial's model
        # relative to the workdir, which stays true after the swap.
        record = {
            "trial": i,
            **dataclasses.asdict(trial),
            "path": path.relative_to(study.workdir).as_posix(),
            "float_val_accuracy": float_val,
        }
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("autoquant trial %d (%s): val drop %.2f pp", i, desc, drop)
        if trial.meets_target:
            break
    best = next((t for t in trials if t.meets_target), None) or max(
        trials, key=lambda t: t.val_accuracy
    )
    best_recipe = dataclasses.replace(
        recipes.Recipe.from_dict(best.recipe),
        name="autoquant_best",
        note=f"autoquant winner, step '{best.step}': {best.description}",
    )
    final = convert.write(Path(best.path).read_bytes(), best_recipe, study.workdir)
    met = best.meets_target
    summary = (
        f"Target: at most {cfg.max_drop_pp} pp below float on the validation split ({cfg.target}). "
        + (
            f"Met at trial {trials.index(best)} by step '{best.step}' ({best.description}): "
            f"{best.drop_pp:.2f} pp."
            if met
            else f"Not met in {len(trials)} trial(s); kept the best: {best.description} ({best.drop_pp:.2f} pp)."
        )
    )
    return {
        "target": cfg.target,
        "max_drop_pp": cfg.max_drop_pp,
        "float_val_accuracy": float_val,
        "met": met,
        "winner": dataclasses.asdict(best),
        "trials": [dataclasses.asdict(t) for t in trials],
        "path": str(final),
        "recipe": best_recipe.to_dict(),
        "summary": summary,
    }


def autoquant_stage(study, results: dict) -> list[Artifact]:
    cfg = study.config.get("autoquant")
    if cfg is None or not cfg.enabled:
        return []
    result = search(study, cfg)
    results["autoquant"] = result
    return [Artifact("autoquant_best", Path(result["path"]), {"recipe": result["recipe"]})]
