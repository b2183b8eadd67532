"""The annotation formats users have, read into one raw record per annotated image.

Each reader returns `RawImage`s: the image it names (a file name or stem), the size the file
claims (COCO and VOC store it; YOLO and masks do not), boxes in absolute xyxy pixels and class
*names or indices* as the file holds them. Matching to image files, the class list and every
sanity check happen once, in `annotations.load_annotations`, so the four formats cannot drift
apart in what they accept.

Formats:
- COCO JSON: `images` (id, file_name, width, height), `annotations` (image_id, category_id,
  bbox = [x, y, w, h] in pixels, iscrowd), `categories` (id, name). A category's class index is
  its position in the categories sorted by id (COCO's own ids have gaps: 1..90 for 80 classes).
- Pascal VOC: one XML per image (`filename`, `size`, `object/name`, `object/bndbox` with
  1-based inclusive pixel coordinates, `difficult`).
- YOLO txt: one file per image, one `class cx cy w h` line per object, normalized to [0, 1]
  by the image size (an empty file = an image without objects).
- Masks: one single-channel PNG per image, pixel value = class index, 255 = ignore.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edgequant.errors import UserError

FORMATS = ("coco", "voc", "yolo", "masks")
# The class-name list a VOC or YOLO folder may carry, one name per line (darknet's convention).
CLASSES_FILE = "classes.txt"


@dataclasses.dataclass(frozen=True)
class RawImage:
    """One annotated image as its annotation file states it (nothing checked yet)."""

    source: str  # the annotation file (and entry) to name in an error
    image: str  # the image's file name (COCO, VOC) or stem (YOLO, masks)
    size: tuple[int, int] | None  # (width, height) the file claims, when it stores one
    boxes: np.ndarray  # [N, 4] float64: xyxy pixels, or normalized cx cy w h (YOLO)
    labels: tuple  # N class names (VOC), category ids (COCO) or indices (YOLO)
    ignore: np.ndarray  # [N] bool: COCO iscrowd, VOC difficult (matched detections not scored)
    mask: Path | None = None
    where: tuple[str, ...] = ()  # per box, where it is in the file ("annotation 7", "line 3")


def detect_format(path: str | Path) -> str:
    """`coco` for a JSON file; for a folder the kind of files it holds (XML, txt, PNG)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"annotations not found: {path}")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise UserError(
            f"{path}: not an annotation file; give a COCO .json file or a folder of VOC .xml, "
            "YOLO .txt or mask .png files"
        )
    suffixes = {p.suffix.lower() for p in path.iterdir() if p.name != CLASSES_FILE}
    for suffix, fmt in ((".xml", "voc"), (".txt", "yolo"), (".png", "masks")):
        if suffix in suffixes:
            return fmt
    raise UserError(f"{path}: no .xml, .txt or .png annotation files in this folder")


def read(path: Path, fmt: str) -> tuple[list[RawImage], tuple[str, ...] | None, dict | None]:
    """(raw images, class names the source defines or None, COCO category id -> index or None)."""
    if fmt == "coco":
        return read_coco(path)
    names = read_class_names(path / CLASSES_FILE) if (path / CLASSES_FILE).is_file() else None
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == _SUFFIX[fmt])
    files = [p for p in files if p.name != CLASSES_FILE]
    reader = {"voc": read_voc, "yolo": read_yolo, "masks": _mask_record}[fmt]
    return [reader(p) for p in files], names, None


_SUFFIX = {"voc": ".xml", "yolo": ".txt", "masks": ".png"}


def read_class_names(path: Path) -> tuple[str, ...]:
    names = tuple(ln.strip() for ln in path.read_text().splitlines() if ln.strip())
    if len(set(names)) != len(names):
        raise UserError(f"{path}: a class name is listed twice")
    return names


def read_coco(path: Path) -> tuple[list[RawImage], tuple[str, ...], dict]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: malformed COCO JSON: {e}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: malformed COCO JSON: not UTF-8 text") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise UserError(
            f"{path}: malformed COCO JSON: need lists 'images', 'annotations' and 'categories'"
        )
    try:
        cats = sorted(data["categories"], key=lambda c: c["id"])
        index = {c["id"]: i for i, c in enumerate(cats)}
        names = tuple(str(c["name"]) for c in cats)
        images = {
            im["id"]: (str(im["file_name"]), (int(im["width"]), int(im["height"])))
            for im in data["images"]
        }
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: malformed COCO JSON: an image or category lacks {e}") from None
    per_image: dict = {i: ([], [], [], []) for i in images}
    for n, a in enumerate(data["annotations"]):
        where = f"{path} annotation {a.get('id', n) if isinstance(a, dict) else n}"
        try:
            image_id, cat, bbox = a["image_id"], a["category_id"], a["bbox"]
            x, y, w, h = (float(v) for v in bbox)
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"{where}: malformed COCO JSON: need image_id, category_id and bbox [x, y, w, h]"
            ) from None
        if image_id not in images:
            raise UserError(f"{where}: image_id {image_id} is not in 'images'")
        if cat not in index:
            raise UserError(f"{where}: category_id {cat} is not in 'categories'")
        boxes, labels, ignore, where_box = per_image[image_id]
        boxes.append((x, y, x + w, y + h))
        labels.append(cat)
        ignore.append(bool(a.get("iscrowd", 0)))
        where_box.append(f"annotation {a.get('id', n)}")
    raws = [
        RawImage(
            f"{path} image {file_name}",
            file_name,
            size,
            np.asarray(per_image[i][0], np.float64).reshape(-1, 4),
            tuple(per_image[i][1]),
            np.asarray(per_image[i][2], bool),
            where=tuple(per_image[i][3]),
        )
        for i, (file_name, size) in images.items()
    ]
    return raws, names, index


def read_voc(path: Path) -> RawImage:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UserError(f"{path}: malformed VOC XML: {e}") from None
    size = root.find("size")
    try:
        wh = (
            (int(size.findtext("width")), int(size.findtext("height")))
            if size is not None
            else None
        )
        boxes, labels, ignore = [], [], []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            # VOC pixels are 1-based and inclusive: xmin=1, xmax=W is the whole width.
            boxes.append((x1 - 1, y1 - 1, x2, y2))
            labels.append((obj.findtext("name") or "").strip())
            ignore.append((obj.findtext("difficult") or "0").strip() == "1")
    except (AttributeError, TypeError, ValueError):
        raise UserError(
            f"{path}: malformed VOC XML: an object needs name and bndbox xmin/ymin/xmax/ymax"
        ) from None
    image = (root.findtext("filename") or "").strip() or path.stem
    return RawImage(
        str(path),
        image,
        wh,
        np.asarray(boxes, np.float64).reshape(-1, 4),
        tuple(labels),
        np.asarray(ignore, bool),
        where=tuple(f"object {i + 1}" for i in range(len(boxes))),
    )


def read_yolo(path: Path) -> RawImage:
    rows, where = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where.append(f"line {i}")
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError
            rows.append((int(parts[0]), *(float(v) for v in parts[1:])))
        except ValueError:
            raise UserError(
                f"{path} line {i}: need 'class cx cy w h' (class index, normalized box)"
            ) from None
    arr = np.asarray(rows, np.float64).reshape(-1, 5)
    return RawImage(
        str(path),
        path.stem,
        None,
        arr[:, 1:],
        tuple(int(c) for c in arr[:, 0]),
        np.zeros(len(arr), bool),
        where=tuple(where),
    )


def _mask_record(path: Path) -> RawImage:
    return RawImage(str(path), path.stem, None, np.zeros((0, 4)), (), np.zeros(0, bool), path)


def read_mask(path: str | Path) -> np.ndarray:
    """The mask's class indices [H, W] uint8; a colour PNG is refused (its value is no index)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise UserError(
                f"{path}: mask mode {im.mode}: need one channel whose pixel value is the class "
                "index (a grayscale or palette PNG)"
            )
        return np.asarray(im).astype(np.int64)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the image header alone (no decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
