"""`api.correct`: the practitioner's path, from a model, its training data and flagged ids."""

from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.data.batches import Pipeline
from corrective.errors import UserError


def kwargs(run: api.Run) -> dict:
    return {"pipeline": Pipeline.of(run.dataset), "spec": run.spec, "config": run.config}


def test_correct_with_a_grid_selects_by_validation_and_forget_changed(poison_run: api.Run) -> None:
    flagged = poison_run.manipulation.ids[:20]
    before = {k: v.clone() for k, v in poison_run.model.state_dict().items()}
    result = api.correct(poison_run.model, poison_run.train_split, flagged, method="ssd", grid=True,
                         val=poison_run.dataset.val, **kwargs(poison_run))
    assert len(result.records) == 50 and sum(r["selected"] for r in result.records) == 1
    assert {"val_accuracy", "forget_changed", "unlearn_seconds"} <= result.record.keys()
    assert "acc_corr" not in result.record  # no test metric on this path
    assert all(torch.equal(before[k], v) for k, v in poison_run.model.state_dict().items())


def test_correct_refuses_what_it_cannot_do(poison_run: api.Run) -> None:
    one = poison_run.manipulation.ids[:1]
    with pytest.raises(UserError, match="validation split"):
        api.correct(poison_run.model, poison_run.train_split, one, grid=True, **kwargs(poison_run))
    with pytest.raises(UserError, match="no flagged sample"):
        api.correct(poison_run.model, poison_run.train_split, [], **kwargs(poison_run))
    with pytest.raises(UserError, match="oracle bound"):
        api.correct(poison_run.model, poison_run.train_split, one, method="oracle", **kwargs(poison_run))
