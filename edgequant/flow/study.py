"""Study: everything the flow's stages share, and the stage protocol.

A stage is a function

    stage(study: Study, result: dict) -> list[dict]

that returns the NEW variant entries it built (each made by `variants.describe`, so every
variant in deploy.json has the same keys), appends them to nothing itself, and records each
failure as a one-line `{"name": ..., "error": ...}` in `result["errors"]` instead of raising:
one failing variant never loses the others. `result` is the deploy.json being built; a stage
may add its own section to it (e.g. `result["recovery"]`, `result["qat"]`). `run.STAGES`
lists the stages in the order they run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgequant import usermodel
from edgequant.data import preprocess, sources


@dataclasses.dataclass
class Study:
    """Everything a deployment shares: config, model, data splits, spec, what training made."""

    config: object
    out_dir: Path  # the staging folder every artifact is written into
    model: usermodel.UserModel
    calibration: sources.Split
    evaluation: sources.Split  # only reports; never used for a choice
    validation: sources.Split  # calibration-side data not in the calibration set: for choices
    samples: dict[str, np.ndarray]  # the calibration set, by input name
    preprocessing: preprocess.Preprocessing | None
    labels_output: str | None
    class_names: list[str] | None
    warnings: list[str] = dataclasses.field(default_factory=list)
    repair: dict | None = None  # what --fix rewrote (edgetpu/repair.py), before and after
    train: sources.Split | None = None  # labelled training data (QAT), when there is some
    trained: dict | None = None  # what a training run produced (the study's train stage)
    task: object | None = None  # detection/segmentation: flow/tasks.TaskSetup

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0
