"""Expansion on small digits runs: the api entry point, the CLI in both forms, bad input."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from corrective import api
from corrective.data import load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import expand
from corrective.metrics import expansion_quality


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corrective", *args], capture_output=True, text=True, timeout=180)


def test_expand_sees_only_model_train_and_flagged(poison_run: api.Run) -> None:
    """The strategy's inputs hold no S_m: the api call equals a direct call with model, training split and S_f."""
    assert list(inspect.signature(expand).parameters) == [
        "model",
        "train",
        "forget_ids",
        "pipeline",
        "strategy",
        "settings",
        "seed",
        "progress",
        "precision",  # of the feature pass: how, not what, it computes
    ]
    forget = poison_run.manipulation.forget_ids(0.1)
    via_api = api.expand_run(poison_run, 0.1, "auto")
    direct = expand(
        poison_run.model,
        poison_run.train_split,
        forget.clone(),
        Pipeline.of(poison_run.dataset),
        "auto",
        seed=poison_run.seed,
    )
    assert torch.equal(via_api.ids, direct.ids) and via_api.details == direct.details
    q = expansion_quality(via_api.ids, forget, poison_run.manipulation.ids)
    assert set(forget.tolist()) <= set(via_api.ids.tolist())
    # poison on a briefly trained model: the trigger cluster is found, the target class is not swallowed
    assert via_api.chosen == "neighbours" and q["expand_recall"] >= 0.8 and q["expand_precision"] >= 0.9, q


def test_expansion_quality_counts_the_flagged_and_the_added() -> None:
    q = expansion_quality(torch.tensor([1, 2, 3, 9]), torch.tensor([1, 2]), torch.tensor([1, 2, 3, 4]))
    assert q == {"expand_precision": 0.75, "expand_recall": 0.75, "added_precision": 0.5, "added_recall": 0.5}


def test_one_flagged_sample_on_digits(interclass_run: api.Run) -> None:
    e = api.expand_run(interclass_run, 1 / 61, "auto")
    assert e.details["cutoff"]["rule"] == "fallback" and "cross-validation" in e.details["cutoff"]["reason"]
    assert e.chosen in ("label_noise", "cluster")


def test_a_model_without_features_is_one_line(poison_run: api.Run) -> None:
    headless = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())  # no classifier layer to read features at
    forget = poison_run.manipulation.forget_ids(0.1)
    pipe = Pipeline.of(poison_run.dataset)
    with pytest.raises(UserError, match="no classifier to read features from .*feature_layer='name'"):
        expand(headless, poison_run.train_split, forget, pipe, "neighbours")
    assert len(expand(headless, poison_run.train_split, forget, pipe, "none").added) == 0


def test_cli_expand_run(poison_run: api.Run, tmp_path: Path) -> None:
    assert poison_run.path is not None
    out = tmp_path / "ids.txt"
    r = cli("expand", str(poison_run.path), "--alpha", "0.1", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["expand"] == "auto" and summary["n_flagged"] == 6
    assert summary["n_ids"] == summary["n_flagged"] + summary["n_expanded"]
    assert 0.0 <= summary["expand_precision"] <= 1.0 and 0.0 <= summary["expand_recall"] <= 1.0
    lines = out.read_text().splitlines()
    assert lines[0] == "id\tscore\tsource" and len(lines) == 1 + summary["n_ids"]
    ids = api.read_flagged(out)  # usable as --flagged of `corrective fix`
    assert set(poison_run.manipulation.forget_ids(0.1).tolist()) <= set(ids.tolist()) and len(ids) == summary["n_ids"]
    assert json.loads((tmp_path / "ids.txt.json").read_text())["details"]["cutoff"]["k"] == summary["n_expanded"]
    r = cli(
        "expand",
        str(poison_run.path),
        "--alpha",
        "0.1",
        "--strategy",
        "label_noise",
        "--set",
        "k=5",
        "--out",
        str(out),
        "--overwrite",
    )
    assert r.returncode == 0, r.stderr
    assert "n_expanded" in r.stdout and "expand_recall" in r.stdout


def test_cli_expand_fix_form(tmp_path: Path) -> None:
    """Your data, your weights, your flagged ids: the loading of `corrective fix`."""
    root = tmp_path / "user"
    root.mkdir()
    d = load_dataset("digits", val_fraction=0.0)
    np.savez(root / "train.npz", x=d.train.x.squeeze(1).numpy(), y=d.train.y.numpy())
    np.savez(root / "test.npz", x=d.test.x.squeeze(1).numpy(), y=d.test.y.numpy())
    run = api.train_run(
        "npz",
        root=root,
        manipulation="random_swap",
        model="cnn_small",
        preset="digits",
        steps=60,
        val_fraction=0.0,
        out=root / "run",
        progress=False,
    )
    (root / "flagged.txt").write_text("\n".join(map(str, run.manipulation.forget_ids(0.2).tolist())))
    out = tmp_path / "ids.txt"
    r = cli(
        "expand",
        "--dataset",
        "npz",
        "--root",
        str(root),
        "--model",
        "cnn_small",
        "--weights",
        str(root / "run" / "model.safetensors"),
        "--flagged",
        str(root / "flagged.txt"),
        "--out",
        str(out),
        "--strategy",
        "label_noise",
        "--precision",
        "bf16",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["expand"] == "label_noise" and "expand_precision" not in summary  # S_m unknown here
    assert len(api.read_flagged(out)) == summary["n_ids"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["expand", "{run}", "--out", "{tmp}/a.txt", "--strategy", "nearest"], "unknown expansion strategy"),
        (["expand", "{run}", "--out", "{tmp}/a.txt", "--set", "k=3"], "has no setting 'k'"),
        (["expand", "{run}", "--out", "{tmp}/a.txt", "--alpha", "0"], "--alpha must be in (0, 1]"),
        (["expand", "{run}", "--out", "{tmp}/a.txt", "--precision", "fp16"], "--precision must be fp32 or bf16"),
        (["expand", "--out", "{tmp}/a.txt"], "give a RUN folder, or --weights and --flagged"),
        (["expand", "{run}", "--out", "{tmp}/a.txt", "--weights", "w.safetensors"], "not both"),
        (["expand", "{run}", "--out", "{tmp}/exists.txt"], "exists; pass --overwrite"),
        (["expand", "{tmp}", "--out", "{tmp}/a.txt"], "not a run folder"),
    ],
)
def test_cli_expand_bad_input_is_one_line(poison_run: api.Run, tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "exists.txt").write_text("1\n")
    r = cli(*(a.format(run=poison_run.path, tmp=tmp_path) for a in args))
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_strategies_lists_every_strategy() -> None:
    r = cli("strategies")
    assert r.returncode == 0
    for name in ("auto", "classifier", "gradients", "label_noise", "neighbours", "none"):
        assert f"\n{name} " in "\n" + r.stdout
    # each setting with its default, allowed values and meaning, from its declaration
    assert "--set folds=5" in r.stdout and ">= 2; cross-validation folds inside S_f" in r.stdout
    assert "--set restrict=none" in r.stdout and "one of 'none', 'labels', 'transitions'" in r.stdout
