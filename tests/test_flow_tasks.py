"""Detectors and segmenters through the one flow (edgequant/flow/tasks.py): mAP / mIoU per
variant in deploy.json and the report, the float postprocess tail in the bundle, body vs end-to-end
latency on the host and on a loopback sshd device, and bad annotations as one line through
tools/deploy.py. Untrained zoo models on a few synthetic-shape images: the wiring, not accuracy
(benchmarks/tasks_deploy.py measures trained ones)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import edgequant
from edgequant import workspace, zoo
from edgequant.errors import UserError
from edgequant.tasks import shapes
from tests import sshd
from tests.conftest import REPO, assert_one_line_error, run_tool
from tests.test_recipes import assert_every_tflite_has_its_recipe

SIZE = 64
DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"
QUICK = {
    "input_range": (0, 1),
    "recovery.enabled": False,
    "bench.num_runs": 5,
    "bench.min_secs": 0.01,
    "bench.warmup_runs": 1,
    "bench.warmup_min_secs": 0.0,
    "inventory": "",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Eight shape images with every annotation format, an untrained detector (+ anchors) and
    an untrained segmenter ending in a 4x bilinear upsampling (the tail to split off)."""
    import tf_keras as keras

    root = tmp_path_factory.mktemp("tasks")
    d = shapes.write_dataset(root / "data", 8, size=SIZE, seed=5)
    keras.utils.set_random_seed(0)
    zoo.build("ssd_tiny", (SIZE, SIZE, 3), 3).save(root / "ssd.h5")
    np.save(root / "anchors.npy", workspace.module("models", "ssd_tiny").anchors((SIZE,) * 2))
    seg = zoo.build("seg_tiny", (SIZE, SIZE, 3), 4)
    up = keras.layers.UpSampling2D(4, interpolation="bilinear", name="upsample")(seg.outputs[0])
    keras.Model(seg.inputs, {"class_logits": up}).save(root / "seg.h5")
    return {**d, "root": root, "ssd": root / "ssd.h5", "seg": root / "seg.h5"}


@pytest.mark.slow
def test_a_detector_gets_coco_map_per_variant_and_its_body_maps_fully(files, tmp_path):
    out = tmp_path / "det"
    r = edgequant.deploy(
        files["ssd"],
        files["images"],
        out,
        eval_data=files["images"],
        annotations=files["coco"],
        anchors=files["root"] / "anchors.npy",
        task="auto",
        **QUICK,
    )
    assert r["errors"] == [] and r["task"]["kind"] == "detection"
    assert r["task"]["annotations"]["images"] == 8 and r["task"]["anchors"] > 0
    assert r["task"]["postprocess"]["chosen_by"] == "none"  # raw heads: numpy decode + NMS
    fm = r["float"]["metrics"]
    (v,) = r["variants"]
    for m in (fm, v["metrics"]):
        assert 0.0 <= m["map"] <= m["map50"] <= 1.0
        assert set(m["per_class_ap"]) == {"rectangle", "circle", "triangle"}
        assert m["postprocess_ms"] > 0
    assert v["metrics"]["sqnr_db"]  # fidelity of the raw outputs remains
    assert v["gate"] == "pass" and v["edgetpu"]["mapped"] == v["edgetpu"]["total"]
    assert "mAP@0.5" in v["budget"] and "points" in v["budget"]
    e2e = v["end_to_end_latency_ms"]
    assert e2e["p50"] > v["latency_ms"]["p50"] and e2e["tail_tflite"] is False
    saved = json.loads((out / "deploy.json").read_text())
    assert saved["variants"][0]["metrics"]["map50"] == v["metrics"]["map50"]
    report = (out / "report.md").read_text()
    assert "## Detection" in report and "mAP@0.5:0.95 %" in report


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not DEVICE_PYTHON.exists():
        pytest.skip(f"device venv missing at {DEVICE_PYTHON} (make device-venv creates it)")
    s = sshd.make_server(tmp_path_factory.mktemp("sshd"))
    s.start()
    yield s
    s.stop()


@pytest.mark.slow
def test_a_segmenter_ships_its_float_tail_and_is_timed_end_to_end_on_host_and_device(
    files, server, tmp_path
):
    out = tmp_path / "seg"
    r = edgequant.deploy(
        files["seg"],
        files["images"],
        out,
        eval_data=files["images"],
        annotations=files["masks"],
        postprocess_from="upsample",
        device="loopdev",
        ssh_config=str(server.ssh_config),
        remote_python=str(DEVICE_PYTHON),
        **QUICK,
    )
    assert r["errors"] == [] and r["task"]["kind"] == "segmentation"
    post = r["task"]["postprocess"]
    assert post["chosen_by"] == "user" and list(post["cut_layers"]) == ["class_logits"]
    assert (out / "postprocess.tflite").is_file() and r["task"]["tail"].endswith(
        "postprocess.tflite"
    )
    recipes = assert_every_tflite_has_its_recipe(out)
    assert {"uint8.tflite", "fp32.tflite", "postprocess.tflite"} <= recipes.keys()
    (v,) = r["variants"]
    assert 0 <= v["metrics"]["miou"] <= 1 and 0 <= r["float"]["metrics"]["pixel_accuracy"] <= 1
    assert set(v["metrics"]["per_class_iou"]) == set(shapes.SEG_CLASSES)
    assert "mIoU" in v["budget"] and v["gate"] == "pass"
    e2e = v["end_to_end_latency_ms"]
    # The chain is timed in its own run, so it is compared with nothing timed elsewhere (two
    # runs of a 0.5 ms model swap order on a busy host): only how the total is made is pinned.
    assert e2e["tail_tflite"] is True and e2e["body_plus_tail_p50"] > 0
    assert e2e["p50"] == pytest.approx(e2e["body_plus_tail_p50"] + e2e["numpy_postprocess_ms"])
    d = v["devices"]["loopdev"]
    assert d["status"] == "ok" and d["end_to_end_p50"] > 0 and d["p50"] > 0
    assert "## Segmentation" in (out / "report.md").read_text()


def test_a_classifier_task_refuses_annotations_and_a_task_needs_them():
    from edgequant import workspace as ws
    from edgequant.flow import tasks as flow_tasks

    c = ws.config("deploy")
    assert flow_tasks.resolve_kind(c) is None  # auto without annotations: today's flow
    c.task.kind = "detection"
    with pytest.raises(UserError, match="needs --annotations"):
        flow_tasks.resolve_kind(c)
    c.task.kind, c.task.annotations = "classification", "x.json"
    with pytest.raises(UserError, match="score detectors and segmenters"):
        flow_tasks.resolve_kind(c)


def _break_coco(d):
    d["coco"].write_text(d["coco"].read_text()[:-40])
    return "coco", "malformed COCO JSON", "coco.json"


def _missing_image(d):
    (d["images"] / "00002.png").unlink()
    return "coco", "missing", "00002."


def _mask_size(d):
    Image.fromarray(np.zeros((32, SIZE), np.uint8)).save(d["masks"] / "00001.png")
    return "masks", "mask is 64x32", "00001.png"


def _class_outside(d):
    (d["yolo"] / "00002.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    return "yolo", "outside the model's 3 classes", "00002.txt"


def _negative_box(d):
    coco = json.loads(d["coco"].read_text())
    coco["annotations"][3]["bbox"] = [10.0, 10.0, -5.0, 10.0]
    d["coco"].write_text(json.dumps(coco))
    return "coco", "negative size", "coco.json"


def _broken(files, tmp_path, breaks) -> tuple[dict, str, list[str]]:
    root = files["root"] / "data"
    shutil.copytree(root, tmp_path / "d")
    d = {
        k: tmp_path / "d" / files[k].relative_to(root) for k in ("images", "coco", "yolo", "masks")
    }
    fmt, *needles = breaks(d)
    return d, fmt, needles


@pytest.mark.parametrize(
    "breaks", [_break_coco, _missing_image, _mask_size, _class_outside, _negative_box]
)
def test_bad_annotations_stop_the_deployment_with_one_line_naming_the_file(files, tmp_path, breaks):
    d, fmt, needles = _broken(files, tmp_path, breaks)
    with pytest.raises(UserError) as e:
        edgequant.deploy(
            files["seg"] if fmt == "masks" else files["ssd"],
            d["images"],
            tmp_path / "out",
            eval_data=d["images"],
            annotations=d[fmt],
            anchors=files["root"] / "anchors.npy",
            **QUICK,
        )
    line = str(e.value)
    assert "\n" not in line and all(n in line for n in needles), line
    assert not (tmp_path / "out" / "deploy.json").exists()


@pytest.mark.slow
def test_bad_annotations_through_tools_deploy_are_one_line_and_a_nonzero_exit(files, tmp_path):
    """The binary's path of the cases above (cli prints the UserError line, exit 1)."""
    d, fmt, needles = _broken(files, tmp_path, _break_coco)
    proc = run_tool(
        "deploy",
        f"--model={files['ssd']}",
        f"--data={d['images']}",
        f"--eval_data={d['images']}",
        f"--annotations={d[fmt]}",
        f"--anchors={files['root'] / 'anchors.npy'}",
        "--task=detection",
        "--input_range=0,1",
        f"--out_dir={tmp_path / 'out'}",
    )
    assert_one_line_error(proc, *needles)
