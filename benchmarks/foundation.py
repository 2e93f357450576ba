"""Figures of the foundation issue: digits model quality, training time, data-path throughput.

    python benchmarks/foundation.py [--seeds 3] [--out benchmarks/results/foundation.json]

Prints a markdown report; `--out` also writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from corrective import api
from corrective.data import Dataset, Split, load_dataset
from corrective.data.batches import Pipeline, epochs
from corrective.metrics import evaluate
from corrective.models import create_model
from corrective.training import TrainConfig, fit, get_preset, train, use_bf16


def quality(seeds: list[int]) -> dict[str, list[dict]]:
    """Clean, poisoned and interclass digits models at the default preset, plus the oracle for interclass."""
    out: dict[str, list[dict]] = {"none": [], "poison": [], "interclass": [], "interclass_oracle": []}
    for seed in seeds:
        for kind in ("none", "poison", "interclass"):
            run = api.train_run("digits", manipulation=kind, seed=seed, progress=False)
            out[kind].append({**run.metrics, "train_seconds": run.train_seconds})
            if kind == "interclass":  # the oracle: algorithm A on S_tr \ S_m
                model = run.spec.build(seed, torch.device("cpu"))
                train(
                    model,
                    run.train_split.without(run.manipulation.ids),
                    Pipeline.of(run.dataset),
                    run.config,
                    progress=False,
                )
                out["interclass_oracle"].append(evaluate(model, run.dataset, run.manipulation))
    return out


def throughput(model: nn.Module, split: Split, pipe: Pipeline, cfg: TrainConfig, steps: int) -> tuple[float, float]:
    """Images/s of the training loop vs a bare forward+backward+step on pre-made tensors, same model and precision."""
    pos = torch.arange(cfg.batch_size) % len(split)
    x, y = pipe(split, pos), split.y[pos]
    bf16 = use_bf16(cfg.precision, torch.device("cpu"), x.shape[-1])
    if bf16:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)

    def bare() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def loop() -> None:
        gen = torch.Generator().manual_seed(0)
        fit(
            model,
            epochs(split, pipe, cfg.batch_size, gen),
            TrainConfig(**{**cfg.to_dict(), "steps": steps}),
            progress=False,
        )

    bare()  # warm-up
    rates = {"bare": [], "loop": []}
    for _ in range(3):  # interleaved, so both see the same machine load
        start = time.perf_counter()
        for _ in range(steps):
            bare()
        rates["bare"].append(steps * cfg.batch_size / (time.perf_counter() - start))
        start = time.perf_counter()
        loop()
        rates["loop"].append(steps * cfg.batch_size / (time.perf_counter() - start))
    return statistics.median(rates["loop"]), statistics.median(rates["bare"])


def cifar_shaped(n: int = 2048) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    split = Split(x, y, torch.arange(n))
    return Dataset("cifar-shaped", 10, split, split, split, (0.5,) * 3, (0.25,) * 3, True, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    q = quality(list(range(args.seeds)))

    def mean(kind: str, key: str) -> float:
        return statistics.mean(r[key] for r in q[kind])

    seconds = [r["train_seconds"] for k in ("none", "poison", "interclass") for r in q[k]]
    digits = load_dataset("digits")
    tp_digits = throughput(
        create_model("cnn_small", 10, 1), digits.train, Pipeline.of(digits), get_preset("digits"), steps=100
    )
    cif = cifar_shaped()
    tp_cifar = throughput(
        create_model("resnet9", 10, 3), cif.train, Pipeline.of(cif), TrainConfig(batch_size=128), steps=4
    )
    rows = [
        ("clean model clean_acc (>= 0.95)", mean("none", "clean_acc")),
        ("poisoned attack_success (>= 0.9)", mean("poison", "attack_success")),
        ("poisoned clean_acc", mean("poison", "clean_acc")),
        (
            "clean_acc drop from poisoning, points (<= 2)",
            100 * (mean("none", "clean_acc") - mean("poison", "clean_acc")),
        ),
        ("poisoned target_acc", mean("poison", "target_acc")),
        ("interclass acc_corr, original", mean("interclass", "acc_corr")),
        ("interclass acc_corr, oracle retrain on S_tr minus S_m", mean("interclass_oracle", "acc_corr")),
        ("interclass acc_retain, original", mean("interclass", "acc_retain")),
        ("train seconds per digits model, median (<= 10)", statistics.median(seconds)),
        ("train seconds per digits model, max", max(seconds)),
        ("digits loop/bare images per s (>= 0.9)", tp_digits[0] / tp_digits[1]),
        ("resnet9 32px loop/bare images per s (>= 0.9)", tp_cifar[0] / tp_cifar[1]),
    ]
    print(f"# Foundation figures ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
    print(
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
        f"{args.seeds} seeds (mean); digits default preset.\n"
    )
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.4f} |")
    print(
        f"\nThroughput (images/s, loop vs bare): digits {tp_digits[0]:.0f} vs {tp_digits[1]:.0f}; "
        f"resnet9 32px {tp_cifar[0]:.0f} vs {tp_cifar[1]:.0f}. Wall time {time.perf_counter() - started:.0f} s."
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"rows": dict(rows), "raw": q, "throughput": {"digits": tp_digits, "resnet9_32px": tp_cifar}},
                default=str,
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
