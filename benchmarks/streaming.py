"""Peak memory of `corrective.fix` with data held in memory and streamed under a budget below its size.

    python benchmarks/streaming.py [--n 60000] [--budget-mb 64] [--method scrub] > benchmarks/results/streaming.md

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


def child(folder: Path, budget: int | None, method: str, batch: int) -> None:
    import corrective
    from corrective.api.practitioner import Recipe

    torch.set_num_threads(1)
    labels = np.load(folder / "labels.npy")
    train = FileImages(folder / "images.raw", labels)
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
    start = time.perf_counter()
    result = corrective.fix(
        net, train, np.arange(50), held, method=method, recipe=Recipe(steps=100, batch_size=batch, lr=0.01),
        memory_budget=budget, grid=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    torch.save(result.model.state_dict(), folder / f"weights-{budget}.pt")
    print(json.dumps({"budget": budget, "before_mb": before, "peak_mb": peak_mb(), "seconds": seconds,
                      "streamed": result.record["streamed"]}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--method", default="scrub")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each mode (the allocator's peaks vary)")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "BUDGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        budget = None if args.child[1] == "none" else int(args.child[1])
        child(Path(args.child[0]), budget, args.method, args.batch)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        with open(folder / "images.raw", "wb") as f:
            for start in range(0, args.n, 5000):
                f.write(rng.integers(0, 256, (min(5000, args.n - start), ITEM), dtype=np.uint8).tobytes())
        np.save(folder / "labels.npy", rng.integers(0, 10, args.n))
        budget = args.budget_mb * 2**20
        rows = []
        for mode in ("none", str(budget)) * args.repeats:
            cmd = [sys.executable, __file__, "--child", tmp, mode, "--method", args.method, "--batch", str(args.batch)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        same = all(  # the last run of each mode
            torch.equal(a, b)
            for a, b in zip(
                torch.load(folder / "weights-None.pt").values(),
                torch.load(folder / f"weights-{budget}.pt").values(),
                strict=True,
            )
        )
    data_mb = args.n * ITEM / 2**20
    batch_mb = args.batch * ITEM * 4 / 2**20  # one batch as float32 model inputs
    load = os.getloadavg()
    print("# Streaming: peak memory of `corrective.fix`, data held vs streamed\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) at the end.\n")  # fmt: skip
    print(f"Command: `python benchmarks/streaming.py --n {args.n} --budget-mb {args.budget_mb} --method "
          f"{args.method} --batch {args.batch}`. Data: {args.n:,} random 3x32x32 uint8 images, {data_mb:.0f} MiB, "
          "a torch Dataset reading each from one raw file; held-out 2,000 images in memory; method "
          f"`{args.method}` without a grid, 100 steps of {args.batch}.\n")  # fmt: skip
    print("| mode | streamed | peak before fix (MiB) | peak after (MiB) | growth (MiB) | fix seconds |")
    print("|---|---|---:|---:|---:|---:|")
    names = ("held in memory", f"streamed (budget {args.budget_mb} MiB)") * args.repeats
    for r, name in zip(rows, names, strict=True):
        growth = r["peak_mb"] - r["before_mb"]
        row = (name, r["streamed"], f"{r['before_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{growth:.0f}")
        print("| " + " | ".join(map(str, row)) + f" | {r['seconds']:.1f} |")
    growth = max(r["peak_mb"] - r["before_mb"] for r in rows[1::2])
    bound = args.budget_mb + batch_mb
    verdict = "met" if growth <= bound and all(r["streamed"] for r in rows[1::2]) else "missed"
    print(f"\nTarget (streamed growth <= budget + one batch = {args.budget_mb} + {batch_mb:.1f} MiB, every run): "
          f"**{verdict}** (largest {growth:.0f} MiB). Same corrected weights in both modes: "
          f"**{'yes' if same else 'no'}**.")  # fmt: skip


if __name__ == "__main__":
    main()
