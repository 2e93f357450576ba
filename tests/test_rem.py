from __future__ import annotations

import math

import pytest
import torch

from corrective import api
from corrective.data.batches import epochs
from corrective.errors import UserError
from corrective.methods import make_settings, run_method
from corrective.methods.base import UnlearnTask, frozen
from corrective.methods.npo import forget_until, method_config
from corrective.methods.rem import rem_ideal
from corrective.metrics import accuracy
from corrective.models.masks import has_reserve


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_npo_stops_at_gamma_after_whole_epochs(poison_run) -> None:
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(1.0), progress=False)
    forget = task.forget()
    s = make_settings("npo", {"lr": 0.05})
    cfg = method_config(task, s, 1)
    per_epoch = math.ceil(len(forget) / cfg.batch_size)
    assert accuracy(task.model, forget, task.pipeline) > 0.5  # the poison was learnt
    model = task.copy_model()
    batches = epochs(forget, task.pipeline, cfg.batch_size, task.generator(1))
    taken = forget_until(task, model, frozen(model), forget, task.pipeline, batches, cfg, gamma=0.2, max_steps=500)
    assert taken < 500 and taken % per_epoch == 0
    assert accuracy(model, forget, task.pipeline) <= 0.2
    model = task.copy_model()  # gamma already met: still one epoch
    taken = forget_until(task, model, frozen(model), forget, task.pipeline, batches, cfg, gamma=1.0, max_steps=500)
    assert taken == per_epoch
    unlearnt, _ = run_method(task, "npo", s)
    assert accuracy(unlearnt, forget, task.pipeline) <= 0.2


def test_rem_returns_a_drop_mode_model_and_leaves_m_o_alone(poison_run) -> None:
    before = state(poison_run.model)
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    model, seconds = run_method(task, "rem", make_settings("rem", {"repair_epochs": 2}))
    assert seconds > 0 and has_reserve(model) and not has_reserve(poison_run.model)
    x = next(iter(epochs(task.train, task.pipeline, 16, torch.Generator().manual_seed(0)))).x
    assert torch.equal(model(x), model(x, mode="drop"))
    assert not torch.equal(model(x), model(x, mode="full"))
    assert all(torch.equal(before[k], v) for k, v in poison_run.model.state_dict().items())
    again, _ = run_method(task, "rem", make_settings("rem", {"repair_epochs": 2}))  # same seed, same model
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_rem_uses_the_reserved_capacity_of_a_capacity_model() -> None:
    run = api.train_run("digits", manipulation="poison", steps=60, training="capacity", progress=False)
    task = api.make_task(run, run.manipulation.forget_ids(1.0), progress=False)
    for overrides in ({}, {"forget_loss": "ascent", "repair_npo": False, "redirect": False}):
        model, _ = run_method(task, "rem", make_settings("rem", {"repair_epochs": 2, **overrides}))
        assert [p.shape for p in model.parameters()] == [p.shape for p in run.model.parameters()]
        assert accuracy(model, task.forget(), task.pipeline) < accuracy(run.model, task.forget(), task.pipeline)


def test_rem_ideal_needs_s_m_and_settings_are_checked(poison_run) -> None:
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    with pytest.raises(UserError, match="oracle"):
        run_method(task, "rem_ideal", make_settings("rem_ideal"))
    with pytest.raises(UserError, match="S_m"):
        rem_ideal(task, make_settings("rem_ideal"))
    ideal = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), oracle=True, progress=False)
    model, _ = run_method(ideal, "rem_ideal", make_settings("rem_ideal", {"repair_epochs": 1}))
    assert has_reserve(model)
    with pytest.raises(UserError, match="forget_loss"):
        make_settings("rem", {"forget_loss": "kl"})
    with pytest.raises(UserError, match="gamma"):
        make_settings("npo", {"gamma": 2.0})


def batch_norm_sizes(task, settings) -> list[int]:
    """The batch sizes batch norm normalised over, in train mode, while REM ran."""
    sizes: list[int] = []

    def record(module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, torch.nn.BatchNorm2d) and module.training:
            sizes.append(args[0].shape[0])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        run_method(task, "rem", settings)
    finally:
        handle.remove()
    return sizes


def test_rem_repair_forwards_see_whole_or_half_batches_and_lr_follows_the_recipe(poison_run) -> None:
    """Batch norm in train mode never normalises the few S_f rows alone: with drop_share 1 (REM's code) every
    forward sees whole batches; by default the drop-mode forward sees S_f's rows and half the others."""
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.3), progress=False)
    s = make_settings("rem", {"repair_epochs": 1, "max_flush_epochs": 0, "drop_share": 1.0})
    assert method_config(task, s, 1).lr == pytest.approx(task.config.lr / 5)  # REM's code: 0.005 with 0.025
    assert method_config(task, make_settings("rem", {"lr": 0.003}), 1).lr == 0.003
    bs, n = task.config.batch_size, len(task.train)
    whole = batch_norm_sizes(task, s)
    assert whole and set(whole) <= {bs, n % bs or bs}
    half = batch_norm_sizes(task, make_settings("rem", {"repair_epochs": 1, "max_flush_epochs": 0}))
    assert len(half) < 2 * len(whole) / 1.01  # batches without S_f rows: no drop-mode forward
    small = [size for size in half if size not in (bs, n % bs or bs)]
    assert small and min(small) >= (n % bs or bs) // 2 and max(small) <= bs // 2 + len(task.forget())


def test_rem_budget_is_whole_epochs_nearest_a_share_of_the_training_steps(poison_run, monkeypatch) -> None:
    """`budget` spends the whole repair epochs nearest its share of the original training's steps (0.16), at
    least one, every iterate at an epoch's end; `repair_epochs` instead counts epochs over S_tr, as REM's code
    does, fractions included."""
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.3), progress=False)
    assert task.known_manipulated is None  # REM sees S_f, never S_m
    per_epoch = math.ceil(len(task.train) / task.config.batch_size)
    steps: list[int] = []
    original_fit = UnlearnTask.fit

    def counting_fit(self, name, model, batches, cfg, loss, **kwargs):
        if name == "repair":
            steps.append(cfg.steps)
        return original_fit(self, name, model, batches, cfg, loss, **kwargs)

    monkeypatch.setattr(UnlearnTask, "fit", counting_fit)
    n = task.config.steps
    for share, whole in ((None, max(1, round(0.16 * n / per_epoch))), (0.01, 1), (3.4 * per_epoch / n, 3)):
        steps.clear()
        settings = {"max_flush_epochs": 0} | ({} if share is None else {"budget": share})
        run_method(task, "rem", make_settings("rem", settings))
        assert steps == [per_epoch] * whole, (share, steps)
    steps.clear()
    run_method(task, "rem", make_settings("rem", {"max_flush_epochs": 0, "repair_epochs": 1.5}))
    assert sum(steps) == round(1.5 * per_epoch)
    with pytest.raises(UserError, match="drop_share"):
        make_settings("rem", {"drop_share": 0.0})


def test_fit_can_carry_one_optimiser_across_calls(poison_run) -> None:
    from corrective.training import fit, sgd

    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    model = task.copy_model()
    cfg = method_config(task, make_settings("npo"), 3)
    batches = epochs(task.train, task.pipeline, cfg.batch_size, task.generator(0))
    opt = sgd(model.parameters(), cfg)
    fit(model, batches, cfg, optimizer=opt)
    first = {k: v["momentum_buffer"].clone() for k, v in enumerate(opt.state.values())}
    fit(model, batches, cfg, optimizer=opt)
    after = {k: v["momentum_buffer"] for k, v in enumerate(opt.state.values())}
    assert first and first.keys() == after.keys() and any(not torch.equal(first[k], after[k]) for k in first)


def test_the_forget_term_of_some_rows_is_the_whole_batchs_for_those_rows(poison_run) -> None:
    """REM's repair asks the NPO term of the redirected rows only: the model still sees the whole batch (batch
    norm), the reference only those rows; the numbers are the whole batch's, for one row and for several."""
    from corrective.methods.npo import forget_term

    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(1.0), progress=False)
    batch = next(epochs(task.train, task.pipeline, 64, task.generator(1)))
    model, ref = task.copy_model().train(), frozen(task.model)
    for picked in ([5], [0, 9, 33], []):
        rows = torch.zeros(len(batch.y), dtype=torch.bool)
        rows[picked] = True
        whole = forget_term(model, ref, batch.x, batch.y, "npo", 1.0)[rows]
        assert torch.equal(forget_term(model, ref, batch.x, batch.y, "npo", 1.0, rows=rows), whole)
