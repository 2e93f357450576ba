"""The CPU recipe for 28x28 data (cnn28, training preset cpu28) on Fashion-MNIST: quality and time.

    python benchmarks/fashion_recipe.py [--seeds 0 1 2] [--threads 2] [--out benchmarks/results/fashion_recipe.json]

Trains a clean model and a 1 %-poisoned one (the default 3x3 trigger) per seed through `api.train_run`, exactly
as `corrective train --dataset fashion_mnist` does, and prints clean test accuracy, the poisoned model's attack
success and target-class accuracy, and the seconds of each training (wall, and the process's CPU time) with the
load before and after. Targets (issue 17): clean accuracy >= 92 %, <= 60 s a training on 2 quiet cores, attack
success >= 90 % at 1 % poison. Needs the Fashion-MNIST files (Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__, api
from corrective.data import get_info
from corrective.training import get_preset

TARGET_ACC, TARGET_SECONDS, TARGET_ASR = 0.92, 60.0, 0.90


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one(kind: str, seed: int) -> dict[str, float]:
    cpu = time.process_time()
    run = api.train_run("fashion_mnist", manipulation=kind, size=0.01 if kind == "poison" else None, seed=seed)
    m = run.metrics
    row = {"seed": seed, "kind": kind, "train_seconds": run.train_seconds, "cpu_seconds": time.process_time() - cpu}
    row |= {k: float(m[k]) for k in ("clean_acc", "attack_success", "target_acc") if k in m}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2: both cores of the target machine)")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = get_info("fashion_mnist")
    before = load()
    rows = [one(kind, seed) for seed in args.seeds for kind in ("none", "poison")]
    after = load()
    clean = [r for r in rows if r["kind"] == "none"]
    poison = [r for r in rows if r["kind"] == "poison"]

    def stat(rs: list[dict[str, float]], key: str) -> str:
        v = [r[key] for r in rs]
        return f"{statistics.mean(v):.4f} (min {min(v):.4f}, max {max(v):.4f})"

    print(f"# Fashion-MNIST CPU recipe — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"corrective {__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, ")
    print(f"{os.cpu_count()} cores, {args.threads} torch threads; load (1/5/15 min) before {before}, after {after}")
    print(f"model {info.model}, preset {info.preset}: {get_preset(info.preset).to_dict()}\n")
    print("| seed | kind | clean_acc | attack_success | target_acc | train s (wall) | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        asr = f"{r['attack_success']:.4f}" if "attack_success" in r else "-"
        tgt = f"{r['target_acc']:.4f}" if "target_acc" in r else "-"
        print(
            f"| {r['seed']} | {r['kind']} | {r['clean_acc']:.4f} | {asr} | {tgt} | "
            f"{r['train_seconds']:.1f} | {r['cpu_seconds']:.1f} |"
        )
    print(f"\nclean accuracy, clean models: {stat(clean, 'clean_acc')} (target >= {TARGET_ACC})")
    secs = stat(rows, "train_seconds")
    print(f"seconds a training (wall), all: {secs} (target <= {TARGET_SECONDS} on 2 quiet cores)")
    print(f"attack success at 1 % poison: {stat(poison, 'attack_success')} (target >= {TARGET_ASR})")
    print(f"target-class accuracy, poisoned: {stat(poison, 'target_acc')}")
    if args.out:
        args.out.write_text(json.dumps({"load_before": before, "load_after": after, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
