"""Manipulation settings as bench axes, and false flags (clean samples mistakenly put in S_f)."""

from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.bench import load_spec, plan, read_records, run_bench
from corrective.bench.plan import job_id, versions_key
from corrective.bench.spec import parse_spec
from corrective.bench.store import summarize
from corrective.bench.table import format_table
from corrective.errors import UserError
from corrective.manipulations import record_settings
from corrective.names import RESULTS
from corrective.report import read_results
from corrective.report.groups import build_groups


def smoke(**raw):
    """The smoke preset's spec as a dict, with fields replaced."""
    base = {
        "name": "smoke",
        "seeds": [0],
        "alphas": [0.5, 1.0],
        "steps": 40,
        "device": "cpu",
        "workers": 1,
        "manipulations": {"poison": [0.05], "interclass": [0.05], "random_swap": [0.05]},
        "methods": {"none": {"grid": False}, "ssd": {"grid": False}},
    }
    return parse_spec({**base, **raw})


# ---------------------------------------------------------------- the spec


def test_settings_are_axes():
    spec = smoke(
        manipulations={
            "poison": {"sizes": [0.05], "target": [0, 3], "corner": "top-left", "trigger_size": [2, 3], "value": 0.5},
            "interclass": {"sizes": [0.05], "classes": [[3, 8], [1, 7]]},
            "random_swap": [0.05],
        }
    )
    poison, interclass, swap = spec.manipulations
    assert len(poison.variants()) == 4
    assert {"target": 3, "corner": "top-left", "trigger_size": 2, "value": 0.5} in poison.variants()
    assert interclass.variants() == [{"classes": [3, 8]}, {"classes": [1, 7]}]
    assert swap.variants() == [{}]
    one = smoke(manipulations={"interclass": {"sizes": [0.05], "classes": [3, 8]}}).manipulations[0]
    assert one.variants() == [{"classes": [3, 8]}]  # one pair, not two classes


@pytest.mark.parametrize(
    ("manipulations", "message"),
    [
        (
            {"poison": {"sizes": [0.05], "corner": "middle"}},
            "bench spec: manipulations.poison.corner[0]: must be one of 'bottom-right'",
        ),
        (
            {"interclass": {"sizes": [0.05], "classes": [3, 3]}},
            (
                "bench spec: manipulations.interclass.classes[0]: must be a pair of two different classes like [3, 8], "
                "got [3, 3]"
            ),
        ),
        (
            {"interclass": {"sizes": [0.05], "classes": [[1, 2], [4, 4]]}},
            (
                "bench spec: manipulations.interclass.classes[1]: must be a pair of two different classes like [3, 8], "
                "got [4, 4]"
            ),
        ),
        (
            {"interclass": {"sizes": [0.05], "classes": [[1, 2, 3]]}},
            (
                "bench spec: manipulations.interclass.classes[0]: must be a pair of two different classes like [3, 8], "
                "got [1, 2, 3]"
            ),
        ),
        ({"poison": {"sizes": [0.05], "target": -1}}, "bench spec: manipulations.poison.target[0]: must be >= 0"),
        (
            {"poison": {"sizes": [0.05], "trigger_size": 0}},
            "bench spec: manipulations.poison.trigger_size[0]: must be >= 1",
        ),
        (
            {"poison": {"sizes": [0.05], "value": 2}},
            "bench spec: manipulations.poison.value[0]: must be in [0, 1], got",
        ),
        (
            {"poison": {"sizes": [0.05], "classes": [1, 2]}},
            "bench spec: manipulations.poison.classes: unknown setting of poison; known: sizes, target",
        ),
        (
            {"random_swap": {"sizes": [0.05], "target": 1}},
            "bench spec: manipulations.random_swap.target: unknown setting of random_swap; known: sizes",
        ),
        (
            {"poison": {"sizes": [0.05], "target": [1, 1]}},
            "bench spec: manipulations.poison.target: must be a list without repeats, got [1, 1]",
        ),
    ],
)
def test_bad_settings_name_the_field(manipulations, message):
    with pytest.raises(UserError) as e:
        smoke(manipulations=manipulations)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"false_flags": [0, -0.2]}, "bench spec: false_flags[1]: must be >= 0, got -0.2"),
        ({"false_flags": "many"}, "bench spec: false_flags[0]: must be a number, got 'many'"),
        ({"relearn": "yes"}, "bench spec: relearn[0]: must be one of 'mixed', 'retain_only', got 'yes'"),
        ({"relearn": ["mixed", "mixed"]}, "bench spec: relearn: must be a list without repeats"),
        ({"relearn": ["mixed", "later"]}, "bench spec: relearn[1]: must be one of 'mixed', 'retain_only'"),
    ],
)
def test_bad_new_fields_name_the_field(raw, message):
    with pytest.raises(UserError) as e:
        smoke(**raw)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"manipulations": {"poison": {"sizes": [0.05], "target": [0, 10]}}},
            "bench spec: manipulations.poison: digits, size 0.05: target class 10 is out of range",
        ),
        (
            {"manipulations": {"interclass": {"sizes": [0.05], "classes": [[3, 12]]}}},
            "bench spec: manipulations.interclass: digits, size 0.05: interclass class 12 is out of range",
        ),
        (
            {"manipulations": {"poison": {"sizes": [0.05], "trigger_size": 9}}},
            "bench spec: manipulations.poison: digits, size 0.05: trigger size 9 exceeds the (8, 8) images",
        ),
        ({"false_flags": [0, 30]}, "bench spec: false_flags: a share of 30 asks for"),
        (
            {"manipulations": {"interclass": {"sizes": [0.5], "classes": [[3, 8]]}}},
            "bench spec: manipulations.interclass: digits, size 0.5: --size 0.5 needs",
        ),
    ],
)
def test_data_errors_before_any_job(raw, message, tmp_path):
    """What only the data can tell fails in the planner: one line naming the field, no job run, no folder."""
    with pytest.raises(UserError) as e:
        run_bench(smoke(**raw), tmp_path / "out", progress=False)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- job ids


def old_style_id(job):
    """The id of a job as computed before the settings axes, false flags and relearn existed."""
    p = job.params
    if job.stage == "original":
        keys = (
            "dataset",
            "model",
            "training",
            "manipulation",
            "size",
            "manipulation_settings",
            "seed",
            "train_config",
            "train_preset",
            "steps",
            "val_fraction",
            "device_type",
        )
        return job_id({"stage": "original", **{k: p[k] for k in keys}, "versions": versions_key()})
    return job_id(
        {
            "stage": job.stage,
            "original": p["original_id"],
            "method": p["method"],
            "alpha": p["alpha"],
            "grid": p["grid"],
            "versions": versions_key(),
        }
    )


def is_old_style(job):
    """A job of a kind that existed before the expand and selection axes."""
    p = job.params
    return job.stage != "expand" and p.get("expand", "none") == "none" and p.get("selection", "paper") == "paper"


@pytest.mark.parametrize("preset", ["smoke", "default"])
def test_shipped_presets_keep_their_ids(preset):
    jobs = plan(load_spec(preset), "cpu")
    assert all(j.params["manipulation_settings"] == {} for j in jobs)
    old = [j for j in jobs if is_old_style(j)]
    assert old == jobs if preset == "smoke" else len(old) < len(jobs)  # default: the auto method selects guarded
    assert [j.id for j in old] == [old_style_id(j) for j in old]
    explicit = plan(load_spec(preset, sets={"false_flags": [0], "relearn": False}), "cpu")
    assert [j.id for j in explicit] == [j.id for j in jobs]


def test_new_axes_change_ids():
    base = plan(smoke(), "cpu")
    base_ids = {j.id for j in base}
    # a second target adds originals (and their jobs) with new ids; the default target 0 named explicitly is a
    # different spec than no target (as before the axes), so every poison id changes
    two = plan(smoke(manipulations={"poison": {"sizes": [0.05], "target": [0, 3]}}), "cpu")
    assert sum(j.stage == "original" for j in two) == 2
    assert base_ids.isdisjoint(j.id for j in two)
    assert len({j.id for j in two}) == len(two)
    corners = plan(smoke(manipulations={"poison": {"sizes": [0.05], "corner": ["top-left", "bottom-right"]}}), "cpu")
    assert len({j.id for j in corners if j.stage == "original"}) == 2
    # false flags: new unlearn jobs; the originals and the oracle keep their ids, share 0 keeps every id
    flagged = plan(smoke(false_flags=[0, 0.2]), "cpu")
    assert base_ids <= {j.id for j in flagged}
    new = [j for j in flagged if j.id not in base_ids]
    assert new and all(j.stage == "unlearn" and j.params["false_flags"] == 0.2 for j in new)
    assert len(new) == sum(j.stage == "unlearn" for j in base)
    # relearn: every job changes (the originals are probed too); `true` is the mixed kind with the ids of before
    # kinds, the kinds in any order plan the same jobs, and each set of kinds its own
    mixed = {j.id for j in plan(smoke(relearn=True), "cpu")}
    assert base_ids.isdisjoint(mixed)
    assert mixed == {j.id for j in plan(smoke(relearn=["mixed"]), "cpu")}
    both = {j.id for j in plan(smoke(relearn=["retain_only", "mixed"]), "cpu")}
    assert both == {j.id for j in plan(smoke(relearn=["mixed", "retain_only"]), "cpu")}
    retain = {j.id for j in plan(smoke(relearn="retain_only"), "cpu")}
    assert len({frozenset(mixed), frozenset(both), frozenset(retain), frozenset(base_ids)}) == 4
    assert base_ids.isdisjoint(both | retain) and mixed.isdisjoint(both | retain) and both.isdisjoint(retain)


# ---------------------------------------------------------------- false flags


def test_false_flags_are_clean_nested_and_seeded(poison_run):
    run = poison_run
    s_m = set(run.manipulation.ids.tolist())
    train_ids = set(run.dataset.train.ids.tolist())
    held_out = set(run.dataset.val.ids.tolist()) | {("test", i) for i in run.dataset.test.ids.tolist()}
    small = run.manipulation.false_flag_ids(run.dataset.train, 5)
    big = run.manipulation.false_flag_ids(run.dataset.train, 40)
    assert len(set(big.tolist())) == 40
    assert set(big.tolist()) <= train_ids - s_m  # clean training samples, never members of S_m
    assert not set(big.tolist()) & held_out
    assert big[:5].tolist() == small.tolist()  # nested: a larger share adds to the smaller one's flags
    assert torch.equal(big, run.manipulation.false_flag_ids(run.dataset.train, 40))  # seeded
    forget, n = api.flagged_ids(run, 0.5, 0.5)
    s_f = run.manipulation.forget_ids(0.5)
    assert n == round(0.5 * len(s_f)) and len(forget) == len(s_f) + n
    assert forget[: len(s_f)].tolist() == s_f.tolist() and not set(forget[len(s_f) :].tolist()) & s_m
    assert api.flagged_ids(run, 0.5, 0.0)[1] == 0
    clean = len(train_ids - s_m)
    with pytest.raises(UserError, match=f"only {clean} clean samples"):
        run.manipulation.false_flag_ids(run.dataset.train, clean + 1)
    with pytest.raises(UserError, match="false_flags must be a share >= 0"):
        api.flagged_ids(run, 0.5, -1)


def test_methods_see_false_flags_metrics_use_the_true_s_m(poison_run):
    """`none` leaves the model as it is: with false flags every metric of S_m stays, only S_f grows."""
    plain = api.unlearn(poison_run, "none", 0.5).record
    flagged = api.unlearn(poison_run, "none", 0.5, false_flags=0.5).record
    assert flagged["false_flags"] == 0.5 and plain["false_flags"] == 0.0
    assert flagged["n_forget"] == plain["n_forget"] + flagged["n_false_flags"] and flagged["n_false_flags"] > 0
    for metric in ("acc_corr", "acc_retain", "healed", "attack_success", "target_acc"):
        assert flagged[metric] == plain[metric]


# ---------------------------------------------------------------- records, summary, table, report


def test_settings_and_false_flags_in_records_summary_and_report(tmp_path):
    spec = smoke(
        alphas=[0.5],
        steps=20,
        false_flags=[0, 0.5],
        oracle=True,
        manipulations={
            "poison": {"sizes": [0.05], "target": [0, 3]},
            "interclass": {"sizes": [0.05], "classes": [[3, 8]]},
        },
        methods={"finetune": {"grid": False}},
    )
    result = run_bench(spec, tmp_path, progress=False)
    assert not result.failed
    records = read_records(tmp_path / RESULTS)
    for r in records:
        assert set(record_settings()) <= set(r)
        if r["manipulation"] == "poison":
            assert r["target"] in (0, 3) and r["trigger_size"] == 2 and r["corner"] == "bottom-right"
            assert r["classes"] is None
        else:
            assert r["classes"] == [3, 8] and r["target"] is None
        if r["stage"] == "unlearn":
            assert r["false_flags"] in (0.0, 0.5)
            assert (r["n_false_flags"] > 0) == (r["false_flags"] > 0)
    assert {
        (r["target"], r["false_flags"]) for r in records if r["stage"] == "unlearn" and r["target"] is not None
    } == {(0, 0.0), (0, 0.5), (3, 0.0), (3, 0.5)}
    rows = summarize(records)
    assert len(rows) == len([r for r in records if r["stage"] != "original"])
    table = format_table(rows)
    for label in ("poison@0.05 target=0 ff=0.0", "poison@0.05 target=3 ff=0.5", "interclass@0.05 ff=0.5"):
        assert label in table
    groups, notes = build_groups(read_results(tmp_path))
    assert not notes
    labels = sorted(g.key.label() for g in groups)
    assert labels == sorted(
        f"digits · {m} · size 0.05{v} · false flags {f:g} · cnn_small · standard training"
        for m, v in (("poison", " · target 0"), ("poison", " · target 3"), ("interclass", ""))
        for f in (0, 0.5)
    )
    for g in groups:  # the original and the oracle are references for every false-flag share of their setting
        assert {r.method for r in g.rows} == {"none", "oracle", "finetune"}
        assert all(r.false_flags == g.key.false_flags for r in g.rows if r.method == "finetune")


def test_every_registered_manipulation_is_an_axis_with_its_settings():
    """The spec reads each manipulation's settings and rules from the registry: no list of names of its own."""
    from corrective.manipulations import get_manipulation, ordered

    kinds = [n for n, info in ordered().items() if info.takes_size]
    assert {"blended", "wanet"} <= set(kinds)
    spec = smoke(manipulations={k: [0.05] for k in kinds})
    assert [m.kind for m in spec.manipulations] == kinds
    blended = smoke(manipulations={"blended": {"sizes": [0.05], "blend": [0.1, 0.2], "target": 3}}).manipulations[0]
    assert blended.variants() == [{"blend": 0.1, "target": 3}, {"blend": 0.2, "target": 3}]
    with pytest.raises(UserError) as e:
        smoke(manipulations={"blended": {"sizes": [0.05], "blend": [0.1, 1.0]}})
    assert str(e.value).startswith("bench spec: manipulations.blended.blend[1]: must be in (0, 1), got 1.0")
    with pytest.raises(UserError) as e:
        smoke(manipulations={"wanet": {"sizes": [0.05], "corner": "top-left"}})
    known = ", ".join(("sizes", *get_manipulation("wanet").setting_names()))
    assert str(e.value) == f"bench spec: manipulations.wanet.corner: unknown setting of wanet; known: {known}"
    with pytest.raises(UserError, match="unknown manipulation 'none'"):
        smoke(manipulations={"none": [0.05]})
