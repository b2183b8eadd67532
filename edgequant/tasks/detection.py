"""Detection metrics: COCO mAP@0.5, mAP@0.5:0.95 and per-class AP from pycocotools.

pycocotools (the COCO team's own evaluator, pinned in requirements.txt) rather than a
hand-written mAP: every published detector number comes from it, and its details (101-point
interpolated precision, crowd regions, at most 100 detections per image, area ranges) are what
users compare against. faster-coco-eval reproduces it faster in C++; at the few hundred to few
thousand images of a deployment check the evaluation takes seconds either way, so the reference
implementation wins.

Both sides arrive in model class indices and absolute pixels: ground truth from any annotation
format (`annotations.load_annotations`), predictions as `Detections` per image stem, made from
a model's raw head outputs by `detections_from_raw` (anchors + decode + NMS on the CPU) or from
TFLite_Detection_PostProcess outputs by `detections_from_postprocess`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Mapping

import numpy as np

from edgequant.tasks import boxes as box_ops
from edgequant.tasks.annotations import Annotations, ImageTruth


@dataclasses.dataclass(frozen=True)
class Detections:
    """One image's detections: `boxes` [N, 4] absolute xyxy pixels, `scores` [N], `classes` [N]
    model class indices."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclasses.dataclass(frozen=True)
class DetectionMetrics:
    map50: float  # COCO AP at IoU 0.5, averaged over classes with ground truth
    map: float  # COCO AP averaged over IoU 0.5:0.05:0.95 and classes
    per_class: dict  # class name -> {"ap", "ap50", "objects"}; ap None when it has no objects
    images: int
    detections: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def detections_from_raw(
    regressions: np.ndarray,
    class_logits: np.ndarray,
    anchors: np.ndarray,
    truth: ImageTruth,
    **nms_options,
) -> Detections:
    """A raw-head detector's outputs for one image -> Detections in that image's pixels.

    The model saw the image resized to its input, and anchors are normalized to it, so the
    normalized boxes scale by the original image's width and height."""
    b, s, c = box_ops.postprocess(regressions, class_logits, anchors, **nms_options)
    scale = np.array([truth.width, truth.height, truth.width, truth.height], np.float32)
    return Detections(b * scale, s, c)


def detections_from_outputs(
    outputs: Mapping[str, np.ndarray],
    truths,
    anchors: np.ndarray,
    regressions: str = "box_regressions",
    class_logits: str = "class_logits",
    **nms_options,
) -> dict[str, Detections]:
    """A batch of a raw-head detector's outputs, read by output name (`SignatureModel.predict`
    of the images of `truths`, in that order) -> {image stem: Detections}."""
    if regressions not in outputs or class_logits not in outputs:
        raise ValueError(
            f"the detector has outputs {sorted(outputs)}; expected '{regressions}' and "
            f"'{class_logits}'"
        )
    return {
        t.stem: detections_from_raw(
            outputs[regressions][i], outputs[class_logits][i], anchors, t, **nms_options
        )
        for i, t in enumerate(truths)
    }


def detections_from_decoded(
    boxes: np.ndarray, scores: np.ndarray, truth: ImageTruth, **nms_options
) -> Detections:
    """One image from a graph that already decoded its boxes and took the softmax: `boxes`
    [A, 4] normalized xyxy, `scores` [A, C + 1] probabilities with background at 0. Only the
    per-class NMS runs here (the same one `detections_from_raw` uses)."""
    b, s, c = box_ops.nms_per_class(np.clip(boxes, 0.0, 1.0), scores[:, 1:], **nms_options)
    scale = np.array([truth.width, truth.height, truth.width, truth.height], np.float32)
    return Detections(b * scale, s, c)


def detections_from_postprocess(
    boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count, truth: ImageTruth
) -> Detections:
    """One image from TFLite_Detection_PostProcess outputs (Coral's SSD models): boxes [N, 4]
    normalized (ymin, xmin, ymax, xmax), classes and scores [N], and the valid count."""
    n = int(np.asarray(count).reshape(-1)[0])
    y1, x1, y2, x2 = (np.clip(boxes[:n, i], 0, 1) for i in range(4))
    xyxy = np.stack([x1 * truth.width, y1 * truth.height, x2 * truth.width, y2 * truth.height], 1)
    return Detections(
        xyxy.astype(np.float32), scores[:n].astype(np.float32), classes[:n].astype(np.int64)
    )


def evaluate_detection(
    predictions: Mapping[str, Detections], truth: Annotations
) -> DetectionMetrics:
    """COCO metrics of `predictions` (image stem -> Detections) against `truth`.

    Every annotated image needs its entry (an image the caller forgot would count its objects as
    missed): a missing or unknown stem raises ValueError, a caller's bug rather than user input.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    stems = [t.stem for t in truth.images]
    missing = sorted(set(stems) - set(predictions))
    extra = sorted(set(predictions) - set(stems))
    if missing or extra:
        raise ValueError(
            f"predictions do not cover the annotated images: missing {missing[:5]}, "
            f"unknown {extra[:5]}"
        )
    for stem, d in predictions.items():
        if d.classes.size and not 0 <= d.classes.min() <= d.classes.max() < truth.num_classes:
            raise ValueError(
                f"image '{stem}': a predicted class is outside 0-{truth.num_classes - 1}"
            )
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(truth.class_names)]
    images = [
        {"id": k + 1, "file_name": t.image.name, "width": t.width, "height": t.height}
        for k, t in enumerate(truth.images)
    ]
    gt_anns, dt_anns = [], []
    for k, t in enumerate(truth.images):
        for box, cls, ignore in zip(t.boxes_xywh, t.classes, t.ignore, strict=True):
            gt_anns.append(_ann(len(gt_anns) + 1, k + 1, box, cls, iscrowd=int(ignore)))
        d = predictions[t.stem]
        xywh = np.concatenate([d.boxes[:, :2], d.boxes[:, 2:] - d.boxes[:, :2]], 1)
        for box, cls, score in zip(xywh, d.classes, d.scores, strict=True):
            dt_anns.append(_ann(len(dt_anns) + 1, k + 1, box, cls, score=float(score)))
    gt, dt = _coco(COCO, images, gt_anns, cats), _coco(COCO, images, dt_anns, cats)
    evaluator = COCOeval(gt, dt, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress lines
        evaluator.evaluate()
        evaluator.accumulate()
    # precision [IoU thresholds, recall points, classes, area ranges, max dets]: area "all"
    # and 100 detections, as COCO's headline AP; -1 marks a class without ground truth.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    ap_all, ap50_all = [], []
    for i, name in enumerate(truth.class_names):
        p = precision[:, :, i]
        objects = int(sum(((t.classes == i) & ~t.ignore).sum() for t in truth.images))
        if (p > -1).any():
            ap, ap50 = float(np.mean(p[p > -1])), float(np.mean(p[0][p[0] > -1]))
            ap_all.append(ap)
            ap50_all.append(ap50)
        else:
            ap = ap50 = None
        per_class[name] = {"ap": ap, "ap50": ap50, "objects": objects}
    return DetectionMetrics(
        map50=float(np.mean(ap50_all)) if ap50_all else 0.0,
        map=float(np.mean(ap_all)) if ap_all else 0.0,
        per_class=per_class,
        images=len(truth.images),
        detections=len(dt_anns),
    )


def _ann(ann_id: int, image_id: int, box, cls, iscrowd: int = 0, score: float | None = None):
    x, y, w, h = (float(v) for v in box)
    a = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": int(cls) + 1,
        "bbox": [x, y, w, h],
        "area": w * h,
        "iscrowd": iscrowd,
    }
    if score is not None:
        a["score"] = score
    return a


def _coco(coco_cls, images, anns, cats):
    """An in-memory COCO object (no file); `loadRes` would refuse an empty detection list."""
    c = coco_cls()
    c.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c
