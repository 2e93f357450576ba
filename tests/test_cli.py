from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corrective import api
from corrective.errors import UserError


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corrective", *args], capture_output=True, text=True, timeout=120)


def test_train_json_then_evaluate_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "p0"
    r = cli("train", "--out", str(out), "--steps", "60", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)  # exactly one JSON object
    for key in (
        "acc_corr",
        "acc_retain",
        "healed",
        "utility",
        "score",
        "clean_acc",
        "val_accuracy",
        "attack_success",
        "c_acc",
        "asr",
        "r_acc",
    ):
        assert isinstance(record[key], float)
    assert "der" not in record  # the original model: nothing to compare it with
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["manipulation"]["kind"] == "poison" and len(manifest["manipulation"]["ids"]) == 61
    assert {"torch", "corrective"} <= set(manifest["versions"])
    again = cli("evaluate", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["acc_corr"] == record["acc_corr"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--out", "{tmp}/a", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--out", "{tmp}/a", "--dataset", "cifar10", "--root", "{tmp}/missing"], "does not exist"),
        (["train", "--out", "{tmp}/a", "--size", "99999"], "has only"),
        (["train", "--out", "{tmp}/a", "--manipulation", "interclass", "--classes", "3,11"], "out of range"),
        (["evaluate", "{tmp}"], "not a run folder"),
        # a silent wrong answer before: 0 steps meant the preset's, -5 trained nothing, width 0 a 1-channel net
        (["train", "--out", "{tmp}/a", "--steps", "0"], "training recipe: steps must be >= 1, got 0"),
        (["train", "--out", "{tmp}/a", "--steps", "-5"], "training recipe: steps must be >= 1, got -5"),
        (["train", "--out", "{tmp}/a", "--width", "0"], "model 'cnn_small': width must be > 0, got 0.0"),
        (["train", "--out", "{tmp}/a", "--size", "nan"], "--size must be a finite number > 0"),
        (
            ["train", "--out", "{tmp}/a", "--manipulation", "blended", "--set", "blend=2"],
            "manipulation 'blended': blend must be in (0, 1), got 2.0",
        ),
        (["train", "--out", "{tmp}/a", "--manipulation", "sig", "--set", "corner=top-left"], "has no setting 'corner'"),
        (["train", "--out", "{tmp}/a", "--epochs", "2", "--steps", "5"], "give --epochs or --steps, not both"),
        (["train", "--out", "{tmp}/a", "--epochs", "0"], "--epochs must be a finite number > 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()


def test_train_on_your_own_data_budgets_in_epochs_and_says_the_cost_first(tmp_path: Path) -> None:
    """npz data gets DEFAULT_EPOCHS epochs of its own size at the paper preset's batch (not its 4,000 steps of
    512, sized for CIFAR-10), `--epochs` another count; a registered dataset keeps its preset's steps. The cost
    is printed before training starts."""
    import numpy as np

    from corrective.data import load_dataset
    from corrective.training import DEFAULT_EPOCHS, get_preset

    d = load_dataset("digits", val_fraction=0.0)
    keep = slice(0, 300)  # a few steps of 512 an epoch: the budget's arithmetic, not a long training, is tested
    np.savez(tmp_path / "train.npz", x=d.train.x[keep].squeeze(1).numpy(), y=d.train.y[keep].numpy())
    np.savez(tmp_path / "test.npz", x=d.test.x.squeeze(1).numpy(), y=d.test.y.numpy())
    n = len(load_dataset("npz", tmp_path, val_fraction=0.1).train)
    batch = get_preset("paper").batch_size
    for extra, epochs in (([], DEFAULT_EPOCHS), (["--epochs", "2"], 2.0)):
        out = tmp_path / f"run{epochs:g}"
        r = cli("train", "--dataset", "npz", "--root", str(tmp_path), "--model", "cnn_small", "--out", str(out), *extra)
        assert r.returncode == 0, r.stderr
        steps = round(epochs * n / batch)
        assert json.loads((out / "run.json").read_text())["training"]["steps"] == steps
        assert f"train: {steps} steps of batch {batch} ({steps * batch / n:.3g} epochs of {n} samples)" in r.stderr
    r = cli("train", "--out", str(tmp_path / "digits"), "--steps", "20")
    assert r.returncode == 0 and "train: 20 steps of batch 64" in r.stderr, r.stderr


def test_manipulations_lists_the_registry() -> None:
    from corrective.manipulations import ordered

    r = cli("manipulations")
    assert r.returncode == 0, r.stderr
    for name, info in ordered().items():
        assert any(line.startswith(name) for line in r.stdout.splitlines())
        for setting in info.setting_names():
            assert f"--set {setting}=" in r.stdout


def test_existing_output_and_truncated_checkpoint(poison_run: api.Run, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="already exists"):
        api.train_run("digits", out=poison_run.path, steps=1)
    assert (poison_run.path / "model.safetensors").exists()  # nothing lost
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text((poison_run.path / "run.json").read_text())
    (bad / "model.safetensors").write_bytes((poison_run.path / "model.safetensors").read_bytes()[:200])
    r = cli("evaluate", str(bad))
    assert r.returncode == 2 and "corrupt or truncated" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_load_run_reproduces_metrics(poison_run: api.Run) -> None:
    again = api.evaluate_run(poison_run.path)
    assert again["acc_corr"] == poison_run.metrics["acc_corr"]
    assert again["attack_success"] == poison_run.metrics["attack_success"]


def test_datasets_lists_every_registered_loader_with_its_files() -> None:
    from corrective.data import DATASETS

    r = cli("datasets")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert names == sorted(DATASETS)
    for i, name in enumerate(names):
        assert DATASETS[name].files in lines[2 * i] and f"model {DATASETS[name].model}" in lines[2 * i + 1]
    assert "interclass 3,8" in lines[2 * names.index("digits") + 1]
    assert "--download with torchvision" in lines[2 * names.index("cifar10") + 1]
