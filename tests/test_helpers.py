"""Unit tests of small numeric and bookkeeping helpers that every bigger path leans on."""

import json

import numpy as np
import pytest

from edgequant import tensors
from edgequant.bench import compare, store


def test_quantize_rounds_to_nearest_and_adds_the_zero_point():
    x = np.array([0.0, 0.24, 0.26, 1.0, -1.0], np.float32)
    q = tensors.quantize(x, 0.5, 10, np.int8)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [10, 10, 11, 12, 8])


def test_quantize_saturates_instead_of_wrapping():
    x = np.array([-1000.0, 1000.0], np.float32)
    np.testing.assert_array_equal(tensors.quantize(x, 1.0, 0, np.int8), [-128, 127])
    np.testing.assert_array_equal(tensors.quantize(x, 1.0, 128, np.uint8), [0, 255])
    np.testing.assert_array_equal(tensors.quantize(x, 1.0, 0, np.int16), [-1000, 1000])
    np.testing.assert_array_equal(tensors.quantize(x * 100, 1.0, 0, np.int16), [-32768, 32767])


def test_dequantize_uint8_below_the_zero_point_does_not_wrap_around():
    q = np.array([0, 127, 128, 255], np.uint8)
    got = tensors.dequantize(q, 0.5, 128)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [-64.0, -0.5, 0.0, 63.5])


def test_quantize_then_dequantize_is_within_half_a_step():
    rng = np.random.default_rng(0)
    scale, zp = 0.02, -3
    x = rng.uniform(-2.5, 2.5, 1000).astype(np.float32)
    back = tensors.dequantize(tensors.quantize(x, scale, zp, np.int8), scale, zp)
    assert np.max(np.abs(back - x)) <= scale / 2 + 1e-6


def _latency(model: str, device: str, p50: float) -> dict:
    return {"model": model, "device": device, "latency_ms": {"p50": p50}}


def test_reference_check_flags_only_numbers_outside_the_tolerance(tmp_path):
    csv = tmp_path / "reference.csv"
    csv.write_text("model,device,p50_ms\na,board,10.0\nb,board,10.0\nc,host,2.0\n")
    records = [
        _latency("a", "board", 10.9),  # within 10 %
        _latency("b", "board", 11.5),  # 15 % slow
        {"model": "c", "latency_ms": {"p50": 1.0}},  # no device: host; 2x fast is also wrong
        _latency("d", "board", 5.0),  # no reference row: no verdict
        {"model": "a", "device": "board", "error": "ssh failed"},  # errors have no number
        {"model": "a", "device": "board", "emulated": {"label": "qemu"}},  # no latency
    ]
    got = compare.check_reference(records, csv, tolerance=0.1)
    assert [(v["model"], v["device"], v["ok"]) for v in got] == [
        ("a", "board", True),
        ("b", "board", False),
        ("c", "host", False),
    ]
    assert got[0]["reference_ms"] == 10.0 and got[0]["ratio"] == pytest.approx(1.09)
    assert compare.check_reference(records[1:2], csv, tolerance=0.2)[0]["ok"]


def _torn_store(tmp_path) -> tuple[store.ResultsStore, dict]:
    path = tmp_path / "results.jsonl"
    first = {"key": store.key("aa", "board", {"threads": 1}), "latency_ms": {"p50": 1.0}}
    path.write_text(json.dumps(first) + "\n" + '{"key": "half-writ')  # killed mid-write
    return store.ResultsStore(path), first


def test_results_store_skips_a_torn_last_line(tmp_path):
    results, first = _torn_store(tmp_path)
    assert results.records() == [first]
    assert results.done() == {first["key"]}
    assert results.latest() == {first["key"]: first}
    assert results.append(first) is False  # the whole line before the tear still counts
    assert results.records() == [first]


def test_results_store_appends_after_a_torn_last_line(tmp_path):
    results, first = _torn_store(tmp_path)
    second = {"key": store.key("bb", "board", {"threads": 1}), "latency_ms": {"p50": 2.0}}
    assert results.append(second) is True
    assert results.records() == [first, second]
    assert store.ResultsStore(results.path).done() == {first["key"], second["key"]}
