"""The search for the CPU recipe on Fashion-MNIST: train cnn28 under recipe variants, one line each.

    python benchmarks/fashion_recipe_sweep.py [--threads 1] [--seed 0] SPEC [SPEC ...]

A SPEC is comma-separated TrainConfig fields plus four knobs of this script: `width` (cnn28's width), `c1` (the
first block's channels, the others as `width` gives them; 0: as `width` gives it), `crop` (random-crop padding;
the dataset's otherwise) and `ls` (label smoothing of the loss), e.g.
`steps=1200,batch_size=256,lr=0.1,precision=bf16,warmup=0.05,t_mult=1.0,crop=2`. Each line prints test and
validation accuracy, wall seconds and the process's CPU seconds (with one thread, CPU seconds are less
sensitive to the machine's load than wall seconds). Needs the Fashion-MNIST files.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import torch
import torch.nn.functional as F

from corrective.data import load_dataset
from corrective.data.batches import Batch, Pipeline
from corrective.metrics import accuracy
from corrective.models import create_model
from corrective.models.cnn import CNN28
from corrective.training import TrainConfig, train

KNOBS = {"width": 1.0, "c1": 0, "crop": -1, "ls": 0.0}


def parse(spec: str) -> tuple[TrainConfig, dict[str, float]]:
    fields: dict[str, Any] = {}
    knobs = dict(KNOBS)
    defaults = TrainConfig()
    for item in spec.split(","):
        key, value = item.split("=")
        if key in knobs:
            knobs[key] = float(value)
        else:
            kind = type(getattr(defaults, key))
            fields[key] = value in ("1", "true", "True") if kind is bool else kind(value)
    return TrainConfig(**fields), knobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("fashion_mnist", seed=args.seed)
    for spec in args.specs:
        cfg, knobs = parse(spec)
        cfg = dataclasses.replace(cfg, seed=args.seed)
        pipe = Pipeline.of(ds)
        if knobs["crop"] >= 0:
            pipe = dataclasses.replace(pipe, crop_pad=int(knobs["crop"]))
        ls = knobs["ls"]

        def loss(model: torch.nn.Module, b: Batch, ls: float = ls) -> torch.Tensor:
            return F.cross_entropy(model(b.x), b.y, label_smoothing=ls)

        torch.manual_seed(args.seed)
        channels = [max(1, round(c * knobs["width"])) for c in CNN28.widths]
        channels[0] = int(knobs["c1"]) or channels[0]
        model = create_model("cnn28", ds.num_classes, ds.in_channels, channels=channels)
        wall, cpu = time.perf_counter(), time.process_time()
        train(model, ds.train, pipe, cfg, loss, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        test, val = accuracy(model, ds.test, pipe), accuracy(model, ds.val, pipe)
        print(f"{spec}: test {test:.4f} val {val:.4f} wall {wall:.1f}s cpu {cpu:.1f}s", flush=True)


if __name__ == "__main__":
    main()
