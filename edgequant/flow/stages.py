"""The flow's stages, in the order `run.STAGES` runs them (protocol: flow/study.py).

plain     the target's recipes (Edge TPU: uint8; CPU: every recipe and AEQ recipe)
recovery  when the plain full-integer variant misses the budget on the validation data:
          the recovery ladder (search/ladder.py), cheapest first
"""

from __future__ import annotations

import logging

from edgequant.errors import UserError
from edgequant.flow import variants
from edgequant.flow.measure import measure, within_budget
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
    """The ladder, when the plain full-integer variant misses the budget (result["recovery"]
    records every trial, judged on validation data, never on the evaluation data)."""
    from edgequant.search import ladder

    trials = result.setdefault("recovery", [])
    if not study.config.recovery.enabled:
        return []
    plain_v = next(
        (v for v in result["variants"] if v["name"] in ("uint8", "int8") and v["step"] == "plain"),
        None,
    )
    if plain_v is None:
        return []
    float_path = variants.float_path(study)
    m = measure(study, [plain_v], study.validation, float_path)
    ok, why = within_budget(study, m[plain_v["name"]], m["float"])
    trials.append(
        {"step": "plain", "name": plain_v["name"], "meets_budget": ok, "on_validation": why}
    )
    return [] if ok else ladder.recover(study, plain_v, float_path, trials)
