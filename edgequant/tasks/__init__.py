"""Task metrics for detectors and segmenters: ground truth from the formats users have, the CPU
postprocess of a detector's raw head, and COCO mAP / mIoU.

    truth = tasks.load_annotations(path, images_dir, num_classes)   # any format, checked
    tasks.evaluate_detection({stem: Detections}, truth)             # pycocotools
    tasks.evaluate_segmentation([(stem, class_map)], truth)         # streamed confusion matrix
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
    detections_from_postprocess,
    detections_from_raw,
    evaluate_detection,
)
from edgequant.tasks.segmentation import SegmentationMetrics, class_map, evaluate_segmentation

__all__ = [
    "Annotations",
    "DetectionMetrics",
    "Detections",
    "ImageTruth",
    "SegmentationMetrics",
    "class_map",
    "detect_task",
    "detections_from_postprocess",
    "detections_from_raw",
    "evaluate_detection",
    "evaluate_segmentation",
    "load_annotations",
]
