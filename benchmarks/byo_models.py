"""A ResNet-18 outside the registry, corrected with `corrective.fix`, next to the registered ResNet-9 (issue 19).

    python benchmarks/byo_models.py [--steps 150] [--seeds 0] > benchmarks/results/byo_models.md

Digits upsampled to 32x32 (nearest) and repeated to 3 channels, poisoned (5 %, a 3x3 trigger), a clean
10 % carved from the training data as trusted held-out data. Each network is trained by the one training
loop on the poisoned data (`steps` steps of batch 64), then corrected with `corrective.fix` (method auto:
expansion, SCRUB, guarded selection) given the first 10 % of the poisoned ids (alpha 0.1) and the
recipe it was trained with. The ResNet-18 is torchvision's architecture (7x7/2 stem, max-pool, four
stages of two basic blocks, 64-512 channels, average pool, linear head; 11.2 M parameters) defined
here, because PyPI's torchvision does not import beside this machine's CPU build of torch; it is to
`corrective.fix` a model like any user's: not registered, no capacity masks, fresh models by reset.

Cost is fix's wall time over the original training's (one retrain), measured in one process, one thread.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

import corrective
from corrective.data import Dataset, Split, load_dataset
from corrective.data.base import channel_stats
from corrective.manipulations import manipulate
from corrective.metrics import evaluate
from corrective.models import create_model
from corrective.training import TrainConfig, train


class Basic(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 architecture (not its module names)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        widths, layers, c = (64, 128, 256, 512), [], 64
        for i, w in enumerate(widths):
            layers += [Basic(c, w, 1 if i == 0 else 2), Basic(w, w, 1)]
            c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def upsampled(seed: int) -> Dataset:
    d = load_dataset("digits", val_fraction=0.1, seed=seed)

    def up(s: Split) -> Split:
        x = nn.functional.interpolate(s.x.float(), size=32, mode="nearest").round().to(torch.uint8)
        return Split(x.repeat(1, 3, 1, 1), s.y, s.ids)

    train = up(d.train)
    mean, std = channel_stats(train.x)
    return Dataset("digits32", 10, train, up(d.val), up(d.test), mean, std, False, 0, d.class_names)


def one(name: str, net: nn.Module, ds: Dataset, seed: int, steps: int) -> dict[str, float]:
    manip = manipulate(ds, "poison", seed=seed, trigger_size=3)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=0.05, seed=seed, precision="fp32")
    from corrective.data.batches import Pipeline

    start = time.perf_counter()
    train(net, manip.apply(ds.train), Pipeline.of(ds), cfg, progress=False)
    train_s = time.perf_counter() - start
    before = evaluate(net, ds, manip)
    recipe = corrective.Recipe(steps=steps, batch_size=64, lr=0.05)
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
        "target_acc": after["target_acc"],
        "test": after["clean_acc"],
        "held_out": result.record["held_out_acc_after"],
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
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ds = upsampled(seed)
        for name, build in (("ResNet-18 (torchvision's, by reset)", ResNet18), ("resnet9 (registered)", None)):
            torch.manual_seed(seed)
            net = build() if build is not None else create_model("resnet9", 10, 3)
            rows.append({"seed": seed, **one(name, net, ds, seed, args.steps)})
    load = os.getloadavg()
    print("# Any model: a ResNet-18 outside the registry corrected with `corrective.fix` (digits 32 px, poison)\n")
    print(
        f"`python benchmarks/byo_models.py --steps {args.steps} --seeds {args.seeds}`; one thread, CPU, load "
        f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the end. alpha 0.1, method auto "
        "(guarded), held-out: the clean 10 % validation split. Cost: fix's wall time / the original "
        "training's (one retrain), side by side in one process.\n"
    )
    print(
        "| network | seed | M params | acc_corr before → after | target_acc before → after | test acc before → after "
        "| held-out acc | n_expanded | cost (× one retrain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['seed']} | {r['params']:.2f} | {r['before_acc_corr']:.3f} → {r['acc_corr']:.3f} "
            f"| {r['before_target']:.3f} → {r['target_acc']:.3f} | {r['before_test']:.3f} → {r['test']:.3f} "
            f"| {r['held_out']:.3f} | {r['n_expanded']} | {r['fix_s'] / r['train_s']:.2f} "
            f"({r['fix_s']:.0f} s / {r['train_s']:.0f} s) |"
        )


if __name__ == "__main__":
    main()
