"""Issue 20's table: every backdoor of the registry against every method, per dataset, poison size and alpha.

    python benchmarks/attacks_overview.py FOLDER[:METHOD,...] ... > table.md

Reads the records kept by `benchmarks/attacks.py --copy` (or a live bench folder) and prints, per dataset and
poison size, one table: the original, the oracle and each method's selected model, their attack success (ASR),
clean test accuracy (C-Acc) and target-class accuracy, averaged over the attacks other than BadNet and the
seeds, per alpha, with the method's cost over one retrain (S_tr without S_f; its seconds over its whole grid
against retrain's in the same folder: ratios are only taken within one run). `FOLDER:auto,transplant` takes only
those methods' records from that folder, over any earlier folder's: e.g. the digits run whose `auto` ran before
the transplant existed, then the run that has today's `auto`. Per-attack and per-seed figures are in each
folder's own report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attacks import METHODS, TITLES, grid_seconds, pct, ratio
from guarded_resolution import read

from corrective.manipulations import BACKDOORS


def triple(rs: list[dict[str, Any]]) -> str:
    """ASR / C-Acc / target_acc of some records, mean in %."""
    return " / ".join(pct([r[key] for r in rs]) for key in ("attack_success", "clean_acc", "target_acc"))


def pair(rs: list[dict[str, Any]]) -> str:
    """ASR / target_acc of some records, mean in % ('' for none)."""
    return f"{pct([r['attack_success'] for r in rs])} / {pct([r['target_acc'] for r in rs])}" if rs else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folders", nargs="+", help="bench folders, later ones over earlier; FOLDER:m1,m2 takes only those")
    args = ap.parse_args()
    originals: dict[tuple[Any, ...], dict[str, Any]] = {}
    oracles: dict[tuple[Any, ...], dict[str, Any]] = {}
    # (dataset, size, kind, method, alpha, seed) -> (folder, record)
    chosen: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    # (folder, dataset, size, kind, alpha, seed) -> retrain's record
    retrains: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, arg in enumerate(args.folders):
        path, _, only = arg.partition(":")
        methods = set(only.split(",")) if only else None
        for r in read(Path(path)):
            if r.get("manipulation") not in BACKDOORS or r["manipulation"] == "poison":
                continue
            cell = (r["dataset"], r["size"], r["manipulation"])
            if r["stage"] == "original" and methods is None:
                originals[(*cell, r["seed"])] = r
            elif r["stage"] == "oracle" and methods is None:
                oracles[(*cell, r["seed"])] = r
            elif r["stage"] == "unlearn" and r.get("selected", True):
                if r["method"] == "retrain":
                    retrains[(i, *cell, r["alpha"], r["seed"])] = r
                if methods is None or r["method"] in methods:
                    chosen[(*cell, r["method"], r["alpha"], r["seed"])] = (i, r)
    for dataset, size in sorted({(d, s) for d, s, *_ in originals}):
        kinds = sorted({k for d, s, k, _ in originals if (d, s) == (dataset, size)}, key=list(BACKDOORS).index)
        seeds = sorted({seed for d, s, _, seed in originals if (d, s) == (dataset, size)})
        alphas = sorted({key[4] for key in chosen if key[:2] == (dataset, size)})
        print(
            f"\n### {dataset}, {100 * size:g} % poisoned: {', '.join(TITLES.get(k, k) for k in kinds)}; "
            f"seeds {', '.join(map(str, seeds))}\n"
        )
        head = " | ".join(f"ASR / C-Acc / target @ {a:g} | cost @ {a:g}" for a in alphas)
        print(f"| model | {head} |")
        print("|---|" + "---:|---:|" * len(alphas))
        for name, table in (("original", originals), ("oracle (retrain without S_m)", oracles)):
            rs = [table[(dataset, size, k, s)] for k in kinds for s in seeds if (dataset, size, k, s) in table]
            print(f"| {name} | " + " | ".join([triple(rs), ""] * len(alphas)) + " |")
        n = len(kinds) * len(seeds)
        for m in METHODS:
            row = []
            for a in alphas:
                found = [chosen[key] for k in kinds for s in seeds if (key := (dataset, size, k, m, a, s)) in chosen]
                costs = []
                for i, r in found:
                    base = retrains.get((i, dataset, size, r["manipulation"], a, r["seed"]))
                    if base and grid_seconds(base):
                        costs.append(grid_seconds(r) / grid_seconds(base))
                short = "" if len(found) == n else f" ({len(found)} of {n})"
                row += [triple([r for _, r in found]) + short, ratio(costs) if costs else "–"] if found else ["", ""]
            if any(row[::2]):
                print(f"| {m} | " + " | ".join(row) + " |")
        print(
            "\nPer attack (ASR / target, mean over the seeds; the original's and the oracle's alike at every alpha):\n"
        )
        print(
            "| model | "
            + " | ".join(f"{TITLES.get(k, k).split(' (')[0]} @ {a:g}" for a in alphas for k in kinds)
            + " |"
        )
        print("|---|" + "---:|" * (len(alphas) * len(kinds)))
        for name, table in (("original", originals), ("oracle", oracles)):
            cells = [
                pair([table[(dataset, size, k, s)] for s in seeds if (dataset, size, k, s) in table]) for k in kinds
            ]
            print(f"| {name} | " + " | ".join(cells * len(alphas)) + " |")
        for m in METHODS:
            cells = [
                pair([chosen[key][1] for s in seeds if (key := (dataset, size, k, m, a, s)) in chosen])
                for a in alphas
                for k in kinds
            ]
            if any(cells):
                print(f"| {m} | " + " | ".join(cells) + " |")
        returned = [
            r
            for (d, s, _, m, _, _), (_, r) in chosen.items()
            if (d, s, m) == (dataset, size, "auto") and r.get("returned_original")
        ]
        print(f"\n`auto` returned the original (do no harm) in {len(returned)} of its runs here.")


if __name__ == "__main__":
    main()
