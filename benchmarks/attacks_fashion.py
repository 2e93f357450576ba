"""Does each backdoor install itself on Fashion-MNIST with the CPU recipe? One original model per attack setting.

    python benchmarks/attacks_fashion.py [--size 0.05] [--seed 0] SPEC [SPEC ...] > rows.jsonl

A SPEC is `KIND` or `KIND:key=value,...` (the manipulation's settings), e.g. `blended:`, `wanet:strength=1.0`,
`sig:delta=0.2,test_delta=0.3`. Each trains `cnn28` with preset `cpu28` (`corrective train --dataset
fashion_mnist --manipulation KIND`) on one thread and prints one JSON line: attack success on the triggered
test images of the other classes, clean test accuracy, the target class's accuracy, seconds. Issue 20's target:
attack success >= 90 % at 5 % poison. Needs the Fashion-MNIST files.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from corrective import api


def parse(spec: str) -> tuple[str, dict[str, float | int]]:
    kind, _, rest = spec.partition(":")
    settings: dict[str, float | int] = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        settings[key] = float(value) if "." in value else int(value)
    return kind, settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--size", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for spec in args.specs:
        kind, settings = parse(spec)
        start, load = time.perf_counter(), os.getloadavg()[0]
        run = api.train_run(
            "fashion_mnist",
            manipulation=kind,
            size=args.size,
            seed=args.seed,
            progress=False,
            manipulation_settings=settings,
        )
        m = run.metrics
        row = {
            "kind": kind,
            "size": args.size,
            "seed": args.seed,
            "settings": settings,
            "asr": round(m["attack_success"], 4),
            "clean": round(m["clean_acc"], 4),
            "target": round(m["target_acc"], 4),
            "s": round(time.perf_counter() - start, 1),
            "load": round(load, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
