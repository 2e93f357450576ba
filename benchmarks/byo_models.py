"""torchvision's ResNet-18, corrected with `corrective.fix`, next to the registered ResNet-9 (issue 19).

    bash scripts/vision_env.sh   # .venv-vision: a torch that torchvision imports beside
    OMP_NUM_THREADS=1 .venv-vision/bin/python benchmarks/byo_models.py [--steps 150] [--seeds 0] \
        > benchmarks/results/byo_models.md

Digits upsampled to 32x32 (nearest) and repeated to 3 channels, poisoned (5 %, a 3x3 trigger), a clean
10 % carved from the training data as trusted held-out data. Each network is trained by the one training
loop on the poisoned data (`steps` steps of batch 64), then corrected with `corrective.fix` (method auto:
expansion, SCRUB, guarded selection) given the first 10 % of the poisoned ids (alpha 0.1) and the
recipe it was trained with. The ResNet-18 is `torchvision.models.resnet18(weights=None, num_classes=10)`
as torchvision builds it (7x7/2 stem, max-pool, four stages of two basic blocks, 64-512 channels, average
pool, linear head; 11.2 M parameters), built by `corrective.models.adapters.build_named("torchvision:resnet18")`
as `corrective fix --model torchvision:resnet18` builds it; it is to `corrective.fix` a model like any user's:
not registered, no capacity masks, fresh models by reset.

Cost is fix's wall time over the original training's (one retrain), measured in one process, one thread.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from torch import nn

import corrective
from corrective.data import Dataset, Split, load_dataset
from corrective.data.base import channel_stats
from corrective.data.batches import Pipeline
from corrective.manipulations import manipulate
from corrective.metrics import evaluate
from corrective.models.adapters import build_named
from corrective.training import train


def upsampled(seed: int) -> Dataset:
    d = load_dataset("digits", val_fraction=0.1, seed=seed)

    def up(s: Split) -> Split:
        x = nn.functional.interpolate(s.x.float(), size=32, mode="nearest").round().to(torch.uint8)
        return Split(x.repeat(1, 3, 1, 1), s.y, s.ids)

    train = up(d.train)
    mean, std = channel_stats(train.x)
    return Dataset("digits32", 10, train, up(d.val), up(d.test), mean, std, False, 0, d.class_names)


def chosen(record: dict[str, Any]) -> str:
    """The setting the selection kept: auto's base and its main knob (SCRUB's kl_weight), else the method."""
    settings = record.get("settings", {})
    base = settings.get("base", record["method"])
    return f"{base}, kl_weight {settings['kl_weight']}" if base == "scrub" and "kl_weight" in settings else base


def one(name: str, net: nn.Module, ds: Dataset, seed: int, steps: int) -> dict[str, Any]:
    manip = manipulate(ds, "poison", seed=seed, trigger_size=3)
    recipe = corrective.Recipe(steps=steps, batch_size=64, lr=0.05)
    cfg = recipe.config(len(ds.train), seed)  # the recipe fix is told is the one the model was trained with
    start = time.perf_counter()
    train(net, manip.apply(ds.train), Pipeline.of(ds), cfg, progress=False)
    train_s = time.perf_counter() - start
    before = evaluate(net, ds, manip)
    start = time.perf_counter()
    result = corrective.fix(
        net,
        train=manip.apply(ds.train),
        flagged=manip.forget_ids(0.1),
        held_out=ds.val,
        recipe=recipe,
        mean=ds.mean,
        std=ds.std,
        seed=seed,
    )
    fix_s = time.perf_counter() - start
    after = evaluate(result.model, ds, manip)
    assert type(result.model) is type(net)
    return {
        "name": name,
        "params": sum(p.numel() for p in net.parameters()) / 1e6,
        "before_acc_corr": before["acc_corr"],
        "before_target": before["target_acc"],
        "before_test": before["clean_acc"],
        "acc_corr": after["acc_corr"],
        "before_asr": before["attack_success"],
        "asr": after["attack_success"],
        "target_acc": after["target_acc"],
        "test": after["clean_acc"],
        "held_out_before": result.record["held_out_acc_before"],
        "held_out": result.record["held_out_acc_after"],
        "n_manipulated": len(manip.ids),
        "n_flagged": len(manip.forget_ids(0.1)),
        "returned_original": bool(result.record.get("returned_original")),
        "chosen": chosen(result.record),
        "n_expanded": result.record["n_expanded"],
        "train_s": train_s,
        "fix_s": fix_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ds = upsampled(seed)
        for name in ("torchvision:resnet18", "resnet9"):
            torch.manual_seed(seed)
            net = build_named(name, 10, 3)
            rows.append({"seed": seed, **one(name, net, ds, seed, args.steps)})
    load = os.getloadavg()
    import torchvision

    cfg = corrective.Recipe(steps=args.steps, batch_size=64, lr=0.05).config(1, 0)
    print("# Any model: torchvision's ResNet-18 corrected with `corrective.fix` (digits 32 px, poison)\n")
    print(
        f"`OMP_NUM_THREADS=1 .venv-vision/bin/python benchmarks/byo_models.py --steps {args.steps} --seeds "
        f"{args.seeds}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}; one thread, CPU, load average at the start {load0[0]:.1f}, at the "
        f"end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; 2 cores shared with other sessions). "
        f"Recipe, for the original training and given to fix: {cfg.steps} steps of {cfg.batch_size}, lr {cfg.lr}, "
        f"momentum {cfg.momentum}, weight decay {cfg.weight_decay}, precision {cfg.precision} (bf16 autocast "
        "at 32 px). alpha 0.1: the first 10 % of the poisoned ids flagged; method auto (guarded selection); "
        "held-out: the clean 10 % validation split (what the guard sees); test: the test split with the trigger "
        "(acc_corr: accuracy on the test images with the trigger, against their clean labels; target_acc: the "
        "target class's clean test accuracy; attack success: triggered images of other classes called the "
        "target). Cost: fix's wall time / the original training's (one retrain), side by "
        "side in one process.\n"
    )
    print(
        "| network | seed | M params | poisoned / flagged | acc_corr before → after | target_acc before → after "
        "| attack success before → after | test acc before → after | held-out acc before → after | n_expanded "
        "| chosen | cost (× one retrain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        kept = " (original kept)" if r["returned_original"] else ""
        print(
            f"| {r['name']} | {r['seed']} | {r['params']:.2f} | {r['n_manipulated']} / {r['n_flagged']} "
            f"| {r['before_acc_corr']:.3f} → {r['acc_corr']:.3f} "
            f"| {r['before_target']:.3f} → {r['target_acc']:.3f} | {r['before_asr']:.3f} → {r['asr']:.3f} "
            f"| {r['before_test']:.3f} → {r['test']:.3f} "
            f"| {r['held_out_before']:.3f} → {r['held_out']:.3f} | {r['n_expanded']} | {r['chosen']}{kept} "
            f"| {r['fix_s'] / r['train_s']:.2f} ({r['fix_s']:.0f} s / {r['train_s']:.0f} s) |"
        )


if __name__ == "__main__":
    main()
