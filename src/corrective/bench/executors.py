"""Where jobs run, behind one small interface: `submit(job, out) -> Future[record]`, `slots`, `close()`.

`local`: a process pool (spawn context; one torch thread per worker on CPU, workers = cores by
default; one worker per GPU on CUDA). `ray`: the same jobs as Ray tasks on a local or existing
cluster (`pip install 'corrective-unlearning[ray]'`; the output folder must be shared by the nodes).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from corrective.bench.jobs import execute
from corrective.bench.plan import Job
from corrective.errors import UserError


class Executor(Protocol):
    slots: int  # how many jobs may run at once

    def submit(self, job: Job, out: str) -> Future[dict[str, Any]]: ...

    def close(self) -> None: ...


def default_workers(device_type: str) -> int:
    if device_type == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) stops too, instead of finishing jobs nobody will record."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def worker_threads(device_type: str, workers: int, cores: int) -> int:
    """CPU threads for each worker: one on the CPU (workers are one per core there; two one-thread workers beat one
    two-thread worker); on a GPU the host's cores shared among the workers, not every core in every worker (torch's
    default, under which four workers on one H200 with 16 cores trained WaNet originals 8x slower than the other
    attacks' and expanded 8-10x slower than one CPU thread; the cause was not confirmed there and this split was
    not measured on a GPU: benchmarks/results/cuda_check.md)."""
    return 1 if device_type == "cpu" else max(1, cores // max(1, workers))


def _init_worker(parent: int, device_type: str, gpus: Any, threads: int) -> None:
    import torch

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    if gpus is not None:
        torch.cuda.set_device(gpus.get())  # one GPU per worker


class LocalExecutor:
    def __init__(self, workers: int, device_type: str) -> None:
        self.slots = workers
        ctx = mp.get_context("spawn")
        gpus = None
        if device_type == "cuda":
            gpus = ctx.Queue()
            for i in range(workers):
                gpus.put(i % default_workers("cuda"))
        threads = worker_threads(device_type, workers, default_workers("cpu"))
        self.pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(), device_type, gpus, threads)
        )

    def submit(self, job: Job, out: str) -> Future[dict[str, Any]]:
        return self.pool.submit(execute, job, out)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    def __init__(self, workers: int, device_type: str, address: str = "") -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'corrective-unlearning[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        self.slots = workers
        self.task = ray.remote(num_cpus=1, num_gpus=1 if device_type == "cuda" else 0, max_retries=0)(execute)

    def submit(self, job: Job, out: str) -> Future[dict[str, Any]]:
        return self.task.remote(job, out).future()

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, workers: int, device_type: str, address: str = "") -> Executor:
    workers = workers or default_workers(device_type)
    if kind == "ray":
        return RayExecutor(workers, device_type, address)
    if kind == "local":
        return LocalExecutor(workers, device_type)
    raise UserError(f"unknown executor {kind!r}; use local or ray")
