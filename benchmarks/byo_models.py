"""torchvision's ResNet-18, corrected with `corrective.fix`, next to the registered ResNet-9 (issue 19).

    # a Python with torch and torchvision (e.g. the .venv-vision of scripts/vision_env.sh):
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv-vision/bin/python benchmarks/byo_models.py [--steps 300] [--seeds 0] \
        [--trigger-size 8] [--poison-size 0.05] [--networks torchvision:resnet18,resnet9] [--probe] \
        [--oracle] [--method NAME] [--settings JSON] [--cache DIR] > benchmarks/results/byo_models.md

Digits upsampled to 32x32 (nearest: each digit pixel a 4x4 block) and repeated to 3 channels, poisoned
(`--poison-size` of the training data, default 5 %, with a `--trigger-size` square patch at the
bottom-right corner, default 8x8 = 2x2 digit pixels; in 150 steps neither network learnt a 3x3 patch and
ResNet-9 not the 8x8 one, hence 300 steps by default), a clean 10 % carved from the training data as
trusted held-out data. Each network is trained by the one training loop on the poisoned data (`steps`
steps of batch 64), then corrected with `corrective.fix` (method auto: expansion, SCRUB, guarded
selection) given the first 10 % of the poisoned ids (alpha 0.1) and the recipe it was trained with.
`--probe` trains and evaluates the originals only (no fix): the cheap check that a setting's backdoor is
learnt before paying for the comparison. Diagnosis (issue 19: why the ResNet-18 was not corrected): each
row also says how fix's expansion compares with S_m (recomputed here with fix's arguments; the method never
sees S_m), how S_m sits in the target label's features and how well the original fits S_m; `--oracle`
flags all of S_m (SCRUB's grid: can the base method remove the backdoor at all, whatever the expansion?),
`--method`/`--settings` run another method or one setting of it, and `--cache DIR` keeps the trained
originals so each is trained once. The ResNet-18 is
`torchvision.models.resnet18(weights=None, num_classes=10)` as torchvision builds it (7x7/2 stem,
max-pool, four stages of two basic blocks, 64-512 channels, average pool, linear head; 11.2 M
parameters), built by `corrective.models.adapters.build_named("torchvision:resnet18")` as
`corrective fix --model torchvision:resnet18` builds it; it is to `corrective.fix` a model like any
user's: not registered, no capacity masks, fresh models by reset.

Cost is fix's wall time over the original training's (one retrain), measured in one process, one thread
(with `--cache`, the training's seconds are the cached original's, measured when it was trained).
The header names the command, date, machine, commit and load.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import time
from typing import Any

import torch
from torch import nn

import corrective
from corrective.data import Dataset, Split, load_dataset
from corrective.data.base import channel_stats
from corrective.data.batches import Pipeline
from corrective.expand import View, expand
from corrective.expand.cluster import ClusterSettings, label_groups
from corrective.manipulations import Manipulation, manipulate
from corrective.metrics import evaluate, expansion_quality
from corrective.models.adapters import build_named
from corrective.models.embedding import classifier
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


def feature_layer(net: nn.Module) -> str:
    """Where expansion reads the features (the classifier's input): the layer's name and the feature width."""
    head = classifier(net)
    name = next(n for n, m in net.named_modules() if m is head)
    width = getattr(head, "in_features", None)
    return f"{name} input ({width}-d)" if width is not None else f"{name} input"


def diagnose(net: nn.Module, ds: Dataset, manip: Manipulation, flagged: torch.Tensor, seed: int) -> dict[str, Any]:
    """What the benchmark (never the method) can say about fix's expansion: it is recomputed here with the
    arguments fix gives it (same model, data as given, pipeline, S_f, seed: deterministic) and compared with
    S_m; and how S_m sits in the target label's features, as the `cluster` strategy and the screen see them
    (k-means of the label's first principal components, `ClusterSettings` defaults): how many of S_m fall
    into the label's bulk group, beside its clean samples (a group holding more than `max_group` of it)."""
    train_split = manip.apply(ds.train)
    pipe = Pipeline.of(ds)
    exp = expand(net, train_split, flagged, pipe, "auto", seed=seed)
    quality = expansion_quality(exp.ids, flagged, manip.ids)
    cut = exp.details.get("cutoff", {})
    view = View(net, train_split, pipe, seed)
    target = int(train_split.y[train_split.positions_of(manip.ids[:1])][0])
    cs = ClusterSettings()
    groups = label_groups(view, target, cs.dims, cs.max_k)
    poisoned = torch.isin(view.ids[groups.positions], manip.ids.cpu()).numpy()
    bulk = groups.sizes[groups.assignment] > cs.max_group * len(groups.positions)
    return {
        "feature_layer": feature_layer(net),
        "exp_chosen": exp.chosen,
        "exp_set_aside": len(exp.set_aside),
        "exp_rule": cut.get("rule", "?"),
        "exp_added": len(exp.added),
        "exp_precision": quality["expand_precision"],
        "exp_recall": quality["expand_recall"],
        "bulk_poisoned": int((poisoned & bulk).sum()),
        "bulk_size": int(bulk.sum()),
        "label_size": len(groups.positions),
    }


@torch.no_grad()
def memorised(net: nn.Module, ds: Dataset, manip: Manipulation) -> dict[str, float]:
    """How the original fits S_m (with the trigger, target label): mean cross-entropy in eval mode (what
    gradient ascent on S_m starts from) and on one batch of S_m alone in train mode (BatchNorm normalising by
    that batch's statistics, as SCRUB's forget step does; run on a copy, so the original's running statistics
    are untouched)."""
    split = manip.apply(ds.train)
    s_m = split.subset(split.positions_of(manip.ids))
    pipe = Pipeline.of(ds)
    x = pipe(s_m, torch.arange(min(len(s_m), 64)))
    y = s_m.y[: len(x)]
    net.eval()
    evaluated = float(nn.functional.cross_entropy(net(x).float(), y))
    twin = copy.deepcopy(net).train()
    trained_mode = float(nn.functional.cross_entropy(twin(x).float(), y))
    return {"ce_eval": evaluated, "ce_train": trained_mode}


def trained(
    name: str, ds: Dataset, manip: Manipulation, cfg: Any, seed: int, args: argparse.Namespace
) -> tuple[nn.Module, float]:
    """The original (trained on the poisoned data) and its training seconds; from `--cache` where it was saved."""
    torch.manual_seed(seed)
    net = build_named(name, 10, 3)
    path = None
    if args.cache:
        tag = f"{name.replace(':', '_')}_s{seed}_{args.steps}steps_t{args.trigger_size}_p{args.poison_size:g}.pt"
        path = os.path.join(args.cache, tag)
        if os.path.exists(path):
            saved = torch.load(path, weights_only=True)
            net.load_state_dict(saved["state"])
            return net, float(saved["train_s"])
    start = time.perf_counter()
    train(net, manip.apply(ds.train), Pipeline.of(ds), cfg, progress=False)
    train_s = time.perf_counter() - start
    if path is not None:
        os.makedirs(args.cache, exist_ok=True)
        torch.save({"state": net.state_dict(), "train_s": torch.tensor(train_s)}, path)
    return net, train_s


def one(name: str, ds: Dataset, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    manip = manipulate(ds, "poison", seed=seed, size=args.poison_size, trigger_size=args.trigger_size)
    recipe = corrective.Recipe(steps=args.steps, batch_size=64, lr=0.05)
    cfg = recipe.config(len(ds.train), seed)  # the recipe fix is told is the one the model was trained with
    net, train_s = trained(name, ds, manip, cfg, seed, args)
    before = evaluate(net, ds, manip)
    fit = memorised(net, ds, manip)
    if args.probe:  # the original training alone: is the backdoor learnt at this setting?
        return {
            "name": name,
            "n_manipulated": len(manip.ids),
            "before_asr": before["attack_success"],
            "before_target": before["target_acc"],
            "before_acc_corr": before["acc_corr"],
            "before_test": before["clean_acc"],
            "train_s": train_s,
            **fit,
        }
    flagged = manip.ids if args.oracle else manip.forget_ids(0.1)
    method = args.method or ("scrub" if args.oracle else "auto")
    found = diagnose(net, ds, manip, flagged, seed) if method == "auto" else {}
    if args.settings:  # one setting, no grid: what a method does at it
        how: dict[str, Any] = {"settings": json.loads(args.settings), "grid": False}
    else:  # the method's grid (auto's by default; under --oracle SCRUB's), guarded selection
        how = {"grid": True, "selection": "guarded"} if method != "auto" else {}
    start = time.perf_counter()
    result = corrective.fix(
        net,
        train=manip.apply(ds.train),
        flagged=flagged,
        held_out=ds.val,
        recipe=recipe,
        mean=ds.mean,
        std=ds.std,
        seed=seed,
        method=method,
        **how,
    )
    fix_s = time.perf_counter() - start
    if found and found["exp_added"] != result.record["n_expanded"]:
        raise SystemExit(
            f"the recomputed expansion ({found['exp_added']}) is not fix's ({result.record['n_expanded']})"
        )
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
        "n_flagged": len(flagged),
        "returned_original": bool(result.record.get("returned_original")),
        "chosen": chosen(result.record),
        "n_expanded": result.record["n_expanded"],
        "train_s": train_s,
        "fix_s": fix_s,
        **fit,
        **found,
    }


def expansion_cells(r: dict[str, Any]) -> str:
    """The expansion's columns: precision / recall vs S_m, what auto chose, S_m in the bulk, the feature layer."""
    if "exp_chosen" not in r:
        return "— (no expansion) | — | — | —"
    return (
        f"{r['exp_precision']:.3f} / {r['exp_recall']:.3f} | {r['exp_chosen']}, {r['exp_set_aside']} of "
        f"{r['n_flagged']} set aside, {r['exp_rule']} | {r['bulk_poisoned']} of {r['n_manipulated']} "
        f"({r['bulk_size']} / {r['label_size']}) | {r['feature_layer']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="the original training's steps of 64 (default 300)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument(
        "--trigger-size", type=int, default=8, help="the poison's square patch, in 32-px pixels (default 8)"
    )
    parser.add_argument(
        "--poison-size", type=float, default=0.05, help="share of the training data poisoned (default 0.05)"
    )
    parser.add_argument(
        "--networks",
        default="torchvision:resnet18,resnet9",
        help="comma-separated model names (default torchvision:resnet18,resnet9)",
    )
    parser.add_argument(
        "--probe", action="store_true", help="train and evaluate the originals only (no fix): is the backdoor learnt?"
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="flag every poisoned id (S_f = S_m); the method defaults to scrub over its grid with guarded "
        "selection (auto's base, no expansion): can SCRUB remove the backdoor from this network at all?",
    )
    parser.add_argument(
        "--method", default=None, help="the method fix runs (default auto; under --oracle scrub, auto's base)"
    )
    parser.add_argument(
        "--settings",
        default=None,
        help='one setting of the method as JSON, e.g. \'{"kl_weight": 1.0, "forget_share": 0.5}\' (no grid); '
        "default: the method's grid with guarded selection",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="folder where trained originals are saved and read back (train each once; the cost ratio then "
        "divides by the cached training's seconds)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    commit = subprocess.run(  # at the start: the code this run imports
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ds = upsampled(seed)
        for name in args.networks.split(","):
            rows.append({"seed": seed, **one(name, ds, seed, args)})
    load = os.getloadavg()
    import torchvision

    cfg = corrective.Recipe(steps=args.steps, batch_size=64, lr=0.05).config(1, 0)
    command = (
        f"OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/byo_models.py --steps {args.steps} --seeds {args.seeds} "
        f"--trigger-size {args.trigger_size} --poison-size {args.poison_size} --networks {args.networks}"
        + (" --probe" if args.probe else "")
        + (" --oracle" if args.oracle else "")
        + (f" --method {args.method}" if args.method else "")
        + (f" --settings '{args.settings}'" if args.settings else "")
        + (f" --cache {args.cache}" if args.cache else "")
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    if args.probe:
        print(
            f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}; {machine}; load "
            f"{load0[0]:.1f} → {load[0]:.1f}\n"
        )
        print(
            "| network | seed | poisoned | attack success | target_acc | acc_corr | test acc | train s "
            "| CE on S_m: eval / train-mode batch |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['name']} | {r['seed']} | {r['n_manipulated']} | {r['before_asr']:.3f} "
                f"| {r['before_target']:.3f} | {r['before_acc_corr']:.3f} | {r['before_test']:.3f} "
                f"| {r['train_s']:.0f} | {r['ce_eval']:.2g} / {r['ce_train']:.3g} |"
            )
        return
    print("# Any model: torchvision's ResNet-18 corrected with `corrective.fix` (digits 32 px, poison)\n")
    print(
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}; machine: {machine}; "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; one thread, CPU, load average at the start "
        f"{load0[0]:.1f}, at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; 2 cores shared "
        f"with other sessions). Poison: {args.poison_size:g} of the training data, a {args.trigger_size}x"
        f"{args.trigger_size} patch at 32 px, target class 0. "
        f"Recipe, for the original training and given to fix: {cfg.steps} steps of {cfg.batch_size}, lr {cfg.lr}, "
        f"momentum {cfg.momentum}, weight decay {cfg.weight_decay}, precision {cfg.precision} (bf16 autocast "
        "at 32 px). "
        + (
            "Oracle: every poisoned id flagged (S_f = S_m); "
            if args.oracle
            else "alpha 0.1: the first 10 % of the poisoned ids flagged; "
        )
        + (
            f"method {args.method or ('scrub' if args.oracle else 'auto')} "
            + (
                f"at the one setting {args.settings} (no grid); "
                if args.settings
                else "over its grid, guarded selection (scrub: what auto runs on a perfect expansion); "
            )
        )
        + "held-out: the clean 10 % validation split (what the guard sees); test: the test split with the trigger "
        "(acc_corr: accuracy on the test images with the trigger, against their clean labels; target_acc: the "
        "target class's clean test accuracy; attack success: triggered images of other classes called the "
        "target). Cost: fix's wall time / the original training's (one retrain), "
        + (
            "the training's seconds read from the cached original (`--cache`: trained once, maybe under another load). "
            if args.cache
            else "side by side in one process. "
        )
        + "Expansion (benchmark only; the method never sees S_m): fix's expansion recomputed with fix's "
        "arguments and compared with S_m — precision and recall of the expanded set (S_f included), auto's "
        "chosen strategy, flags the screen set aside, the cutoff rule; S_m in the bulk: poisoned samples in "
        "the target label's bulk, its feature-space group (k-means as `cluster` and the screen read it) that "
        "holds more than half of the label, beside its clean samples (then that group's size / the label's "
        "size). Features: the layer whose input expansion reads. CE on S_m: the original's mean cross-entropy on "
        "(the first 64 of) S_m as trained (trigger, target label), in eval mode, and in train mode on that batch "
        "alone (BatchNorm by the batch's statistics, as in SCRUB's forget step).\n"
    )
    print(
        "| network | seed | M params | poisoned / flagged | acc_corr before → after | target_acc before → after "
        "| attack success before → after | test acc before → after | held-out acc before → after | n_expanded "
        "| chosen | cost (× one retrain) | expansion precision / recall vs S_m | expansion: strategy, set aside, "
        "cutoff | S_m in the bulk | features | CE on S_m: eval / train-mode batch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        kept = " (original kept)" if r["returned_original"] else ""
        print(
            f"| {r['name']} | {r['seed']} | {r['params']:.2f} | {r['n_manipulated']} / {r['n_flagged']} "
            f"| {r['before_acc_corr']:.3f} → {r['acc_corr']:.3f} "
            f"| {r['before_target']:.3f} → {r['target_acc']:.3f} | {r['before_asr']:.3f} → {r['asr']:.3f} "
            f"| {r['before_test']:.3f} → {r['test']:.3f} "
            f"| {r['held_out_before']:.3f} → {r['held_out']:.3f} | {r['n_expanded']} | {r['chosen']}{kept} "
            f"| {r['fix_s'] / r['train_s']:.2f} ({r['fix_s']:.0f} s / {r['train_s']:.0f} s) | {expansion_cells(r)} "
            f"| {r['ce_eval']:.2g} / {r['ce_train']:.3g} |"
        )


if __name__ == "__main__":
    main()
