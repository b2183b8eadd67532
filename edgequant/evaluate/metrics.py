"""Evaluation for any model: accuracy when there are labels, fidelity to the float model always.

Fidelity compares each variant's outputs with the float model's on the same inputs, output by
output and under the model's own output names:
  - SQNR in dB, 10 log10(sum ref^2 / sum (ref - q)^2) over the whole evaluation set: the number
    quantization papers and the AI Edge Quantizer's validation report; ~6 dB per effective bit;
  - cosine similarity, averaged per sample (a direction check that ignores scale);
  - max absolute error;
  - top-1 agreement with the float model for classifier-shaped outputs ([N, K], K > 1).
Everything streams: one pass over the evaluation data runs the float model and every variant
batch by batch and only accumulates sums, so a segmentation net over 10,000 images never holds
more than one batch of outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from edgequant import progress
from edgequant.errors import UserError
from edgequant.evaluate import runner


def is_classifier_shaped(shape) -> bool:
    return len(shape) == 2 and (shape[-1] or 0) > 1


class Fidelity:
    """Accumulates one output's agreement with the float reference."""

    def __init__(self, classifier: bool):
        self.classifier = classifier
        self.signal = 0.0
        self.noise = 0.0
        self.cosine_sum = 0.0
        self.max_abs = 0.0
        self.agree = 0
        self.n = 0

    def update(self, ref: np.ndarray, q: np.ndarray) -> None:
        ref = ref.astype(np.float64).reshape(len(ref), -1)
        q = q.astype(np.float64).reshape(len(q), -1)
        diff = ref - q
        self.signal += float(np.sum(ref * ref))
        self.noise += float(np.sum(diff * diff))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(diff))) if diff.size else 0.0)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1)
        dots = np.sum(ref * q, axis=1)
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 1.0)
        self.cosine_sum += float(np.sum(cos))
        if self.classifier:
            self.agree += int(np.sum(ref.argmax(-1) == q.argmax(-1)))
        self.n += len(ref)

    def result(self) -> dict:
        if self.noise == 0:
            sqnr = math.inf
        elif self.signal == 0:
            sqnr = -math.inf
        else:
            sqnr = 10 * math.log10(self.signal / self.noise)
        out = {
            "sqnr_db": sqnr,
            "cosine": self.cosine_sum / max(self.n, 1),
            "max_abs_error": self.max_abs,
        }
        if self.classifier:
            out["agreement"] = self.agree / max(self.n, 1)
        return out


class Classification:
    """Top-1, top-5 and per-class accuracy of one classifier output against labels."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.top1 = 0
        self.top5 = 0
        self.per_class_hits = np.zeros(num_classes, np.int64)
        self.per_class_n = np.zeros(num_classes, np.int64)

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = scores.reshape(len(scores), -1)
        pred = scores.argmax(-1)
        hits = pred == labels
        self.top1 += int(hits.sum())
        k = min(5, scores.shape[-1])
        topk = np.argpartition(-scores, k - 1, axis=-1)[:, :k]
        self.top5 += int(np.sum(np.any(topk == labels[:, None], axis=-1)))
        np.add.at(self.per_class_n, labels, 1)
        np.add.at(self.per_class_hits, labels, hits.astype(np.int64))

    def result(self, class_names=None) -> dict:
        n = int(self.per_class_n.sum())
        names = class_names or [str(i) for i in range(self.num_classes)]
        return {
            "top1": self.top1 / max(n, 1),
            "top5": self.top5 / max(n, 1),
            "per_class": {
                names[i]: float(self.per_class_hits[i] / self.per_class_n[i])
                for i in range(self.num_classes)
                if self.per_class_n[i]
            },
        }


def classifier_output(outputs, num_classes: int) -> str:
    """The output the labels score: the classifier-shaped one with num_classes scores.

    A model whose class count does not match the labels is refused here, on every path,
    rather than reported as a meaningless accuracy.
    """
    fits = [t.name for t in outputs if is_classifier_shaped(t.shape) and t.shape[-1] == num_classes]
    if not fits:
        shapes = ", ".join(f"{t.name} {[d if d else -1 for d in t.shape]}" for t in outputs)
        raise UserError(
            f"the labels have {num_classes} classes but no model output has {num_classes} "
            f"scores (outputs: {shapes})"
        )
    return fits[0]


def evaluate(
    split,
    models: Mapping[str, object],
    reference: str,
    *,
    labels_output: str | None = None,
    num_classes: int = 0,
    class_names=None,
    batch_size: int = runner.DEFAULT_BATCH_SIZE,
) -> dict[str, dict]:
    """One pass over `split`: metrics for every model (name -> SignatureModel-like).

    `reference` names the float model: every other model's fidelity is measured against it.
    With `labels_output`, each model's accuracy on that output too.
    """
    if reference not in models:
        raise ValueError(f"reference model '{reference}' is not among {sorted(models)}")
    ref_model = models[reference]
    outputs = ref_model.outputs
    fidelity = {
        name: {t.name: Fidelity(is_classifier_shaped(t.shape)) for t in outputs}
        for name in models
        if name != reference
    }
    cls = {name: Classification(num_classes) for name in models} if labels_output else {}
    seconds = dict.fromkeys(models, 0.0)
    n = 0
    for x, y in progress.track(split.batches(batch_size), "evaluating", unit="batch"):
        results = {}
        for name, m in models.items():
            start = time.perf_counter()
            results[name] = m.predict(x)
            seconds[name] += time.perf_counter() - start
        ref = results[reference]
        for name, per_output in fidelity.items():
            for out_name, acc in per_output.items():
                acc.update(ref[out_name], results[name][out_name])
        if labels_output and y is not None:
            for name in models:
                cls[name].update(results[name][labels_output], y)
        n += len(next(iter(x.values())))
    if n == 0:
        raise UserError(f"the evaluation data yielded no samples ({split.source.description})")
    out = {}
    for name in models:
        metrics: dict = {
            "n": n,
            "seconds": seconds[name],
            "samples_per_s": n / max(seconds[name], 1e-9),
        }
        if name in cls:
            metrics.update(cls[name].result(class_names))
        if name in fidelity:
            per = {o: acc.result() for o, acc in fidelity[name].items()}
            metrics["sqnr_db"] = {o: r["sqnr_db"] for o, r in per.items()}
            metrics["cosine"] = {o: r["cosine"] for o, r in per.items()}
            metrics["max_abs_error"] = {o: r["max_abs_error"] for o, r in per.items()}
            agreements = {o: r["agreement"] for o, r in per.items() if "agreement" in r}
            if agreements:
                metrics["agreement"] = (
                    agreements[labels_output]
                    if labels_output in agreements
                    else next(iter(agreements.values()))
                )
                metrics["agreement_by_output"] = agreements
        out[name] = metrics
    return out
