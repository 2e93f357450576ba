"""The relearn probe: a copy is fine-tuned (the probed model never changes), on training data only, seeded."""

from __future__ import annotations

import math

import pytest
import torch

from corrective import api
from corrective.bench import read_records, run_bench
from corrective.bench import relearn as probe_module
from corrective.bench.relearn import probe_split, relearn
from corrective.bench.spec import parse_spec
from corrective.names import RELEARN_OF, RESULTS, relearn_prefix

TIMING = ("relearn_seconds",)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_probed_model_never_changes(poison_run):
    selected = api.unlearn(poison_run, "finetune", 0.5).model
    before, original = state(selected), state(poison_run.model)
    out = relearn(poison_run, selected)
    for name, value in state(selected).items():
        assert torch.equal(value, before[name]), name
    for name, value in state(poison_run.model).items():
        assert torch.equal(value, original[name]), name
    assert out["relearn_steps"] == max(1, round(0.05 * poison_run.config.steps))
    mixed = [f"relearn_{m}" for m in RELEARN_OF]
    assert set(mixed) <= set(out) and all(0 <= out[m] <= 1 for m in mixed)
    assert not any(k.startswith("relearn_retain_only") for k in out)  # the mixed kind is the default


def test_probe_trains_on_training_data_only(poison_run, monkeypatch):
    """The split the one training loop gets: clean training samples with their labels plus k of S_m as seen in
    training; no validation or test image, and the probed copy is what trains."""
    seen = {}

    def spy(model, split, pipeline, cfg, loss_fn, **kw):
        seen.update(split=split, cfg=cfg, model=model)
        return model

    monkeypatch.setattr(probe_module, "train", spy)
    relearn(poison_run, poison_run.model)
    split, run = seen["split"], poison_run
    assert seen["model"] is not run.model
    train = run.dataset.train
    pos = train.positions_of(split.ids)  # raises for any id not in the training split
    assert torch.equal(split.x.cpu(), train.x[pos].cpu())  # the training images themselves, not test images
    assert not set(split.ids.tolist()) & set(run.dataset.val.ids.tolist())
    s_m = set(run.manipulation.ids.tolist())
    from_s_m = [i for i in split.ids.tolist() if i in s_m]
    clean = len(train) - len(s_m)
    assert len(split) == clean + len(from_s_m)  # every clean sample, plus the drawn few of S_m
    assert len(from_s_m) == round(0.01 * clean / 0.99)
    given = dict(zip(run.manipulation.ids.tolist(), run.manipulation.given_labels.tolist(), strict=True))
    true = dict(zip(train.ids.tolist(), train.y.tolist(), strict=True))
    for i, y in zip(split.ids.tolist(), split.y.tolist(), strict=True):
        assert y == (given[i] if i in s_m else true[i])
    assert split.stamp is not None  # the drawn poisoned samples keep their trigger
    assert seen["cfg"].lr == run.config.lr and seen["cfg"].seed == run.seed


def test_probe_is_deterministic_per_seed(poison_run):
    first = {k: v for k, v in relearn(poison_run, poison_run.model).items() if k not in TIMING}
    assert first == {k: v for k, v in relearn(poison_run, poison_run.model).items() if k not in TIMING}
    split, k = probe_split(poison_run)
    again, _ = probe_split(poison_run)
    assert torch.equal(split.ids, again.ids) and k == first["relearn_manipulated"] > 0


def test_bench_probes_originals_oracles_and_selected_models(tmp_path):
    spec = parse_spec(
        {
            "name": "relearn",
            "seeds": [0],
            "alphas": [0.5],
            "steps": 40,
            "device": "cpu",
            "workers": 1,
            "relearn": True,
            "manipulations": {"poison": [0.05], "interclass": [0.05]},
            "methods": {"none": {"grid": False}, "finetune": {"grid": False}},
        }
    )
    result = run_bench(spec, tmp_path, progress=False)
    assert not result.failed
    records = read_records(tmp_path / RESULTS)
    assert {r["stage"] for r in records} == {"original", "oracle", "unlearn"}
    for r in records:
        assert 0 <= r["relearn_acc_corr"] <= 1 and r["relearn_steps"] == 2 and r["relearn_manipulated"] > 0
        assert ("relearn_attack_success" in r) == (r["manipulation"] == "poison")
        assert "relearn_acc_corr" not in str(r.get("candidates", ""))  # the selected model only
    # the same exposure for every model of a seed: the original and method none (its unchanged copy) agree
    by = {(r["manipulation"], r["stage"], r["method"]): r for r in records}
    for manip in ("poison", "interclass"):
        a, b = by[(manip, "original", None)], by[(manip, "unlearn", "none")]
        assert a["relearn_acc_corr"] == b["relearn_acc_corr"]
    rows = result.summary
    assert all(not math.isnan(row["relearn_acc_corr_mean"]) for row in rows)


def test_relearn_is_off_by_default(tmp_path):
    spec = parse_spec(
        {
            "name": "plain",
            "seeds": [0],
            "alphas": [1.0],
            "steps": 20,
            "device": "cpu",
            "workers": 1,
            "oracle": False,
            "manipulations": {"random_swap": [0.05]},
            "methods": {"none": {"grid": False}},
        }
    )
    run_bench(spec, tmp_path, progress=False)
    assert not any(k.startswith("relearn") for r in read_records(tmp_path / RESULTS) for k in r)


@pytest.mark.parametrize("share", [0.01, 0.05])
def test_probe_share(interclass_run, share):
    split, k = probe_split(interclass_run, share)
    assert k / len(split) == pytest.approx(share, abs=1 / len(split))


def test_retain_only_trains_on_the_clean_training_data_alone(poison_run, monkeypatch):
    """The retain_only kind: every clean training sample with its own label, no sample of S_m; the same steps,
    learning rate and seed as the mixed kind, and its own record fields."""
    seen = []

    def spy(model, split, pipeline, cfg, loss_fn, **kw):
        seen.append((split, cfg))
        return model

    monkeypatch.setattr(probe_module, "train", spy)
    out = relearn(poison_run, poison_run.model, kind="retain_only")
    mixed = relearn(poison_run, poison_run.model)
    (split, cfg), (mixed_split, mixed_cfg) = seen
    run, train = poison_run, poison_run.dataset.train
    s_m = set(run.manipulation.ids.tolist())
    clean_ids = [i for i in train.ids.tolist() if i not in s_m]
    assert sorted(split.ids.tolist()) == sorted(clean_ids)  # every clean training sample and nothing else
    true = dict(zip(train.ids.tolist(), train.y.tolist(), strict=True))
    assert all(y == true[i] for i, y in zip(split.ids.tolist(), split.y.tolist(), strict=True))
    assert set(mixed_split.ids.tolist()) - set(split.ids.tolist()) <= s_m  # mixed = retain_only + a few of S_m
    assert len(mixed_split) - len(split) == mixed["relearn_manipulated"] > 0
    assert (cfg.steps, cfg.lr, cfg.seed) == (mixed_cfg.steps, mixed_cfg.lr, mixed_cfg.seed)
    pre = relearn_prefix("retain_only")
    assert pre == "relearn_retain_only_" and out[f"{pre}manipulated"] == 0 and out[f"{pre}steps"] == cfg.steps
    assert {f"{pre}{m}" for m in RELEARN_OF} <= set(out)
    assert not any(k.startswith("relearn_") and not k.startswith(pre) for k in out)  # mixed's fields untouched


def test_unknown_kind_is_refused(poison_run):
    with pytest.raises(ValueError, match="unknown relearn kind 'later'; known: mixed, retain_only"):
        probe_split(poison_run, kind="later")


def test_retain_only_differs_from_mixed_and_is_deterministic(poison_run):
    """A different exposure gives a different probed model (the S_m samples in mixed matter); the same kind twice
    the same figures."""
    a = {k: v for k, v in relearn(poison_run, kind="retain_only").items() if not k.endswith("seconds")}
    assert a == {k: v for k, v in relearn(poison_run, kind="retain_only").items() if not k.endswith("seconds")}
    b = relearn(poison_run, kind="mixed")
    assert a["relearn_retain_only_attack_success"] != b["relearn_attack_success"]


def test_bench_probes_both_kinds(tmp_path):
    spec = parse_spec(
        {
            "name": "relearn-kinds",
            "seeds": [0],
            "alphas": [0.5],
            "steps": 40,
            "device": "cpu",
            "workers": 1,
            "relearn": ["mixed", "retain_only"],
            "manipulations": {"poison": [0.05]},
            "methods": {"finetune": {"grid": False}},
        }
    )
    result = run_bench(spec, tmp_path, progress=False)
    assert not result.failed
    records = read_records(tmp_path / RESULTS)
    assert {r["stage"] for r in records} == {"original", "oracle", "unlearn"}
    for r in records:
        assert r["relearn_kinds"] == ["mixed", "retain_only"]
        assert 0 <= r["relearn_acc_corr"] <= 1 and 0 <= r["relearn_retain_only_acc_corr"] <= 1
        assert r["relearn_manipulated"] > 0 and r["relearn_retain_only_manipulated"] == 0
        assert r["relearn_retain_only_steps"] == r["relearn_steps"] == 2
    rows = result.summary
    assert all(not math.isnan(row["relearn_retain_only_acc_corr_mean"]) for row in rows)
