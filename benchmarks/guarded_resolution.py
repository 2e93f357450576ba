"""The guarded rule with and without its one-sample allowance, re-applied to recorded grids (no new training).

    python benchmarks/guarded_resolution.py benchmarks/results/relearn_digits_bench [more bench folders] \
        > benchmarks/results/guarded_resolution.md

Every unlearning record of a bench folder (`results.jsonl` or `results.jsonl.gz`) carries all candidates of
its grid with their validation figures. For each, this script picks a candidate again by three rules, reading
only validation figures and `forget_changed`, as the methods do:

- `paper`: 0.5 val_accuracy + 0.5 forget_changed;
- `guarded, limit only`: the same among candidates that lose at most 5 points on every validation class (the
  rule before the allowance);
- `guarded`: the same, but a class may always lose one of its validation samples (the rule now).

It then reports the picks' test figures (acc_corr, target_acc for poisoning, acc_retain), mean over seeds and
alphas, per manipulation and method, with how often the guard found no eligible candidate (fallback). The
validation split's class counts come from loading the dataset with the run's seed and validation fraction.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from corrective.data import load_dataset
from corrective.methods.selection import Reference, Selection, select

RULES = ("paper", "guarded, limit only", "guarded")


def read(folder: Path) -> list[dict[str, Any]]:
    """A bench folder's records: `results.jsonl` where the run left it, else the kept `results.jsonl.gz`."""
    plain, packed = folder / "results.jsonl", folder / "results.jsonl.gz"
    if plain.exists():
        text = plain.read_text(encoding="utf-8")
    elif packed.exists():
        text = gzip.decompress(packed.read_bytes()).decode("utf-8")
    else:
        raise SystemExit(f"{folder} has no results.jsonl(.gz); pass a folder a bench run wrote or kept")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def val_counts(spec: dict[str, Any], seed: int, cache: dict[int, tuple[int, ...]]) -> tuple[int, ...]:
    if seed not in cache:
        ds = load_dataset(spec["datasets"][0], val_fraction=spec["val_fraction"], seed=seed)
        cache[seed] = tuple(torch.bincount(ds.val.y, minlength=ds.num_classes).tolist())
    return cache[seed]


def picks(folder: Path) -> list[dict[str, Any]]:
    """One row per (unlearning record, rule): the picked candidate's figures."""
    spec = json.loads((folder / "spec.json").read_text())
    records = read(folder)
    originals = {r["job_id"]: r for r in records if r["stage"] == "original"}
    counts: dict[int, tuple[int, ...]] = {}
    guard = Selection("guarded")
    rows = []
    for r in records:
        if r["stage"] != "unlearn" or not r.get("is_method", True) or len(r.get("candidates", [])) < 2:
            continue
        accuracy = tuple(originals[r["original_id"]]["val_per_class_acc"])
        references = {  # per guarded rule: without and with the classes' sample counts
            "guarded, limit only": Reference(accuracy),
            "guarded": Reference(accuracy, val_counts(spec, r["seed"], counts)),
        }
        chosen = {"paper": select(r["candidates"], Selection("paper"))}
        chosen |= {rule: select(r["candidates"], guard, ref) for rule, ref in references.items()}
        for rule, i in chosen.items():
            c = r["candidates"][i]
            reference = references.get(rule)
            rows.append(
                {
                    "manipulation": r["manipulation"],
                    "method": r["method"]
                    + ("" if r.get("expand", "none") in ("none", r["method"]) else f"+{r['expand']}"),
                    "training": r.get("training", "standard"),
                    "rule": rule,
                    "alpha": r["alpha"],
                    "seed": r["seed"],
                    "acc_corr": c["acc_corr"],
                    "target_acc": c.get("target_acc"),
                    "acc_retain": c["acc_retain"],
                    "fallback": reference is not None
                    and not any(guard.eligible(x, reference) for x in r["candidates"]),
                    "changed": i != chosen["paper"],
                }
            )
    return rows


def pct(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    return f"{100 * statistics.fmean(vals):.1f}" if vals else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    for folder in args.folders:
        rows = picks(folder)
        print(f"## {folder.name}\n")
        trainings = sorted({r["training"] for r in rows})
        for training in trainings:
            part = [r for r in rows if r["training"] == training]
            cells: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
            for r in part:
                cells[(r["manipulation"], r["method"])][r["rule"]].append(r)
            n_jobs = len(part) // len(RULES)
            print(f"### training {training}: {n_jobs} unlearning records with a grid\n")
            head = ["manipulation", "method"]
            for rule in RULES:
                head += [f"acc_corr ({rule})", f"target_acc ({rule})", f"acc_retain ({rule})"]
            head += ["picks changed (limit only / guarded)", "fallbacks (limit only / guarded)"]
            print("| " + " | ".join(head) + " |")
            print("|---|---|" + "---:|" * (len(head) - 2))
            for (manipulation, method), by_rule in sorted(cells.items()):
                line = [manipulation, method]
                for rule in RULES:
                    rs = by_rule[rule]
                    target = pct([x["target_acc"] for x in rs]) if manipulation == "poison" else ""
                    line += [pct([x["acc_corr"] for x in rs]), target, pct([x["acc_retain"] for x in rs])]
                n = len(by_rule["paper"])
                changed = [sum(x["changed"] for x in by_rule[rule]) for rule in RULES[1:]]
                falls = [sum(x["fallback"] for x in by_rule[rule]) for rule in RULES[1:]]
                line += [f"{changed[0]} / {changed[1]} of {n}", f"{falls[0]} / {falls[1]}"]
                print("| " + " | ".join(line) + " |")
            print()


if __name__ == "__main__":
    main()
