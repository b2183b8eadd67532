"""Parameter-cache prediction against the real compiler: the parameter bytes inside compiled
Coral models, and the cache lines of every real compiler log in tests/data."""

from pathlib import Path

import pytest

from edgequant.edgetpu import cache, compiler_log, validate

DATA = Path(__file__).parent / "data"
CNN_PAIRS = ["deeplabv3_mnv2_dm05_pascal_quant", "mobilenet_v1_0.25_128_quant"]
LOGS = ["f1", "f5", "f7", "f8", "f9"]  # the logs that carry "On-chip memory" lines


def test_compiled_models_carry_their_parameter_bytes(coral_dir):
    got = cache.compiled_parameter_bytes(coral_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert got["caching"] == 566_912 and got["execution_only"] == 0


@pytest.mark.parametrize("name", CNN_PAIRS)
def test_predicted_parameter_bytes_are_within_6_percent_of_the_compiled_cache(name, coral_dir):
    real = cache.compiled_parameter_bytes(coral_dir / f"{name}_edgetpu.tflite")["caching"]
    predicted = cache.predict_cache(coral_dir / f"{name}.tflite")
    assert abs(predicted.parameter_bytes / real - 1) < 0.06, (predicted, real)
    assert predicted.verdict == "fits on-chip" and "fits on-chip" in predicted.text


@pytest.mark.parametrize("name", LOGS)
def test_every_log_reports_a_cache_within_the_capacity_band(name):
    log = compiler_log.parse((DATA / f"compiler_{name}.txt").read_text())
    row = cache.check_log(name, log)
    assert row.capacity is not None
    assert cache.FITS_BELOW < row.capacity <= cache.STREAMS_ABOVE, row


def test_capacity_rule_agrees_with_the_logs_except_the_small_yolo_stream():
    rows = {
        n: cache.check_log(n, compiler_log.parse((DATA / f"compiler_{n}.txt").read_text()))
        for n in LOGS
    }
    assert all(rows[n].predicted == rows[n].actual == "fits on-chip" for n in ("f1", "f5", "f8"))
    # yolov7-tiny: 5.90 MiB cached, 41.75 KiB streamed although 1.16 MiB remained: the
    # compiler streams some layers for reasons other than capacity. The rule cannot see this.
    assert rows["f7"].actual == "streams" and rows["f7"].predicted == "fits on-chip"


def test_co_compiled_models_share_the_cache_in_order(coral_dir):
    path = coral_dir / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    alone = cache.predict_cache(path)
    many = cache.predict_co_compiled([path] * 14)
    assert [p.parameter_bytes for p in many] == [alone.parameter_bytes] * 14
    assert many[0].verdict == "fits on-chip" and many[-1].verdict == "streams"
    assert "streams about" in many[-1].text


def test_validation_finds_every_compiled_pair_predicted_exactly(coral_dir):
    rows = validate.check_pairs(coral_dir)
    assert len(rows) == 4 and all(r["matches"] for r in rows), rows
    logs = validate.check_logs(sorted(DATA.glob("compiler_f*.txt")))
    assert [r["log"] for r in logs] == [f"compiler_{n}.txt" for n in LOGS]
