"""The practitioner's path: `corrective fix` on user data in npz files with a flagged-ids file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from corrective import api
from corrective.data import load_dataset
from corrective.errors import UserError


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corrective", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits as a user's npz data, a model trained on it by `corrective train`, and a flagged-ids file."""
    root = tmp_path_factory.mktemp("user")
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
    (root / "flagged.txt").write_text("\n".join(str(i) for i in run.manipulation.ids[:10].tolist()))
    return root


def fix(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "fix",
        "--root",
        str(root),
        "--model",
        "cnn_small",
        "--preset",
        "digits",
        "--steps",
        "60",
        "--weights",
        str(root / "run" / "model.safetensors"),
        "--out",
        str(out),
        *extra,
    )


def test_fix_writes_a_corrected_model_and_summary(user_files: Path, tmp_path: Path) -> None:
    r = fix(user_files, tmp_path / "fixed", "--flagged", str(user_files / "flagged.txt"), "--method", "none", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_flagged"] == 10 and summary["test_acc_before"] == summary["test_acc_after"]
    assert summary["flagged_changed"] == 0.0
    saved = json.loads((tmp_path / "fixed" / "fix.json").read_text())
    assert saved["candidates"][0]["selected"] is True
    assert (tmp_path / "fixed" / "model.safetensors").exists()
    assert summary["selection"] == "paper" and "guard_fallback" not in summary


def test_fix_guarded_selection_compares_classes_on_the_held_out_data(user_files: Path, tmp_path: Path) -> None:
    r = fix(user_files, tmp_path / "fixed", "--flagged", str(user_files / "flagged.txt"), "--method", "none",
            "--selection", "guarded", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["selection"] == "guarded" and summary["guard_fallback"] is False
    cand = json.loads((tmp_path / "fixed" / "fix.json").read_text())["candidates"][0]
    assert len(cand["val_per_class_acc"]) == 10 and cand["val_class_drop"] == 0.0


def test_fix_defaults_to_auto_expanding_the_flagged_set(user_files: Path, tmp_path: Path) -> None:
    r = fix(user_files, tmp_path / "fixed", "--flagged", str(user_files / "flagged.txt"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["method"] == "auto" and summary["expand"] == "auto" and summary["selection"] == "guarded"
    assert summary["n_flagged"] == 10 and summary["n_expanded"] >= 0 and "guard_fallback" in summary


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        ("", [], "flags no sample"),
        ("1 2 99999", [], "not in the training data"),
        ("1 two", [], "integer sample ids"),
        ("1 2", ["--model", "resnet9"], "does not fit the model"),
        ("1 2", ["--mean", "0.1,0.2"], "channels"),
        ("1 2", ["--selection", "best"], "unknown selection rule 'best'"),
        ("1 2", ["--expand", "nope"], "unknown expansion strategy 'nope'"),
        ("1 2", ["--selection", "guarded", "--max-class-drop", "-1"], "max_class_drop must be a fraction"),
    ],
)
def test_fix_bad_input_is_one_line(user_files: Path, tmp_path: Path, content: str, extra: list[str], needle: str):
    flagged = tmp_path / "flagged.txt"
    flagged.write_text(content)
    r = fix(user_files, tmp_path / "out", "--flagged", str(flagged), "--method", "none", *extra)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_check_flagged_dedupes_and_validates(digits) -> None:
    ids = digits.train.ids[:3]
    assert api.check_flagged(digits.train, torch.cat([ids, ids])).tolist() == sorted(ids.tolist())
    with pytest.raises(UserError, match="no sample is flagged"):
        api.check_flagged(digits.train, torch.tensor([], dtype=torch.long))
