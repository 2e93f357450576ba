"""Progress into a log file (stderr not a terminal, as under pytest): a plain line every few seconds."""

from __future__ import annotations

import pytest

from corrective import progress
from corrective.data import load_dataset
from corrective.data.batches import Pipeline
from corrective.models import create_model
from corrective.progress import Progress
from corrective.training import TrainConfig, train


def test_lines_when_not_a_terminal_and_none_when_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    p = Progress(3, "bench", None, unit="job", initial=1, every=0.0)
    p.set_postfix(running=2, failed=0)
    p.update()
    p.close()
    quiet = Progress(3, "bench", False, unit="job", every=0.0)
    quiet.update()
    quiet.close()
    assert capsys.readouterr().err.splitlines() == ["bench: 2/3 jobs, running 2, failed 0, 0 s"]


def test_no_line_before_the_interval(capsys: pytest.CaptureFixture[str]) -> None:
    p = Progress(3, "train", None, every=60.0)
    p.update(3)
    p.close()
    assert capsys.readouterr().err == ""


def test_training_prints_its_steps_into_a_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "EVERY", 0.0)
    ds = load_dataset("digits")
    model = create_model("cnn_small", 10, 1)
    train(model, ds.train, Pipeline.of(ds), TrainConfig(steps=3, batch_size=16), desc="train digits")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "train digits: 1/3 steps",
        "train digits: 2/3 steps",
        "train digits: 3/3 steps",
    ]
