"""Run a spec: plan it, skip finished jobs, run the rest in stage order, record, summarize.

The output folder holds every record ever finished there (keyed by job id), so re-running a
command resumes it and a different spec in the same folder just adds its own jobs;
`summary.csv` and the final table cover the current spec's jobs only.
"""

from __future__ import annotations

import fcntl
import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from corrective.bench.eta import Estimate, duration
from corrective.bench.executors import Executor, make_executor
from corrective.bench.plan import Job, plan
from corrective.bench.spec import BenchSpec
from corrective.bench.store import ResultStore, summarize, write_summary
from corrective.errors import UserError
from corrective.models import resolve_device
from corrective.names import RESULTS, SPEC, STAGES, SUMMARY
from corrective.progress import Progress

LOCK = ".lock"
BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


@dataclass
class BenchOutcome:
    out: Path
    jobs: list[Job]
    skipped: int  # finished before this run
    ran: int
    failed: list[str] = field(default_factory=list)  # one line per failed or blocked job
    records: list[dict[str, Any]] = field(default_factory=list)  # the spec's records, in plan order
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def lock(out: Path) -> TextIO:
    """An exclusive lock on the folder (released by the OS even on kill -9): one writer at a time."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "w")  # noqa: SIM115  (held open for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"another `corrective bench` is writing to {out}; wait for it or use another --out") from None
    return handle


def run_bench(
    spec: BenchSpec,
    out: str | Path,
    *,
    executor: Executor | None = None,
    progress: bool | None = None,
) -> BenchOutcome:
    """Run every job of `spec` not yet recorded in `out`; returns what happened."""
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another path")
    device_type = resolve_device(spec.device).type
    jobs = plan(spec, device_type)
    handle = lock(out)
    try:
        store = ResultStore(out / RESULTS)
        (out / SPEC).write_text(json.dumps(asdict(spec), indent=2, default=list) + "\n")
        todo = [j for j in jobs if j.id not in store.done()]
        outcome = BenchOutcome(out, jobs, len(jobs) - len(todo), 0)
        if todo:
            own = executor is None
            ex = executor or make_executor(spec.executor, spec.workers, device_type, spec.address)
            try:
                _schedule(todo, store, ex, str(out), outcome, progress, total=len(jobs))
            finally:
                if own:
                    ex.close()
        ids = {j.id for j in jobs}
        outcome.records = [store.records[j.id] for j in jobs if j.id in store.records]
        outcome.summary = summarize(r for r in outcome.records if r["job_id"] in ids)
        write_summary(outcome.summary, out / SUMMARY)
    finally:
        handle.close()
    outcome.seconds = time.perf_counter() - start
    return outcome


def _schedule(
    todo: list[Job],
    store: ResultStore,
    ex: Executor,
    out: str,
    outcome: BenchOutcome,
    progress: bool | None,
    total: int,
) -> None:
    """Keep up to `ex.slots` ready jobs running, earliest stage first; record each as it finishes. The
    progress (a bar, or a line every few seconds into a log) estimates the time left from the finished jobs'
    durations per stage (`eta.Estimate`)."""
    pending = sorted(todo, key=lambda j: STAGES.index(j.stage))  # stable: plan order within a stage
    running: dict[Future[dict[str, Any]], Job] = {}
    started: dict[Future[dict[str, Any]], float] = {}
    failed: set[str] = set()
    estimate = Estimate(ex.slots)
    # the bar shows our estimate (postfix `left`), not tqdm's, which assumes every job takes as long as the average
    bar = Progress(total, "bench", progress, unit="job", initial=outcome.skipped, dynamic_ncols=True, bar_format=BAR)

    def status() -> None:
        now = time.monotonic()
        left = estimate.left([j.stage for j in pending], [(j.stage, now - started[f]) for f, j in running.items()])
        bar.set_postfix(running=len(running), failed=len(failed), left=duration(left))

    try:
        while pending or running:
            done = store.done()
            for job in [j for j in pending if any(d in failed for d in j.deps)]:
                pending.remove(job)
                failed.add(job.id)
                outcome.failed.append(f"{job.label}: skipped, its original model failed")
                bar.update()
            ready = [j for j in pending if all(d in done for d in j.deps)]
            for job in ready[: max(0, ex.slots - len(running))]:
                pending.remove(job)
                fut = ex.submit(job, out)
                running[fut], started[fut] = job, time.monotonic()
            status()
            if not running:
                if pending:
                    raise RuntimeError("bench scheduler: jobs wait on dependencies that will never finish")
                break
            finished, _ = wait(running, timeout=bar.every if bar.lines else None, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                seconds = time.monotonic() - started.pop(fut)
                try:
                    store.append(fut.result())
                    outcome.ran += 1
                    estimate.finished(job.stage, seconds)
                except Exception as e:  # a job's error, a dead worker: recorded, the rest goes on
                    failed.add(job.id)
                    outcome.failed.append(str(e))
                    bar.write(f"failed: {e}")
                status()
                bar.update()
            status()
            bar.tick()
    finally:
        bar.close()
