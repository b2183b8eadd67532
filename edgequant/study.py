"""What the pipeline's stages share (`Study`) and what each gives back (`Artifact`).

A stage is `stage(study, results) -> list[Artifact]`: it makes .tflite files and returns them,
and the pipeline measures every artifact the same way (`pipeline.describe_variant`). Stages
never import the pipeline, so the dependency runs one way: pipeline -> stages -> study.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgequant.data.dataset import Dataset


@dataclasses.dataclass(frozen=True)
class Study:
    """Config, workdir, the preprocessed data, the trained float model and its calibration set."""

    config: object
    workdir: Path
    data: Dataset
    model: object  # the trained float tf_keras model
    representative: np.ndarray  # calibration samples from the training split

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.model.input_shape)

    @property
    def x_test(self) -> np.ndarray:
        return self.data.require("test").x


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A .tflite a stage made, with what the stage knows about it (recipe, notes)."""

    name: str
    path: Path
    extra: dict = dataclasses.field(default_factory=dict)
