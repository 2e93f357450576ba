"""The bench's estimate of the time left: per-stage means of finished jobs, shared by the slots; in the log."""

from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from corrective import progress
from corrective.bench import load_spec, plan
from corrective.bench.eta import Estimate, duration
from corrective.bench.plan import Job
from corrective.bench.runner import BenchOutcome, _schedule
from corrective.bench.store import ResultStore


def test_each_stage_is_estimated_from_its_own_finished_jobs() -> None:
    e = Estimate(slots=2)
    assert e.left(["original"], []) is None  # nothing finished: nothing to estimate from
    assert e.left([], []) == 0.0
    e.finished("original", 30.0)
    e.finished("original", 50.0)
    e.finished("unlearn", 2.0)
    # 2 originals (mean 40) + 4 unlearning runs (2 each), shared by 2 slots
    assert e.left(["original", "original"] + ["unlearn"] * 4, []) == pytest.approx((80 + 8) / 2)
    # a running job counts what it has left of its stage's mean, never less than nothing
    assert e.left([], [("original", 15.0), ("unlearn", 9.0)]) == pytest.approx((25 + 0) / 2)
    # a stage with no finished job borrows the mean of every finished one: (30 + 50 + 2) / 3
    assert e.left(["oracle"], []) == pytest.approx(82 / 3 / 2)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (0.0, "0 s"),
        (0.2, "~1 s"),
        (7.4, "~7 s"),
        (44, "~40 s"),
        (89, "~90 s"),
        (600, "~10 min"),
        (9000, "~2.5 h"),
    ],
)
def test_durations_read_as_a_person_would_say_them(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


class Sleeper:
    """An executor whose jobs sleep a stage's time and return a bare record."""

    slots = 2
    SECONDS = {"original": 0.15, "oracle": 0.05, "expand": 0.02, "unlearn": 0.02}

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(self.slots)

    def submit(self, job: Job, out: str) -> Future[dict[str, Any]]:
        return self.pool.submit(lambda: time.sleep(self.SECONDS[job.stage]) or {"job_id": job.id})

    def close(self) -> None:
        self.pool.shutdown()


def test_the_log_says_how_long_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "EVERY", 0.03)
    jobs = plan(load_spec("smoke"), "cpu")
    ex = Sleeper()
    try:
        _schedule(
            jobs,
            ResultStore(tmp_path / "r.jsonl"),
            ex,
            str(tmp_path),
            BenchOutcome(tmp_path, jobs, 0, 0),
            None,
            len(jobs),
        )
    finally:
        ex.close()
    lines = capsys.readouterr().err.splitlines()
    left = r"(\?|0 s|~\d+(\.\d)? (s|min|h))"
    shape = re.compile(rf"^bench: \d+/{len(jobs)} jobs, running \d, failed 0, left {left}, \d+ s$")
    assert lines and all(shape.match(line) for line in lines), lines
    assert lines[0].endswith("left ?, 0 s")  # the originals train first: nothing finished yet
    assert any("left ~" in line for line in lines)  # once an original finished, a figure


def test_the_bar_shows_the_estimate_not_tqdms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = plan(load_spec("smoke"), "cpu")
    ex = Sleeper()
    try:
        _schedule(
            jobs,
            ResultStore(tmp_path / "r.jsonl"),
            ex,
            str(tmp_path),
            BenchOutcome(tmp_path, jobs, 0, 0),
            True,
            len(jobs),
        )
    finally:
        ex.close()
    bar = capsys.readouterr().err.split("\r")[-1]
    assert re.search(rf"{len(jobs)}/{len(jobs)} \[\d\d:\d\d, failed=0, left=0 s, running=0\]$", bar.strip()), bar
