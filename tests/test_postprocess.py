"""Postprocessing stays on the CPU: a tiny detector with box decoding and NMS in its graph is
split into a uint8 body and a float tail, converted for real and run chained through LiteRT."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgequant import postprocess
from edgequant.edgetpu.gate import check_full_integer
from edgequant.errors import UserError
from edgequant.tflite.model import TFLiteModel

ANCHORS = np.random.default_rng(0).uniform(0.2, 0.8, (64, 4)).astype(np.float32)


def _decode(t):
    xy = t[..., :2] * 0.1 + ANCHORS[:, :2]
    wh = tf.exp(t[..., 2:]) * ANCHORS[:, 2:]
    return tf.concat([xy - wh / 2, xy + wh / 2], -1)


def _nms(args):
    boxes, scores = args
    idx, _ = tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes[0],
        scores=scores[0],
        max_output_size=10,
        iou_threshold=0.5,
        score_threshold=0.0,
        pad_to_max_output_size=True,
    )
    return [tf.gather(boxes[0], idx)[None], tf.gather(scores[0], idx)[None]]


def build_detector():
    """An SSD-like detector: conv body, box and score heads, decode with anchors, NMS."""
    layers = keras.layers
    image = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    box = layers.Reshape((64, 4), name="box_flat")(layers.Conv2D(4, 1, name="box_head")(x))
    score = layers.Reshape((64,), name="score_flat")(layers.Conv2D(1, 1, name="score_head")(x))
    boxes = layers.Lambda(_decode, name="decode")(box)
    scores = layers.Activation("sigmoid", name="scores")(score)
    kept_boxes, kept_scores = layers.Lambda(_nms, name="nms")([boxes, scores])
    return keras.Model(
        image,
        [layers.Identity(name="boxes")(kept_boxes), layers.Identity(name="kept")(kept_scores)],
    )


@pytest.fixture(scope="module")
def detector():
    return build_detector()


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(1).uniform(0, 1, (16, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def converted(detector, samples, tmp_path_factory):
    split = postprocess.split_model(detector)
    body, tail, record = postprocess.convert_split(split, samples)
    out = tmp_path_factory.mktemp("split")
    (out / "body.tflite").write_bytes(body)
    (out / "tail.tflite").write_bytes(tail)
    return out / "body.tflite", out / "tail.tflite", record


def test_auto_split_cuts_at_the_heads_before_decode_and_nms(detector):
    plan = postprocess.find_split(detector)
    assert plan.chosen_by == "auto"
    assert plan.cut_layers == ("box_head", "score_head")
    assert plan.reasons == {"decode": "box decoding (exp)", "nms": "NMS (NonMaxSuppressionV4)"}
    assert {"box_flat", "decode", "nms"} <= set(plan.tail_layers)


def test_body_passes_the_uint8_gate_and_the_tail_stays_float(converted):
    body, tail, record = converted
    assert check_full_integer(body).passed
    tail_model = TFLiteModel.load(tail)
    ops = {op.op for op in tail_model.operators}
    assert {"NON_MAX_SUPPRESSION_V4", "EXP"} <= ops
    nms = next(op for op in tail_model.operators if op.op == "NON_MAX_SUPPRESSION_V4")
    assert tail_model.tensors[nms.inputs[1]].dtype == "FLOAT32"
    assert record["split"]["cut_layers"] == ("box_head", "score_head")


def test_chained_outputs_match_the_unsplit_float_model(converted, detector, samples):
    # NMS may order two near-equal scores differently after the body's 8-bit rounding: match
    # each kept box to the float model's kept boxes instead of comparing positions.
    body, tail, _ = converted
    matched = total = 0
    for i in range(4):
        got = postprocess.run_chained(body, tail, {"image": samples[i : i + 1]})
        want = detector(samples[i : i + 1])
        dist = np.abs(got["boxes"][0][:, None, :] - want[0].numpy()[0][None, :, :]).max(-1)
        matched += int((dist.min(1) < 0.02).sum())
        total += dist.shape[0]
        np.testing.assert_allclose(np.sort(got["kept"]), np.sort(want[1].numpy()), atol=0.02)
    assert matched >= 0.9 * total, (matched, total)


def test_postprocess_from_names_the_split_layer(detector):
    plan = postprocess.find_split(detector, postprocess_from="decode")
    assert plan.chosen_by == "user" and plan.cut_layers == ("box_flat", "scores")


def test_a_split_that_would_quantize_nms_is_refused_with_one_line(detector):
    with pytest.raises(UserError) as e:
        postprocess.find_split(detector, postprocess_from="boxes")
    assert "nms" in str(e.value) and "\n" not in str(e.value)


def test_unknown_split_layer_is_one_line(detector):
    with pytest.raises(UserError, match="no layer or output named 'nope'"):
        postprocess.find_split(detector, postprocess_from="nope")


def test_device_runner_times_the_body_alone_and_body_plus_postprocess(converted):
    from edgequant.bench import device_runner

    body, tail, _ = converted
    result = device_runner.benchmark(
        str(body),
        num_runs=20,
        min_secs=0.0,
        warmup_runs=2,
        warmup_min_secs=0.0,
        postprocess=str(tail),
    )
    chained = result["postprocess"]
    assert chained["model"] == "tail.tflite"
    assert chained["body_latency_ms"] == result["latency_ms"]
    assert chained["latency_ms"]["p50"] > result["latency_ms"]["p50"] > 0
