"""`auto` (expansion + the strongest method on expanded sets + guarded selection) against every method on digits.

    python benchmarks/auto_digits.py [--out results/auto_digits] [--seeds 0,1,2] [--alphas 0.1,0.3,0.5] \
        [--workers 2] [--expand none,auto] [--json benchmarks/results/auto_digits.json] \
        [--copy benchmarks/results/auto_digits_bench] > benchmarks/results/auto_digits.md

Runs through `corrective bench` (so every job is cached and resumable, and the expansion of S_f is computed
once per original model, alpha and strategy), two specs into one folder:

1. every registered method over its grid with the paper's selection, on S_f as found (expand none) and on
   the `auto` expansion (expand auto), the oracle, and `auto` itself (guarded selection, its own expansion);
2. SSD over its grid on poisoning with the guarded selection rule.

Then it checks the issue's targets from the records alone and prints them with the per-seed figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIPULATIONS = ("poison", "interclass", "random_swap")


def spec_text(
    name: str,
    seeds: list[int],
    alphas: list[float],
    workers: int,
    methods: str,
    expand: list[str],
    selection: str,
    manipulations: tuple[str, ...],
) -> str:
    return "\n".join(
        [
            f'name = "{name}"',
            'datasets = ["digits"]',
            f"seeds = {seeds}",
            f"alphas = {alphas}",
            "oracle = true",
            'device = "cpu"',
            f"workers = {workers}",
            f"expand = {json.dumps(expand)}",
            f'selection = ["{selection}"]',
            "",
            "[manipulations]",
            *(f"{m} = [0.05]" for m in manipulations),
            "",
            methods,
            "",
        ]
    )


def run_spec(text: str, out: Path, tag: str) -> float:
    path = out.parent / f"{out.name}-{tag}.toml"
    path.write_text(text)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "corrective", "bench", "--config", str(path), "--out", str(out), "--no-report"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def load(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(vals) if vals else math.nan


def label(r: dict[str, Any]) -> str:
    text = r["method"]
    if r.get("expand", "none") not in ("none", r["method"]):
        text += f"+{r['expand']}"
    if r.get("selection", "paper") != "paper":
        text += f"[{r['selection']}]"
    return text


def nan_if_none(v: float | None) -> float:
    return math.nan if v is None else v


def pct(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:.1f}"


def analyse(records: list[dict[str, Any]], alphas: list[float]) -> tuple[list[str], dict[str, Any]]:
    """The targets of issue 12 from the records; markdown lines and a JSON summary."""
    originals = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "original"}
    oracle = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "oracle"}
    runs = [r for r in records if r["stage"] == "unlearn"]
    cell: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        cell[(label(r), r["manipulation"], r["alpha"])].append(r)
    labels = sorted({label(r) for r in runs if r["is_method"]})
    lines: list[str] = []
    summary: dict[str, Any] = {"targets": {}}

    def avg(key: str, lab: str, manip: str, alpha: float) -> float:
        return mean([r.get(key) for r in cell[(lab, manip, alpha)]])

    def oavg(key: str, manip: str, table: dict) -> float:
        return mean([r.get(key) for (m, _), r in table.items() if m == manip])

    # ---- REM's score table: every method x manipulation x alpha
    lines += [
        "## REM's score (utility × healed × 100), mean over seeds",
        "",
        "| method | " + " | ".join(f"{m} {a:g}" for m in MANIPULATIONS for a in alphas) + " |",
        "|---|" + "---:|" * (len(MANIPULATIONS) * len(alphas)),
    ]
    for lab in labels:
        lines.append(
            f"| {lab} | " + " | ".join(pct(avg("score", lab, m, a)) for m in MANIPULATIONS for a in alphas) + " |"
        )
    lines.append(
        "| oracle (bound) | " + " | ".join(pct(oavg("score", m, oracle)) for m in MANIPULATIONS for _ in alphas) + " |"
    )
    lines.append(
        "| original | " + " | ".join(pct(oavg("score", m, originals)) for m in MANIPULATIONS for _ in alphas) + " |"
    )

    # ---- poisoning: acc_corr / target_acc / acc_retain
    lines += [
        "",
        "## Poisoning: acc_corr / target_acc / acc_retain (%), mean over seeds",
        "",
        "| method | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
        "|---|" + "---:|" * len(alphas),
    ]
    for lab in labels:
        lines.append(
            f"| {lab} | "
            + " | ".join(
                f"{pct(avg('acc_corr', lab, 'poison', a))} / {pct(avg('target_acc', lab, 'poison', a))} / "
                f"{pct(avg('acc_retain', lab, 'poison', a))}"
                for a in alphas
            )
            + " |"
        )
    for name, table in (("oracle (bound)", oracle), ("original", originals)):
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{pct(oavg('acc_corr', 'poison', table))} / {pct(oavg('target_acc', 'poison', table))} / "
                f"{pct(oavg('acc_retain', 'poison', table))}"
                for _ in alphas
            )
            + " |"
        )

    # ---- healed on interclass and random swap
    lines += [
        "",
        "## healed (%) on interclass and random swap, mean over seeds",
        "",
        "| method | " + " | ".join(f"{m} {a:g}" for m in MANIPULATIONS[1:] for a in alphas) + " |",
        "|---|" + "---:|" * (2 * len(alphas)),
    ]
    for lab in labels:
        lines.append(
            f"| {lab} | " + " | ".join(pct(avg("healed", lab, m, a)) for m in MANIPULATIONS[1:] for a in alphas) + " |"
        )
    lines.append(
        "| oracle (bound) | "
        + " | ".join(pct(oavg("healed", m, oracle)) for m in MANIPULATIONS[1:] for _ in alphas)
        + " |"
    )

    # ---- targets
    lines += ["", "## Targets (issue 12)", ""]
    targets = summary["targets"]
    a0 = min(alphas)
    if ("auto", "poison", a0) in {(label(r).split("[")[0], r["manipulation"], r["alpha"]) for r in runs}:
        auto_lab = next(lab for lab in labels if lab.split("[")[0] == "auto")
        per_seed = []
        for r in sorted(cell[(auto_lab, "poison", a0)], key=lambda r: r["seed"]):
            o, orc = originals[("poison", r["seed"])], oracle.get(("poison", r["seed"]))
            per_seed.append(
                {
                    "seed": r["seed"],
                    "acc_corr": r["acc_corr"],
                    "oracle_acc_corr": orc and orc["acc_corr"],
                    "target_acc": r["target_acc"],
                    "original_target_acc": o["target_acc"],
                    "acc_retain": r["acc_retain"],
                    "original_acc_retain": o["acc_retain"],
                }
            )
        corr, ocorr = mean([p["acc_corr"] for p in per_seed]), mean([p["oracle_acc_corr"] for p in per_seed])
        tdrop = mean([p["original_target_acc"] - p["target_acc"] for p in per_seed])
        rdrop = mean([p["original_acc_retain"] - p["acc_retain"] for p in per_seed])
        ok = corr >= 0.9 * ocorr and tdrop <= 0.02 and rdrop <= 0.01
        targets["auto_poison"] = {
            "met": ok,
            "acc_corr": corr,
            "oracle_acc_corr": ocorr,
            "target_drop": tdrop,
            "retain_drop": rdrop,
            "per_seed": per_seed,
        }
        lines.append(
            f"- `auto` at alpha {a0:g}, poison: acc_corr {pct(corr)} vs 0.9 × oracle {pct(0.9 * ocorr)}; "
            f"target_acc {100 * tdrop:+.1f} points below the original's (limit 2); acc_retain "
            f"{100 * rdrop:+.1f} points below (limit 1): **{'met' if ok else 'missed'}**. Per seed: "
            + "; ".join(
                f"s{p['seed']} corr {pct(p['acc_corr'])} target {pct(p['target_acc'])} "
                f"(orig {pct(p['original_target_acc'])}) retain {pct(p['acc_retain'])} "
                f"(orig {pct(p['original_acc_retain'])})"
                for p in per_seed
            )
        )
        for manip in MANIPULATIONS[1:]:
            healed, oh = avg("healed", auto_lab, manip, a0), oavg("healed", manip, oracle)
            ok = healed >= oh - 0.10
            targets[f"auto_{manip}"] = {"met": ok, "healed": healed, "oracle_healed": oh}
            lines.append(
                f"- `auto` at alpha {a0:g}, {manip}: healed {pct(healed)} vs oracle − 10 = {pct(oh - 0.10)}: "
                f"**{'met' if ok else 'missed'}**"
            )
        misses = []
        for manip in MANIPULATIONS:
            for a in [a for a in alphas if a <= 0.5]:
                mine = avg("score", auto_lab, manip, a)
                best_other = max(
                    (
                        (avg("score", lab, manip, a), lab)
                        for lab in labels
                        if lab != auto_lab and not math.isnan(avg("score", lab, manip, a))
                    ),
                    default=(math.nan, "-"),
                )
                if not mine > best_other[0]:
                    misses.append(f"{manip} {a:g}: auto {pct(mine)} vs {best_other[1]} {pct(best_other[0])}")
        targets["auto_score"] = {"met": not misses, "misses": misses}
        lines.append(
            f"- REM's score of `auto` above every other method (every entry, expanded or not) at every "
            f"alpha <= 0.5 on all three manipulations: **{'met' if not misses else 'missed'}**"
            + (f" — where not: {'; '.join(misses)}" if misses else "")
        )
        cost, grid_sizes = [], set()
        for r in runs:
            if label(r) == auto_lab:
                rt = [x for x in cell[("retrain", r["manipulation"], r["alpha"])] if x["seed"] == r["seed"]]
                if rt:
                    grid_sizes.add(r["grid_size"])
                    grid = sum(c["unlearn_seconds"] for c in r["candidates"]) + r.get("expand_seconds", 0.0)
                    cost.append(
                        (
                            (r["unlearn_seconds"] + r.get("expand_seconds", 0.0)) / rt[0]["unlearn_seconds"],
                            grid / rt[0]["unlearn_seconds"],
                            r.get("expand_seconds", 0.0) / rt[0]["unlearn_seconds"],
                        )
                    )
        if cost:
            sel, grid, exp = mean([c[0] for c in cost]), mean([c[1] for c in cost]), mean([c[2] for c in cost])
            targets["auto_cost"] = {
                "met": sel <= 1.0,
                "selected_over_retrain": sel,
                "grid_over_retrain": grid,
                "expansion_over_retrain": exp,
                "n": len(cost),
            }
            lines.append(
                f"- `auto` end to end (expansion + the selected setting) / retrain at the same alpha and "
                f"seed, mean of {len(cost)}: {sel:.2f} (limit 1): **{'met' if sel <= 1 else 'missed'}**; "
                f"the expansion alone {exp:.2f}; expansion + its whole grid "
                f"({', '.join(map(str, sorted(grid_sizes)))} settings) "
                f"{grid:.2f}."
            )
    guarded = [r for r in cell[("ssd[guarded]", "poison", a0)]]
    if guarded:
        per = []
        for r in sorted(guarded, key=lambda r: r["seed"]):
            o = originals[("poison", r["seed"])]
            paper = [x for x in cell[("ssd", "poison", a0)] if x["seed"] == r["seed"]]
            per.append(
                {
                    "seed": r["seed"],
                    "target_acc": r["target_acc"],
                    "original_target_acc": o["target_acc"],
                    "acc_corr": r["acc_corr"],
                    "guard_fallback": r.get("guard_fallback"),
                    "paper_target_acc": paper[0]["target_acc"] if paper else None,
                    "paper_acc_corr": paper[0]["acc_corr"] if paper else None,
                }
            )
        ok = all(p["original_target_acc"] - p["target_acc"] <= 0.05 for p in per)
        targets["ssd_guarded"] = {"met": ok, "per_seed": per}
        lines.append(
            f"- SSD with guarded selection at alpha {a0:g} on poison keeps target_acc within 5 points of "
            f"the original on every seed: **{'met' if ok else 'missed'}**. Per seed (guarded vs the paper's "
            "rule): "
            + "; ".join(
                f"s{p['seed']} target {pct(p['target_acc'])} (orig {pct(p['original_target_acc'])}, paper "
                f"{pct(nan_if_none(p['paper_target_acc']))}), acc_corr {pct(p['acc_corr'])} (paper "
                f"{pct(nan_if_none(p['paper_acc_corr']))}){' fallback' if p['guard_fallback'] else ''}"
                for p in per
            )
        )
    exps = [r for r in records if r["stage"] == "expand"]
    if exps:
        lines += [
            "",
            "## Expansion of S_f (precision / recall of S_m, %; n added; seconds), mean over seeds",
            "",
            "| strategy | manipulation | alpha | precision | recall | n added | seconds | chosen |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        by: dict[tuple, list] = defaultdict(list)
        for r in exps:
            by[(r["expand"], r["manipulation"], r["alpha"])].append(r)
        for (s, m, a), rs in sorted(by.items(), key=lambda kv: (kv[0][0], MANIPULATIONS.index(kv[0][1]), kv[0][2])):
            lines.append(
                f"| {s} | {m} | {a:g} | {pct(mean([r['expand_precision'] for r in rs]))} | "
                f"{pct(mean([r['expand_recall'] for r in rs]))} | {mean([r['n_expanded'] for r in rs]):.1f} "
                f"| {mean([r['expand_seconds'] for r in rs]):.2f} | "
                f"{', '.join(sorted({r.get('expand_chosen', s) for r in rs}))} |"
            )
    return lines, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/auto_digits"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--alphas", default="0.1,0.3,0.5")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--expand", default="none,auto", help="the expand axis of spec 1")
    p.add_argument("--exclude", default="rem_ideal", help="methods left out of spec 1 (comma list)")
    p.add_argument("--skip-run", action="store_true", help="only analyse the records already in --out")
    p.add_argument("--json", type=Path)
    p.add_argument("--copy", type=Path, help="copy results.jsonl.gz, summary.csv, spec and the report here")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    alphas = [float(a) for a in args.alphas.split(",")]
    expand = args.expand.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    walls = {}
    if not args.skip_run:
        exclude = json.dumps([m for m in args.exclude.split(",") if m])
        walls["methods"] = run_spec(
            spec_text(
                "auto-digits",
                seeds,
                alphas,
                args.workers,
                f"[methods.all]\ngrid = true\nexclude = {exclude}",
                expand,
                "paper",
                MANIPULATIONS,
            ),
            args.out,
            "methods",
        )
        walls["ssd-guarded"] = run_spec(
            spec_text(
                "auto-digits-ssd-guarded",
                seeds,
                alphas,
                args.workers,
                "[methods.ssd]\ngrid = true",
                ["none"],
                "guarded",
                ("poison",),
            ),
            args.out,
            "ssd-guarded",
        )
    records = load(args.out)
    lines, summary = analyse(records, alphas)
    import torch

    import corrective

    head = [
        f"# `auto` on digits ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `python benchmarks/auto_digits.py {' '.join(sys.argv[1:])}`. Machine: 2 CPU cores shared by "
        f"six sessions (load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; timings are "
        f"noisy, ratios are taken within one run); corrective {corrective.__version__}, torch "
        f"{torch.__version__}. Seeds {seeds}; alphas {alphas} (reduced from 0.1 ... 1.0 to fit the loaded "
        f"machine); digits, cnn_small, the three manipulations at 5 %; every method over its registered grid. "
        f"Wall: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items()) + ".",
        "",
    ]
    text = "\n".join(head + lines) + "\n"
    print(text)
    summary |= {"seeds": seeds, "alphas": alphas, "walls": walls, "load": [load_before[0], os.getloadavg()[0]]}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if args.copy:
        from corrective.bench import keep_records
        from corrective.report import write_report

        keep_records(args.out, args.copy)
        write_report(args.out, args.copy, fmt="md")


if __name__ == "__main__":
    main()
