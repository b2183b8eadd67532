"""Detectors and segmenters in the one flow: the task, its annotations, the CPU postprocess split,
and the task metrics of every variant (COCO mAP, mIoU) beside SQNR and agreement.

    prepare   `setup(study)`: the task (--task, or read from --annotations), the ground truth of
              the --eval_data images (matched by stem), and the split: the postprocess layers
              (NMS, box decoding, argmax, large resizes, or --postprocess_from) are cut off once,
              converted in float to `postprocess.tflite`, and `study.model` becomes the body. Every
              variant (the float reference too) is then a body; the float tail ships beside it.
    measure   `measure(study, paths)`: each model's body (+ tail) on the annotated images, then
              the numpy postprocess (SSD decode + NMS with --anchors, or upsample + argmax) and
              pycocotools / the confusion matrix. `postprocess_ms` is the CPU numpy part per
              image, so a tail-less detector still has an end-to-end latency.
    checks    `refuse_quantized_nms(variants, result)`: an integer variant holding NMS is an error.

Without annotations and with --task=auto nothing here runs: today's classifier / fidelity flow.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from edgequant import postprocess, tasks, usermodel
from edgequant.errors import UserError
from edgequant.tasks import formats

log = logging.getLogger(__name__)
KINDS = ("auto", "classification", "detection", "segmentation")
TAIL_NAME = "postprocess"  # postprocess.tflite + postprocess.recipe.json in the bundle
# Output names the detection postprocess reads (by name, never by index).
RAW = ("box_regressions", "class_logits")  # SSD raw heads: needs anchors
DECODED = ("boxes", "scores")  # decoded xyxy in [0, 1] and class probabilities (background 0)


@dataclasses.dataclass
class TaskSetup:
    """What a detection or segmentation deployment shares across its stages."""

    kind: str  # detection | segmentation
    truth: tasks.Annotations
    anchors: np.ndarray | None
    split: dict  # where the postprocess starts and why (SplitPlan + chosen_by), or why none
    tail_path: Path | None  # the float postprocess .tflite run after every body, if any

    def record(self) -> dict:
        t = self.truth
        return {
            "kind": self.kind,
            "annotations": {
                "source": str(t.source),
                "format": t.format,
                "images": len(t.images),
                "classes": list(t.class_names),
                "unannotated": list(t.unannotated),
            },
            "anchors": None if self.anchors is None else len(self.anchors),
            "postprocess": self.split,
            "tail": str(self.tail_path) if self.tail_path else None,
        }


def resolve_kind(config) -> str | None:
    """detection / segmentation, or None (classification or fidelity: today's flow)."""
    t = config.get("task")
    if t is None:
        return None
    kind, path = t.kind, t.annotations
    if kind not in KINDS:
        raise UserError(f"task: unknown task '{kind}'; valid: {', '.join(KINDS)}")
    if kind == "classification" or (kind == "auto" and not path):
        if path:
            raise UserError(
                "--annotations score detectors and segmenters: use --task=detection, "
                "segmentation or auto (a classifier's labels come from class folders)"
            )
        return None
    if not path:
        raise UserError(f"--task={kind} needs --annotations=PATH (COCO JSON, VOC, YOLO or masks)")
    found = tasks.detect_task(path)
    if kind != "auto" and found != kind:
        raise UserError(f"--task={kind}, but {path} holds {found} annotations")
    return found


def setup(study) -> None:
    """Resolves the task, loads its ground truth and splits off the CPU postprocess (once)."""
    config = study.config
    kind = resolve_kind(config)
    if kind is None:
        if config.get("task") is not None and config.task.postprocess_from:
            raise UserError("--postprocess_from needs --task=detection|segmentation|auto")
        return
    if not config.data.eval_path:
        raise UserError("--annotations score the images of --eval_data: pass --eval_data=IMAGES")
    model = study.model
    split_record, tail_path = (
        {"chosen_by": "none", "why": "no postprocess layer in the graph"},
        None,
    )
    outputs = list(model.outputs)
    if model.keras is not None:
        split = postprocess.split_model(model.keras, config.task.postprocess_from or None)
        if split is not None:
            split_record, tail_path = _write_tail(study, split)
            study.model = _body(split, model)
            outputs = usermodel.from_keras(split.tail).outputs
    elif config.task.postprocess_from:
        raise UserError(f"--postprocess_from splits Keras models; this one is a {model.format}")
    outputs = {t.name: t for t in outputs}
    truth = tasks.load_annotations(
        config.task.annotations, config.data.eval_path, _num_classes(kind, outputs)
    )
    anchors = _anchors(config.task.anchors, outputs) if kind == "detection" else None
    study.task = TaskSetup(kind, truth, anchors, split_record, tail_path)
    if truth.unannotated:
        study.warnings.append(
            f"{len(truth.unannotated)} --eval_data images have no annotation and are not scored "
            f"by the task metrics (e.g. {truth.unannotated[0]})"
        )


def _write_tail(study, split) -> tuple[dict, Path]:
    from edgequant.quantize import convert, recipes

    recipe = dataclasses.replace(recipes.get("fp32"), name=TAIL_NAME, note="CPU postprocess")
    path = convert.write(convert.convert(split.tail, recipe), recipe, study.out_dir)
    record = {
        **split.plan.to_dict(),
        "why": "postprocess ops (NMS, box decoding, argmax, large resizes) are not Edge TPU ops "
        "and lose their meaning in 8 bits: they run in float on the CPU after the body",
    }
    return record, path


def _body(split, model: usermodel.UserModel) -> usermodel.UserModel:
    """The body as the study's model: the same inputs (names, shapes) as the user's model."""
    body = usermodel.from_keras(split.body, model.path, model.format)
    body.inputs = model.inputs
    return body


def _num_classes(kind: str, outputs: dict) -> int:
    if kind == "detection":
        for name in (RAW[1], DECODED[1]):
            if name in outputs:
                return int(outputs[name].shape[-1]) - 1  # background at index 0
        raise UserError(
            f"a detector's outputs must be named {' + '.join(RAW)} (raw SSD heads, with "
            f"--anchors) or {' + '.join(DECODED)}; this model has {', '.join(sorted(outputs))}"
        )
    maps = [t for t in outputs.values() if len(t.shape) == 4]
    if len(maps) != 1:
        raise UserError(
            "a segmenter needs exactly one [N, H, W, classes] logits output; this model has "
            + ", ".join(f"{n} {list(t.shape)}" for n, t in sorted(outputs.items()))
        )
    return int(maps[0].shape[-1])


def _anchors(path: str, outputs: dict) -> np.ndarray | None:
    if RAW[0] not in outputs:
        return None
    if not path:
        raise UserError(
            f"the detector outputs raw '{RAW[0]}': pass --anchors=FILE.npy ([A, 4] cy, cx, h, w "
            "normalized, in the order of the outputs)"
        )
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"--anchors {path}: not a readable .npy ({e})") from None
    want = outputs[RAW[0]].shape[-2]
    if a.ndim != 2 or a.shape[1] != 4 or (want is not None and a.shape[0] != want):
        raise UserError(f"--anchors {path}: shape {list(a.shape)}, the model needs [{want}, 4]")
    return a.astype(np.float32)


def measure(study, paths: dict[str, Path]) -> dict[str, dict]:
    """{model name: task metrics} for each body .tflite in `paths`, with the float tail after
    it, over the annotated --eval_data images in one streamed pass."""
    from edgequant.data import sources
    from edgequant.evaluate.runner import SignatureModel

    setup_ = study.task
    split, truths = _annotated_split(study.evaluation.source, setup_.truth)
    bs = study.config.evaluate.batch_size
    bodies = {n: SignatureModel(p, bs, signature=None) for n, p in paths.items()}
    tail = SignatureModel(setup_.tail_path, bs, signature=None) if setup_.tail_path else None
    preds = {n: {} for n in paths}
    matrices = {n: tasks.ConfusionMatrix(setup_.truth.num_classes) for n in paths}
    post_ms = {n: [] for n in paths}
    start = 0
    for x, _ in sources.Split.batches(split, bs):
        batch = truths[start : start + len(next(iter(x.values())))]
        start += len(batch)
        for name, body in bodies.items():
            out = body.predict(x)
            if tail is not None:
                out = tail.predict(out)
            if setup_.kind == "detection":
                t0 = time.perf_counter()
                preds[name].update(_detections(out, batch, setup_.anchors))
                post_ms[name].append((time.perf_counter() - t0) * 1e3 / len(batch))
                continue
            for logits, t in zip(_logits(out), batch, strict=True):
                t0 = time.perf_counter()
                predicted = tasks.class_map(logits, t.height, t.width)
                post_ms[name].append((time.perf_counter() - t0) * 1e3)
                matrices[name].update(formats.read_mask(t.mask), predicted)
    result = {}
    for name in paths:
        if setup_.kind == "detection":
            m = tasks.evaluate_detection(preds[name], setup_.truth)
            d = {
                "map50": m.map50,
                "map": m.map,
                "per_class_ap": {c: v["ap"] for c, v in m.per_class.items()},
                "per_class_ap50": {c: v["ap50"] for c, v in m.per_class.items()},
                "per_class_objects": {c: v["objects"] for c, v in m.per_class.items()},
                "images": m.images,
                "detections": m.detections,
            }
        else:
            m = matrices[name].result(setup_.truth.class_names)
            d = m.to_dict()
        d["postprocess_ms"] = float(np.median(post_ms[name])) if post_ms[name] else None
        result[name] = d
    return result


def _annotated_split(source, truth) -> tuple:
    """The --eval_data records of the annotated images, and their truths in the same order."""
    from edgequant.data import sources

    paths = getattr(source, "paths", None)
    if paths is None:
        raise UserError(
            f"--annotations match images by file name: --eval_data must be an image folder, "
            f"not {source.description}"
        )
    index = {}
    for i, p in enumerate(paths):
        index.setdefault(Path(str(p)).stem, i)
    by_stem = truth.by_stem()
    missing = [s for s in by_stem if s not in index]
    if missing:
        raise UserError(
            f"{truth.source}: {len(missing)} annotated images are not readable images of "
            f"--eval_data (e.g. '{missing[0]}')"
        )
    chosen = sorted(index[s] for s in by_stem)
    truths = [by_stem[Path(str(paths[i])).stem] for i in chosen]
    return sources.Split(source, np.asarray(chosen), "annotated"), truths


def _detections(out: dict, truths, anchors) -> dict:
    if all(n in out for n in RAW):
        return tasks.detections_from_outputs(out, truths, anchors)
    return {
        t.stem: tasks.detections_from_decoded(out[DECODED[0]][i], out[DECODED[1]][i], t)
        for i, t in enumerate(truths)
    }


def _logits(out: dict) -> np.ndarray:
    (maps,) = [v for v in out.values() if np.ndim(v) == 4]
    return maps


def refuse_quantized_nms(variants: list[dict], result: dict) -> list[dict]:
    """The variants whose integer graph holds no NMS; each other one is an error line (an NMS
    quantized to 8 bits silently drops or merges boxes)."""
    kept = []
    for v in variants:
        if v.get("activations") in ("int8", "int16"):
            try:
                postprocess.refuse_quantized_nms(Path(v["path"]).read_bytes())
            except UserError as e:
                result["errors"].append({"name": v["name"], "error": str(e)})
                continue
        kept.append(v)
    return kept


def end_to_end(study, variant: dict) -> None:
    """The variant's `end_to_end_latency_ms`: the device runner's body + tail chain when there is
    a tail, plus the measured numpy postprocess per image (decode + NMS, upsample + argmax)."""
    setup_ = getattr(study, "task", None)
    if setup_ is None:
        return
    variant["postprocess"] = str(setup_.tail_path) if setup_.tail_path else None
    lat = variant.get("latency_ms")
    if not lat:
        return
    chained = variant.pop("end_to_end_ms", None)
    base = chained or lat
    cpu = (variant.get("metrics") or {}).get("postprocess_ms") or 0.0
    variant["end_to_end_latency_ms"] = {
        **{k: base[k] + cpu for k in ("p50", "p90", "p99") if base.get(k) is not None},
        "tail_tflite": bool(chained),  # body + tail timed chained by the device runner
        "body_plus_tail_p50": chained["p50"] if chained else None,
        "numpy_postprocess_ms": cpu,  # + the numpy decode/NMS or upsample/argmax per image
    }
