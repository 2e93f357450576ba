"""Running a bench: records, resume, model cache, 1 vs 2 workers, a real kill -9 then resume, Ray, the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corrective.bench import load_spec, read_records, run_bench
from corrective.cli import (
    app,
    commands,  # noqa: F401  (registers the sub-commands)
)
from corrective.errors import UserError
from corrective.names import RESULTS

SRC = str(Path(__file__).resolve().parents[1] / "src")
TIMING = ("unlearn_seconds", "job_seconds", "job_cpu_seconds", "train_seconds")


def comparable(records):
    """Records keyed by job id, without wall-clock timings (everything else is seeded and deterministic)."""
    out = {}
    for r in records:
        r = {k: v for k, v in r.items() if k not in TIMING}
        r["candidates"] = [{k: v for k, v in c.items() if k not in TIMING} for c in r.get("candidates", [])]
        out[r["job_id"]] = r
    return out


def cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "corrective", *args], env=env, capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke preset run once with one worker: the reference every other run must reproduce."""
    out = tmp_path_factory.mktemp("bench") / "one"
    result = run_bench(load_spec("smoke"), out, progress=False)
    assert not result.failed and result.ran == len(result.jobs)
    return out, result


def test_records_and_files(smoke):
    out, result = smoke
    records = read_records(out / RESULTS)
    assert [r["job_id"] for r in records] and len(records) == len(result.jobs)
    assert {r["job_id"] for r in records} == {j.id for j in result.jobs}
    unlearn = [r for r in records if r["stage"] == "unlearn"]
    for r in unlearn:
        assert r["selected"] is True and r["method"] in ("none", "ssd") and r["alpha"] in (0.5, 1.0)
        assert {"acc_corr", "acc_retain", "healed", "utility", "score", "forget_changed", "val_accuracy"} <= set(r)
        assert r["unlearn_seconds"] >= 0 and r["versions"]["corrective"]
        # SSD's records carry its importance-ratio histogram once, at top level (not in the candidates)
        assert ("diagnostics" in r) == (r["method"] == "ssd")
        assert not any("diagnostics" in c for c in r["candidates"])
    assert (out / "summary.csv").read_text().count("\n") == 1 + len(result.summary)
    assert len(result.summary) == len(unlearn) + sum(j.stage == "oracle" for j in result.jobs)
    for job in result.jobs:
        assert (out / "logs" / f"{job.id}.log").read_text().strip().endswith(" s")
    assert sorted(p.name for p in (out / "models").iterdir() if not p.name.startswith(".")) == sorted(
        j.id for j in result.jobs if j.stage == "original"
    )


def test_resume_runs_nothing(smoke):
    out, first = smoke
    before = (out / RESULTS).read_bytes()
    again = run_bench(load_spec("smoke"), out, progress=False)  # its time: benchmarks/resume.py
    assert again.ran == 0 and again.skipped == len(first.jobs)
    assert (out / RESULTS).read_bytes() == before


def test_two_workers_same_records_then_cached_models_reused(smoke, tmp_path):
    out, first = smoke
    two = tmp_path / "two"
    run_bench(load_spec("smoke", sets={"workers": 2}), two, progress=False)
    assert comparable(read_records(two / RESULTS)) == comparable(read_records(out / RESULTS))
    # Records of the originals lost, models kept: re-running must take them from the cache, not retrain.
    records = read_records(two / RESULTS)
    (two / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in records if r["stage"] != "original"))
    stamps = {
        p.name: (p / "model.safetensors").stat().st_mtime_ns
        for p in (two / "models").iterdir()
        if not p.name.startswith(".")
    }
    again = run_bench(load_spec("smoke"), two, progress=False)
    assert again.ran == len(stamps) == 3
    trained = {r["job_id"]: r["train_seconds"] for r in records if r["stage"] == "original"}
    assert {r["job_id"]: r["train_seconds"] for r in read_records(two / RESULTS) if r["stage"] == "original"} == trained
    assert stamps == {p: (two / "models" / p / "model.safetensors").stat().st_mtime_ns for p in stamps}
    assert comparable(read_records(two / RESULTS)) == comparable(read_records(out / RESULTS))


def test_kill_9_then_resume(smoke, tmp_path):
    out, result = smoke
    target = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "corrective", "bench", "--preset", "smoke", "--out", str(target), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while len(read_records(target / RESULTS)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_records(target / RESULTS)
    assert 2 <= len(partial) < len(result.jobs), "the kill should land mid-run"
    time.sleep(1.5)  # orphaned workers notice their parent died and exit
    done = cli("bench", "--preset", "smoke", "--out", str(target), "-q", timeout=120)
    assert done.returncode == 0, done.stderr
    lines = (target / RESULTS).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(result.jobs)  # no torn line, no duplicate
    assert comparable(read_records(target / RESULTS)) == comparable(read_records(out / RESULTS))
    # the bench ends with its report; --no-report leaves none (here on the finished folder: nothing runs)
    assert f"report: {target / 'report' / 'report.html'}" in done.stdout
    assert {"report.html", "report.md", "figures"} <= {p.name for p in (target / "report").iterdir()}
    # resumed again with the same records, the report is kept; a stale digest draws it again
    drawn = (target / "report" / "report.html").stat().st_mtime_ns
    kept = cli("bench", "--preset", "smoke", "--out", str(target), "-q", timeout=120)
    assert "(up to date: the records have not changed)" in kept.stdout
    assert (target / "report" / "report.html").stat().st_mtime_ns == drawn
    (target / "report" / ".records.sha256").write_text("stale")
    redrawn = cli("bench", "--preset", "smoke", "--out", str(target), "-q", timeout=120)
    assert redrawn.returncode == 0, redrawn.stderr
    assert "up to date" not in redrawn.stdout and (target / "report" / ".records.sha256").read_text() != "stale"
    quiet = tmp_path / "quiet"
    shutil.copytree(target, quiet, ignore=shutil.ignore_patterns("report"))
    again = cli("bench", "--preset", "smoke", "--out", str(quiet), "-q", "--no-report", timeout=120)
    assert again.returncode == 0 and "report:" not in again.stdout
    assert not (quiet / "report").exists()


def test_a_report_failure_costs_neither_results_nor_exit_status(smoke, tmp_path, monkeypatch):
    out, _ = smoke
    done = tmp_path / "done"
    shutil.copytree(out, done, ignore=shutil.ignore_patterns("report"))

    def broken(*args, **kwargs):
        raise UserError("no records to report")

    monkeypatch.setattr("corrective.report.write_report", broken)
    res = CliRunner().invoke(app, ["bench", "--preset", "smoke", "--out", str(done), "-q"])
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "report not written: no records to report\n" in res.output and "report:" not in res.output
    assert (done / RESULTS).read_bytes() == (out / RESULTS).read_bytes()


def test_a_failed_job_blocks_only_its_dependents(tmp_path):
    # a size larger than the data fails in the job (a bad target or pair fails the plan: tests/test_bench_axes.py)
    sets = {"manipulations": {"poison": [5000], "interclass": [0.05]}, "alphas": [1.0]}
    result = run_bench(load_spec("smoke", sets=sets), tmp_path / "f", progress=False)
    done = {r["manipulation"] for r in read_records(tmp_path / "f" / RESULTS)}
    assert done == {"interclass"} and result.ran == len(result.jobs) - len(result.failed)
    assert "asks for 5000 samples" in result.failed[0] and "logs" in result.failed[0]
    assert all("skipped, its original model failed" in line for line in result.failed[1:])
    assert len(result.failed) == 1 + sum(
        j.stage != "original" and j.params["manipulation"] == "poison" for j in result.jobs
    )
    # through the CLI (the finished jobs are skipped, the failed ones fail again): the report still shows the rest
    config = tmp_path / "failing.toml"
    config.write_text(
        'name = "failing"\ndatasets = ["digits"]\nseeds = [0]\nalphas = [1.0]\noracle = true\n'
        'steps = 40\ndevice = "cpu"\nworkers = 1\n[manipulations]\ninterclass = [0.05]\n'
        "[manipulations.poison]\nsizes = [5000]\n"
        "[methods.none]\ngrid = false\n[methods.ssd]\ngrid = false\n"
    )
    res = CliRunner().invoke(app, ["bench", "--config", str(config), "--out", str(tmp_path / "f"), "-q"])
    assert res.exit_code == 1 and f"{result.skipped + result.ran} already done" in res.output, res.output
    assert (tmp_path / "f" / "report" / "report.html").exists() and "report not written" not in res.output


def test_ray_executor(smoke, tmp_path):
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install 'corrective-unlearning[ray]'): the Ray executor is untested")
    out, _ = smoke
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_bench(load_spec("smoke", sets={"executor": "ray", "workers": 2}), tmp_path / "ray", progress=False)
    finally:
        ray.shutdown()
    assert comparable(read_records(tmp_path / "ray" / RESULTS)) == comparable(read_records(out / RESULTS))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "nope"], "unknown bench preset 'nope'"),
        (["--preset", "smoke", "--set", "methods.magic.grid=true"], "bench spec: methods: unknown method 'magic'"),
        (["--preset", "smoke", "--set", "alphas=2"], "bench spec: alphas[0]: must be in (0, 1]"),
        (["--preset", "smoke", "--set", "seed=1"], "bench spec: seed: unknown field"),
        (["--preset", "smoke", "--config", "x.toml"], "give either --preset or --config"),
    ],
)
def test_cli_errors(args, message, tmp_path):
    res = CliRunner().invoke(app, ["bench", *args, "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, UserError) and message in str(res.exception), res.output


def test_cli_error_is_one_line_exit_2(tmp_path):
    res = cli("bench", "--preset", "smoke", "--set", "steps=x", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr == "corrective: error: bench spec: steps: must be an integer, got 'x'\n"


def test_cli_dry_run_and_list(tmp_path):
    res = CliRunner().invoke(app, ["bench", "--preset", "smoke", "--dry-run", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and "jobs (3 original" in res.output and "0 already done" in res.output
    assert not (tmp_path / "o").exists()  # no report for a dry run
    # the default preset plans expansions (for `auto`): every stage is counted, the counts add up to the total
    res = CliRunner().invoke(app, ["bench", "--dry-run", "--out", str(tmp_path / "d")])
    total, counts = re.match(r"(\d+) jobs \((.*)\),", res.output).groups()
    assert "expand" in counts and sum(int(c.split()[0]) for c in counts.split(", ")) == int(total)
    assert "smoke" in CliRunner().invoke(app, ["bench", "--list"]).output.split()


def test_worker_threads_share_the_host_on_a_gpu_and_stay_one_on_the_cpu() -> None:
    from corrective.bench.executors import worker_threads

    assert [worker_threads("cpu", w, 16) for w in (1, 2, 16)] == [1, 1, 1]  # CPU workers: one thread each
    assert worker_threads("cuda", 4, 16) == 4 and worker_threads("cuda", 1, 16) == 16  # the cores split among them
    assert worker_threads("cuda", 32, 16) == 1 and worker_threads("mps", 3, 2) == 1  # never below one
