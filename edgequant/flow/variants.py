"""Variants: what to build (Candidate), building it, and the one variant entry (describe).

Every .tflite the flow makes goes through `convert.write` (its typed recipe beside it) and
becomes a deploy.json variant through `describe`, whichever stage made it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgequant.evaluate import artifact
from edgequant.flow.study import Study
from edgequant.quantize import aeq, convert, recipes


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A variant to build: a converter recipe (or AEQ recipe) and why it is tried."""

    name: str
    recipe: recipes.Recipe | None
    aeq_recipe: str | None = None
    samples: int | None = None  # calibration samples (None: the configured size)
    step: str = "plain"
    denylist: tuple[str, ...] = ()  # layers kept in float
    worst_k: int = 0  # recovery: keep the k worst layers in float (resolved into `denylist`)


def plain_candidates(study: Study) -> list[Candidate]:
    q = study.config.quantize
    if study.model.format == "tflite":
        return [Candidate(f"aeq_{r}", None, r) for r in q.aeq_recipes]
    names = ("uint8",) if study.config.target == "edgetpu" else tuple(q.recipes)
    out = [
        Candidate(r.name, r) for r in (recipes.get(n, q.weights, q.calibration_size) for n in names)
    ]
    if study.config.target == "cpu":
        out += [Candidate(f"aeq_{r}", None, r) for r in q.aeq_recipes]
    return out


def float_path(study: Study) -> Path:
    """The float reference: the fp32 conversion of the model (or the user's float .tflite)."""
    if study.model.format == "tflite":
        return Path(study.model.path)
    path = study.out_dir / "fp32.tflite"
    if not path.is_file():
        recipe = recipes.get("fp32")
        content = convert.convert(study.model, recipe)
        convert.write(content, recipe, study.out_dir, study.preprocessing)
    return path


def build(study: Study, c: Candidate) -> dict:
    """Converts one candidate and describes it (not yet measured)."""
    samples = study.samples
    if c.samples is not None and c.samples != len(next(iter(samples.values()))):
        samples, _ = study.calibration.subset(c.samples, study.config.seed, "calibration").arrays()
    n = len(next(iter(samples.values())))
    if c.aeq_recipe:
        path = aeq.quantize(
            float_path(study), c.aeq_recipe, samples, study.out_dir, study.preprocessing
        )
        recipe = convert.read_recipe(path)
    elif c.denylist:
        from edgequant.diagnose import layers

        # denylisted_model debugs on the first 8 samples itself
        content = layers.denylisted_model(
            study.model, samples, samples, list(c.denylist), c.recipe.weights.value
        )
        recipe = dataclasses.replace(
            recipes.mixed(c.denylist, c.recipe.weights.value, n, c.step), name=c.name
        )
        path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    else:
        recipe = dataclasses.replace(c.recipe, name=c.name, calibration_size=n)
        content = convert.convert(study.model, recipe, samples)
        path = convert.write(content, recipe, study.out_dir, study.preprocessing)
    # A recipe with integer activations may still keep float ops it could not quantize
    # (int8_fallback, an AI Edge Quantizer recipe over SQUARE/NEG): the variant is "mixed".
    integer = recipe.precision[1] in ("int8", "int16")
    mixed = integer and bool(convert.float_ops(Path(path).read_bytes()))
    return describe(c.name, path, recipe, n, c.step, mixed)


def describe(name, path, recipe: recipes.Recipe, n: int, step: str, mixed: bool = False) -> dict:
    """A variant entry of deploy.json, before measurement (the recipe as its dict). `mixed`:
    float ops remain that the recipe did not ask for (int8_fallback's fallback)."""
    info = artifact.describe(path)
    weights, activations = recipe.precision
    activations = "mixed" if mixed else activations
    full_integer = info["input_dtype"] in ("uint8", "int8") and activations in ("int8", "int16")
    return {
        "name": name,
        "path": str(path),
        "target": "edgetpu" if info["input_dtype"] == "uint8" and full_integer else "cpu",
        "input_dtype": info["input_dtype"],
        "output_dtype": info["output_dtype"],
        "size_bytes": info["size_bytes"],
        "weights": weights,
        "activations": activations,
        "calibration_samples": n,
        "step": step,
        "recipe": recipe.to_dict(),
        "op_histogram": info["op_histogram"],
        "gate": None,
        "edgetpu": None,
        "latency_ms": None,
    }
