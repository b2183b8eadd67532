"""Synthetic shapes: images of rectangles, circles and triangles with their boxes and masks,
written as real PNG files and annotations in every supported format.

The offline stand-in for a detection / segmentation set (no download here): the benchmarks
train and score a small detector and segmenter on it, and the tests write a few images to check
that every format parses to the same ground truth. Seeded, so a run is reproducible.

`write_dataset(out_dir, count)` makes:
  images/NNNN.png  coco.json  voc/NNNN.xml  yolo/NNNN.txt (both + classes.txt)  masks/NNNN.png
Detection classes are the shapes (0 rectangle, 1 circle, 2 triangle); mask pixels are
0 = background and 1 + shape class, so the segmenter has SEG_CLASSES.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

SHAPES = ("rectangle", "circle", "triangle")
SEG_CLASSES = ("background", *SHAPES)


@dataclasses.dataclass(frozen=True)
class Scene:
    image: np.ndarray  # [H, W, 3] uint8
    boxes: np.ndarray  # [N, 4] float xyxy pixels (the shape's full extent)
    classes: np.ndarray  # [N] shape class
    mask: np.ndarray  # [H, W] uint8: 0 background, 1 + class where a shape is visible


def draw_scene(rng: np.random.Generator, size: int, max_shapes: int = 3) -> Scene:
    """One image with 1..max_shapes shapes of 15-45% of the side, overlapping little."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    base = rng.uniform(0, 255, 3)
    tilt = rng.uniform(-40, 40, 3)
    image = base + tilt * (xx / size - 0.5)[..., None] + rng.normal(0, 6, (size, size, 3))
    mask = np.zeros((size, size), np.uint8)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(len(SHAPES)))
            w, h = rng.uniform(0.15, 0.45, 2) * size
            if cls == 1:
                w = h
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            box = np.array([x1, y1, x1 + w, y1 + h])
            if all(_overlap(box, b) < 0.2 for b in boxes):
                break
        else:
            continue
        inside = _inside(cls, box, xx, yy)
        colour = (base + rng.choice([-1, 1], 3) * rng.uniform(70, 140, 3)) % 256
        image[inside] = colour + rng.normal(0, 6, (int(inside.sum()), 3))
        mask[inside] = cls + 1
        boxes.append(box)
        classes.append(cls)
    return Scene(
        np.clip(image, 0, 255).astype(np.uint8),
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int64),
        mask,
    )


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def _inside(cls: int, box: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    if cls == 0:
        return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    if cls == 1:
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    # Apex at the top centre, base along the bottom edge: the box is the triangle's extent.
    t = (yy - y1) / (y2 - y1)
    half = t * (x2 - x1) / 2
    cx = (x1 + x2) / 2
    return (t >= 0) & (t < 1) & (xx >= cx - half) & (xx < cx + half)


def write_dataset(
    out_dir: str | Path, count: int, size: int = 96, seed: int = 0, max_shapes: int = 3
) -> dict[str, Path]:
    """Writes `count` scenes and their annotations in every format; returns the paths by name
    (images, coco, voc, yolo, masks)."""
    from PIL import Image

    out = Path(out_dir)
    paths = {
        "images": out / "images",
        "coco": out / "coco.json",
        "voc": out / "voc",
        "yolo": out / "yolo",
        "masks": out / "masks",
    }
    for k in ("images", "voc", "yolo", "masks"):
        paths[k].mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(SHAPES)],
    }
    for i in range(count):
        scene = draw_scene(rng, size, max_shapes)
        stem = f"{i:05d}"
        Image.fromarray(scene.image).save(paths["images"] / f"{stem}.png")
        Image.fromarray(scene.mask).save(paths["masks"] / f"{stem}.png")
        coco["images"].append({"id": i, "file_name": f"{stem}.png", "width": size, "height": size})
        for box, cls in zip(scene.boxes, scene.classes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i,
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        (paths["voc"] / f"{stem}.xml").write_text(voc_xml(f"{stem}.png", size, scene))
        (paths["yolo"] / f"{stem}.txt").write_text(yolo_txt(size, scene))
    paths["coco"].write_text(json.dumps(coco))
    for k in ("voc", "yolo"):  # the class order (VOC would otherwise sort its names)
        (paths[k] / "classes.txt").write_text("\n".join(SHAPES) + "\n")
    (paths["masks"] / "classes.txt").write_text("\n".join(SEG_CLASSES) + "\n")
    return paths


def voc_xml(filename: str, size: int, scene: Scene) -> str:
    objects = "".join(
        f"<object><name>{SHAPES[c]}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{b[0] + 1:.3f}</xmin><ymin>{b[1] + 1:.3f}</ymin>"
        f"<xmax>{b[2]:.3f}</xmax><ymax>{b[3]:.3f}</ymax></bndbox></object>"
        for b, c in zip(scene.boxes, scene.classes, strict=True)
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size}</width>"
        f"<height>{size}</height><depth>3</depth></size>{objects}</annotation>\n"
    )


def yolo_txt(size: int, scene: Scene) -> str:
    lines = []
    for (x1, y1, x2, y2), c in zip(scene.boxes, scene.classes, strict=True):
        cx, cy, w, h = (
            (x1 + x2) / 2 / size,
            (y1 + y2) / 2 / size,
            (x2 - x1) / size,
            (y2 - y1) / size,
        )
        lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def load_images(truth, size: int | None = None) -> np.ndarray:
    """The annotated images as float32 [N, H, W, 3] in [0, 1], in `truth.images` order (resized
    to size x size when given): the benchmarks' model input."""
    from PIL import Image

    out = []
    for t in truth.images:
        with Image.open(t.image) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            out.append(np.asarray(im, np.float32) / 255.0)
    return np.stack(out)
