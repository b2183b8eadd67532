"""The one flow's two doors, for tests that must hold through both: the study's (the model it
trained and the dataset registry's splits) and a user's deployment (files on disk).

Each returns the flow's Study for the conftest's tiny model and digits, with `overrides`
(dotted config keys) applied before the Study is made, as a flag would be.
"""

from __future__ import annotations

import numpy as np

DOORS = ("study", "deployment")


def qat_config(config):
    from ml_collections import ConfigDict

    config.qat = ConfigDict(
        {"enabled": True, "epochs": 1, "learning_rate": 2e-4, "layers": ("*",),
         "noop_layers": (), "nbit": ()}
    )  # fmt: skip
    return config


def study_door(tiny_model, prepared, tmp_path, overrides: dict | None = None):
    """The study's door: the model it trained and the registry's splits."""
    from edgequant import pipeline, workspace

    config = qat_config(workspace.config_module("test").get_config())
    config.update_from_flattened_dict(overrides or {})
    trained = {"path": str(tmp_path / "float.keras")}
    return pipeline.study_of(config, tmp_path, prepared, tiny_model, trained)


def deployment_door(tiny_model, digits, tmp_path, overrides: dict | None = None):
    """The user's door: a saved model, calibration data and labelled training data as files."""
    from edgequant import workspace
    from edgequant.flow.prepare import prepare
    from tests.conftest import ready

    tiny_model.save(tmp_path / "cnn.keras")
    np.savez(tmp_path / "train.npz", x=ready(digits.train.x[:1000]), labels=digits.train.y[:1000])
    np.savez(tmp_path / "calib.npz", x=ready(digits.val.x), labels=digits.val.y)
    config = qat_config(workspace.config("deploy"))
    config.target = "cpu"  # both full-integer forms, as the study (an Edge TPU run: qat_uint8)
    config.model.path = str(tmp_path / "cnn.keras")
    config.data.path = str(tmp_path / "calib.npz")
    config.recovery.train_data = str(tmp_path / "train.npz")
    config.update_from_flattened_dict(overrides or {})
    return prepare(config, tmp_path / "out")


def open_door(door: str, tiny_model, digits, prepared, tmp_path, overrides: dict | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if door == "study":
        return study_door(tiny_model, prepared, tmp_path, overrides)
    return deployment_door(tiny_model, digits, tmp_path, overrides)
