"""A config key means the same through both doors of the one flow: the study's and a user's
deployment (tests/doors.py). A key honoured by one door and silently ignored by the other is
exactly the drift two front doors caused."""

import pytest

from tests.doors import DOORS, open_door


@pytest.mark.parametrize("door", DOORS)
def test_max_eval_caps_the_evaluation_split_through_either_door(
    door, tiny_model, digits, prepared, tmp_path
):
    whole = open_door(door, tiny_model, digits, prepared, tmp_path / "whole")
    capped = open_door(door, tiny_model, digits, prepared, tmp_path / "capped",
                       {"data.max_eval": 40})  # fmt: skip
    assert len(whole.evaluation) > 40 and len(capped.evaluation) == 40
    assert set(capped.evaluation.indices) <= set(whole.evaluation.indices)


@pytest.mark.parametrize("door", DOORS)
def test_a_budget_key_the_labels_do_not_use_is_named_through_either_door(
    door, tiny_model, digits, prepared, tmp_path
):
    study = open_door(door, tiny_model, digits, prepared, tmp_path, {"budget.min_sqnr_db": 30.0})
    assert study.labels_output is not None
    assert (
        "budget.min_sqnr_db=30.0 is not used: this data is judged by budget.max_drop_pp=1.0 "
        "and budget.min_top1=0.0"
    ) in study.warnings
