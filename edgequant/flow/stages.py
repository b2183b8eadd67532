"""The flow's stages, in the order `run.STAGES` runs them (protocol: flow/study.py).

plain     the target's recipes (Edge TPU: uint8; CPU: every recipe and AEQ recipe)
recovery  when the plain full-integer variant misses the budget on the validation data:
          the recovery ladder (search/ladder.py), cheapest first
"""

from __future__ import annotations

import logging

from edgequant.errors import UserError
from edgequant.flow import variants
from edgequant.flow.study import Study

log = logging.getLogger(__name__)


def plain(study: Study, result: dict) -> list[dict]:
    """The plain variants of the target; a recipe that fails is one line in the errors."""
    built = []
    for c in variants.plain_candidates(study):
        try:
            built.append(variants.build(study, c))
        except (UserError, ValueError, RuntimeError) as e:
            log.error("%s: %s", c.name, e)
            result["errors"].append({"name": c.name, "error": str(e).splitlines()[0]})
    return built


def recovery(study: Study, result: dict) -> list[dict]:
    """The recovery ladder (search/ladder.py): when the plain full-integer variant misses the
    budget on the validation data, or cannot be made at all."""
    from edgequant.search import ladder

    return ladder.recovery_stage(study, result)
