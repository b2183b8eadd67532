"""Progress bars for long loops that stay silent when stdout is not a terminal.

CI logs and notebooks' captured output should not fill with carriage-return noise, so a bar is
shown only on an interactive terminal (EDGEQUANT_PROGRESS=1 forces it, =0 hides it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    forced = os.environ.get("EDGEQUANT_PROGRESS")
    if forced is not None:
        return forced == "1"
    return sys.stdout.isatty()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterates over items, drawing a bar on a terminal and nothing elsewhere."""
    if not enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)
