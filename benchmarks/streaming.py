"""Peak memory of `corrective.fix` with data held in memory and streamed under a budget below its size.

    python benchmarks/streaming.py [--n 60000] [--budget-mb 64] [--method scrub] > benchmarks/results/streaming.md
    python benchmarks/streaming.py --data png --workers 0,1,2 [--n 20000] [--size 64] [--budget-mb 16]

With `--workers`, streamed fix runs once per worker count (after one held run), on PNG-encoded images
(`--data png`: `--size`-pixel images in one file, each decoded with PIL and resized to 32x32 in the
Dataset's `__getitem__` — real decoding work) or the raw file: wall and CPU seconds of fix (the fix process's
own, and its ended workers' from RUSAGE_CHILDREN), and memory: the fix process's peak growth (`ru_maxrss`, as
above) plus its workers' private memory (USS: the pages only a worker maps, what ending it frees; forked, a
worker shares the fix process's pages until it writes them, and those are counted once, in the fix process),
summed over the live workers and sampled every 0.1 s from this process while fix runs. The sum of the two
peaks bounds what fix held for the data (they need not coincide).

Writes N random 3x32x32 uint8 images (CIFAR's shape; 60,000 = 184 MB) to one raw file and reads them with a
torch Dataset that reads each image from the file (`os.pread`: the page cache, not the process, holds the
file), as a practitioner's dataset of image files would. Each mode runs in a fresh process: a small CNN, then
`corrective.fix(..., method, memory_budget=...)` with held-out data of 2,000 images in memory. The process's
peak resident memory (`ru_maxrss`) is read after a warm-up fix on 1,500 held-out images (imports, the
allocator's pools, autograd's buffers and one evaluation batch of 1,024 images with its activations — the
largest batch fix runs — then count in the baseline) and after the fix on the data; the
growth is what fix held for the data. Issue 19's target: streamed, the growth stays under the budget plus one batch.
The two modes must also give the same corrected weights (same seed, same batches).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHAPE = (3, 32, 32)
ITEM = int(np.prod(SHAPE))


class FileImages(torch.utils.data.Dataset[tuple[np.ndarray, int]]):
    """uint8 (H, W, C) images read one at a time from a raw file; labels kept beside them (`targets`)."""

    def __init__(self, path: Path, targets: np.ndarray) -> None:
        self.path, self.targets = path, targets.tolist()
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        raw = os.pread(self.fd, ITEM, i * ITEM)
        return np.frombuffer(raw, np.uint8).reshape(SHAPE).transpose(1, 2, 0), self.targets[i]


class PngImages(torch.utils.data.Dataset[tuple[np.ndarray, int]]):
    """PNG files concatenated in one file (`offsets` bound each), each decoded with PIL and resized to 32x32."""

    def __init__(self, path: Path, offsets: np.ndarray, targets: np.ndarray) -> None:
        self.offsets, self.targets = offsets.tolist(), targets.tolist()
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        from PIL import Image

        start, end = self.offsets[i], self.offsets[i + 1]
        image = Image.open(io.BytesIO(os.pread(self.fd, end - start, start))).convert("RGB")
        return np.asarray(image.resize(SHAPE[1:], Image.Resampling.BILINEAR)), self.targets[i]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(4),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.classify = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.body(x).flatten(1))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its ended children (DataLoader workers are joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def write_png(folder: Path, n: int, size: int, rng: np.random.Generator) -> None:
    """n smooth random RGB images of size x size pixels as PNG files in one file, and their offsets."""
    from PIL import Image

    offsets = [0]
    with open(folder / "images.png", "wb") as f:
        for _ in range(n):
            small = Image.fromarray(rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8))
            buf = io.BytesIO()
            small.resize((size, size), Image.Resampling.BILINEAR).save(buf, format="PNG")
            f.write(buf.getvalue())
            offsets.append(offsets[-1] + len(buf.getvalue()))
    np.save(folder / "offsets.npy", np.array(offsets))


def dataset(folder: Path, data: str) -> torch.utils.data.Dataset[tuple[np.ndarray, int]]:
    labels = np.load(folder / "labels.npy")
    if data == "png":
        return PngImages(folder / "images.png", np.load(folder / "offsets.npy"), labels)
    return FileImages(folder / "images.raw", labels)


def child(folder: Path, budget: int | None, workers: int, method: str, batch: int, data: str) -> None:
    import corrective
    from corrective.api.practitioner import Recipe

    torch.set_num_threads(1)
    train = dataset(folder, data)
    rng = np.random.default_rng(1)
    held = (rng.integers(0, 256, (2000, *SHAPE), dtype=np.uint8), rng.integers(0, 10, 2000))
    torch.manual_seed(0)
    net = Net().eval()
    warm = (held[0][:1500], held[1][:1500])  # imports, pools, autograd, a full 1024-image eval batch: baseline
    corrective.fix(
        copy.deepcopy(net),
        warm,
        np.arange(50),
        warm,
        method=method,
        recipe=Recipe(steps=5, batch_size=batch),
        grid=False,
    )
    before = peak_mb()
    time.sleep(0.3)  # the parent's memory sampler reads the baseline
    began = time.time()
    cpu = cpu_seconds()
    start = time.perf_counter()
    result = corrective.fix(
        net, train, np.arange(50), held, method=method, recipe=Recipe(steps=100, batch_size=batch, lr=0.01),
        memory_budget=budget, workers=workers, grid=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    own, workers_cpu = (after - earlier for after, earlier in zip(cpu_seconds(), cpu, strict=True))
    ended = time.time()
    torch.save(result.model.state_dict(), folder / f"weights-{budget}-{workers}.pt")
    print(json.dumps({"budget": budget, "workers": workers, "before_mb": before, "peak_mb": peak_mb(),
                      "seconds": seconds, "cpu": own, "workers_cpu": workers_cpu, "began": began, "ended": ended,
                      "streamed": result.record["streamed"]}))  # fmt: skip


def tree(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return out


def kib(pid: int, fields: tuple[str, ...]) -> int:
    """The sum of some lines of a process's /proc smaps_rollup (KiB); 0 for a process that has ended."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(fields))


# glibc raises its mmap threshold (up to 32 MiB) each time a mapped block is freed, so later blocks of that size
# come from the heap and stay in the process when freed: its peak then counts memory fix no longer holds
ALLOCATOR_ENV = {"default": {}, "static": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def run_child(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one mode, sampling its worker processes' memory every 0.1 s: its result with `workers_mb`, the largest
    sum over the live workers (while fix ran) of their private memory (USS: pages no other process maps, what
    ending them frees; the pages they share with the fix process after the fork are its own, counted there)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | env)
    samples = []
    while proc.poll() is None:
        workers = tree(proc.pid)[1:]
        samples.append((time.time(), sum(kib(p, ("Private_Clean:", "Private_Dirty:")) for p in workers) / 1024))
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    r: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    r["workers_mb"] = max((m for t, m in samples if r["began"] <= t <= r["ended"]), default=0.0)
    return r


def decode_us(folder: Path, data: str) -> float:
    """Microseconds to read one image with the Dataset here (the median of 5 rounds of 200)."""
    ds = dataset(folder, data)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(200):
            ds[i]
        rounds.append((time.perf_counter() - start) / 200 * 1e6)
    return float(np.median(rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--method", default="scrub")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each mode (the allocator's peaks vary)")
    ap.add_argument("--data", choices=("raw", "png"), default="raw", help="raw bytes, or PNG files decoded by PIL")
    ap.add_argument("--size", type=int, default=64, help="--data png: the files' image size (resized to 32)")
    ap.add_argument("--workers", help="comma list of worker counts: held, then streamed with each (e.g. 0,1,2)")
    ap.add_argument(
        "--allocator",
        choices=("default", "static"),
        default="default",
        help="static: glibc's mmap threshold fixed at its initial 128 KiB in fix's process (MALLOC_MMAP_THRESHOLD_), "
        "so that freed blocks go back to the system and the peak counts live memory",
    )
    ap.add_argument("--child", nargs=3, metavar=("FOLDER", "BUDGET", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        budget = None if args.child[1] == "none" else int(args.child[1])
        child(Path(args.child[0]), budget, int(args.child[2]), args.method, args.batch, args.data)
        return
    budget = args.budget_mb * 2**20
    counts = [int(w) for w in args.workers.split(",")] if args.workers else [0]
    modes = [("none", 0)] + [(str(budget), w) for w in counts]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        if args.data == "png":
            write_png(folder, args.n, args.size, rng)
        else:
            with open(folder / "images.raw", "wb") as f:
                for start in range(0, args.n, 5000):
                    f.write(rng.integers(0, 256, (min(5000, args.n - start), ITEM), dtype=np.uint8).tobytes())
        np.save(folder / "labels.npy", rng.integers(0, 10, args.n))
        per_image = decode_us(folder, args.data)
        file_mb = sum(f.stat().st_size for f in folder.glob("images.*")) / 2**20
        rows = []
        for _ in range(args.repeats):
            for mode, workers in modes:
                cmd = [sys.executable, __file__, "--child", tmp, mode, str(workers)]
                cmd += ["--method", args.method, "--batch", str(args.batch), "--data", args.data]
                rows.append(run_child(cmd, ALLOCATOR_ENV[args.allocator]))
        held_weights = torch.load(folder / "weights-None-0.pt")
        same = {  # the last run of each mode against the held one
            w: all(
                torch.equal(a, b)
                for a, b in zip(
                    held_weights.values(), torch.load(folder / f"weights-{budget}-{w}.pt").values(), strict=True
                )
            )
            for w in counts
        }
    data_mb = args.n * ITEM / 2**20
    batch_mb = args.batch * ITEM * 4 / 2**20  # one batch as float32 model inputs
    load = os.getloadavg()
    command = f"python benchmarks/streaming.py --n {args.n} --budget-mb {args.budget_mb} --method {args.method}"
    static = args.allocator == "static"
    command += f" --batch {args.batch}" + (" --allocator static" if static else "")
    if args.workers:
        command += f" --data {args.data}" + (f" --size {args.size}" if args.data == "png" else "")
        command += f" --workers {args.workers} --repeats {args.repeats}"
    source = (
        f"{args.n:,} smooth random {args.size}x{args.size} RGB images as PNG files in one file ({file_mb:.0f} MiB), "
        "each decoded with PIL and resized to 32x32 by the torch Dataset"
        if args.data == "png"
        else f"{args.n:,} random 3x32x32 uint8 images, a torch Dataset reading each from one raw file"
    )
    print("# Streaming: `corrective.fix`, data held vs streamed\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) at the end.\n")  # fmt: skip
    print(f"Command: `{command}`. Data: {source}: {data_mb:.0f} MiB as 3x32x32 images, {per_image:.0f} µs to read "
          f"one here; held-out 2,000 images in memory; method `{args.method}` without a grid, 100 steps of "
          f"{args.batch}; fix's process on one torch thread"
          + (", glibc's mmap threshold fixed at 128 KiB (`MALLOC_MMAP_THRESHOLD_=131072`)" if static else "")
          + ".\n")  # fmt: skip
    if args.workers:
        print("| mode | workers | fix seconds | CPU s, fix process | CPU s, workers | fix process: peak before fix "
              "(MiB) | peak growth (MiB) | workers' private memory, peak (MiB) | growth + workers (MiB) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            name = "held in memory" if r["budget"] is None else f"streamed (budget {args.budget_mb} MiB)"
            growth = r["peak_mb"] - r["before_mb"]
            print(f"| {name} | {r['workers']} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['workers_cpu']:.1f} | "
                  f"{r['before_mb']:.0f} | {growth:.0f} | {r['workers_mb']:.0f} | "
                  f"{growth + r['workers_mb']:.0f} |")  # fmt: skip
        for w in counts:
            times = [r["seconds"] for r in rows if r["budget"] is not None and r["workers"] == w]
            print(f"\nStreamed, {w} workers: fix {min(times):.1f}–{max(times):.1f} s", end="")
        held_times = [r["seconds"] for r in rows if r["budget"] is None]
        print(f"\n\nHeld: {min(held_times):.1f}–{max(held_times):.1f} s. Same corrected weights as held: "
              + ", ".join(f"{w} workers **{'yes' if same[w] else 'no'}**" for w in counts) + ".")  # fmt: skip
        return
    print("| mode | streamed | peak before fix (MiB) | peak after (MiB) | growth (MiB) | fix seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        growth = r["peak_mb"] - r["before_mb"]
        name = "held in memory" if r["budget"] is None else f"streamed (budget {args.budget_mb} MiB)"
        row = (name, r["streamed"], f"{r['before_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{growth:.0f}")
        print("| " + " | ".join(map(str, row)) + f" | {r['seconds']:.1f} |")
    growth = max(r["peak_mb"] - r["before_mb"] for r in rows[1::2])
    bound = args.budget_mb + batch_mb
    verdict = "met" if growth <= bound and all(r["streamed"] for r in rows[1::2]) else "missed"
    print(f"\nTarget (streamed growth <= budget + one batch = {args.budget_mb} + {batch_mb:.1f} MiB, every run): "
          f"**{verdict}** (largest {growth:.0f} MiB). Same corrected weights in both modes: "
          f"**{'yes' if same[0] else 'no'}**.")  # fmt: skip


if __name__ == "__main__":
    main()
