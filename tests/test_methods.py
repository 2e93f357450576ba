"""The paper's unlearning methods: what they see, what they touch, what they compute."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from corrective import api, training
from corrective.errors import UserError
from corrective.methods import METHODS, UnlearnTask, make_settings, run_method, run_methods_grid
from corrective.methods import base as methods_base
from corrective.methods import ssd as ssd_module
from corrective.methods.bad_teacher import teacher_targets
from corrective.methods.scrub import scrub_batches
from corrective.methods.ssd import (
    dampen,
    importance_ratios,
    importances,
    ratio_histogram,
    ssd_grid,
    task_importances,
)
from corrective.settings import Checked

ALLOWED_FIELDS = {
    "model",
    "train",
    "forget_ids",
    "pipeline",
    "config",
    "spec",
    "seed",
    "progress",
    "known_manipulated",
    "cache",
    "expansion",
}


def small_task(run: api.Run, alpha: float = 0.5, steps: int = 24, oracle: bool = False) -> UnlearnTask:
    task = api.make_task(run, run.manipulation.forget_ids(alpha), oracle=oracle, progress=False)
    return dataclasses.replace(task, config=dataclasses.replace(task.config, steps=steps))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_method_of_the_paper_is_registered() -> None:
    assert {"none", "retrain", "finetune", "ssd", "bad_teacher", "scrub", "oracle"} <= set(METHODS)
    assert not METHODS["oracle"].is_method
    assert all(METHODS[m].is_method for m in ("none", "retrain", "finetune", "ssd", "bad_teacher", "scrub"))
    assert len(METHODS["ssd"].grid()) == 50 and len(METHODS["scrub"].grid()) == 8


def test_a_method_is_handed_nothing_it_may_not_see(poison_run: api.Run) -> None:
    assert {f.name for f in dataclasses.fields(UnlearnTask)} == ALLOWED_FIELDS
    task = small_task(poison_run)
    assert task.known_manipulated is None and task.cache == {}  # the cache starts empty: it is given nothing
    assert task.expansion is None  # expanded from S_f by a method that asks (auto), never handed S_m
    assert set(task.forget_ids.tolist()) < set(poison_run.manipulation.ids.tolist())
    with pytest.raises(UserError, match="oracle bound"):
        run_method(task, "oracle", make_settings("oracle"))
    with pytest.raises(UserError, match="must not be handed"):
        run_method(small_task(poison_run, oracle=True), "retrain", make_settings("retrain"))


@pytest.mark.parametrize("name", ["retrain", "finetune", "ssd", "bad_teacher", "scrub", "oracle"])
def test_no_method_modifies_the_original_model(poison_run: api.Run, name: str) -> None:
    task = small_task(poison_run, oracle=name == "oracle")
    before = state(poison_run.model)
    model, seconds = run_method(task, name, make_settings(name))
    assert same(before, state(poison_run.model)) and not poison_run.model.training
    assert model is not poison_run.model and seconds > 0


def ids_seen_by_fit(monkeypatch: pytest.MonkeyPatch, record: list) -> None:
    real_fit = training.fit

    def spy(model, batches, cfg, loss_fn=training.cross_entropy, **kw):
        def tap():
            for b in batches:
                record.append(b)
                yield b

        return real_fit(model, tap(), cfg, loss_fn, **kw)

    for module in (training, methods_base):  # `task.fit` calls base's import of the one loop
        monkeypatch.setattr(module, "fit", spy)


def test_retrain_never_touches_an_identified_sample(poison_run: api.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    ids_seen_by_fit(monkeypatch, seen)
    task = small_task(poison_run, alpha=1.0, steps=40)
    run_method(task, "retrain", make_settings("retrain"))
    ids = torch.cat([b.ids for b in seen])
    assert len(seen) == 40 and not torch.isin(ids.cpu(), task.forget_ids.cpu()).any()
    assert len(ids.unique()) == len(task.retain())  # whole epochs over D_r


def test_ssd_identity_when_nothing_is_selected(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    model, _ = run_method(task, "ssd", make_settings("ssd", {"a": 1e30, "lambda_": 1.0}))
    assert same(state(model), state(poison_run.model))


def test_ssd_leaves_unselected_parameters_bitwise_unchanged(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    imp_f, imp_r, _ = task_importances(task, make_settings("ssd"))
    out = dict(dampen(poison_run.model, imp_f, imp_r, a=10.0, lambda_=1.0).named_parameters())
    n_selected = 0
    for name, p in poison_run.model.named_parameters():
        sel = imp_f[name] > 10.0 * imp_r[name]
        n_selected += int(sel.sum())
        assert torch.equal(out[name][~sel], p[~sel])
        factor = (imp_r[name] / imp_f[name]).clamp(max=1)[sel]
        assert torch.allclose(out[name][sel], p[sel] * factor)
    assert n_selected > 0


def test_ssd_grid_shares_importances_and_matches_single_runs(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    settings = [make_settings("ssd", g) for g in ssd_grid()[20:23]]
    grid = list(run_methods_grid(task, "ssd", settings))
    assert [s for s, _, _ in grid] == settings
    for s, model, seconds in grid:
        single, _ = run_method(task, "ssd", s)
        assert same(state(model), state(single)) and seconds > 0


def test_ssd_per_sample_importance_is_the_mean_of_per_sample_squared_gradients(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    split = task.forget().subset(torch.arange(3))
    per_sample = importances(task.model, split, task.pipeline, batch_size=3, per_sample=True)
    batch_of_one = importances(task.model, split, task.pipeline, batch_size=1, per_sample=False)
    rtol = 1e-2 if per_sample[next(iter(per_sample))].is_cuda else 1e-3  # cuDNN's TF32 convolutions on CUDA
    for name in per_sample:
        assert torch.allclose(per_sample[name], batch_of_one[name], rtol=rtol, atol=1e-8)


def test_ssd_importance_ratios_cover_every_parameter_in_float64(poison_run: api.Run) -> None:
    ratios = importance_ratios(small_task(poison_run))
    params = dict(poison_run.model.named_parameters())
    assert ratios.keys() == params.keys()
    assert all(r.shape == params[n].shape and r.dtype == torch.float64 for n, r in ratios.items())


def test_ssd_diagnostics_bin_every_ratio(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    diag = ratio_histogram(task)["importance_ratio"]
    ratios = np.concatenate([r.flatten().double().numpy() for r in importance_ratios(task).values()])
    assert len(diag["log10_edges"]) == 65 and len(diag["counts"]) == 64 and diag["log10_edges"][::64] == [-8, 8]
    n = sum(p.numel() for p in poison_run.model.parameters())
    assert diag["n_params"] == n == sum(diag["counts"]) + diag["n_zero"] + diag["n_inf"] + diag["n_nan"]
    positive = ratios[np.isfinite(ratios) & (ratios > 0)]
    bins = np.clip(np.floor((np.log10(positive) + 8) / 0.25), 0, 63).astype(int)  # 0.25-wide bins, ends clipped
    assert diag["counts"] == np.bincount(bins, minlength=64).tolist()
    assert diag["max_finite"] == pytest.approx(positive.max()) and diag["retain_set"] == "retain"
    json.dumps(diag)  # JSON-able as it is


def test_ssd_grid_shares_its_importances_with_the_diagnostics(
    poison_run: api.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = ssd_module.importances
    monkeypatch.setattr(ssd_module, "importances", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = api.unlearn(poison_run, "ssd", 0.5, grid=[{"a": 1.0}, {"a": 10.0}, {"a": 1e3}], progress=False)
    assert len(calls) == 2  # I_f and I_r once, for three settings and the histogram
    assert [r for r in result.records if "diagnostics" in r] == [result.record]
    assert result.diagnostics is result.record["diagnostics"]
    assert sum(result.diagnostics["importance_ratio"]["counts"]) > 0
    plain = api.unlearn(poison_run, "none", 0.5, progress=False)
    assert "diagnostics" not in plain.record and plain.diagnostics == {}


def test_ssd_grid_seconds_include_the_shared_importances(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    settings = [make_settings("ssd", {"a": a}) for a in (1.0, 10.0)]
    seconds = [sec for _, _, sec in run_methods_grid(task, "ssd", settings)]
    (imp_seconds,) = [v[2] for v in task.cache.values()]  # one recipe, one entry
    assert all(s >= imp_seconds > 0 for s in seconds)  # each setting pays the importances it would cost alone


def test_ssd_diagnostics_count_zeros_infinities_nans_and_outliers_apart(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    f = torch.tensor([0.0, 1.0, 0.0, 1e-3, 1e-30, 2.0, 1.0, 1e-3], dtype=torch.float32)
    r = torch.tensor([1.0, 0.0, 0.0, 1e-44, 1e-3, 2.0, 10.0**-0.1, 1e-3], dtype=torch.float32)
    task.cache[("importances", "fisher", "retain", False, 0)] = ({"w": f}, {"w": r}, 0.0)  # the default recipe's entry
    diag = ratio_histogram(task)["importance_ratio"]
    assert (diag["n_params"], diag["n_zero"], diag["n_inf"], diag["n_nan"]) == (8, 1, 1, 1)
    # 1e-3 / 1e-44 (a float32 subnormal) is 1e41, finite in float64: the last bin, not an infinity
    counts = [0] * 64
    counts[63], counts[0], counts[32] = 1, 1, 3  # 1e41 clipped to 8, 1e-27 clipped to -8; 1, 1 and 10^0.1
    assert diag["counts"] == counts and diag["max_finite"] == pytest.approx(float(f[3]) / float(r[3]))


def test_bad_teacher_targets_follow_the_incompetent_teacher_on_the_forget_set() -> None:
    z_orig, z_bad = torch.randn(6, 10), torch.randn(6, 10)
    in_forget = torch.tensor([True, False, True, False, False, True])
    for t in (1.0, 2.0):
        target = teacher_targets(z_orig, z_bad, in_forget, t)
        assert torch.equal(target[in_forget], torch.softmax(z_bad[in_forget] / t, 1))
        assert torch.equal(target[~in_forget], torch.softmax(z_orig[~in_forget] / t, 1))


def test_bad_teacher_trains_over_all_of_the_training_set(poison_run: api.Run, monkeypatch) -> None:
    seen: list = []
    ids_seen_by_fit(monkeypatch, seen)
    task = small_task(poison_run, alpha=1.0, steps=160)  # 40 steps of batch 64: two epochs of ~1200
    run_method(task, "bad_teacher", make_settings("bad_teacher"))
    ids = torch.cat([b.ids for b in seen])
    assert len(ids.unique()) == len(task.train)


def test_scrub_takes_forget_steps_only_in_its_first_phase(poison_run: api.Run) -> None:
    task = small_task(poison_run, alpha=1.0)
    forget, retain = task.forget(), task.retain()
    gen = torch.Generator().manual_seed(0)
    n_retain = -(-len(retain) // 16)
    limit = 4 + n_retain + 2  # 61 forget samples = 4 batches of 16; the second forget pass is cut after 2 steps
    batches = scrub_batches(forget, retain, task.pipeline, 16, forget_steps=limit, gen=gen)
    kinds = [next(batches) for _ in range(3 * limit)]
    ascend = [i for i, b in enumerate(kinds) if b.ascend]
    assert ascend == [0, 1, 2, 3, 4 + n_retain, 5 + n_retain] and max(ascend) < limit
    for b in kinds:
        in_forget = torch.isin(b.ids.cpu(), task.forget_ids.cpu())
        assert bool(in_forget.all()) if b.ascend else not in_forget.any()


def test_scrub_wiring_records_step_kinds(poison_run: api.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    ids_seen_by_fit(monkeypatch, seen)
    task = small_task(poison_run, alpha=1.0, steps=400)  # 100 SCRUB steps, forget steps in the first 10
    run_method(task, "scrub", make_settings("scrub"))
    ascend = [i for i, b in enumerate(seen) if b.ascend]
    assert len(seen) == 100 and ascend and max(ascend) < 10


@pytest.mark.parametrize("name", ["finetune", "bad_teacher", "scrub", "ssd"])
def test_same_seed_same_result(poison_run: api.Run, name: str) -> None:
    task = small_task(poison_run)
    a, _ = run_method(task, name, make_settings(name))
    b, _ = run_method(task, name, make_settings(name))
    assert same(state(a), state(b))


@pytest.mark.parametrize("limit", [methods_base.SHARED_OUTPUTS_BYTES, 3_000])
def test_scrubs_grid_shares_the_teachers_logits_with_the_same_result(
    poison_run: api.Run, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """The kl_weight grid on one task computes the teacher once (its logits kept, up to the limit) and gives the
    same models, bit for bit, as each setting on a task of its own."""
    monkeypatch.setattr(methods_base, "SHARED_OUTPUTS_BYTES", limit)
    grid = [make_settings("scrub", {"kl_weight": w}) for w in (0.1, 5.0)]
    task = small_task(poison_run, steps=80)  # 20 SCRUB steps
    built: list[int] = []
    teacher = UnlearnTask.teacher
    monkeypatch.setattr(UnlearnTask, "teacher", lambda self: built.append(1) or teacher(self))
    shared = [state(m) for _, m, _ in run_methods_grid(task, "scrub", grid)]
    (kept,) = [v for k, v in task.cache.items() if k[0] == "teacher_outputs"]
    assert len(kept.outputs) == 20 if limit > 3_000 else 0 < len(kept.outputs) < 20
    assert kept.nbytes <= limit
    assert len(built) == (1 if limit > 3_000 else 2)  # past the limit the second setting builds its own teacher
    for s, models in zip(grid, shared, strict=True):
        alone, _ = run_method(dataclasses.replace(task), "scrub", s)  # a task of its own: an empty cache
        assert same(state(alone), models)
    assert not same(shared[0], shared[1])


def test_kept_teacher_outputs_are_used_only_for_the_same_batch(poison_run: api.Run) -> None:
    task = small_task(poison_run)
    first, second = task.teacher_outputs("k"), task.teacher_outputs("k")
    batches = list(itertools.islice(task.batches(task.train, 0, task.config), 2))
    a = first(batches[0])
    assert second(batches[0]) is a  # kept, read back
    other = second(batches[1])  # the second call of `first` would be step 1; `second` asks step 1 with batch 1
    assert torch.equal(other, task.teacher()(batches[1].x))
    third = task.teacher_outputs("k")
    assert not torch.equal(third(batches[1]), a)  # step 0 with another batch: computed, not the kept step 0


def test_settings_are_validated() -> None:
    assert make_settings("ssd", {"a": 5, "lambda_": 2}).a == 5.0
    assert make_settings("finetune", {"lr": 1}).lr == 1.0
    for overrides, match in [
        ({"a": 0}, "method 'ssd': a must be > 0, got 0.0"),
        ({"a": "x"}, "method 'ssd': a must be a number, got 'x'"),
        ({"batch_size": 1.5}, "batch_size must be an integer, got 1.5"),
        ({"per_sample": 1}, "per_sample must be true or false, got 1"),
        ({"lambda": 1}, "did you mean lambda_"),
        ({"retain_set": "test"}, "retain_set"),
    ]:
        with pytest.raises(UserError, match=match):
            make_settings("ssd", overrides)
    with pytest.raises(UserError, match="forget_objective must be one of 'ce\\+kl', 'kl', got 'ce'"):
        make_settings("scrub", {"forget_objective": "ce"})
    with pytest.raises(ValueError, match=r"budget must be in \(0, 10\], got 11.0"):  # also when built directly
        METHODS["retrain"].settings(budget=11)


def test_scrubs_old_alpha_is_kl_weight_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="setting 'alpha' is now 'kl_weight'"):
        assert make_settings("scrub", {"alpha": 0.5}).kl_weight == 0.5
    assert {g["kl_weight"] for g in METHODS["scrub"].grid()} == {0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0}
    with pytest.raises(UserError, match="unknown method"):
        make_settings("nope")


def test_every_step_budget_is_named_budget_and_the_old_name_warns() -> None:
    """One name for the share of the original steps a method may spend; `fraction` still works, with a warning."""
    for name in ("scrub", "bad_teacher", "finetune", "retrain", "auto", "npo"):
        fields = {f.name for f in dataclasses.fields(METHODS[name].settings)}
        assert "budget" in fields and "fraction" not in fields, name
    for name in ("scrub", "bad_teacher", "finetune", "retrain", "auto"):
        with pytest.warns(FutureWarning, match="setting 'fraction' is now 'budget'"):
            assert make_settings(name, {"fraction": 0.5}).budget == 0.5


def test_oracle_settings_are_checked_like_the_rest() -> None:
    assert issubclass(METHODS["oracle"].settings, Checked)
    with pytest.raises(UserError, match="method 'oracle' has no setting 'steps'; its settings: none"):
        make_settings("oracle", {"steps": 3})
