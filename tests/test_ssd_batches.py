from __future__ import annotations

import copy

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


def test_importances_run_in_the_models_layout_and_precision(poison_run) -> None:
    """The importance pass runs channels-last where the model runs so (the same importances up to float rounding)
    and under bf16 autocast for a model trained in bf16 (close to fp32's, summed in float32)."""
    from dataclasses import replace

    from corrective.methods.ssd import importances

    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    forget = task.forget()
    plain = importances(task.model, forget, task.pipeline, 64, False)
    channels_last = copy.deepcopy(task.model).to(memory_format=torch.channels_last)  # the session's model untouched
    as_trained = importances(channels_last, forget, task.pipeline, 64, False)
    half = importances(task.model, forget, task.pipeline, 64, False, precision="bf16")
    for k, v in plain.items():
        assert v.dtype == torch.float32 and half[k].dtype == torch.float32 and v.is_contiguous()
        assert torch.allclose(as_trained[k], v, rtol=1e-4, atol=1e-12)
    total = torch.cat([v.flatten() for v in plain.values()])
    total_half = torch.cat([v.flatten() for v in half.values()])
    assert not torch.equal(total, total_half)  # bf16 ran
    assert float((total_half - total).abs().sum() / total.abs().sum()) < 0.1  # and gives nearly the same
    # the task's own recipe decides: a bf16 recipe gives the bf16 importances
    bf16_task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    bf16_task = replace(bf16_task, config=replace(bf16_task.config, precision="bf16"))
    for k, v in task_importances(bf16_task, make_settings("ssd"))[0].items():
        assert torch.equal(v, half[k])
    assert bf16_task.precision == "bf16" and task.precision == "fp32"


def test_teachers_run_in_the_layout_of_the_training_steps(poison_run) -> None:
    """A frozen teacher or reference is put channels-last where the task's training steps run in bf16 (their
    forwards run inside those steps); in fp32 it keeps M_o's layout."""
    from dataclasses import replace

    from corrective.models.layout import is_channels_last

    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    teacher = task.teacher()
    assert not is_channels_last(teacher) and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    bf16_task = replace(task, config=replace(task.config, precision="bf16"))
    teacher = bf16_task.teacher()
    assert is_channels_last(teacher) and not is_channels_last(task.model)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = next(iter(task.batches(task.train, 0, task.config))).x
    with torch.no_grad():
        assert torch.allclose(teacher(x), task.model.eval()(x), atol=1e-5)
