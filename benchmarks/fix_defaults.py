"""`corrective fix` with only its required options, as a user meets it: does it ever return a harmed model?

    python benchmarks/fix_defaults.py [--out DIR] [--seeds 0,1,2] [--alpha 0.1] \
        [--manipulations poison,interclass,random_swap] [--dataset digits] [--steps N] \
        > benchmarks/results/fix_defaults.md

For each manipulation and seed: `corrective train` a run; export the training data as the model saw it
(given labels, the trigger stamped on the poisoned images) and the clean test split as a user's npz files;
write the first `alpha` share of the manipulated ids as a flagged file; run `corrective fix` with only what
describes the user's model and data (`--dataset npz --root --model --mean --std --weights --flagged --out`):
the method, its grid, the selection rule and the recipe are fix's defaults (the recipe: the one `corrective train`
saved in the weights file). Then the fixed model is
evaluated on the run's own data (where S_m is known): held-out (test) accuracy before/after, the largest
fall of a class, acc_corr / healed and target_acc. The guard is fix's: 0.05 or one sample of a class.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from corrective import __version__, api
from corrective.metrics import evaluate
from corrective.runs import load_weights

GUARD = 0.05


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "corrective", *args], capture_output=True, text=True, env=env)


def export(run: api.Run, folder: Path) -> None:
    """The run's training split as the model saw it, and its clean test split, as npz files."""
    folder.mkdir(parents=True, exist_ok=True)
    train = run.train_split.to("cpu")
    x = train.x.float() / 255
    if train.stamp is not None:  # the trigger is stamped at batch time: stamp it into the exported pixels
        x = train.stamp(x, torch.arange(len(train)))
    x8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
    np.savez(folder / "train.npz", x=x8.squeeze(1).numpy(), y=train.y.numpy())
    test = run.dataset.test.to("cpu")
    np.savez(folder / "test.npz", x=test.x.squeeze(1).numpy(), y=test.y.numpy())


def one(kind: str, seed: int, alpha: float, out: Path, dataset: str, steps: int | None, root: str | None) -> dict:
    base = out / f"{dataset}-{kind}-{seed}"
    run_dir = base / "run"
    if not (run_dir / "run.json").exists():
        extra = [*(["--steps", str(steps)] if steps else []), *(["--root", root] if root else [])]
        r = sh(
            "train", "--dataset", dataset, "--manipulation", kind, "--seed", str(seed), *extra, "--out", str(run_dir)
        )
        if r.returncode != 0:
            raise SystemExit(f"train failed: {r.stderr}")
    run = api.load_run(run_dir, "cpu")
    export(run, base / "data")
    flagged = run.manipulation.forget_ids(alpha)
    positions = run.train_split.positions_of(flagged)  # ids of the npz file are positions in it
    (base / "flagged.txt").write_text("\n".join(str(int(p)) for p in positions.tolist()))
    fixed = base / "fix"
    start = time.perf_counter()
    r = sh(
        "fix",
        "--dataset",
        "npz",
        "--root",
        str(base / "data"),
        "--model",
        run.spec.name,
        "--mean",
        ",".join(f"{v:.6f}" for v in run.dataset.mean),
        "--std",
        ",".join(f"{v:.6f}" for v in run.dataset.std),
        "--weights",
        str(run_dir / "model.safetensors"),
        "--flagged",
        str(base / "flagged.txt"),
        "--out",
        str(fixed),
        "--overwrite",
        "--json",
    )
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"fix failed ({kind} {seed}): {r.stderr}")
    summary = json.loads(r.stdout)
    model = load_weights(run.spec.build(), fixed / "model.safetensors").eval()
    after = evaluate(model, run.dataset, run.manipulation)
    before = run.metrics
    drops = [b - a for b, a in zip(before["per_class_acc"], after["per_class_acc"], strict=True)]
    warned = [line for line in r.stderr.splitlines() if "warning" in line]
    return {
        "kind": kind,
        "seed": seed,
        "n_flagged": summary["n_flagged"],
        "n_expanded": summary["n_expanded"],
        "returned_original": summary["returned_original"],
        "settings": summary["settings"],
        "test_before": summary["test_acc_before"],
        "test_after": summary["test_acc_after"],
        "class_drop": max(drops),
        "acc_corr": (before["acc_corr"], after["acc_corr"]),
        "healed": (before["healed"], after["healed"]),
        "target_acc": (before.get("target_acc"), after.get("target_acc")),
        "fix_seconds": seconds,
        "warning": warned[0] if warned else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/fix_defaults"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--manipulations", default="poison,interclass,random_swap")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--root", default=None)
    ap.add_argument("--steps", type=int, default=None, help="the training run's steps (default: the preset's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    start = time.perf_counter()
    rows = [
        one(k, int(s), args.alpha, args.out, args.dataset, args.steps, args.root)
        for k in args.manipulations.split(",")
        for s in args.seeds.split(",")
    ]
    wall = time.perf_counter() - start
    print("# `corrective fix` with only its required options\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}; "
        f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {wall:.0f} s in all.\n"
    )
    print(f"Command: `python benchmarks/fix_defaults.py {' '.join(sys.argv[1:])}`\n")
    print(
        f"{args.dataset}, alpha {args.alpha:g} (the first share of S_m flagged), `fix`'s defaults (auto, its grid, "
        f"guarded selection, the recipe saved in the weights). Held-out = the test split; guard {GUARD:g} or one "
        "sample of a class. `class drop`: the largest fall of a class's test accuracy. acc_corr/healed and target_acc: "
        "before → after.\n"
    )
    print(
        "| manipulation | seed | flagged | expanded | returned | test acc before → after | class drop "
        "| acc_corr | healed | target_acc | fix s |"
    )
    print("|---|---:|---:|---:|---|---|---:|---|---|---|---:|")
    for r in rows:
        t = r["target_acc"]
        target = "" if t[0] is None else f"{t[0]:.3f} → {t[1]:.3f}"
        returned = "original" if r["returned_original"] else "corrected"
        print(
            f"| {r['kind']} | {r['seed']} | {r['n_flagged']} | {r['n_expanded']} | {returned} | "
            f"{r['test_before']:.3f} → {r['test_after']:.3f} | {r['class_drop']:.3f} | "
            f"{r['acc_corr'][0]:.3f} → {r['acc_corr'][1]:.3f} | {r['healed'][0]:.3f} → {r['healed'][1]:.3f} | "
            f"{target} | {r['fix_seconds']:.0f} |"
        )
    harmed = [r for r in rows if r["test_before"] - r["test_after"] > GUARD + 1e-6]
    print(
        f"\nReturned a model whose held-out accuracy fell by more than {GUARD:g}: {len(harmed)} of {len(rows)}. "
        f"Returned the original unchanged: {sum(r['returned_original'] for r in rows)} of {len(rows)}."
    )
    for r in rows:
        if r["warning"]:
            print(f"\n- {r['kind']} seed {r['seed']}: `{r['warning']}`")


if __name__ == "__main__":
    main()
