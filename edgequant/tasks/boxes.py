"""Anchor boxes, the SSD box encoding, IoU and NMS in numpy: the detector's CPU postprocess.

The detector body (the Edge TPU part) ends at raw head outputs: per anchor, four box
regressions and the class logits. Decoding and non-maximum suppression run here, in float on the
CPU, for two reasons: NMS is data-dependent control flow no 8-bit accelerator runs, and box
coordinates decoded in uint8 lose precision that mAP@0.5:0.95 sees (a 96-pixel image quantized
to 256 steps is fine, a 640-pixel one is not). Being numpy only, the same code can run on a board.

Encoding (SSD, and TFLite_Detection_PostProcess with y/x_scale 10, h/w_scale 5): for an anchor
(cy, cx, h, w) and a box (cy', cx', h', w'), all normalized to the image,
  t = ((cy' - cy) / h * 10, (cx' - cx) / w * 10, log(h' / h) * 5, log(w' / w) * 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SCALES = np.array([10.0, 10.0, 5.0, 5.0], np.float32)  # the SSD variances' inverses


def grid_anchors(
    feature_sizes: Sequence[int], scales: Sequence[float], aspect_ratios: Sequence[float]
) -> np.ndarray:
    """SSD anchors [A, 4] as normalized (cy, cx, h, w), in the order a head's RESHAPE emits them:
    level by level, row-major cells, then per cell `aspect_ratios` at the level's scale and one
    extra square at sqrt(scale * next scale) (SSD's in-between size)."""
    out = []
    for level, (n, s) in enumerate(zip(feature_sizes, scales, strict=True)):
        s_next = scales[level + 1] if level + 1 < len(scales) else min(1.0, s * 1.5)
        shapes = [(s / math.sqrt(r), s * math.sqrt(r)) for r in aspect_ratios]
        shapes.append((math.sqrt(s * s_next),) * 2)
        for i in range(n):
            for j in range(n):
                for h, w in shapes:
                    out.append(((i + 0.5) / n, (j + 0.5) / n, h, w))
    return np.asarray(out, np.float32)


def anchors_per_cell(aspect_ratios: Sequence[float]) -> int:
    return len(aspect_ratios) + 1


def to_center(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (xyxy[..., i] for i in range(4))
    return np.stack([(y1 + y2) / 2, (x1 + x2) / 2, y2 - y1, x2 - x1], -1)


def to_xyxy(center: np.ndarray) -> np.ndarray:
    cy, cx, h, w = (center[..., i] for i in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def encode(boxes_xyxy: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Regression targets [N, 4] for normalized xyxy boxes matched one-to-one with anchors."""
    b = to_center(boxes_xyxy)
    t = np.stack(
        [
            (b[:, 0] - anchors[:, 0]) / anchors[:, 2],
            (b[:, 1] - anchors[:, 1]) / anchors[:, 3],
            np.log(np.maximum(b[:, 2], 1e-6) / anchors[:, 2]),
            np.log(np.maximum(b[:, 3], 1e-6) / anchors[:, 3]),
        ],
        -1,
    )
    return (t * SCALES).astype(np.float32)


def decode(regressions: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Normalized xyxy boxes [..., A, 4] from regressions [..., A, 4] (the inverse of encode)."""
    t = regressions / SCALES
    cy = t[..., 0] * anchors[:, 2] + anchors[:, 0]
    cx = t[..., 1] * anchors[:, 3] + anchors[:, 1]
    h = np.exp(np.minimum(t[..., 2], 10.0)) * anchors[:, 2]
    w = np.exp(np.minimum(t[..., 3], 10.0)) * anchors[:, 3]
    return to_xyxy(np.stack([cy, cx, h, w], -1))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU [len(a), len(b)] of xyxy boxes."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), -1)
    area_a = np.prod(a[:, 2:] - a[:, :2], -1)
    area_b = np.prod(b[:, 2:] - b[:, :2], -1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match(
    gt_xyxy: np.ndarray, gt_classes: np.ndarray, anchors: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """SSD training targets: (class per anchor [A] with 0 = background and c + 1 for class c,
    regressions [A, 4]). An anchor is positive at IoU >= threshold with a box, and every box
    claims its best anchor so no object goes untrained."""
    labels = np.zeros(len(anchors), np.int64)
    targets = np.zeros((len(anchors), 4), np.float32)
    if len(gt_xyxy) == 0:
        return labels, targets
    overlaps = iou(to_xyxy(anchors), gt_xyxy)
    best_gt = overlaps.argmax(1)
    positive = overlaps.max(1) >= threshold
    best_anchor = overlaps.argmax(0)
    best_gt[best_anchor] = np.arange(len(gt_xyxy))
    positive[best_anchor] = True
    labels[positive] = gt_classes[best_gt[positive]] + 1
    targets[positive] = encode(gt_xyxy[best_gt[positive]], anchors[positive])
    return labels, targets


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_out: int) -> np.ndarray:
    """Greedy non-maximum suppression: kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_out:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[iou(boxes[i : i + 1], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def postprocess(
    regressions: np.ndarray,
    class_logits: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    candidates: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw head outputs -> (normalized xyxy boxes, scores, classes), per-class NMS.

    `class_logits` [A, C + 1] has background at index 0 (softmax over all). The low default
    score threshold is COCO practice: mAP integrates over the whole precision-recall curve, so
    cutting low-confidence detections early only lowers recall. Only the `candidates` best
    anchors per class enter NMS (as TFLite_Detection_PostProcess does), which bounds its cost.
    """
    boxes = np.clip(decode(regressions, anchors), 0.0, 1.0)
    probs = softmax(class_logits.astype(np.float32))[:, 1:]
    return nms_per_class(boxes, probs, score_threshold, iou_threshold, max_detections, candidates)


def nms_per_class(
    boxes: np.ndarray,
    probs: np.ndarray,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    candidates: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded boxes [A, 4] (normalized xyxy) and class probabilities [A, C] (no background)
    -> the best `max_detections` of a per-class NMS (`postprocess`'s second half)."""
    out_b, out_s, out_c = [], [], []
    for c in range(probs.shape[1]):
        idx = np.flatnonzero(probs[:, c] >= score_threshold)
        idx = idx[np.argsort(-probs[idx, c], kind="stable")[:candidates]]
        if idx.size == 0:
            continue
        kept = idx[nms(boxes[idx], probs[idx, c], iou_threshold, max_detections)]
        out_b.append(boxes[kept])
        out_s.append(probs[kept, c])
        out_c.append(np.full(kept.size, c, np.int64))
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    b, s, c = np.concatenate(out_b), np.concatenate(out_s), np.concatenate(out_c)
    top = np.argsort(-s, kind="stable")[:max_detections]
    return b[top].astype(np.float32), s[top].astype(np.float32), c[top]
