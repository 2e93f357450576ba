"""Forget-set expansion wired into unlearn, fix and the bench, and the `auto` method (expansion + guarded selection)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from corrective import api
from corrective.bench import load_spec, plan, read_records, run_bench
from corrective.bench.jobs import expansion_path
from corrective.cli.app import main
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import expand
from corrective.methods import EXPANSION_CACHE, METHODS, UnlearnTask, make_settings, run_method
from corrective.methods.auto import BASE
from corrective.names import RESULTS

TWO = [{"kl_weight": 0.1, "fraction": 0.05}, {"kl_weight": 1.0, "fraction": 0.05}]  # a small grid of the base method


def test_auto_is_registered_as_a_guarded_self_expanding_method() -> None:
    info = METHODS["auto"]
    assert info.is_method and info.selection == "guarded" and info.expand == "auto"
    assert info.settings is METHODS[BASE].settings and info.grid() == METHODS[BASE].grid()


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
    model, _ = run_method(task, "auto", make_settings("auto", {"fraction": 0.05}))
    assert model is not task.model
    exp = task.cache[EXPANSION_CACHE]
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
    run_method(task, "auto", make_settings("auto", {"fraction": 0.05}))
    exp = task.cache[EXPANSION_CACHE]
    assert int(torch.isin(false, exp.set_aside).sum()) >= 4, exp.details["screen"]
    assert not torch.isin(exp.set_aside, exp.ids).any()
    assert exp.to_record()["n_set_aside"] == len(exp.set_aside) == exp.details["screen"]["n_set_aside"]


def test_auto_end_to_end_on_digits(poison_run: api.Run) -> None:
    result = api.unlearn(poison_run, "auto", 0.1, grid=TWO, progress=False)
    assert len(result.records) == 2 and [r["selected"] for r in result.records].count(True) == 1
    for r in result.records:
        assert r["method"] == "auto" and r["selection"] == "guarded" and r["expand"] == "auto"
        assert r["n_flagged"] == len(poison_run.manipulation.forget_ids(0.1))
        assert r["n_forget"] == r["n_flagged"] - r["n_set_aside"] + r["n_expanded"] and r["expand_seconds"] > 0
        assert len(r["set_aside_ids"]) == r["n_set_aside"]
        assert "guard_fallback" in r and len(r["val_per_class_acc"]) == 10
    paper = api.unlearn(poison_run, "auto", 0.1, grid=TWO, selection="paper", progress=False)
    assert paper.record["selection"] == "paper"  # the caller's rule wins over the method's own


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
    with pytest.raises(UserError, match=r"bench spec: expand\[1\]: unknown strategy 'nope'"):
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
