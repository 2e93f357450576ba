"""The planner: stable ids, sensitive to everything that determines a result, stage dependencies."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from corrective.bench import load_spec, plan
from corrective.errors import UserError


def ids(sets=None, device="cpu"):
    return [j.id for j in plan(load_spec("smoke", sets=sets), device)]


def test_stage_order_and_dependencies():
    jobs = plan(load_spec("smoke"), "cpu")
    stages = [j.stage for j in jobs]
    assert stages == sorted(stages, key=["original", "oracle", "expand", "unlearn"].index)
    originals = {j.id for j in jobs if j.stage == "original"}
    assert len(originals) == 3  # three manipulations x one size x one seed
    for j in jobs:
        assert (j.deps == ()) if j.stage == "original" else (len(j.deps) == 1 and j.deps[0] in originals)
    assert sum(j.stage == "unlearn" for j in jobs) == 3 * 2 * 2  # x methods none and ssd x two alphas


def test_ids_are_stable_and_unique():
    first = ids()
    assert first == ids()
    assert len(set(first)) == len(first)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in first)


@pytest.mark.parametrize(
    "sets",
    [
        {"steps": 41},
        {"seeds": [1]},
        {"val_fraction": 0.2},
        {"train_preset": "paper"},
        {"manipulations.poison": [0.06], "manipulations.interclass": [0.06], "manipulations.random_swap": [0.06]},
        {"models": ["resnet9"]},
    ],
)
def test_every_original_field_changes_every_id(sets):
    assert not set(ids()) & set(ids(sets))


def test_method_fields_change_only_their_jobs():
    base = plan(load_spec("smoke"), "cpu")
    moved = plan(load_spec("smoke", sets={"alphas": [0.5, 0.9]}), "cpu")
    same = {j.id for j in base} & {j.id for j in moved}
    assert same == {j.id for j in base if j.stage != "unlearn" or j.params["alpha"] == 0.5}
    grid = plan(load_spec("smoke", sets={"methods.none.grid": [{}, {}]}), "cpu")
    changed = {j.id for j in grid if j.stage == "unlearn" and j.params["method"] == "none"}
    assert changed.isdisjoint(j.id for j in base)  # method none's jobs change, the others keep their ids
    kept = {j.id for j in base if j.stage != "unlearn" or j.params["method"] != "none"}
    assert {j.id for j in grid} - changed == kept


def test_device_and_version_change_ids(monkeypatch):
    base = set(ids())
    assert base.isdisjoint(ids(device="cuda"))
    monkeypatch.setattr(sys.modules["corrective.bench.plan"], "__version__", "9.9.9")
    assert base.isdisjoint(ids())


def test_execution_fields_do_not_change_ids():
    assert ids() == ids({"workers": 2, "executor": "ray", "address": "auto", "name": "other", "roots.digits": "x"})


def test_duplicate_experiments_refused():
    with pytest.raises(UserError, match="same experiment twice"):
        plan(load_spec("smoke", sets={"models": ["default", "cnn_small"]}), "cpu")


def test_default_axes_keep_the_ids_and_new_values_add_jobs():
    base = plan(load_spec("smoke"), "cpu")
    assert ids() == ids({"selection": ["paper"], "max_class_drop": 0.1})  # paper ignores max_class_drop
    both = plan(load_spec("smoke", sets={"selection": ["paper", "guarded"]}), "cpu")
    assert {j.id for j in base} < {j.id for j in both}
    guarded = [j for j in both if j.stage == "unlearn" and j.params["selection"] == "guarded"]
    assert len(guarded) == sum(j.stage == "unlearn" for j in base)
    assert all("selection=guarded" in j.label for j in guarded)
    drop = {j.id for j in plan(load_spec("smoke", sets={"selection": ["guarded"], "max_class_drop": 0.1}), "cpu")}
    assert drop.isdisjoint(j.id for j in guarded)  # the guard's limit is part of a guarded job's id


def test_self_selecting_and_oracle_methods_collapse_the_axes(monkeypatch):
    from corrective.methods import METHODS

    plan_module = sys.modules["corrective.bench.plan"]

    spec = load_spec("smoke", sets={"selection": ["paper", "guarded"]})
    assert plan_module.method_axes(spec, "ssd") == [("none", "paper"), ("none", "guarded")]
    fake = dataclasses.replace(METHODS["none"], selection="guarded", expand="auto")
    monkeypatch.setitem(METHODS, "none", fake)
    assert plan_module.method_axes(spec, "none") == [("auto", "guarded")]
    bound = dataclasses.replace(METHODS["ssd"], is_method=False)
    monkeypatch.setitem(METHODS, "ssd", bound)
    assert plan_module.method_axes(spec, "ssd") == [("none", "paper"), ("none", "guarded")]
