"""Repair: each rewrite keeps the float outputs (exact) or stays within its bound (approximate)
AND removes the op from the real uint8 conversion; tf_keras and Keras 3, functional and
Sequential, .h5 and .keras, through the library and the tool."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgequant.edgetpu import keras_graph, repair
from edgequant.tflite.model import TFLiteModel
from tests.conftest import assert_one_line_error, run_tool

N = 12  # calibration samples: enough for the converter's ranges, cheap to predict


def _samples(model, n: int = N) -> list[np.ndarray]:
    return keras_graph.synthetic_calibration(model, n, seed=1)


def _ops(model, samples) -> list[str]:
    return [op.op for op in TFLiteModel(keras_graph.to_uint8_tflite(model, samples)).operators]


def _tf_keras():
    import tf_keras

    return tf_keras


def _body(k, kind: str, size: int = 8):
    import tensorflow as tf

    L = k.layers
    inputs = k.Input((size, size, 3))
    x = L.Conv2D(4, 3, padding="same", activation="gelu" if kind == "gelu_in_conv" else None)(
        inputs
    )
    if kind == "leaky_relu":
        x = L.LeakyReLU(0.1)(x)
    elif kind == "hard_swish":  # written as layers: the converter fuses it into HARD_SWISH
        s = L.ReLU(6.0)(L.Rescaling(1.0, 3.0)(x))
        x = L.Rescaling(1 / 6)(L.Multiply()([x, s]))
    elif kind == "square":
        x = tf.math.square(x)
    elif kind == "negate":
        x = L.Concatenate()([-x, x])
    elif kind == "divide_const":
        x = L.Add()([x, x]) / 3.0
    elif kind == "mean_to_avg_pool":
        x = L.GlobalAveragePooling2D()(x)
    elif kind == "gelu":
        x = L.Activation("gelu")(x)
    elif kind == "elu":
        x = L.ELU(0.7)(x)
    return k.Model(inputs, x)


# rule -> (op that must disappear, model input size)
EXACT = {
    "leaky_relu": ("LEAKY_RELU", 8),
    "hard_swish": ("HARD_SWISH", 8),
    "square": ("SQUARE", 8),
    "negate": ("NEG", 8),
    # TF 2.21 already turns x / c into MUL; the rewrite serves older converters and stays exact.
    "divide_const": ("DIV", 8),
    "mean_to_avg_pool": ("MEAN", 136),  # 136 x 136 = 18,496 > the 16,384 MEAN rule
}
APPROX = {
    "gelu": ("GELU", 5e-4),
    "gelu_in_conv": ("GELU", 5e-4),  # Conv2D(activation="gelu") is split into conv + GELU form
    "elu": ("ELU", 0.7 * 2e-4),
}  # max abs error of the formula


def _check(model, rule: str, op: str, samples, approximate: bool):
    before = _ops(model, samples)
    result = repair.repair(model, samples, approximate=approximate)
    rules = [r.rule for r in result.rewrites]
    assert rule in rules, result.summary()
    after = _ops(result.model, samples)
    assert op not in after, (before, after)
    if op != "DIV":
        assert op in before, before
    old, new = keras_graph.predict(model, samples), keras_graph.predict(result.model, samples)
    return result, old, new


@pytest.mark.parametrize("rule", list(EXACT))
def test_exact_rewrite_keeps_outputs_and_removes_the_op(rule):
    op, size = EXACT[rule]
    model = _body(_tf_keras(), rule, size)
    samples = _samples(model, 6 if size > 8 else N)
    result, old, new = _check(model, rule, op, samples, approximate=False)
    for a, b in zip(old, new, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))
    applied = next(r for r in result.rewrites if r.rule == rule)
    assert applied.exact and applied.max_rel_error <= 1e-5
    assert result.after.fully_mapped, result.summary()


@pytest.mark.parametrize("rule", list(APPROX))
def test_approximate_rewrite_is_within_its_bound_and_removes_the_op(rule):
    op, bound = APPROX[rule]
    model = _body(_tf_keras(), rule)
    samples = [s * 3 for s in _samples(model)]  # reach the tails where the formulas differ
    rule = rule.replace("_in_conv", "")
    result, old, new = _check(model, rule, op, samples, approximate=True)
    applied = next(r for r in result.rewrites if r.rule == rule)
    assert not applied.exact and 0 < applied.max_abs_error <= bound
    assert max(float(np.abs(a - b).max()) for a, b in zip(old, new, strict=True)) <= bound
    assert result.after.fully_mapped, result.summary()


def test_approximate_rewrites_wait_for_the_flag():
    model = _body(_tf_keras(), "gelu")
    result = repair.repair(model, _samples(model))
    assert "gelu" not in [r.rule for r in result.rewrites]
    assert any("GELU" in s for s in result.skipped) and not result.after.fully_mapped
    assert any("GELU" in c for c in result.after.cpu_ops)


def _demo(k):
    """LeakyReLU, hard-swish written as layers, GELU, a dynamic batch (Input has none)."""
    L = k.layers
    inputs = k.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.LeakyReLU(0.1)(x)
    x = L.Conv2D(8, 3, padding="same")(x)
    s = L.ReLU(6.0)(L.Rescaling(1.0, 3.0)(x))
    x = L.Rescaling(1 / 6)(L.Multiply()([x, s]))
    x = L.Conv2D(8, 3, padding="same")(x)
    x = L.Activation("gelu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return k.Model(inputs, L.Dense(4)(x))


def test_demo_model_goes_to_fully_mapped_with_approximate_in_tf_keras():
    model = _demo(_tf_keras())
    result = repair.repair(model, _samples(model), approximate=True)
    assert not result.before.fully_mapped and any("dynamic-batch" in g for g in result.before.gate)
    assert result.after.fully_mapped and result.after.percent == 100.0, result.summary()
    assert {r.rule for r in result.rewrites} == {
        "dynamic_batch",
        "leaky_relu",
        "hard_swish",
        "gelu",
    }
    assert all(r.max_rel_error <= 1e-5 for r in result.rewrites if r.exact)
    assert keras_graph.input_shapes(result.model) == [(16, 16, 3)]
    assert result.model.inputs[0].shape[0] == 1


@pytest.mark.slow
def test_tool_repairs_a_keras3_file_into_keras3_with_standard_layers(tmp_path):
    import keras

    src, out = tmp_path / "demo.keras", tmp_path / "fixed.keras"
    _demo(keras).save(src)
    proc = run_tool("edgetpu_fix", f"--model={src}", f"--out={out}", "--approximate", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["after"]["percent"] == 100.0 and report["before"]["percent"] < 50
    assert keras_graph.file_flavour(out) == "keras3"
    fixed = keras.models.load_model(out)  # no custom objects needed
    assert {type(layer).__module__.split(".")[0] for layer in fixed.layers} == {"keras"}
    gelu = next(r for r in report["rewrites"] if r["rule"] == "gelu")
    assert 0 < gelu["max_abs_error"] < 1e-3


def test_sequential_models_of_both_flavours_are_repaired(tmp_path):
    import keras

    for k, suffix in ((_tf_keras(), ".h5"), (keras, ".keras")):
        model = k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(4, 3), k.layers.LeakyReLU(0.2)])
        path = tmp_path / f"seq{suffix}"
        model.save(path)
        out = tmp_path / f"seq_fixed{suffix}"
        result = repair.repair_file(path, out, _samples(model))
        assert [r.rule for r in result.rewrites] == ["dynamic_batch", "leaky_relu"]
        assert result.after.fully_mapped, result.summary()
        assert keras_graph.file_flavour(out) == keras_graph.file_flavour(path)


def test_a_format_change_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"must keep the input's format \(.h5\)"):
        repair.repair_file(tmp_path / "m.h5", tmp_path / "m.keras")


def test_tool_missing_model_is_one_line(tmp_path):
    proc = run_tool("edgetpu_fix", f"--model={tmp_path}/x.h5", f"--out={tmp_path}/y.h5")
    assert_one_line_error(proc, "model not found")


def test_tool_calibration_archive_is_one_line(tmp_path):
    """An .npz has no input order to map its arrays by: refused with one line, not a crash."""
    np.savez(tmp_path / "c.npz", a=np.zeros((2, 4), np.float32))
    proc = run_tool(
        "edgetpu_fix", "--model=m.h5", f"--out={tmp_path}/y.h5", f"--calibration={tmp_path}/c.npz"
    )
    assert_one_line_error(proc, "must be one .npy array")


def test_a_layer_shared_by_two_calls_gets_one_replacement_per_call():
    k = _tf_keras()
    inputs, act = k.Input((8, 8, 3)), k.layers.LeakyReLU(0.1)
    x = act(k.layers.Conv2D(4, 3, padding="same")(inputs))
    model = k.Model(inputs, act(k.layers.Conv2D(6, 3, padding="same")(x)))
    result = repair.repair(model, _samples(model))
    assert result.after.fully_mapped and result.rewrites[-1].max_abs_error == 0.0
    assert sum(type(layer).__name__ == "PReLU" for layer in result.model.layers) == 2


def test_keras3_x_times_hard_sigmoid_is_found_through_the_converted_names():
    """Keras 3 scopes layer 'conv2d' as 'conv2d_1' in the converted names (and 'conv2d_1' as
    'conv2d_1_2'): the pattern must resolve to the right layers all the same."""
    import keras

    L = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv2d")(inputs)
    x = L.Multiply()([x, L.Activation("hard_sigmoid")(x)])
    model = keras.Model(inputs, L.Conv2D(4, 3, padding="same", name="conv2d_1")(x))
    samples = _samples(model)
    result, old, new = _check(model, "hard_swish", "HARD_SWISH", samples, approximate=False)
    assert "layers conv2d -> multiply" in result.rewrites[-1].targets[0]
    np.testing.assert_allclose(new[0], old[0], rtol=1e-5, atol=1e-5 * float(np.abs(old[0]).max()))
