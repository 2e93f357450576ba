"""`corrective unlearn` and `corrective methods`: outputs, files, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from corrective import api
from corrective.cli.app import main


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["corrective", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_unlearn_writes_the_selected_model_and_every_candidate(
    poison_run: api.Run, tmp_path: Path, monkeypatch, capsys
) -> None:
    out = tmp_path / "u"
    args = [
        "unlearn",
        str(poison_run.path),
        "--method",
        "scrub",
        "--alpha",
        "0.5",
        "--set",
        "budget=0.05",
        "--grid",
        "--json",
        "--out",
        str(out),
    ]
    rc, stdout, _ = cli(args, monkeypatch, capsys)
    assert rc == 0
    lines = [json.loads(line) for line in stdout.strip().splitlines()]
    assert len(lines) == 8 and sum(r["selected"] for r in lines) == 1
    assert all(
        {
            "method",
            "alpha",
            "settings",
            "selected",
            "acc_corr",
            "acc_retain",
            "unlearn_seconds",
            "c_acc",
            "asr",
            "r_acc",
            "der",
        }
        <= r.keys()
        for r in lines
    )  # the defence view on poisoning
    saved = json.loads((out / "unlearn.json").read_text())
    assert saved["run"] == str(poison_run.path) and saved["candidates"][saved["selected"]]["selected"]
    assert (out / "model.safetensors").stat().st_size > 0
    rc, stdout, _ = cli(
        ["unlearn", str(poison_run.path), "--method", "none", "--out", str(out), "--overwrite"], monkeypatch, capsys
    )
    assert rc == 0 and "selected candidate 0 by the paper rule" in stdout
    rc, stdout, _ = cli(
        [
            "unlearn",
            str(poison_run.path),
            "--method",
            "none",
            "--selection",
            "guarded",
            "--out",
            str(out),
            "--overwrite",
        ],
        monkeypatch,
        capsys,
    )
    assert rc == 0 and "by the guarded rule (1 of the candidates kept every class within 0.05 or one sample)" in stdout
    saved = json.loads((out / "unlearn.json").read_text())["candidates"][0]
    assert saved["selection"] == "guarded" and saved["guard_fallback"] is False and saved["val_class_drop"] == 0.0


def test_methods_lists_settings_grids_and_oracle_bounds(monkeypatch, capsys) -> None:
    rc, stdout, _ = cli(["methods"], monkeypatch, capsys)
    assert rc == 0
    assert "grid 50" in stdout and "grid 8" in stdout and "oracle bound" in stdout and "potion" in stdout
    assert "--set lambda_=1" in stdout and "--set a=10" in stdout
    # each setting with its allowed values and meaning, from its declaration
    assert "--set kl_weight=1" in stdout and ">= 0; the paper's α: weight of the distillation KL" in stdout
    assert "one of 'retain', 'train'; I_r on D_r" in stdout and "in (0, 10]; share of the original" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--method", "ssd", "--set", "a=0"], "a must be > 0"),
        (["--method", "ssd", "--set", "a=ten"], "a must be a number, got 'ten'"),
        (["--method", "scrub", "--set", "kl_weight=inf"], "kl_weight must be a finite number, got inf"),
        (["--method", "ssd", "--set", "a=1", "--set", "a=2"], "--set a is given twice"),
        (["--method", "ssd", "--set", "lambda=1"], "did you mean lambda_"),
        (["--method", "ssd", "--set", "a"], "not key=value"),
        (["--method", "ssd", "--alpha", "0"], "--alpha must be in (0, 1]"),
        (["--method", "ssd", "--alpha", "1.5"], "--alpha must be in (0, 1]"),
        (["--method", "ssd", "--selection", "best"], "selection: rule must be one of 'paper', 'guarded', got 'best'"),
        (
            ["--method", "ssd", "--selection", "guarded", "--max-class-drop", "5"],
            "selection: max_class_drop must be in [0, 1), got 5.0",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    poison_run: api.Run, tmp_path: Path, monkeypatch, capsys, args: list[str], message: str
) -> None:
    rc, _, err = cli(["unlearn", str(poison_run.path), *args, "--out", str(tmp_path / "x")], monkeypatch, capsys)
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_not_a_run_folder_and_existing_output(poison_run: api.Run, tmp_path: Path, monkeypatch, capsys) -> None:
    rc, _, err = cli(["unlearn", str(tmp_path), "--method", "none", "--out", str(tmp_path / "o")], monkeypatch, capsys)
    assert rc == 2 and "is not a run folder" in err
    (tmp_path / "o").mkdir()
    rc, _, err = cli(
        ["unlearn", str(poison_run.path), "--method", "none", "--out", str(tmp_path / "o")], monkeypatch, capsys
    )
    assert rc == 2 and "already exists" in err
