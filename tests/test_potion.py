"""Potion (Schoepf et al. 2024): label-free importances, the percentile threshold and the PTN search."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from corrective import api
from corrective.bench.plan import check_spec
from corrective.bench.spec import parse_spec
from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.methods import METHODS, UnlearnTask, make_settings, run_method, run_methods_grid
from corrective.methods import potion as potion_module
from corrective.methods.potion import PotionSettings, potion_grid, threshold_of
from corrective.methods.ssd import cached_importances
from corrective.training import TrainConfig

PLAIN = Pipeline(mean=(0.0,), std=(1.0,))  # inputs = pixels / 255


class Shared(nn.Module):
    """z = (shared · x0 + only_f · x1, 1): pixel x1 is lit on S_f only, so only S_f uses `only_f`."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Parameter(torch.ones(1))
        self.only_f = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        z0 = self.shared * x[:, 0] + self.only_f * x[:, 1]
        return torch.stack([z0, torch.ones_like(z0)], 1)


class PerSample(nn.Module):
    """S_f sample i lights pixel i and is classified correctly (class 0) iff w[i] > 0.5; `bulk` is unused."""

    def __init__(self, k: int, n_bulk: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(k))
        self.bulk = nn.Parameter(torch.ones(n_bulk))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z0 = (x.flatten(1) * self.w).sum(1)
        return torch.stack([z0, torch.full_like(z0, 0.5)], 1)


def hand_task(
    model: nn.Module, forget_pixels: list[list[int]], retain_pixels: list[list[int]], forget_label: int = 0
) -> UnlearnTask:
    """A task over 1x1xW images: S_f first (ids 0..), then the retain samples, labels as given."""
    pixels = forget_pixels + retain_pixels
    x = torch.tensor(pixels, dtype=torch.uint8).view(len(pixels), 1, 1, -1)
    y = torch.tensor([forget_label] * len(forget_pixels) + [1] * len(retain_pixels))
    train = Split(x, y, torch.arange(len(pixels)))
    config = TrainConfig(batch_size=64)
    return UnlearnTask(model, train, torch.arange(len(forget_pixels)), PLAIN, config, spec=None)  # type: ignore[arg-type]


def test_potion_is_registered_with_a_rho_grid() -> None:
    info = METHODS["potion"]
    assert info.is_method and info.run_grid is not None and info.diagnostics is not None
    rhos = [g["rho"] for g in potion_grid()]
    assert len(rhos) >= 3 and 0.2 in rhos and all(0 < r < 1 for r in rhos)
    assert PotionSettings().rho == 0.2


@pytest.mark.parametrize("rho", [0.0, 1.0, -0.1, 1.5])
def test_rho_outside_0_1_is_a_one_line_error(rho: float) -> None:
    with pytest.raises(UserError, match=r"method 'potion': rho must be in \(0, 1\)") as e:
        make_settings("potion", {"rho": rho})
    assert "\n" not in str(e.value)


def test_a_bench_spec_with_a_bad_rho_fails_before_any_job() -> None:
    with pytest.raises(UserError, match=r"^bench spec: methods.potion.grid\[0\]: .*rho must be in") as e:
        check_spec(parse_spec({"methods": {"potion": {"settings": {"rho": 2}}}}))
    assert "\n" not in str(e.value)


def test_label_free_importances_are_mean_absolute_gradients_of_the_logit_norm() -> None:
    task = hand_task(Shared(), [[128, 255]] * 3, [[255, 0]] * 5)
    imp_f, imp_d, _ = cached_importances(task, "label_free")
    u = 128 / 255  # S_f: x = (u, 1), z = (u + 1, 1); retain: x = (1, 0), z = (1, 1)
    norm_f = math.hypot(u + 1, 1)
    assert imp_f["shared"].item() == pytest.approx((u + 1) * u / norm_f, rel=1e-5)
    assert imp_f["only_f"].item() == pytest.approx((u + 1) / norm_f, rel=1e-5)
    assert imp_d["shared"].item() == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    assert imp_d["only_f"].item() == 0.0  # the retain set never lights x1
    assert ("importances", "label_free", "retain", False, 0) in task.cache  # keyed by what was computed


def test_a_parameter_only_s_f_uses_is_dampened_and_the_rest_is_bitwise_untouched() -> None:
    model = Shared()
    model.shared.data.fill_(0.7310585975646973)  # an arbitrary float: a dampening by 1.0 must keep it bitwise
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    task = hand_task(model, [[128, 255]] * 3, [[255, 0]] * 5)
    out, _ = run_method(task, "potion", make_settings("potion"))
    params = dict(out.named_parameters())
    assert params["only_f"].item() == 0.0  # I_D = 0 < I_f: multiplied by min(1, I_D / I_f) = 0
    assert torch.equal(params["shared"], before["shared"])  # I_f / I_D < 1: never changed
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # M_o untouched
    (outcome,) = potion_module.ptn_diagnostics(task)["ptn_search"]["outcomes"]
    assert outcome["met"] and outcome["tries"] == 1 and outcome["acc_forget"] == 0.0  # z = (u, 1): class 1 now


@pytest.mark.parametrize("chunk", [32, 3])  # S_f in one chunk; in four, scored no further than needed
def test_the_search_stops_at_the_first_share_that_meets_rho(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(potion_module, "CHUNK", chunk)
    k, n_bulk, n_retain = 10, 10_000, 990
    model = PerSample(k, n_bulk)
    task = hand_task(model, [[255 if j == i else 0 for j in range(k)] for i in range(k)], [[0] * k] * n_retain)
    ratios = torch.arange(4.0, 4.0 + k)  # dampening factors 1/4 ... 1/13: each selected w[i] falls below 0.5
    imp_f = {"w": ratios.clone(), "bulk": torch.full((n_bulk,), 1e-3)}
    imp_d = {"w": torch.ones(k), "bulk": torch.ones(n_bulk)}
    task.cache[("importances", "label_free", "retain", False, 0)] = (imp_f, imp_d, 0.0)  # the known answer
    rho = 0.2
    # Independently: the shares tried, the pool percentile at each, how many w[i] it selects, Acc(S_f).
    pool = np.sort(np.concatenate([np.full(n_bulk, 1e-3), ratios.double().numpy()]))
    s0 = k / (k + n_retain) / 25
    expected = None
    for i in range(200):
        s = s0 * 1.1**i
        t = np.percentile(pool, 100 - math.log(1 + 100 * s))
        acc = 1 - int((ratios.double().numpy() > t).sum()) / k
        if acc <= rho:
            expected = (i + 1, s, t, acc)
            break
    assert expected is not None and expected[0] > 2  # a search of several tries, not a first-try stop
    out, _ = run_method(task, "potion", make_settings("potion", {"rho": rho}))
    (outcome,) = potion_module.ptn_diagnostics(task)["ptn_search"]["outcomes"]
    assert outcome["met"] and outcome["tries"] == expected[0]
    assert outcome["s"] == pytest.approx(expected[1]) and outcome["threshold"] == pytest.approx(expected[2])
    assert outcome["acc_forget"] == pytest.approx(expected[3])
    assert outcome["acc_forget"] > rho - 1 / k - 1e-9  # the first share meeting rho, not a later one
    w = out.w.detach()
    selected = ratios > expected[2]
    assert torch.allclose(w[selected], 1 / ratios[selected]) and torch.equal(w[~selected], torch.ones(k)[~selected])
    assert torch.equal(out.bulk, model.bulk)
    search = task.cache[("potion search", 0)]
    assert len(search.tries) == expected[0]  # no try beyond the stop
    assert search.accuracy(search.tries[-2]) > rho  # the share before did not meet rho
    if chunk < k:  # the first try has 10 - 3 = 7 right: its first chunk alone (3 right > 2 allowed) settles it
        assert search.tries[0].score.chunks == 1


def test_the_cap_on_tries_is_recorded_when_rho_is_never_met() -> None:
    task = hand_task(Shared(), [[128, 255]] * 3, [[255, 0]] * 5, forget_label=1)  # S_f labelled 1: stays right
    run_method(task, "potion", make_settings("potion", {"rho": 0.1, "max_tries": 7}))
    (outcome,) = potion_module.ptn_diagnostics(task)["ptn_search"]["outcomes"]
    assert not outcome["met"] and outcome["tries"] == 7 and outcome["max_tries"] == 7


def test_threshold_is_the_pool_value_at_percentile_100_minus_ln_1_plus_100_s() -> None:
    pool = np.arange(101.0)  # value = percentile
    for s in (1e-4, 0.01, 0.5, 3.0):
        assert threshold_of(pool, s) == pytest.approx(100 - math.log(1 + 100 * s))
    assert threshold_of(np.zeros(0), 0.1) == math.inf


def test_nan_and_inf_ratios_are_left_out_of_the_pool() -> None:
    f = {"a": torch.tensor([0.0, 1.0, 2.0, 3.0])}
    d = {"a": torch.tensor([0.0, 0.0, 1.0, 1.0])}
    assert potion_module.finite_pool(potion_module.ratios_of(f, d)).tolist() == [2.0, 3.0]


def test_potion_on_a_task_without_s_m(poison_run: api.Run) -> None:
    """A method is never handed S_m: a task without it runs, one with it is refused."""
    ids = poison_run.manipulation.forget_ids(0.5)
    task = api.make_task(poison_run, ids, progress=False)
    assert task.known_manipulated is None
    before = {n: p.detach().clone() for n, p in poison_run.model.named_parameters()}
    out, _ = run_method(task, "potion", make_settings("potion"))
    after = dict(out.named_parameters())
    assert any(not torch.equal(after[n], p) for n, p in before.items())  # something was dampened
    assert all(torch.equal(p, before[n]) for n, p in poison_run.model.named_parameters())
    with pytest.raises(UserError, match="must not be handed the manipulated ids"):
        run_method(
            dataclasses.replace(task, known_manipulated=poison_run.manipulation.ids), "potion", make_settings("potion")
        )


def test_the_grid_shares_importances_and_tries_and_records_every_rho(
    poison_run: api.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corrective.methods import ssd as ssd_module

    calls = []
    real = ssd_module.importances
    monkeypatch.setattr(ssd_module, "importances", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    result = api.unlearn(poison_run, "potion", 0.5, grid=True, progress=False)
    assert calls == ["label_free", "label_free"]  # I_f and I_D once for the whole grid and the diagnostics
    diag = result.diagnostics["ptn_search"]
    assert [o["rho"] for o in diag["outcomes"]] == sorted(g["rho"] for g in potion_grid())
    assert all(o["met"] for o in diag["outcomes"])
    for o in diag["outcomes"]:
        assert o["acc_forget"] <= o["rho"] * diag["acc_forget_original"]
    tries = [o["tries"] for o in diag["outcomes"]]
    assert tries == sorted(tries, reverse=True)  # a smaller rho needs at least as many tries
    assert all(r["unlearn_seconds"] > 0 for r in result.records)


def test_grid_models_equal_single_runs(poison_run: api.Run) -> None:
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.3), progress=False)
    settings = [make_settings("potion", g) for g in potion_grid()]
    grid = list(run_methods_grid(task, "potion", settings))
    fresh = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.3), progress=False)
    for s, model, _ in grid:
        single, _ = run_method(fresh, "potion", s)
        assert all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), single.state_dict().values(), strict=True)
        )
