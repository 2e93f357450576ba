from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.errors import UserError
from corrective.methods import make_settings
from corrective.methods.ssd import task_importances


def test_ssd_importances_on_augmented_batches_are_a_seeded_setting(poison_run) -> None:
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    plain = make_settings("ssd")
    augmented = make_settings("ssd", {"importance_batches": "augmented"})
    imp_f, imp_r, _ = task_importances(task, plain)
    aug_f, aug_r, _ = task_importances(task, augmented)
    assert imp_f.keys() == aug_f.keys()
    assert any(not torch.equal(imp_r[k], aug_r[k]) for k in imp_r)  # other batches, other importances
    again = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    for k, v in task_importances(again, augmented)[0].items():  # the same task seed: the same batches
        assert torch.equal(v, aug_f[k])
    with pytest.raises(UserError, match="importance_batches"):
        make_settings("ssd", {"importance_batches": "random"})
