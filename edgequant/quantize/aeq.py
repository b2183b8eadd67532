"""Second PTQ backend: the AI Edge (LiteRT) Quantizer, which quantizes a float .tflite.

LiteRT's documentation marks quantization inside TFLiteConverter as deprecated in favour of
this tool, so both backends run side by side and land in the same comparison table. Its recipes
are selected by name (`static_wi8_ai8` = int8 weights and activations, `static_wi8_ai16`,
`dynamic_wi8_afp32`, `weight_only_wi4_afp32`, ...); the recipe it actually applied is written
beside the model as `<name>.recipe.json`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from edgequant import atomic
from edgequant.errors import UserError

log = logging.getLogger(__name__)

RECIPES = (
    "static_wi8_ai8",
    "static_wi8_ai16",
    "dynamic_wi8_afp32",
    "weight_only_wi8_afp32",
    "weight_only_wi4_afp32",
    "dynamic_wi4_afp32",
)


def _signature_input(float_path: str | Path) -> tuple[str, str]:
    from edgequant.evaluate.artifact import load_interpreter

    sigs = load_interpreter(float_path).get_signature_list()
    if not sigs:
        raise UserError(f"{float_path} has no signature; AI Edge Quantizer needs one to calibrate")
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    return key, sigs[key]["inputs"][0]


def quantize(
    float_path: str | Path, recipe_name: str, representative: np.ndarray | None, out_dir: str | Path
) -> Path:
    """Quantizes a float .tflite with one AEQ recipe; writes aeq_<recipe>.tflite + .recipe.json."""
    from ai_edge_quantizer import quantizer, recipe

    if recipe_name not in RECIPES:
        raise ValueError(
            f"unknown AI Edge Quantizer recipe '{recipe_name}'; valid: {', '.join(RECIPES)}"
        )
    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(getattr(recipe, recipe_name)())
    calibration = None
    if qt.need_calibration:
        if representative is None or len(representative) == 0:
            raise UserError(f"AEQ recipe {recipe_name} needs calibration data")
        signature, name = _signature_input(float_path)
        data = {signature: [{name: representative[i : i + 1]} for i in range(len(representative))]}
        calibration = qt.calibrate(data, num_threads=os.cpu_count() or 1)
    out_dir = Path(out_dir)
    stem = f"aeq_{recipe_name}"
    with tempfile.TemporaryDirectory() as tmp:
        result = qt.quantize(calibration)
        result.export_model(str(Path(tmp) / "m.tflite"), overwrite=True)
        content = (Path(tmp) / "m.tflite").read_bytes()
    path = out_dir / f"{stem}.tflite"
    atomic.write_bytes(path, content)
    atomic.write_text(
        out_dir / f"{stem}.recipe.json",
        json.dumps(
            {
                "name": stem,
                "backend": "ai-edge-quantizer",
                "recipe": recipe_name,
                "calibration_size": len(representative) if calibration is not None else 0,
                "quantization_recipe": qt.get_quantization_recipe(),
            },
            indent=1,
            default=str,
        ),
    )
    return path


def aeq_stage(study, results: dict) -> list:
    """One variant per configured AEQ recipe, quantizing the pipeline's fp32 artifact."""
    from edgequant.quantize import convert, recipes
    from edgequant.study import Artifact

    names = tuple(study.config.quantize.get("aeq_recipes", ()) or ())
    made = []

    fp32 = recipes.get("fp32")
    float_path = Path(study.workdir) / f"{fp32.name}.tflite"
    if not float_path.is_file():
        convert.write(convert.convert(study.model, fp32), fp32, study.workdir)
    for name in names:
        try:
            path = quantize(
                float_path,
                name,
                study.representative[: study.config.quantize.calibration_size],
                study.workdir,
            )
            made.append(
                Artifact(
                    path.stem,
                    path,
                    {
                        "backend": "ai-edge-quantizer",
                        "recipe": {"name": path.stem, "aeq_recipe": name},
                    },
                )
            )
        except (UserError, ValueError, RuntimeError) as e:
            log.error("AEQ %s: %s", name, e)
            results["errors"].append({"name": f"aeq_{name}", "error": str(e).splitlines()[0]})
    return made
