"""A Python callable `module:function` that returns or yields the samples, capped."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np

from edgequant.data import checks
from edgequant.data.sources.base import Batch, Source
from edgequant.errors import UserError
from edgequant.tensors import check_shape


@dataclasses.dataclass
class CallableSource(Source):
    fn: Callable = None
    shapes: dict[str, tuple] = None
    max_samples: int = 100_000

    def _samples(self) -> Iterator[tuple[dict, int | None]]:
        """(sample by input name, label or None) as the callable gives them, not yet converted:
        a pass converts only the samples it keeps (`floats`). What the user's code raises, or a
        None where an iterable belongs, is one line naming the callable."""
        what = self.description.removeprefix("callable:")
        try:
            items = self.fn()
            if items is None:
                raise UserError(
                    f"data callable '{what}' returned None: it must return (or yield) an "
                    "iterable of samples"
                )
            for i, item in enumerate(items):
                if i >= self.max_samples:
                    raise UserError(
                        f"data callable '{what}' yielded more than {self.max_samples} samples "
                        "(data.max_samples): an endless generator? make it finite, or raise "
                        "--config.data.max_samples"
                    )
                if item is None:
                    raise UserError(f"data callable '{what}' yielded None as sample {i}")
                x, y = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
                if not isinstance(x, dict):
                    x = {self.input_names[0]: x}
                yield x, None if y is None else int(y)
        except (UserError, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as e:  # noqa: BLE001 - the user's code can raise anything
            line = str(e).splitlines()[0] if str(e) else ""
            raise UserError(
                f"data callable '{what}' raised {type(e).__name__}: {line[:200]}"
            ) from None

    def floats(self, x: dict) -> dict[str, np.ndarray]:
        what = self.description.removeprefix("callable:")
        missing = [k for k in self.input_names if k not in x]
        if missing:
            raise UserError(
                f"data callable '{what}': a sample has keys {sorted(x)}; the model's inputs "
                f"are {self.input_names}"
            )
        try:
            return {k: np.asarray(x[k], np.float32) for k in self.input_names}
        except (TypeError, ValueError) as e:
            raise UserError(f"data callable '{what}': a sample is not numeric: {e}") from None

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        wanted = set(indices.tolist())
        last = max(wanted, default=-1)
        xs: list[dict] = []
        ys: list[int] = []
        for i, (x, y) in enumerate(self._samples()):
            if i > last:
                break  # every wanted sample is in: a long generator is not drained
            if i in wanted:
                xs.append(self.floats(x))
                ys.append(-1 if y is None else y)
            if len(xs) == batch_size:
                yield self._stack(xs, ys)
                xs, ys = [], []
        if xs:
            yield self._stack(xs, ys)

    def _stack(self, xs, ys) -> Batch:
        x = {k: np.stack([s[k] for s in xs]) for k in self.input_names}
        return x, (None if self.labels is None else np.asarray(ys, np.int64))


def open_callable(spec: str, inputs, max_samples: int = 100_000) -> CallableSource:
    """`module:function` (the module importable from the current directory or PYTHONPATH),
    returning an iterable of samples: an array (one input), a dict by input name, or a
    (sample, label) pair. It is called once per pass over the data; the first pass (here)
    counts the samples (at most `max_samples`), checks every one is finite with the model's
    shapes, and that either every sample or none has a label."""
    module_name, _, fn_name = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except Exception as e:  # noqa: BLE001 - importing the user's module runs its code
        line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot import data callable '{spec}': {line[:200]}") from None
    if not callable(fn):
        raise UserError(f"data callable '{spec}' is a {type(fn).__name__}, not a function")
    src = CallableSource(
        "callable", f"callable:{spec}", [t.name for t in inputs], 0, fn=fn, max_samples=max_samples
    )
    n, labels = 0, []
    for x, y in src._samples():
        sample = src.floats(x)
        for t in inputs:
            check_shape(t.name, sample[t.name].shape, t.sample_shape, f"{spec} sample {n}")
            if not np.isfinite(sample[t.name]).all():
                raise UserError(
                    f"data callable '{spec}': input '{t.name}' has NaN or Inf values in sample "
                    f"{n}; quantization needs finite data"
                )
        labels.append(y)
        n += 1
    if n == 0:
        raise UserError(f"data callable '{spec}' yielded no samples")
    src.size = n
    unlabelled = [i for i, y in enumerate(labels) if y is None]
    if unlabelled and len(unlabelled) < n:
        raise UserError(
            f"data callable '{spec}': sample {unlabelled[0]} has no label but others have one; "
            "give (sample, label) for every sample or for none"
        )
    if not unlabelled:
        src.labels = np.asarray(labels, np.int64)
        checks.refuse_negative_labels(src.labels, f"data callable '{spec}'")
    return src
