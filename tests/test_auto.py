"""Forget-set expansion wired into unlearn, fix and the bench, and the `auto` method (expansion + guarded selection)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from corrective import api
from corrective.api.flagged import class_gap
from corrective.bench import load_spec, plan, read_records, run_bench
from corrective.bench.jobs import expansion_path
from corrective.cli.app import main
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import View, expand
from corrective.methods import METHODS, UnlearnTask, candidate_overrides, make_settings, run_method
from corrective.methods import auto as auto_method
from corrective.methods.auto import BASES, CANDIDATES, FALLBACK, auto_grid, expansion_of
from corrective.methods.scrub import ScrubSettings
from corrective.methods.transplant import RESPONDS
from corrective.names import RESULTS

TWO = [{"kl_weight": 0.1, "budget": 0.05}, {"kl_weight": 1.0, "budget": 0.05}]  # a small grid of the base method


def distinct(grid: list[dict], over: dict) -> int:
    """How many candidates of `grid` differ once `over` is laid on each (the same settings run once)."""
    return len({repr(sorted({**g, **over}.items())) for g in grid})


def test_auto_is_registered_as_a_guarded_self_expanding_method() -> None:
    info = METHODS["auto"]
    assert info.is_method and info.selection == "guarded" and info.expand == "auto"
    assert info.grid_by_default and info.do_no_harm and issubclass(info.settings, ScrubSettings)
    # the grid is declared before the expansion is known: every base's candidates, each naming its base
    assert info.grid() == [{"base": b, **g} for b in BASES for g in CANDIDATES.get(b) or METHODS[b].grid()]
    assert {g["base"] for g in info.grid()} == {"transplant", "finetune", "scrub"}
    # both fine-tuning bases try the gentlest candidate first: half algorithm A's learning rate
    assert [g["lr_factor"] for g in CANDIDATES["finetune"]] == [0.5, 1.0]
    assert METHODS["transplant"].grid()[0] == {"lr_factor": 0.5}
    assert make_settings("auto").base == "evidence"


def test_auto_base_follows_the_expansion(interclass_run: api.Run) -> None:
    """Where the expansion chose label_noise (and the original answers no trigger of the flags: label noise) only
    fine-tuning runs; elsewhere only the transplant; or all bases."""
    poison_run = interclass_run  # the runs below only need a model that answers no trigger
    exp = api.expand_run(poison_run, 0.1, "auto")
    noisy = dataclasses.replace(exp, chosen="label_noise")
    shared = dataclasses.replace(exp, chosen="neighbours")
    small = {"budget": 0.05}
    # the paper's rule ranks the whole grid (the guarded one stops at the first candidate within the guard)
    ft = api.unlearn(poison_run, "auto", 0.1, settings=small, expansion=noisy, selection="paper", progress=False)
    ran = [r for r in ft.records if not r.get("is_original")]
    tried = distinct(METHODS["transplant"].grid(), small)  # then the other fine-tuning base's candidates (fallback)
    assert [r["settings"]["base"] for r in ran] == ["finetune"] * len(CANDIDATES["finetune"]) + ["transplant"] * tried
    chosen = ft.records[ft.selected]
    assert (
        chosen["diagnostics"]["evidence_base"] == "finetune" and "label_noise" in chosen["diagnostics"]["base_reason"]
    )
    response = chosen["diagnostics"]["trigger_response"]
    assert response["stamped"] - response["control"] < RESPONDS
    sc = api.unlearn(poison_run, "auto", 0.1, settings=small, expansion=shared, selection="paper", progress=False)
    ran = [r for r in sc.records if not r.get("is_original")]
    assert [r["settings"]["base"] for r in ran] == ["transplant"] * tried + ["finetune"] * len(CANDIDATES["finetune"])
    assert sc.records[sc.selected]["diagnostics"]["evidence_base"] == "transplant"
    both = api.unlearn(
        poison_run,
        "auto",
        0.1,
        settings={**small, "follow_evidence": False},
        expansion=noisy,
        selection="paper",
        progress=False,
    )
    ran = [r for r in both.records if not r.get("is_original")]
    assert sorted({r["settings"]["base"] for r in ran}) == sorted(BASES) and len(ran) == distinct(auto_grid(), small)
    # a base the caller fixes runs whatever the evidence, each distinct setting once
    fixed = api.unlearn(
        poison_run,
        "auto",
        0.1,
        settings={**small, "base": "finetune"},
        expansion=shared,
        selection="paper",
        progress=False,
    )
    fixed_ran = [r["settings"] for r in fixed.records if not r.get("is_original")]
    # every candidate of the grid handed to fine-tuning, in grid order (the transplant's first), each distinct once
    assert [s["base"] for s in fixed_ran] == ["finetune"] * 5
    assert [(s["lr_factor"], s["anchor"], s["resume"]) for s in fixed_ran] == [
        (0.5, 0.0, False),
        (0.5, 0.0, True),  # resumes the one before it
        (1.0, 0.0, False),
        (0.5, 1.0, False),
        (0.5, 1.0, True),
    ]
    alone = api.unlearn(poison_run, "auto", 0.1, settings=small, grid=False, expansion=noisy, progress=False)
    assert alone.records[0]["settings"]["base"] == "evidence"  # the defaults alone: the base resolves at run time


def test_auto_on_a_task_without_s_m_expands_from_s_f_alone(poison_run: api.Run) -> None:
    forget = poison_run.manipulation.forget_ids(0.1)
    task = UnlearnTask(
        poison_run.model,
        poison_run.train_split,
        forget,
        Pipeline.of(poison_run.dataset),
        poison_run.config.scaled(1.0),
        poison_run.spec,
        seed=0,
        known_manipulated=None,
    )
    model, _ = run_method(task, "auto", make_settings("auto", {"budget": 0.05}))
    assert model is not task.model
    exp = expansion_of(task)  # the one the method computed (kept for the grid's other settings)
    again = expand(poison_run.model, poison_run.train_split, forget, Pipeline.of(poison_run.dataset), "auto", seed=0)
    assert torch.equal(exp.ids, again.ids)  # what the method saw gives the expansion; S_m was never handed over
    # every flagged sample is kept or set aside by the screen (and then reported), never silently lost
    assert bool(torch.isin(forget, torch.cat([exp.ids, exp.set_aside])).all())
    with pytest.raises(UserError, match="must not be handed the manipulated ids"):
        run_method(
            UnlearnTask(
                poison_run.model,
                poison_run.train_split,
                forget,
                Pipeline.of(poison_run.dataset),
                poison_run.config,
                poison_run.spec,
                known_manipulated=poison_run.manipulation.ids,
            ),
            "auto",
            make_settings("auto"),
        )


def test_auto_sets_false_flags_aside_on_a_task_without_s_m(poison_run: api.Run) -> None:
    """Clean samples flagged by mistake: the screen sets (most of) them aside; they are not unlearned."""
    train = poison_run.dataset.train
    false = poison_run.manipulation.false_flag_ids(train, 6)
    forget = torch.cat([poison_run.manipulation.forget_ids(0.1).cpu(), false])
    task = UnlearnTask(
        poison_run.model,
        poison_run.train_split,
        forget,
        Pipeline.of(poison_run.dataset),
        poison_run.config.scaled(1.0),
        poison_run.spec,
        seed=0,
        known_manipulated=None,
    )
    run_method(task, "auto", make_settings("auto", {"budget": 0.05}))
    exp = expansion_of(task)  # the one the method computed (kept for the grid's other settings)
    assert int(torch.isin(false, exp.set_aside).sum()) >= 4, exp.details["screen"]
    assert not torch.isin(exp.set_aside, exp.ids).any()
    assert exp.to_record()["n_set_aside"] == len(exp.set_aside) == exp.details["screen"]["n_set_aside"]


def test_a_given_expansion_is_a_field_of_the_task(poison_run: api.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """api hands auto the expansion it has as `task.expansion` (not through the cache) and auto does not compute
    another; a method that does not expand itself gets the expanded ids as S_f instead."""
    forget = poison_run.manipulation.forget_ids(0.1).cpu()
    task = UnlearnTask(
        poison_run.model,
        poison_run.train_split,
        forget,
        Pipeline.of(poison_run.dataset),
        poison_run.config,
        poison_run.spec,
    )
    exp = expand(poison_run.model, poison_run.train_split, forget, Pipeline.of(poison_run.dataset), "auto", seed=0)
    given = api.expansion_task(task, "auto", exp)
    assert given.expansion is exp and torch.equal(given.forget_ids, forget) and not given.cache
    monkeypatch.setattr(auto_method, "expand", lambda *a, **k: pytest.fail("auto computed an expansion it was given"))
    assert expansion_of(given) is exp
    plain = api.expansion_task(task, "scrub", exp)
    assert plain.expansion is None and torch.equal(plain.forget_ids, exp.ids)
    assert task.expansion is None  # the task given is left as it was


def test_auto_searches_its_grid_by_default_and_selects_guarded(poison_run: api.Run) -> None:
    assert candidate_overrides("auto", None) == METHODS["auto"].grid() and candidate_overrides("scrub", None) == [{}]
    result = api.unlearn(poison_run, "auto", 0.1, settings={"budget": 0.05}, progress=False)
    ran = [r for r in result.records if not r.get("is_original")]
    base = result.record["diagnostics"]["evidence_base"]  # the evidence's base in grid order, then the other's
    grid: list[dict] = []  # the bases' candidates in order, with the budget laid on and each distinct one once
    for b in (base, FALLBACK[base]):
        for g in CANDIDATES.get(b) or METHODS[b].grid():
            if (entry := {"base": b, **g, "budget": 0.05}) not in grid:
                grid.append(entry)
    assert [{k: r["settings"][k] for k in g} for r, g in zip(ran, grid, strict=False)] == grid[: len(ran)]
    assert 1 <= len(ran) <= len(grid) and ran[0]["settings"]["base"] == base
    # it stopped at the first candidate within the guard, or none was and every candidate ran
    assert result.record["n_eligible"] == int(result.record["stopped_at_guard"])
    if result.record["stopped_at_guard"]:
        assert ran[-1]["selected"] and not result.record["returned_original"]
    assert [r["selected"] for r in result.records].count(True) == 1
    for r in result.records:
        assert r["method"] == "auto" and r["selection"] == "guarded" and r["expand"] == "auto"
        assert r["n_flagged"] == len(poison_run.manipulation.forget_ids(0.1))
        assert r["n_forget"] == r["n_flagged"] - r["n_set_aside"] + r["n_expanded"] and r["expand_seconds"] > 0
        assert len(r["set_aside_ids"]) == r["n_set_aside"]
        assert "guard_fallback" in r and len(r["val_per_class_acc"]) == 10
        assert r["do_no_harm"] in ("kept", "original") and r["returned_original"] is (r["do_no_harm"] == "original")
    paper = api.unlearn(poison_run, "auto", 0.1, grid=TWO, selection="paper", progress=False)
    assert paper.record["selection"] == "paper"  # the caller's rule wins over the method's own
    alone = api.unlearn(poison_run, "auto", 0.1, settings={"budget": 0.05}, grid=False, progress=False)
    assert len([r for r in alone.records if not r.get("is_original")]) == 1  # --no-grid: the defaults alone


def test_auto_stops_at_the_first_candidate_within_the_guard(poison_run: api.Run) -> None:
    """A grid whose first candidate wrecks the model (the transplant at 80x algorithm A's learning rate): the second
    runs and, within the guard, ends the search — the third never runs; under the paper's rule all three run."""
    grid = [{"lr_factor": 80.0, "budget": 0.1}, {"lr_factor": 1.0}, {"lr_factor": 0.5, "budget": 0.5}]
    result = api.unlearn(poison_run, "auto", 0.1, grid=grid, progress=False)
    wrecked, kept = result.records
    assert wrecked["val_class_drop"] > 0.5 and not wrecked["selected"]
    assert kept["selected"] and kept["settings"]["lr_factor"] == 1.0 and not kept["returned_original"]
    assert all(r["stopped_at_guard"] and r["n_eligible"] == 1 for r in result.records)
    paper = api.unlearn(poison_run, "auto", 0.1, grid=grid, selection="paper", progress=False)
    assert [r["settings"]["lr_factor"] for r in paper.records] == [80.0, 1.0, 0.5]
    assert "stopped_at_guard" not in paper.record
    scrub = api.unlearn(poison_run, "scrub", 0.1, grid=TWO, selection="guarded", progress=False)
    assert len(scrub.records) == 2 and "stopped_at_guard" not in scrub.record  # other methods rank the whole grid


def test_a_backdoor_whose_trigger_the_original_answers_goes_to_the_transplant(poison_run: api.Run) -> None:
    """A dirty-label backdoor's flags disagree with their neighbours too: where the expansion chose label_noise but
    the original answers the trigger the flags share, the evidence is a backdoor and the transplant runs first."""
    noisy = dataclasses.replace(api.expand_run(poison_run, 0.1, "auto"), chosen="label_noise")
    result = api.unlearn(poison_run, "auto", 0.1, settings={"budget": 0.05}, expansion=noisy, progress=False)
    diagnostics = result.record["diagnostics"]
    assert result.records[0]["settings"]["base"] == "transplant" and diagnostics["evidence_base"] == "transplant"
    assert "answers the trigger" in diagnostics["base_reason"]
    assert diagnostics["trigger_response"]["stamped"] - diagnostics["trigger_response"]["control"] >= RESPONDS
    shared = dataclasses.replace(noisy, chosen="neighbours")  # a shared feature: the transplant, no response needed
    plain = api.unlearn(poison_run, "auto", 0.1, settings={"budget": 0.05}, expansion=shared, progress=False)
    assert "trigger_response" not in plain.record["diagnostics"]


def test_the_evidences_time_counts_in_the_first_candidate(interclass_run: api.Run, monkeypatch) -> None:
    """Reading the original's response to the flags' trigger is part of auto's cost: its time is added to the first
    candidate's seconds (here a response made to take 0.3 s)."""
    from corrective.methods.transplant import Response

    def slow(task: UnlearnTask, settings: object) -> Response:
        time.sleep(0.3)
        return Response(0, 0.0, 0.0)

    monkeypatch.setattr(auto_method, "trigger_response", slow)
    noisy = dataclasses.replace(api.expand_run(interclass_run, 0.1, "auto"), chosen="label_noise")
    result = api.unlearn(interclass_run, "auto", 0.1, settings={"budget": 0.02}, expansion=noisy, progress=False)
    assert result.records[0]["unlearn_seconds"] >= 0.3
    assert result.record["diagnostics"]["trigger_response"] == {"label": 0, "stamped": 0.0, "control": 0.0}


def test_auto_falls_back_to_the_other_fine_tuning_base(interclass_run: api.Run) -> None:
    """Where every candidate of the evidence's base breaks the guard, the other fine-tuning base's run next (here
    fine-tuning at 80x algorithm A's learning rate, then the transplant); without `fallback` the original returns."""
    poison_run = interclass_run  # label noise: the evidence's base is fine-tuning
    noisy = dataclasses.replace(api.expand_run(poison_run, 0.1, "auto"), chosen="label_noise")
    grid = [{"base": "finetune", "lr_factor": 80.0, "budget": 0.1}, {"base": "transplant", "lr_factor": 1.0}]
    result = api.unlearn(poison_run, "auto", 0.1, grid=grid, expansion=noisy, progress=False)
    wrecked, kept = result.records
    assert wrecked["settings"]["base"] == "finetune" and wrecked["val_class_drop"] > 0.5
    assert kept["settings"]["base"] == "transplant" and kept["selected"] and kept["stopped_at_guard"]
    assert result.record["diagnostics"]["evidence_base"] == "finetune"  # the evidence still says where it began
    alone = api.unlearn(
        poison_run, "auto", 0.1, settings={"fallback": False}, grid=grid, expansion=noisy, progress=False
    )
    assert [r["settings"].get("base") for r in alone.records] == ["finetune", None] and alone.record["is_original"]


def test_auto_returns_the_original_when_no_candidate_keeps_the_guard(poison_run: api.Run) -> None:
    """A grid where every candidate wrecks the model (the transplant at 40x and 80x algorithm A's learning rate):
    the original comes back."""
    wrecking = [{"lr_factor": 40.0, "budget": 0.1}, {"lr_factor": 80.0, "budget": 0.1}]
    result = api.unlearn(poison_run, "auto", 0.1, grid=wrecking, progress=False)
    assert len(result.records) == 3 and result.selected == 2
    *ran, kept = result.records
    assert all(r["val_class_drop"] > 0.5 and not r["selected"] for r in ran)  # every candidate erased a class
    assert kept["is_original"] and kept["selected"] and kept["settings"] == {} and kept["val_class_drop"] == 0.0
    assert kept["unlearn_seconds"] == pytest.approx(sum(r["unlearn_seconds"] for r in ran))
    assert [r.get("rejected_by_guard", False) for r in ran].count(True) == 1
    for r in result.records:
        assert r["returned_original"] and r["do_no_harm"] == "original" and r["guard_fallback"] and r["n_eligible"] == 0
        assert not r["stopped_at_guard"]  # none was within the guard: every candidate ran
    for key in ("acc_corr", "acc_retain", "target_acc", "val_accuracy"):
        assert kept[key] == pytest.approx(poison_run.metrics[key])  # the original's own figures
    for a, b in zip(result.model.state_dict().values(), poison_run.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert result.model is not poison_run.model
    # a method that does not do no harm keeps the least damaging candidate (the benchmark's view of a method)
    wrecking = [{"lr": 1.0, "kl_weight": 0.0, "budget": 0.1}, {"lr": 2.0, "kl_weight": 0.0, "budget": 0.1}]  # 400x
    scrub = api.unlearn(poison_run, "scrub", 0.1, grid=wrecking, selection="guarded", progress=False)
    assert len(scrub.records) == 2 and scrub.record["guard_fallback"] and "returned_original" not in scrub.record


def test_expand_hands_the_method_the_expanded_set_and_keeps_metrics_on_s_m(poison_run: api.Run) -> None:
    exp = api.expand_run(poison_run, 0.1, "neighbours")
    plain = api.unlearn(poison_run, "none", 0.1, progress=False).record
    rec = api.unlearn(poison_run, "none", 0.1, expand="neighbours", expansion=exp, progress=False).record
    assert rec["expand"] == "neighbours" and rec["n_expanded"] == len(exp.added) and rec["n_forget"] == len(exp.ids)
    assert plain["expand"] == "none" and plain["n_expanded"] == 0
    for key in ("acc_corr", "acc_retain", "healed", "target_acc"):  # the manipulation's metrics do not move
        assert rec[key] == plain[key]
    with pytest.raises(UserError, match="expands S_f itself"):
        api.unlearn(poison_run, "auto", 0.1, expand="neighbours", progress=False)
    with pytest.raises(UserError, match="oracle bound"):
        api.unlearn(poison_run, "oracle", 1.0, expand="neighbours", progress=False)
    with pytest.raises(UserError, match="unknown expansion strategy 'nope'"):
        api.unlearn(poison_run, "none", 0.1, expand="nope", progress=False)


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["corrective", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_cli_unlearn_expand(poison_run: api.Run, tmp_path: Path, monkeypatch, capsys) -> None:
    rc, stdout, _ = cli(
        [
            "unlearn",
            str(poison_run.path),
            "--method",
            "none",
            "--alpha",
            "0.1",
            "--expand",
            "neighbours",
            "--out",
            str(tmp_path / "u"),
        ],
        monkeypatch,
        capsys,
    )
    assert rc == 0 and "with neighbours (neighbours)" in stdout
    saved = json.loads((tmp_path / "u" / "unlearn.json").read_text())["candidates"][0]
    assert saved["expand"] == "neighbours" and saved["n_expanded"] > 0
    for args, needle in (
        (["--expand", "nope"], "unknown expansion strategy 'nope'"),
        (["--method", "auto", "--expand", "neighbours"], "expands S_f itself"),
    ):
        rc, _, err = cli(["unlearn", str(poison_run.path), *args, "--out", str(tmp_path / "x")], monkeypatch, capsys)
        assert rc == 2 and needle in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_plan_shares_one_expansion_per_original_alpha_and_strategy() -> None:
    base = plan(load_spec("smoke"), "cpu")
    spec = load_spec("smoke", sets={"expand": ["none", "neighbours"], "methods.auto.grid": False})
    jobs = plan(spec, "cpu")
    expands = [j for j in jobs if j.stage == "expand"]
    # per original: alphas x (neighbours for none/ssd, auto for the auto method)
    assert len(expands) == 3 * 2 * 2 and len({j.id for j in expands}) == len(expands)
    by_id = {j.id: j for j in expands}
    unlearn = [j for j in jobs if j.stage == "unlearn"]
    for j in unlearn:
        strategy = "auto" if j.params["method"] == "auto" else j.params["expand"]
        assert j.params["expand"] == strategy
        if strategy == "none":
            assert len(j.deps) == 1 and j.params["expansion_id"] is None
        else:
            exp = by_id[j.params["expansion_id"]]
            assert j.deps == (exp.deps[0], exp.id) and exp.params["alpha"] == j.params["alpha"]
            assert exp.params["expand"] == strategy and exp.params["original_id"] == j.params["original_id"]
    assert {j.id for j in base} <= {j.id for j in jobs}  # expand none keeps every job id
    flagged = plan(load_spec("smoke", sets={"expand": ["neighbours"], "false_flags": [0, 0.5]}), "cpu")
    per_flags = [j for j in flagged if j.stage == "expand"]  # S_f with false flags is expanded on its own
    assert len(per_flags) == 3 * 2 * 2 and {j.params["false_flags"] for j in per_flags} == {0, 0.5}
    with pytest.raises(UserError, match=r"bench spec: expand\[1\]: unknown expansion strategy 'nope'"):
        plan(load_spec("smoke", sets={"expand": ["none", "nope"]}), "cpu")


def test_bench_records_expansion_quality_and_caches_each_expansion(tmp_path: Path) -> None:
    spec = load_spec(
        "smoke",
        sets={
            "expand": ["neighbours"],
            "alphas": [0.5],
            "oracle": False,
            "manipulations": {"poison": [0.05]},
            "methods": {"none": {"grid": False}},
        },
    )
    out = tmp_path / "b"
    result = run_bench(spec, out, progress=False)
    assert not result.failed
    records = read_records(out / RESULTS)
    (exp,) = [r for r in records if r["stage"] == "expand"]
    (unl,) = [r for r in records if r["stage"] == "unlearn"]
    assert expansion_path(out, exp["job_id"]).exists()
    assert 0 <= exp["expand_precision"] <= 1 and 0 <= exp["expand_recall"] <= 1 and exp["n_expanded"] >= 0
    assert unl["expand"] == "neighbours" and unl["n_expanded"] == exp["n_expanded"]
    assert unl["expand_precision"] == exp["expand_precision"] and unl["expand_recall"] == exp["expand_recall"]
    assert unl["expand_seconds"] == pytest.approx(exp["expand_seconds"])  # the cached expansion, not a new one
    summary = (out / "summary.csv").read_text().splitlines()
    assert "expand" in summary[0].split(",") and ",neighbours,paper," in summary[1]


def test_cli_auto_no_grid_says_what_it_gives_up(poison_run: api.Run, tmp_path: Path, monkeypatch, capsys) -> None:
    args = ["unlearn", str(poison_run.path), "--method", "auto", "--alpha", "0.1", "--set", "budget=0.05"]
    rc, stdout, err = cli([*args, "--no-grid", "--out", str(tmp_path / "u")], monkeypatch, capsys)
    assert rc == 0 and "auto --no-grid: one setting, no search" in err and err.count("no search") == 1
    saved = json.loads((tmp_path / "u" / "unlearn.json").read_text())["candidates"]
    assert len([c for c in saved if not c.get("is_original")]) == 1 and "selected " in stdout
    rc, _, err = cli(
        ["unlearn", str(poison_run.path), "--method", "scrub", "--no-grid", "--out", str(tmp_path / "s")],
        monkeypatch,
        capsys,
    )
    assert rc == 0 and "no search" not in err  # only a method that searches by default says so


def test_class_gap_from_the_label_alone_equals_the_gap_from_every_sample(poison_run: api.Run) -> None:
    """`class_gap` embeds only the label's samples and the set's (not the whole split): the same figure as from
    every training sample's features, with a set that holds a sample of another label too."""
    train, pipe = poison_run.train_split, Pipeline.of(poison_run.dataset)
    ids = torch.cat([train.ids[train.y == 3][:8], train.ids[train.y == 5][:1]]).cpu()
    view = View(poison_run.model, train, pipe)
    feats = torch.nn.functional.normalize(view.features, dim=1)
    inside = torch.isin(view.ids, ids)
    own, rest = feats[inside], feats[(view.labels == 3) & ~inside]
    within = torch.cdist(own, own).fill_diagonal_(float("inf")).min(1).values
    expected = float((torch.cdist(own, rest).min(1).values / within).median())
    assert class_gap(poison_run.model, train, pipe, ids, 3) == pytest.approx(expected, rel=1e-5)


def test_a_dirty_label_set_the_features_do_not_set_apart_is_not_called_a_class(
    poison_run: api.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pixel vote: the poison's samples (other digits labelled 0) have their labels contradicted, clean samples
    of a class theirs confirmed; so a backdoor's expansion the features do not set apart (its gap forced below
    WHOLE_CLASS_GAP, as digits' faint blend gives) is not called ordinary samples of its label (S_m read here only
    to pick the samples)."""
    from corrective.methods.votes import contradicted

    train, pipe = poison_run.train_split, Pipeline.of(poison_run.dataset)
    s_m = poison_run.manipulation.ids
    assert float(contradicted(train, pipe, s_m).float().mean()) > 0.7
    clean = train.ids[(train.y == 3) & ~torch.isin(train.ids, s_m)][:20]
    assert float(contradicted(train, pipe, clean).float().mean()) < 0.2
    assert torch.equal(contradicted(train, pipe, clean, seed=1), contradicted(train, pipe, clean, seed=1))
    exp = api.expand_run(poison_run, 0.1, "auto")
    monkeypatch.setattr("corrective.api.flagged.class_gap", lambda *args: 1.0)
    d = api.describe_flags(poison_run.model, train, pipe, poison_run.manipulation.forget_ids(0.1), exp.ids, True)
    assert d["flags_gap"] == 1.0 and d["flags_contradicted"] > api.WHOLE_CLASS_CONTRADICTED and d["flag_notes"] == []
    grown = expand(poison_run.model, train, clean[:8], pipe, "auto", seed=0)
    d = api.describe_flags(poison_run.model, train, pipe, clean[:8], grown.ids, True)
    assert (
        d["flags_contradicted"] < api.WHOLE_CLASS_CONTRADICTED and "ordinary samples of class 3" in d["flag_notes"][0]
    )


def test_describe_flags_says_what_the_flags_look_like(poison_run: api.Run) -> None:
    """Repeated ids, and an expanded set that looks like ordinary samples of a class — from ids, given labels and
    the model alone (S_m is read here only to pick the test's clean samples)."""
    train, pipe = poison_run.train_split, Pipeline.of(poison_run.dataset)
    s_m = poison_run.manipulation.ids
    clean = train.ids[(train.y == 3) & ~torch.isin(train.ids, s_m)][:8]  # 8 ordinary samples of class 3
    grown = expand(poison_run.model, train, clean, pipe, "auto", seed=0)
    assert len(grown.ids) > len(clean)
    d = api.describe_flags(poison_run.model, train, pipe, torch.cat([clean, clean[:2]]), grown.ids, expanded=True)
    assert d["n_repeated_ids"] == 2 and d["flags_label"] == 3 and d["flags_label_share"] == 1.0
    assert d["flags_gap"] < api.WHOLE_CLASS_GAP and len(d["flag_notes"]) == 2
    assert "2 repeat(s) of 2 id(s)" in d["flag_notes"][0] and "ordinary samples of class 3" in d["flag_notes"][1]
    assert all("\n" not in n for n in d["flag_notes"])
    # the backdoor's own expansion is not called a class; flags used as given are never judged so
    exp = api.expand_run(poison_run, 0.1, "auto")
    d = api.describe_flags(poison_run.model, train, pipe, poison_run.manipulation.forget_ids(0.1), exp.ids, True)
    assert d["flag_notes"] == [] and d["n_repeated_ids"] == 0
    d = api.describe_flags(poison_run.model, train, pipe, clean, clean, expanded=False)
    assert d["flag_notes"] == [] and d["flags_gap"] is None
    # every record of unlearn says it
    rec = api.unlearn(poison_run, "none", 0.1, progress=False).record
    assert rec["flag_notes"] == [] and rec["n_repeated_ids"] == 0 and rec["flags_label"] == 0


def test_the_heal_classes_are_the_forget_sets_labels_where_the_evidence_says_label_noise(
    interclass_run: api.Run,
) -> None:
    from corrective.methods.auto import heal_shares

    task = api.make_task(interclass_run, interclass_run.manipulation.forget_ids(0.1))
    assert task.known_manipulated is None  # no S_m: the shares read the expansion and the labels as given
    exp = api.expand_run(interclass_run, 0.1, "auto")
    noisy = dataclasses.replace(task, expansion=dataclasses.replace(exp, chosen="label_noise"))
    noisy.cache[auto_method.RESPONSE] = auto_method.Response(0, 0.0, 0.0)  # the original answers no trigger
    shares = heal_shares(noisy)
    assert shares is not None and sum(shares.values()) == pytest.approx(1.0)
    labels = interclass_run.train_split.y[interclass_run.train_split.positions_of(exp.ids)]
    assert shares == {int(c): int((labels == c).sum()) / len(labels) for c in labels.unique()}
    shared = dataclasses.replace(task, expansion=dataclasses.replace(exp, chosen="neighbours"))
    assert heal_shares(shared) is None  # a shared feature (a trigger): nothing to heal on clean data


def test_a_search_ends_where_the_forget_set_lowered_the_classes_to_heal(poison_run: api.Run, monkeypatch) -> None:
    """Candidates measured as: wrecked (the whole split down: a setting's fault, the search goes on), the heal
    classes down alone (the forget set's fault: the search ends, the original returns), never run."""
    from corrective.api.core import reference_on, run_candidates
    from corrective.methods.selection import Selection

    monkeypatch.setitem(
        METHODS, "none", dataclasses.replace(METHODS["none"], stop_at_guard=True, heals=lambda task: {0: 1.0})
    )
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.1))
    val = poison_run.dataset.val
    reference = reference_on(poison_run.model, val, task.pipeline, 10)
    base = list(reference.accuracy)
    wrecked = [a / 2 for a in base]
    pair = [base[0] - 3 / reference.counts[0], *base[1:]]  # three samples of class 0 lost, nothing else
    figures = iter([wrecked, pair, base])

    def measure(model: torch.nn.Module) -> dict:
        per_class = next(figures)
        return {"val_per_class_acc": per_class, "val_accuracy": sum(per_class) / 10, "forget_changed": 0.5}

    result = run_candidates(task, "none", None, [{}, {}, {}], measure, Selection("guarded"), reference, True)
    *ran, original = result.records
    assert len(ran) == 2  # the third never ran
    assert [r["unhealed"] for r in ran] == [True, True]
    assert ran[1]["val_heal"] == pytest.approx(-3 / reference.counts[0])
    assert original["is_original"] and original["selected"] and original["stopped_unhealed"]
    assert original["returned_original"] and not original["stopped_at_guard"]


def test_the_selection_line_says_the_search_stopped_unhealed() -> None:
    from corrective.cli.unlearn import selection_line

    line = selection_line({"selection": "guarded", "returned_original": True, "stopped_unhealed": True})
    assert "stopped at a candidate that lowered the clean validation accuracy of the classes it unlearned" in line
    assert line.endswith("returned unchanged (do no harm)")
    other = selection_line({"selection": "guarded", "returned_original": True, "max_class_drop": 0.05})
    assert "lost more than 0.05" in other
