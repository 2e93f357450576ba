"""The practitioner's path: `corrective fix` on user data in npz files with a flagged-ids file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from corrective import api
from corrective.data import load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.runs import saved_recipe


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
    r = fix(
        user_files,
        tmp_path / "fixed",
        "--flagged",
        str(user_files / "flagged.txt"),
        "--method",
        "none",
        "--selection",
        "guarded",
        "--json",
    )
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
    assert summary["do_no_harm"] in ("kept", "original") and summary["max_class_drop"] == 0.05
    tried = [
        c for c in json.loads((tmp_path / "fixed" / "fix.json").read_text())["candidates"] if not c.get("is_original")
    ]
    assert summary["candidates_run"] == len(tried) >= 1  # the whole search's cost, not the returned candidate's alone
    assert summary["search_seconds"] >= sum(c["unlearn_seconds"] for c in tried) >= summary["unlearn_seconds"] > 0
    if summary["returned_original"]:  # the guard refused every candidate: the model is the user's own
        assert summary["test_acc_after"] == summary["test_acc_before"] and "returned unchanged" in r.stderr
    else:  # never a model that lost more than the guard on the held-out data
        assert summary["test_acc_after"] >= summary["test_acc_before"] - 0.05 - 1e-6


WRECK = ["--method", "scrub", "--set", "lr=2", "--set", "kl_weight=0", "--set", "budget=0.2"]


def test_fix_returns_the_model_unchanged_when_the_correction_harms_it(user_files: Path, tmp_path: Path) -> None:
    """Any method, its only required options: a correction that loses more than the guard is never written."""
    flagged = ["--flagged", str(user_files / "flagged.txt")]
    r = fix(user_files, tmp_path / "a", *flagged, *WRECK, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["returned_original"] and summary["do_no_harm"] == "original"
    assert summary["test_acc_after"] == summary["test_acc_before"] and summary["flagged_changed"] == 0.0
    (warning,) = [line for line in r.stderr.splitlines() if "warning" in line]
    assert "lost more than the guard (0.05 or one sample of a class)" in warning and "returned unchanged" in warning
    saved = json.loads((tmp_path / "a" / "fix.json").read_text())["candidates"]
    drops = [o - c for o, c in zip(saved[-1]["val_per_class_acc"], saved[0]["val_per_class_acc"], strict=True)]
    worst = max(range(len(drops)), key=drops.__getitem__)  # the warning names the class that fell most
    assert f"the one tried took class {worst} down {saved[0]['val_class_drop']:.3f}" in warning
    assert saved[0]["rejected_by_guard"] and saved[-1]["is_original"] and saved[-1]["selected"]
    strict = fix(user_files, tmp_path / "b", *flagged, *WRECK, "--strict")
    assert strict.returncode == 3 and "returned unchanged" in strict.stderr
    assert (tmp_path / "b" / "model.safetensors").exists()  # the user's model is still written
    assert fix(user_files, tmp_path / "c", *flagged, "--method", "none", "--strict").returncode == 0  # harmless


def test_fix_says_when_the_flagged_file_repeats_ids(user_files: Path, tmp_path: Path) -> None:
    ids = (user_files / "flagged.txt").read_text().split()
    repeated = tmp_path / "flagged.txt"
    repeated.write_text("\n".join([*ids, ids[0], ids[0], ids[1]]))
    r = fix(user_files, tmp_path / "f", "--flagged", str(repeated), "--method", "none", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_flagged"] == 10 and summary["n_repeated_ids"] == 3
    (note,) = [line for line in r.stderr.splitlines() if "note:" in line]
    assert note.startswith("fix: note: the flagged ids hold 3 repeat(s) of 2 id(s)")
    saved = json.loads((tmp_path / "f" / "fix.json").read_text())["candidates"][0]
    assert saved["n_repeated_ids"] == 3 and len(saved["flag_notes"]) == 1


def test_correct_does_no_harm_for_every_method(user_files: Path) -> None:
    """The Python path: `api.correct` returns the original when the chosen model loses more than the guard."""
    run = api.load_run(user_files / "run")
    ds = run.dataset
    flagged = run.manipulation.ids[:10]
    common = {"pipeline": Pipeline.of(ds), "config": run.config, "spec": run.spec}
    wreck = {"lr": 2.0, "kl_weight": 0.0, "budget": 0.2}
    result = api.correct(
        run.model, run.train_split, flagged, method="scrub", held_out=ds.test, settings=wreck, **common
    )
    assert result.record["is_original"] and result.record["do_no_harm"] == "original"
    for a, b in zip(result.model.state_dict().values(), run.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    blind = api.correct(run.model, run.train_split, flagged, method="scrub", settings=wreck, **common)
    assert blind.record["do_no_harm"] == "unchecked" and not blind.record.get("is_original")
    with pytest.raises(UserError, match="auto's grid search selects settings on trusted held-out data"):
        api.correct(run.model, run.train_split, flagged, method="auto", **common)
    with pytest.raises(UserError, match="guarded selection compares classes on trusted held-out data"):
        api.correct(run.model, run.train_split, flagged, method="auto", grid=False, **common)


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        ("", [], "flags no sample"),
        ("1 2 99999", [], "not in the training data"),
        ("1 two", [], "'two' is not a sample id"),
        ("1 2", ["--model", "resnet9"], "does not fit the model: tensor "),
        ("1 12.5", [], "'12.5' is not a sample id"),
        ("1 2", ["--epochs", "0"], "--epochs must be a finite number > 0, got 0.0"),
        ("1 2", ["--std", "0"], "--std must be finite numbers > 0, one per channel, got 0"),
        ("1 2", ["--mean", "nan"], "--mean must be finite numbers, one per channel, got nan"),
        ("1 2", ["--epochs", "3"], "give --epochs or --steps, not both"),
        ("1 2", ["--method", "nope"], "unknown method 'nope'"),
        ("1 2", ["--mean", "0.1,0.2"], "channels"),
        ("1 2", ["--selection", "best"], "selection: rule must be one of 'paper', 'guarded', got 'best'"),
        ("1 2", ["--expand", "nope"], "unknown expansion strategy 'nope'"),
        (
            "1 2",
            ["--selection", "guarded", "--max-class-drop", "-1"],
            "selection: max_class_drop must be in [0, 1), got -1.0",
        ),
    ],
)
def test_fix_bad_input_is_one_line(user_files: Path, tmp_path: Path, content: str, extra: list[str], needle: str):
    flagged = tmp_path / "flagged.txt"
    flagged.write_text(content)
    r = fix(user_files, tmp_path / "out", "--flagged", str(flagged), "--method", "none", *extra)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_flagged_file_with_a_bom_or_integral_floats(tmp_path: Path) -> None:
    bom = tmp_path / "bom.txt"
    bom.write_text("\ufeff12\n7\n", encoding="utf-8")
    assert api.read_flagged(bom).tolist() == [7, 12]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("12.0,7.0\n3\n")
    assert api.read_flagged(sheet).tolist() == [3, 7, 12]
    as_json = tmp_path / "ids.json"
    as_json.write_text("\ufeff[12.0, 3]", encoding="utf-8")
    assert api.read_flagged(as_json).tolist() == [3, 12]
    np.save(tmp_path / "ids.npy", np.array([4.0, 5.0]))
    assert api.read_flagged(tmp_path / "ids.npy").tolist() == [4, 5]
    for text in ("[12.5]", "[true]", '{"a": 1}'):
        as_json.write_text(text)
        with pytest.raises(UserError, match="is not a sample id|must hold integer sample ids"):
            api.read_flagged(as_json)


def test_a_label_outside_the_models_classes_is_named(user_files: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with np.load(user_files / "train.npz") as f:
        x, y = f["x"], f["y"].copy()
    y[5] = 12  # the model (trained on these digits) has 10 classes
    np.savez(root / "train.npz", x=x, y=y)
    (root / "test.npz").write_bytes((user_files / "test.npz").read_bytes())
    shutil.copytree(user_files / "run", root / "run")
    (tmp_path / "flagged.txt").write_text("1 2")
    r = fix(root, tmp_path / "out", "--flagged", str(tmp_path / "flagged.txt"), "--method", "none")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"npz data in {root}: label 12 in the train split is outside the model's 10 classes (0..9)" in r.stderr


def test_the_recipe_defaults_to_epochs_of_the_data_and_is_printed(user_files: Path, tmp_path: Path) -> None:
    from corrective.api.practitioner import recipe

    assert (recipe(1500, None, None, None, None, None, 0).steps, recipe(1500, None, None, None, 64, 0.05, 0).steps) == (
        round(40 * 1500 / 512),
        round(40 * 1500 / 64),
    )
    assert recipe(1500, "digits", None, None, None, None, 3).steps == 400  # a named preset keeps its budget
    assert recipe(1500, "digits", 2.0, None, None, None, 3).steps == round(2 * 1500 / 64)
    user = (
        *("--root", str(user_files), "--model", "cnn_small"),
        *("--weights", str(user_files / "run" / "model.safetensors"), "--flagged", str(user_files / "flagged.txt")),
        *("--method", "none"),
    )
    r = cli("fix", *user, "--epochs", "2", "--batch-size", "32", "--lr", "0.01", "--out", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    n = len(load_dataset("npz", user_files, val_fraction=0.0).train)
    steps = round(2 * n / 32)
    assert f"fix: your model's recipe: {steps} steps of batch 32 (" in r.stderr
    assert "at lr 0.01; none spends a share of it on each setting it runs (at most 1)" in r.stderr
    assert "that recipe is assumed" not in r.stderr  # the user said how the model was trained
    r = cli("fix", *user, "--out", str(tmp_path / "g"))  # the recipe left to fix: `corrective train` saved it
    assert r.returncode == 0, r.stderr
    assert "fix: your model's recipe (saved in its weights file): 60 steps of batch 64 (" in r.stderr
    assert "at lr 0.05; none spends" in r.stderr and "that recipe is assumed" not in r.stderr
    r = cli("fix", *user, "--preset", "paper", "--out", str(tmp_path / "p"))  # a named preset wins over the file's
    assert r.returncode == 0, r.stderr
    assert "fix: your model's recipe: 4000 steps of batch 512 (" in r.stderr and "saved in its" not in r.stderr
    bare = tmp_path / "bare.safetensors"  # the same weights without the metadata, as another tool saves them
    save_file(load_file(str(user_files / "run" / "model.safetensors")), str(bare))
    assert saved_recipe(bare) is None
    r = cli("fix", *user, "--weights", str(bare), "--out", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert "fix: that recipe is assumed (40 epochs, the paper's): pass --epochs N" in r.stderr


def test_a_run_folder_as_weights_names_its_weights_file_and_model(user_files: Path, tmp_path: Path) -> None:
    run = user_files / "run"
    r = cli(
        "fix",
        "--root",
        str(user_files),
        "--weights",
        str(run),
        "--flagged",
        str(user_files / "flagged.txt"),
        "--out",
        str(tmp_path / "f"),
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    hint = f"give its weights file: --weights {run}/model.safetensors --model cnn_small"
    assert f"--weights {run} is a run folder of `corrective train`; {hint}" in r.stderr


def test_the_saved_recipe_travels_with_the_weights_and_gives_way_to_the_users(user_files: Path, tmp_path: Path) -> None:
    from corrective.api.practitioner import recipe

    trained = saved_recipe(user_files / "run" / "model.safetensors")
    assert trained is not None and (trained["steps"], trained["batch_size"], trained["lr"]) == (60, 64, 0.05)
    assert recipe(1500, None, None, None, None, None, 7, trained).steps == 60  # its own budget, fix's seed
    assert recipe(1500, None, None, None, None, None, 7, trained).seed == 7
    assert recipe(1500, None, None, None, 32, None, 0, trained).steps == 120  # as many samples seen
    assert recipe(1500, None, 2.0, None, None, None, 0, trained).steps == round(2 * 1500 / 64)
    assert recipe(1500, "digits", None, None, None, None, 0, trained).steps == 400  # a named preset wins
    with pytest.raises(UserError, match="the recipe saved in the weights file is not one this version reads"):
        recipe(1500, None, None, None, None, None, 0, {"steps": -3})
    user = (
        *("--root", str(user_files), "--model", "cnn_small", "--flagged", str(user_files / "flagged.txt")),
        *("--method", "none", "--json"),
    )
    r = cli("fix", *user, "--weights", str(user_files / "run" / "model.safetensors"), "--out", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    from corrective.api.practitioner import load_user_model
    from corrective.cli.expand import saved_precision

    data = load_user_model(
        user_files / "run" / "model.safetensors", None, "npz", user_files, "cnn_small", *(None,) * 3, 0, "cpu"
    )
    assert data.recipe == trained and saved_precision(data) == "fp32"  # the digits preset: auto, 8 px: fp32
    assert saved_precision(replace(data, recipe={**trained, "precision": "bf16"})) == "bf16"  # `expand`'s pass
    assert saved_precision(replace(data, recipe=None)) == "fp32"
    fixed = saved_recipe(tmp_path / "f" / "model.safetensors")  # fix's output carries the recipe on
    assert fixed is not None and {k: fixed[k] for k in ("steps", "batch_size", "lr")} == {
        "steps": 60,
        "batch_size": 64,
        "lr": 0.05,
    }


def test_check_flagged_dedupes_and_validates(digits) -> None:
    ids = digits.train.ids[:3]
    assert api.check_flagged(digits.train, torch.cat([ids, ids])).tolist() == sorted(ids.tolist())
    with pytest.raises(UserError, match="no sample is flagged"):
        api.check_flagged(digits.train, torch.tensor([], dtype=torch.long))


def test_the_harm_warning_names_the_class_and_the_candidates_tried() -> None:
    from corrective.cli.fix import harm_warning

    common = {"max_class_drop": 0.05, "selection": "guarded"}
    tried = [
        {**common, "val_per_class_acc": [0.9, 0.7, float("nan")], "val_class_drop": 0.2, "val_accuracy": 0.8},
        {**common, "val_per_class_acc": [0.8, 0.8, 0.9], "val_class_drop": 0.1, "val_accuracy": 0.85},
    ]
    tried[1]["rejected_by_guard"] = True
    original = {**common, "is_original": True, "val_per_class_acc": [0.9, 0.9, 0.9], "val_accuracy": 0.9}
    warning = harm_warning([*tried, original], 0.9)
    assert warning is not None
    assert "the guarded rule's choice of the 2 tried took class 0 down 0.100 (all 0.9000 -> 0.8500)" in warning
    assert warning.endswith("your model is returned unchanged")
    assert harm_warning([{**tried[0]}, original], 0.9) is None  # nothing rejected: nothing to say


def test_the_harm_warning_says_when_the_correction_did_not_heal() -> None:
    from corrective.cli.fix import harm_warning

    common = {"max_class_drop": 0.05, "selection": "guarded"}
    tried = {**common, "val_per_class_acc": [0.9, 0.87, 0.9], "val_class_drop": 0.03, "val_accuracy": 0.89}
    tried |= {"val_heal": -0.015, "unhealed": True, "rejected_by_guard": True}
    original = {**common, "is_original": True, "val_per_class_acc": [0.9, 0.9, 0.9], "val_accuracy": 0.9}
    warning = harm_warning([tried, original], 0.9)
    assert warning is not None and "did not heal the classes of the samples it unlearned" in warning
    assert "the one tried lowered their accuracy on your test split by 0.015 (class 1 down 0.030" in warning
