"""Second PTQ backend: the AI Edge (LiteRT) Quantizer, which quantizes a float .tflite.

LiteRT's documentation marks quantization inside TFLiteConverter as deprecated in favour of
this tool, so both backends run side by side and land in the same comparison table. Its recipes
are selected by name (`static_wi8_ai8` = int8 weights and activations, `static_wi8_ai16`,
`dynamic_wi8_afp32`, `weight_only_wi4_afp32`, ...). The typed recipe (backend
`ai-edge-quantizer`, the AEQ recipe's name, the calibration size) is written beside the model
as `<name>.recipe.json` by `convert.write`; what a recipe name expands to is fixed by the
ai-edge-quantizer version, which the manifest records.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from edgequant.errors import UserError
from edgequant.quantize import convert, recipes

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
    float_path: str | Path,
    recipe_name: str,
    representative: np.ndarray | dict[str, np.ndarray] | None,
    out_dir: str | Path,
    preprocessing=None,
) -> Path:
    """Quantizes a float .tflite with one AEQ recipe; writes aeq_<recipe>.tflite + .recipe.json.

    `representative` is one array, or {input name: array} (a deployment's calibration set);
    `preprocessing` is embedded in the model when given (see `convert.write`).
    """
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
        if isinstance(representative, dict):
            representative = representative.get(name, next(iter(representative.values())))
        data = {signature: [{name: representative[i : i + 1]} for i in range(len(representative))]}
        calibration = qt.calibrate(data, num_threads=os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        result = qt.quantize(calibration)
        result.export_model(str(Path(tmp) / "m.tflite"), overwrite=True)
        content = (Path(tmp) / "m.tflite").read_bytes()
    n = len(representative) if calibration is not None else 0
    path = convert.write(content, recipes.aeq(recipe_name, n), out_dir, preprocessing)
    return path
