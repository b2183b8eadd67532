"""Recovery on a model plain int8 cannot quantize: a regression net whose hidden activations
carry a large offset (unnormalized sensor features) that cancels in the output."""

from __future__ import annotations

import numpy as np
import pytest

import edgequant


def offset_regressor(offset: float = 1000.0):
    """y = sum(x) computed as relu(2x + offset) - relu(x + offset): exact in float, but the
    hidden layer spans ~[offset - 5, offset + 5], so an 8-bit activation step (~offset/128)
    is larger than the whole signal. 16-bit activations, or that layer kept in float, fix it."""
    import tf_keras as keras

    inp = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="offset_hidden")(inp)
    out = keras.layers.Dense(1, name="estimate")(hidden)
    model = keras.Model(inp, out)
    eye = np.eye(4, dtype=np.float32)
    model.get_layer("offset_hidden").set_weights(
        [np.concatenate([eye, 2 * eye], axis=1), np.full(8, offset, np.float32)]
    )
    model.get_layer("estimate").set_weights(
        [np.array([[-1.0]] * 4 + [[1.0]] * 4, np.float32), np.zeros(1, np.float32)]
    )
    return model


@pytest.mark.slow
def test_recovery_lifts_a_model_int8_cannot_quantize_above_the_sqnr_budget(tmp_path):
    offset_regressor().save(tmp_path / "regressor.keras")
    x = np.random.default_rng(0).normal(size=(1500, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", x)
    result = edgequant.deploy(
        tmp_path / "regressor.keras",
        tmp_path / "features.npy",
        tmp_path / "out",
        target="cpu",
        **{"quantize.recipes": ("int8",), "bench.enabled": False},
    )
    by_name = {v["name"]: v for v in result["variants"]}
    plain = by_name["int8"]["metrics"]["sqnr_db"]["estimate"]
    assert plain < 15, plain  # the hard case really is hard
    steps = [t["step"] for t in result["recovery"]]
    assert steps[0] == "plain" and not result["recovery"][0]["meets_budget"]
    winner = by_name[result["recommended"]]
    assert winner["step"] != "plain" and winner["activations"] in ("int16", "mixed")
    assert winner["metrics"]["sqnr_db"]["estimate"] >= 20
    assert winner["within_budget"]
