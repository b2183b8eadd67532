"""Ground truth for detection and segmentation, from any format, matched to images by stem.

`load_annotations(path, images_dir, num_classes)` reads a COCO JSON file or a folder of VOC XML,
YOLO txt or mask PNG files (`formats.py`) into one typed `Annotations`: per image, its file, size
and either boxes (absolute xyxy pixels) with class indices, or its mask. Every check lives here,
so a bad annotation is one `UserError` line naming the file instead of a traceback or, worse, a
quietly lower mAP:

- an annotation whose image is missing from `images_dir` (all of them counted and the first few
  named): its objects could never be detected, so scoring would punish the model for them;
- images without any annotation are left out of scoring and listed in `unannotated`; above
  `max_unannotated` (a fraction) the folders do not belong together and loading is refused;
- a size the annotation states that differs from the image (boxes would be scaled wrong), a mask
  whose size differs from its image;
- a class index or name outside the model's classes;
- a box with zero or negative size, or outside its image by more than `BOX_TOLERANCE` pixels
  (rounding in exporters makes boxes overhang by a fraction of a pixel; those are clipped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgequant.data.sources import IMAGE_SUFFIXES
from edgequant.errors import UserError
from edgequant.tasks import formats

TASKS = ("detection", "segmentation")
IGNORE_INDEX = 255  # a mask pixel with this value is not scored (VOC's boundary convention)
BOX_TOLERANCE = 1.0  # pixels a box may overhang its image before it is an error
MAX_UNANNOTATED = 0.1  # default share of images without annotation tolerated (left out)
_NAMED = 5  # how many file names an error lists


@dataclasses.dataclass(frozen=True)
class ImageTruth:
    """The ground truth of one image. Detection: `boxes` [N, 4] float32 absolute xyxy pixels,
    `classes` [N] int64 model class indices, `ignore` [N] (crowd / difficult: a detection matched
    to one is neither a hit nor a false positive). Segmentation: `mask`, the PNG path."""

    stem: str
    image: Path
    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray
    mask: Path | None = None

    @property
    def boxes_xywh(self) -> np.ndarray:
        b = self.boxes
        return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


@dataclasses.dataclass(frozen=True)
class Annotations:
    """Ground truth for a set of images, in model class indices whatever the source format."""

    task: str  # "detection" | "segmentation"
    format: str  # "coco" | "voc" | "yolo" | "masks"
    source: Path
    images: tuple[ImageTruth, ...]  # sorted by stem
    class_names: tuple[str, ...]  # index -> name
    unannotated: tuple[str, ...] = ()  # image files without annotation: not scored

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_paths(self) -> list[Path]:
        """The images to run the model on, in the order every per-batch helper expects."""
        return [t.image for t in self.images]

    def by_stem(self) -> dict[str, ImageTruth]:
        return {t.stem: t for t in self.images}

    def summary(self) -> dict:
        """What deploy.json records about the ground truth."""
        return {
            "task": self.task,
            "format": self.format,
            "annotations": str(self.source),
            "images": len(self.images),
            "objects": int(sum(len(t.classes) for t in self.images)),
            "classes": list(self.class_names),
            "unannotated": len(self.unannotated),
            "unannotated_files": list(self.unannotated[:_NAMED]),
        }


def detect_task(path: str | Path) -> str:
    """`--task=auto`: mask PNGs are segmentation; COCO JSON, VOC XML and YOLO txt detection."""
    return "segmentation" if formats.detect_format(path) == "masks" else "detection"


def load_annotations(
    path: str | Path,
    images_dir: str | Path,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    max_unannotated: float = MAX_UNANNOTATED,
) -> Annotations:
    """Reads and checks `path` against the images in `images_dir` (matched by file stem).

    `num_classes` is the model's class count (every index must be below it); `class_names`
    (the model's class order) maps VOC and COCO category names and names YOLO/mask classes, over
    the folder's `classes.txt`; VOC needs one of the two. Without it a COCO category's index is
    its position in the categories sorted by id.
    """
    path, images_dir = Path(path), Path(images_dir)
    fmt = formats.detect_format(path)
    if not images_dir.is_dir():
        raise UserError(f"image folder not found: {images_dir}")
    images = _image_files(images_dir)
    raws, names, coco_index = formats.read(path, fmt)
    if class_names is not None:
        if fmt == "coco":
            coco_index = _coco_by_name(path, names, coco_index, tuple(class_names))
        names = tuple(class_names)
    labels = [lab for r in raws for lab in r.labels]
    if fmt == "voc" and names is None:
        # VOC names its classes but not their order, and the model's order is not knowable
        # from the files: a guess (alphabetical) would silently score class A's boxes as B's.
        raise UserError(
            f"{path}: VOC annotations name classes ({', '.join(sorted(set(labels))[:8])}) but "
            f"not the model's order; put {formats.CLASSES_FILE} (one name per line, in the "
            "model's class order) in the folder or give the class names"
        )
    if fmt == "masks" and names is None and num_classes is None:
        labels = [_largest_class(r.mask) for r in raws]
    if names is None:
        top = max([int(v) for v in labels] or [0]) + 1
        names = tuple(f"class{i}" for i in range(num_classes or top))
    if num_classes is not None and len(names) > num_classes:
        raise UserError(
            f"{path}: {len(names)} classes ({', '.join(names[:8])}"
            f"{', ...' if len(names) > 8 else ''}) but the model has {num_classes}"
        )
    num = num_classes or len(names)
    _refuse_missing_images(path, raws, images)
    truths = [_check(r, images, names, num, fmt, coco_index) for r in raws]
    truths.sort(key=lambda t: t.stem)
    if not truths:
        raise UserError(f"{path}: no annotated images")
    annotated = {t.stem for t in truths}
    unannotated = tuple(sorted(p.name for s, p in images.items() if s not in annotated))
    if len(unannotated) > max_unannotated * len(images):
        raise UserError(
            f"{images_dir}: {len(unannotated)} of {len(images)} images have no annotation in "
            f"{path} ({_first(unannotated)}); give each an annotation (an empty one for an image "
            "without objects) or point --annotations at the annotations of this folder"
        )
    task = "segmentation" if fmt == "masks" else "detection"
    # Every model class is scored (a class with objects but no name must not drop out).
    names = names + tuple(f"class{i}" for i in range(len(names), num))
    return Annotations(task, fmt, path, tuple(truths), tuple(names), unannotated)


def _coco_by_name(path: Path, coco_names: tuple, coco_index: dict, class_names: tuple) -> dict:
    """COCO category id -> the model's index by name: with the model's class list given, the
    categories' ids and order do not matter (COCO's 80 classes have ids up to 90)."""
    unknown = [n for n in coco_names if n not in class_names]
    if unknown:
        raise UserError(
            f"{path}: category '{unknown[0]}' is not one of the model's classes "
            f"({', '.join(class_names[:8])}{', ...' if len(class_names) > 8 else ''})"
        )
    return {cid: class_names.index(coco_names[i]) for cid, i in coco_index.items()}


def _image_files(images_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(images_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        if p.stem in files:
            raise UserError(
                f"{images_dir}: {files[p.stem].name} and {p.name} have the same stem; "
                "annotations match images by stem"
            )
        files[p.stem] = p
    if not files:
        raise UserError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _refuse_missing_images(path: Path, raws: list[formats.RawImage], images: dict) -> None:
    seen: dict[str, str] = {}
    for r in raws:
        stem = Path(r.image).stem
        if stem in seen:
            raise UserError(f"{r.source}: annotates image '{stem}' again (also in {seen[stem]})")
        seen[stem] = r.source
    missing = [r for r in raws if Path(r.image).stem not in images]
    if missing:
        where = missing[0].source if len(missing) == 1 else path
        raise UserError(
            f"{where}: {len(missing)} annotated image(s) missing from the image folder: "
            + _first([_annotated_name(r) for r in missing])
        )


def _annotated_name(raw: formats.RawImage) -> str:
    """The image a record names: its file name (COCO, VOC), else its annotation file (YOLO,
    masks name the image only by stem)."""
    return Path(raw.image).name if raw.size is not None else Path(raw.source).name


def _first(names: Sequence[str]) -> str:
    more = f", ... ({len(names) - _NAMED} more)" if len(names) > _NAMED else ""
    return ", ".join(names[:_NAMED]) + more


def _check(
    raw: formats.RawImage, images: dict, names: tuple, num: int, fmt: str, coco_index
) -> ImageTruth:
    stem = Path(raw.image).stem
    image = images[stem]
    width, height = formats.image_size(image)
    if raw.size is not None and raw.size != (width, height) and raw.size != (0, 0):
        raise UserError(
            f"{raw.source}: states size {raw.size[0]}x{raw.size[1]} but {image.name} is "
            f"{width}x{height}"
        )
    if raw.mask is not None:
        return _check_mask(raw, stem, image, width, height, num)
    classes = _class_indices(raw, names, num, fmt, coco_index)
    boxes = raw.boxes.copy()
    if fmt == "yolo":
        if boxes.size and (boxes.min() < 0 or boxes.max() > 1):
            raise UserError(f"{raw.source}: a YOLO box is not normalized to [0, 1]")
        cx, cy, w, h = (boxes[:, i] for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        boxes *= (width, height, width, height)
    _check_boxes(raw, boxes, width, height)
    boxes = np.clip(boxes, 0, (width, height, width, height))
    return ImageTruth(
        stem, image, width, height, boxes.astype(np.float32), classes, raw.ignore.astype(bool)
    )


def _class_indices(raw, names: tuple, num: int, fmt: str, coco_index) -> np.ndarray:
    if fmt == "coco":
        out = [coco_index[c] for c in raw.labels]
    elif fmt == "voc":
        unknown = [n for n in raw.labels if n not in names]
        if unknown:
            raise UserError(
                f"{raw.source}: class '{unknown[0]}' is not one of the model's classes "
                f"({', '.join(names)})"
            )
        out = [names.index(n) for n in raw.labels]
    else:
        out = list(raw.labels)
    bad = [c for c in out if not 0 <= c < num]
    if bad:
        raise UserError(
            f"{raw.source}: class index {bad[0]} is outside the model's {num} classes (0-{num - 1})"
        )
    return np.asarray(out, np.int64)


def _check_boxes(raw: formats.RawImage, boxes: np.ndarray, width: int, height: int) -> None:
    for i, b in enumerate(boxes):
        where = f"{raw.source} {raw.where[i]}" if raw.where else raw.source
        if b[2] <= b[0] or b[3] <= b[1]:
            raise UserError(f"{where}: box {_fmt(b)} (x1 y1 x2 y2) has zero or negative size")
        t = BOX_TOLERANCE
        if b[0] < -t or b[1] < -t or b[2] > width + t or b[3] > height + t:
            raise UserError(
                f"{where}: box {_fmt(b)} (x1 y1 x2 y2) is outside its {width}x{height} image"
            )


def _fmt(b: np.ndarray) -> str:
    return "[" + " ".join(f"{v:g}" for v in np.round(b, 2)) + "]"


def _largest_class(mask: Path) -> int:
    values = np.unique(formats.read_mask(mask))
    values = values[values != IGNORE_INDEX]
    return int(values.max()) if values.size else 0


def _check_mask(raw, stem: str, image: Path, width: int, height: int, num: int) -> ImageTruth:
    mask = formats.read_mask(raw.mask)
    if mask.shape != (height, width):
        raise UserError(
            f"{raw.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but {image.name} is "
            f"{width}x{height}"
        )
    values = np.unique(mask)
    bad = values[(values >= num) & (values != IGNORE_INDEX)]
    if bad.size:
        raise UserError(
            f"{raw.mask}: pixel value {int(bad[0])} is outside the model's {num} classes "
            f"(0-{num - 1}, {IGNORE_INDEX} = ignore)"
        )
    empty = np.zeros((0, 4), np.float32)
    return ImageTruth(
        stem, image, width, height, empty, np.zeros(0, np.int64), np.zeros(0, bool), raw.mask
    )
