"""Task metrics for detectors and segmenters: ground truth from the formats users have, the CPU
postprocess of a detector's raw head, and COCO mAP / mIoU.

    truth = tasks.load_annotations(path, images_dir, num_classes)   # any format, checked
    tasks.evaluate_detection({stem: Detections}, truth)             # pycocotools
    tasks.evaluate_segmentation([(stem, class_map)], truth)         # streamed confusion matrix

From a model's named outputs (a batch of the images `truth.images[i].image`, in order):
    tasks.detections_from_outputs(outputs, truth.images[i:j], anchors)   # raw SSD-style heads
    tasks.update_from_logits(matrix, outputs["class_logits"], truth.images[i:j])
"""

from edgequant.tasks.annotations import (
    Annotations,
    ImageTruth,
    detect_task,
    load_annotations,
)
from edgequant.tasks.detection import (
    DetectionMetrics,
    Detections,
    detections_from_decoded,
    detections_from_outputs,
    detections_from_postprocess,
    detections_from_raw,
    evaluate_detection,
)
from edgequant.tasks.segmentation import (
    ConfusionMatrix,
    SegmentationMetrics,
    class_map,
    evaluate_segmentation,
    update_from_logits,
)

__all__ = [
    "Annotations",
    "ConfusionMatrix",
    "DetectionMetrics",
    "Detections",
    "ImageTruth",
    "SegmentationMetrics",
    "class_map",
    "detect_task",
    "detections_from_decoded",
    "detections_from_outputs",
    "detections_from_postprocess",
    "detections_from_raw",
    "evaluate_detection",
    "evaluate_segmentation",
    "load_annotations",
    "update_from_logits",
]
