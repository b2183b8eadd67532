"""Task metrics: annotation formats, bad annotations, COCO mAP (pycocotools), streamed mIoU, the
detector's CPU postprocess and the zoo's detector/segmenter bodies on the Edge TPU gate."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edgequant import tasks
from edgequant.errors import UserError
from edgequant.tasks import boxes, formats, shapes


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    return shapes.write_dataset(tmp_path_factory.mktemp("shapes"), 8, size=64, seed=3)


@pytest.fixture
def data(shapes_data, tmp_path):
    """A private copy to break."""
    root = shapes_data["images"].parent
    shutil.copytree(root, tmp_path / "d")
    return {k: tmp_path / "d" / p.relative_to(root) for k, p in shapes_data.items()}


def test_every_format_parses_to_the_same_ground_truth(shapes_data):
    loaded = [
        tasks.load_annotations(shapes_data[f], shapes_data["images"], 3)
        for f in ("coco", "voc", "yolo")
    ]
    assert [a.format for a in loaded] == ["coco", "voc", "yolo"]
    assert all(a.class_names == shapes.SHAPES for a in loaded)
    coco = loaded[0]
    assert len(coco.images) == 8 and sum(len(t.classes) for t in coco.images) > 8
    for other in loaded[1:]:
        for a, b in zip(coco.images, other.images, strict=True):
            assert (a.stem, a.width, a.height) == (b.stem, b.width, b.height) == (a.stem, 64, 64)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=2e-3)
            np.testing.assert_array_equal(a.classes, b.classes)
    masks = tasks.load_annotations(shapes_data["masks"], shapes_data["images"], 4)
    assert masks.task == "segmentation" and masks.class_names == shapes.SEG_CLASSES
    assert all(t.mask.stem == t.stem for t in masks.images)
    assert [p.name for p in masks.image_paths] == [f"{i:05d}.png" for i in range(8)]


def test_detect_task_reads_the_task_from_the_annotations(shapes_data):
    assert tasks.detect_task(shapes_data["masks"]) == "segmentation"
    for f in ("coco", "voc", "yolo"):
        assert tasks.detect_task(shapes_data[f]) == "detection"


def _reference_coco_stats(truth, predictions, tmp_path) -> tuple[float, float]:
    """pycocotools' own file-based path (loadRes + summarize) on the same boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i, "width": t.width, "height": t.height} for i, t in enumerate(truth.images)]
    anns, dets = [], []
    for i, t in enumerate(truth.images):
        for b, c in zip(t.boxes_xywh, t.classes, strict=True):
            x, y, w, h = (float(v) for v in b)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        d = predictions[t.stem]
        for b, s, c in zip(d.boxes, d.scores, d.classes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in b)
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(s),
                }
            )
    cats = [{"id": i, "name": n} for i, n in enumerate(truth.class_names)]
    (tmp_path / "gt.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        e = COCOeval(gt, gt.loadRes(dets), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return float(e.stats[1]), float(e.stats[0])


def test_map_is_one_on_perfect_boxes_and_drops_as_pycocotools_says_when_one_shifts(
    shapes_data, tmp_path
):
    truth = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 3)
    perfect = {
        t.stem: tasks.Detections(t.boxes.copy(), np.full(len(t.boxes), 0.9), t.classes)
        for t in truth.images
    }
    m = tasks.evaluate_detection(perfect, truth)
    assert (m.map50, m.map) == (1.0, 1.0)
    assert all(v["ap"] == 1.0 for v in m.per_class.values())
    # Shift one box right by a third of its width: IoU = (2/3) / (4/3) = 0.5 exactly, which
    # COCO does not count as a match at 0.5... so shift by 0.3: IoU = 0.7 / 1.3 = 0.538.
    t = truth.images[0]
    shifted = dict(perfect)
    b = t.boxes.copy()
    b[0, [0, 2]] += 0.3 * (b[0, 2] - b[0, 0])
    shifted[t.stem] = tasks.Detections(b, np.full(len(b), 0.9), t.classes)
    m = tasks.evaluate_detection(shifted, truth)
    ref50, ref = _reference_coco_stats(truth, shifted, tmp_path)
    assert m.map50 == pytest.approx(ref50) and m.map == pytest.approx(ref)
    assert m.map50 == 1.0 and m.map < 1.0  # still a hit at IoU 0.5, a miss from 0.55 up
    # Shifted by 0.6 (IoU 0.25) the box is a miss at every threshold: map50 drops too.
    b[0, [0, 2]] += 0.3 * (b[0, 2] - b[0, 0])
    shifted[t.stem] = tasks.Detections(b, np.full(len(b), 0.9), t.classes)
    m = tasks.evaluate_detection(shifted, truth)
    ref50, ref = _reference_coco_stats(truth, shifted, tmp_path)
    assert m.map50 == pytest.approx(ref50) and m.map == pytest.approx(ref) and m.map50 < 1.0


def test_evaluate_detection_refuses_predictions_that_miss_an_image(shapes_data):
    truth = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 3)
    preds = {t.stem: tasks.Detections.empty() for t in truth.images[1:]}
    with pytest.raises(ValueError, match="missing"):
        tasks.evaluate_detection(preds, truth)
    preds[truth.images[0].stem] = tasks.Detections.empty()
    assert tasks.evaluate_detection(preds, truth).map == 0.0
    preds[truth.images[0].stem] = tasks.Detections(np.ones((1, 4)), np.ones(1), np.array([3]))
    with pytest.raises(ValueError, match="outside 0-2"):
        tasks.evaluate_detection(preds, truth)


def test_every_model_class_is_scored_even_without_a_name(data):
    (data["yolo"] / "classes.txt").write_text("rectangle\ncircle\n")
    truth = tasks.load_annotations(data["yolo"], data["images"], 3)
    assert truth.class_names == ("rectangle", "circle", "class2")


def test_miou_on_a_known_confusion(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    # 4 classes; class 3 is in neither truth nor prediction and has no IoU.
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 2], [2, 0, 0, 0]], np.int64)
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(truth).save(masks / "a.png")
    gt = tasks.load_annotations(masks, images, 4)
    m = tasks.evaluate_segmentation([("a", pred)], gt)
    # (truth, prediction) over the 10 scored pixels: class 0 TP 3, FN 1 (0->1), FP 1 (2->0):
    # 3/5; class 1 TP 3, FN 1 (1->2), FP 1 (0->1): 3/5; class 2 TP 1, FN 1, FP 1: 1/3.
    assert m.per_class_iou == {
        "class0": 0.6,
        "class1": 0.6,
        "class2": pytest.approx(1 / 3),
        "class3": None,
    }
    assert m.miou == pytest.approx((0.6 + 0.6 + 1 / 3) / 3)
    assert m.pixel_accuracy == pytest.approx(7 / 10) and m.pixels == 10


def test_streamed_logits_score_like_whole_class_maps(shapes_data):
    truth = tasks.load_annotations(shapes_data["masks"], shapes_data["images"], 4)
    logits = np.random.default_rng(1).normal(size=(len(truth.images), 16, 16, 4))
    matrix = tasks.ConfusionMatrix(4)
    for i in range(0, len(logits), 3):
        tasks.update_from_logits(matrix, logits[i : i + 3], truth.images[i : i + 3])
    whole = tasks.evaluate_segmentation(
        ((t.stem, tasks.class_map(lg, 64, 64)) for lg, t in zip(logits, truth.images, strict=True)),
        truth,
    )
    assert matrix.result(truth.class_names) == whole and 0 < whole.miou < 1
    with pytest.raises(ValueError, match="no prediction"):
        tasks.evaluate_segmentation([], truth)


def test_detections_from_outputs_reads_the_heads_by_name(shapes_data):
    truth = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 3)
    with pytest.raises(ValueError, match="expected 'box_regressions' and 'class_logits'"):
        tasks.detections_from_outputs({"Identity": np.zeros(1)}, truth.images, np.zeros((1, 4)))


def test_class_map_upsamples_like_tf_image_resize_then_argmax():
    import tensorflow as tf

    logits = np.random.default_rng(0).normal(size=(6, 5, 4)).astype(np.float32)
    ours = tasks.class_map(logits, 24, 20)
    ref = tf.argmax(tf.image.resize(logits[None], (24, 20)), -1)[0].numpy()
    assert (ours == ref).mean() > 0.999  # ties aside, the same map


def test_decode_inverts_encode_and_postprocess_recovers_the_boxes(shapes_data):
    anchors = boxes.grid_anchors([8, 4, 2], (0.15, 0.35, 0.6), (1.0, 2.0, 0.5))
    truth = tasks.load_annotations(shapes_data["yolo"], shapes_data["images"], 3)
    preds = {}
    for t in truth.images:
        labels, regs = boxes.match(t.boxes / 64, t.classes, anchors)
        pos = labels > 0
        np.testing.assert_allclose(
            boxes.decode(regs[pos], anchors[pos]),
            (t.boxes / 64)[boxes.iou(boxes.to_xyxy(anchors[pos]), t.boxes / 64).argmax(1)],
            atol=1e-5,
        )
        logits = np.where(np.eye(4)[labels] > 0, 8.0, -8.0)
        preds[t.stem] = tasks.detections_from_raw(regs, logits, anchors, t)
    m = tasks.evaluate_detection(preds, truth)
    assert m.map50 == 1.0 and m.map > 0.99


def _one_line(excinfo, name: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and name in msg, msg
    return msg


def test_malformed_coco_json_is_one_line_naming_the_file(data):
    data["coco"].write_text(data["coco"].read_text()[:-40])
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["coco"], data["images"], 3)
    assert "malformed COCO JSON" in _one_line(e, "coco.json")
    data["coco"].write_text(json.dumps({"images": []}))
    with pytest.raises(UserError, match="need lists"):
        tasks.load_annotations(data["coco"], data["images"], 3)


def test_an_annotation_whose_image_is_missing_is_named(data):
    (data["images"] / "00002.png").unlink()
    (data["images"] / "00005.png").unlink()
    for fmt in ("coco", "voc", "yolo", "masks"):
        with pytest.raises(UserError) as e:
            tasks.load_annotations(data[fmt], data["images"], 4)
        msg = _one_line(e, "00002.")
        assert "2 annotated image(s) missing" in msg and "00005." in msg


def test_images_without_annotation_are_counted_named_and_refused_above_the_threshold(data):
    (data["yolo"] / "00003.txt").unlink()
    truth = tasks.load_annotations(data["yolo"], data["images"], 3, max_unannotated=0.2)
    assert truth.unannotated == ("00003.png",) and len(truth.images) == 7
    assert truth.summary()["unannotated_files"] == ["00003.png"]
    (data["yolo"] / "00004.txt").unlink()
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["yolo"], data["images"], 3, max_unannotated=0.2)
    assert "2 of 8 images have no annotation" in _one_line(e, "00003.png, 00004.png")


def test_a_mask_whose_size_differs_from_its_image_is_named(data):
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(data["masks"] / "00001.png")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["masks"], data["images"], 4)
    assert "mask is 64x32 but 00001.png is 64x64" in _one_line(e, "masks/00001.png")


def test_a_colour_mask_is_refused(data):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(data["masks"] / "00001.png")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["masks"], data["images"], 4)
    _one_line(e, "00001.png")


def test_a_class_outside_the_models_classes_is_named(data):
    (data["yolo"] / "00002.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["yolo"], data["images"], 3)
    assert "class index 7 is outside the model's 3 classes" in _one_line(e, "00002.txt")
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(data["masks"] / "00004.png")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["masks"], data["images"], 4)
    assert "pixel value 9" in _one_line(e, "00004.png")
    xml = data["voc"] / "00001.xml"
    xml.write_text(
        xml.read_text()
        .replace("<name>circle<", "<name>hexagon<", 1)
        .replace("<name>rectangle<", "<name>hexagon<", 1)
        .replace("<name>triangle<", "<name>hexagon<", 1)
    )
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["voc"], data["images"], 3)
    assert "class 'hexagon'" in _one_line(e, "00001.xml")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["coco"], data["images"], 2)
    assert "3 classes" in _one_line(e, "coco.json")


def test_boxes_outside_the_image_or_of_negative_size_are_named(data):
    (data["yolo"] / "00002.txt").write_text("1 0.9 0.5 0.4 0.2\n")
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["yolo"], data["images"], 3)
    assert "[44.8 25.6 70.4 38.4] (x1 y1 x2 y2) is outside" in _one_line(e, "00002.txt")
    (data["yolo"] / "00002.txt").write_text("1 12 30 8 8\n")  # pixels, not normalized
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["yolo"], data["images"], 3)
    assert "not normalized" in _one_line(e, "00002.txt")
    coco = json.loads(data["coco"].read_text())
    coco["annotations"][3]["bbox"] = [50.0, 10.0, 30.0, 10.0]  # x2 = 80 > 64
    data["coco"].write_text(json.dumps(coco))
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["coco"], data["images"], 3)
    assert "outside its 64x64 image" in _one_line(e, f"annotation {coco['annotations'][3]['id']}")
    coco["annotations"][3]["bbox"] = [10.0, 10.0, -5.0, 10.0]
    data["coco"].write_text(json.dumps(coco))
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["coco"], data["images"], 3)
    assert "negative size" in _one_line(e, "coco.json")
    xml = data["voc"] / "00003.xml"
    xml.write_text(xml.read_text().replace("<width>64</width>", "<width>640</width>"))
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["voc"], data["images"], 3)
    assert "states size 640x64" in _one_line(e, "00003.xml")


def test_formats_refuse_what_they_cannot_read(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(UserError) as e:
        formats.detect_format(tmp_path / "a.csv")
    _one_line(e, "a.csv")
    with pytest.raises(UserError) as e:
        formats.detect_format(tmp_path)
    _one_line(e, str(tmp_path))
    (tmp_path / "b.xml").write_text("<annotation><object>")
    with pytest.raises(UserError) as e:
        formats.read_voc(tmp_path / "b.xml")
    assert "malformed VOC XML" in _one_line(e, "b.xml")


@pytest.mark.parametrize(
    "name, num_classes, options",
    [("ssd_tiny", 3, {"filters": (8, 8, 8, 8, 8)}), ("seg_tiny", 4, {"filters": (8, 8, 8)})],
)
def test_zoo_task_bodies_pass_the_gate_fully_mapped_and_run_batched(
    name, num_classes, options, tmp_path
):
    """The bodies end at raw heads, so uint8 keeps every op on the Edge TPU; and a batch run of
    the batch-1 (Edge TPU form) detector equals per-sample runs: its anchor RESHAPE holds the
    traced batch, which the runner must notice instead of mixing samples."""
    from edgequant import zoo
    from edgequant.edgetpu import check
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.quantize import convert, recipes

    model = zoo.build(name, (32, 32, 3), num_classes, **options)
    x = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 3)).astype(np.float32)
    recipe = recipes.get("uint8", calibration_size=5)
    path = convert.write(convert.convert(model, recipe, {"image": x}), recipe, tmp_path)
    (m,) = check.check_models([path])
    assert m.gate.passed and m.analysis.fully_mapped, m.to_dict()
    batched = SignatureModel(path).predict({"image": x})
    single = SignatureModel(path, batch_size=1).predict({"image": x})
    assert set(batched) == set(model.output_names)
    for k, v in single.items():
        assert batched[k].shape == v.shape and v.shape[0] == 5
        np.testing.assert_array_equal(batched[k], v)


def test_two_annotations_of_one_image_are_refused(data):
    xml = data["voc"] / "00002.xml"
    xml.write_text(xml.read_text().replace("00002.png", "00001.png"))
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["voc"], data["images"], 3)
    assert "annotates image '00001' again" in _one_line(e, "00002.xml")


def test_a_difficult_voc_object_is_neither_missed_nor_a_false_positive(data):
    xml = data["voc"] / "00000.xml"
    xml.write_text(
        xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1)
    )
    truth = tasks.load_annotations(data["voc"], data["images"], 3)
    t0 = truth.images[0]
    assert t0.ignore.tolist() == [True] + [False] * (len(t0.ignore) - 1)
    preds = {
        t.stem: tasks.Detections(
            t.boxes[~t.ignore], np.ones((~t.ignore).sum()), t.classes[~t.ignore]
        )
        for t in truth.images
    }
    assert tasks.evaluate_detection(preds, truth).map == 1.0  # not detecting it costs nothing
    preds[t0.stem] = tasks.Detections(t0.boxes, np.ones(len(t0.boxes)), t0.classes)
    assert tasks.evaluate_detection(preds, truth).map == 1.0  # nor does detecting it


def test_detections_from_postprocess_scales_normalized_yxyx_to_pixels(shapes_data):
    truth = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 3)
    preds = {}
    for t in truth.images:
        x1, y1, x2, y2 = (t.boxes[:, i] / 64 for i in range(4))
        yxyx = np.concatenate([np.stack([y1, x1, y2, x2], 1), np.full((3, 4), 0.5)])  # padding
        scores = np.concatenate([np.full(len(t.boxes), 0.8), np.zeros(3)])
        classes = np.concatenate([t.classes, np.zeros(3)]).astype(np.float32)
        preds[t.stem] = tasks.detections_from_postprocess(
            yxyx, classes, scores, np.array([len(t.boxes)], np.float32), t
        )
        np.testing.assert_allclose(preds[t.stem].boxes, t.boxes, atol=1e-4)
    assert tasks.evaluate_detection(preds, truth).map == 1.0


def test_voc_without_the_class_order_is_refused(data):
    (data["voc"] / "classes.txt").unlink()
    with pytest.raises(UserError) as e:
        tasks.load_annotations(data["voc"], data["images"], 3)
    assert "not the model's order" in _one_line(e, "voc")
    truth = tasks.load_annotations(data["voc"], data["images"], 3, class_names=shapes.SHAPES)
    assert truth.class_names == shapes.SHAPES


def test_coco_categories_map_to_the_models_classes_by_name_when_given(shapes_data):
    order = ("triangle", "rectangle", "circle", "star")
    truth = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 4, order)
    plain = tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 3)
    for a, b in zip(truth.images, plain.images, strict=True):
        assert [order[c] for c in a.classes] == [shapes.SHAPES[c] for c in b.classes]
    with pytest.raises(UserError) as e:
        tasks.load_annotations(shapes_data["coco"], shapes_data["images"], 2, ("circle", "star"))
    assert "category 'rectangle' is not one of the model's classes" in _one_line(e, "coco.json")
