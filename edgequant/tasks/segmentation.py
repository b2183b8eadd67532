"""Segmentation metrics, streamed: one confusion matrix filled image by image.

mIoU is computed the way the usual benchmarks (PASCAL VOC, Cityscapes, mmseg) do: one
confusion matrix over all pixels of all images, IoU_c = TP / (TP + FP + FN) per class, and the
mean over the classes that occur in the ground truth or the prediction (a class absent from both
has no IoU and is left out rather than counted as 0 or 1); pixels whose mask value is 255 are
not scored. Only the matrix is kept, so memory does not grow with the number of images.

The segmenter body ends at low-resolution class logits; `class_map` is its CPU postprocess:
bilinear upsampling to the mask's size, then argmax. Upsampling logits before the argmax (not
labels after it) is what keeps boundaries smooth, and both steps stay in float in numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from edgequant.tasks import formats
from edgequant.tasks.annotations import IGNORE_INDEX, Annotations


@dataclasses.dataclass(frozen=True)
class SegmentationMetrics:
    miou: float
    pixel_accuracy: float
    per_class_iou: dict  # class name -> IoU, None when the class is in neither GT nor prediction
    images: int
    pixels: int  # scored pixels (ignore excluded)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfusionMatrix:
    """Streaming [ground truth, prediction] pixel counts over `num_classes` classes."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), np.int64)
        self.images = 0

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        if truth.shape != predicted.shape:
            raise ValueError(f"prediction {predicted.shape} and mask {truth.shape} differ in size")
        keep = truth != IGNORE_INDEX
        t, p = truth[keep].astype(np.int64), predicted[keep].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= self.num_classes):
            raise ValueError(f"predicted class outside 0-{self.num_classes - 1}")
        self.counts += np.bincount(t * self.num_classes + p, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        self.images += 1

    def result(self, class_names: tuple[str, ...]) -> SegmentationMetrics:
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - tp
        present = union > 0
        iou = np.where(present, tp / np.maximum(union, 1), np.nan)
        total = int(self.counts.sum())
        return SegmentationMetrics(
            miou=float(np.nanmean(iou)) if present.any() else 0.0,
            pixel_accuracy=float(tp.sum() / total) if total else 0.0,
            per_class_iou={
                n: (float(v) if p else None)
                for n, v, p in zip(class_names, iou, present, strict=True)
            },
            images=self.images,
            pixels=total,
        )


def evaluate_segmentation(
    predictions: Iterable[tuple[str, np.ndarray]], truth: Annotations
) -> SegmentationMetrics:
    """mIoU and pixel accuracy of (image stem, predicted class map [H, W]) pairs, each map at
    its mask's size (`class_map` makes one from logits). Every annotated image must come once:
    a skipped image would quietly leave its errors out of the score."""
    masks = {t.stem: t.mask for t in truth.images}
    matrix = ConfusionMatrix(truth.num_classes)
    seen = set()
    for stem, predicted in predictions:
        if stem not in masks or stem in seen:
            raise ValueError(f"prediction for unknown or repeated image '{stem}'")
        seen.add(stem)
        matrix.update(formats.read_mask(masks[stem]), np.asarray(predicted))
    if len(seen) != len(masks):
        raise ValueError(f"no prediction for {sorted(set(masks) - seen)[:5]}")
    return matrix.result(truth.class_names)


def update_from_logits(matrix: ConfusionMatrix, logits: np.ndarray, truths) -> None:
    """Adds a batch of a segmenter's class logits [N, h, w, C] (the images of `truths`, in that
    order) to `matrix`: upsampled to each mask's size on the CPU, argmaxed and scored. The
    streaming form of `evaluate_segmentation` for a loop over batches."""
    for lg, t in zip(logits, truths, strict=True):
        matrix.update(formats.read_mask(t.mask), class_map(lg, t.height, t.width))


def class_map(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Class logits [h, w, C] -> class indices [height, width]: bilinear upsampling (half-pixel
    centres, as tf.image.resize) of the logits, then argmax."""
    logits = np.asarray(logits, np.float32)
    wy = _interpolation(logits.shape[0], height)
    wx = _interpolation(logits.shape[1], width)
    rows = np.tensordot(wy, logits, axes=(1, 0))  # [height, w, C]
    up = np.matmul(rows.transpose(0, 2, 1), wx.T)  # [height, C, width]
    return up.argmax(1).astype(np.int64)


def _interpolation(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] linear-interpolation weights with half-pixel centres and edge clamping."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    w = np.zeros((n_out, n_in), np.float32)
    w[np.arange(n_out), lo] += 1 - frac
    w[np.arange(n_out), hi] += frac
    return w
