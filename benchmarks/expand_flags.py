"""Forget-set expansion from one or two flagged samples, and with clean samples flagged by mistake (digits).

Part 1, few flags (issue 18.2): BadNet poison at 1 % of the training set (12 samples) with three
trigger corners and target classes, seeds 0-2, S_f = the first 1 and 2 manipulated samples; also
interclass confusion and random swap at 5 % with 1 and 2 flags (no target there; shown to stay honest).
Part 2, false flags (issue 18.4): poison at 3 % (36 samples, two corners/targets), interclass and random
swap at 5 %, alpha 0.1, false-flag shares 0, 0.5 and 1.0 of |S_f| (clean training samples added to S_f,
as the bench's `false_flags` axis draws them), with `auto`'s screen on (default) and off.

Every expansion sees the model, the training split as given and S_f; precision and recall against S_m
are computed here, never inside a strategy.

    PYTHONPATH=src python benchmarks/expand_flags.py            # run, write results/expand_flags.{json,md}
    PYTHONPATH=src python benchmarks/expand_flags.py --report   # re-write the .md from the .json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
NAME = "expand_flags"
POISON_1 = (("top-left", 3), ("bottom-left", 7), ("bottom-right", 0))
POISON_3 = (("bottom-right", 0), ("top-left", 3))
SHARES = (0.0, 0.5, 1.0)


def quality(run: Any, alpha: float, strategy: str, settings: dict[str, Any] | None, false_flags: float = 0.0) -> dict:
    from corrective import api
    from corrective.metrics import expansion_quality

    forget, n_false = api.flagged_ids(run, alpha, false_flags)
    e = api.expand_run(run, alpha, strategy, settings, false_flags=false_flags, progress=False)
    truth = run.manipulation.ids
    aside = e.set_aside
    return {
        "n_flagged": len(forget),
        "n_false_flags": n_false,
        "chosen": e.chosen,
        "n_added": len(e.added),
        "n_set_aside": len(aside),
        "set_aside_true": int(torch.isin(aside, truth).sum()),
        "seconds": e.seconds,
        "rule": e.details.get("cutoff", {}).get("rule"),
        **expansion_quality(e.ids, forget[~torch.isin(forget, aside)], truth),
    }


def part1(seeds: list[int]) -> list[dict[str, Any]]:
    from corrective import api

    rows = []
    cases: list[tuple[str, float, dict[str, Any]]] = [
        ("poison", 0.01, {"corner": c, "target": t}) for c, t in POISON_1
    ] + [("interclass", 0.05, {}), ("random_swap", 0.05, {})]
    for manip, size, ms in cases:
        for seed in seeds:
            run = api.train_run("digits", manipulation=manip, size=size, seed=seed, manipulation_settings=ms)
            n_m = len(run.manipulation.ids)
            for n_flags in (1, 2):
                alpha = n_flags / n_m
                for strategy, settings in (("auto", None), ("neighbours", None)):
                    q = quality(run, alpha, strategy, settings)
                    rows.append(
                        {
                            "part": 1,
                            "manipulation": manip,
                            "size": size,
                            **ms,
                            "seed": seed,
                            "n_manipulated": n_m,
                            "strategy": strategy,
                            **q,
                        }
                    )
            print(f"part 1 {manip} {ms} seed {seed} done", flush=True)
    return rows


def part2(seeds: list[int]) -> list[dict[str, Any]]:
    from corrective import api

    rows = []
    cases: list[tuple[str, float, dict[str, Any]]] = [
        ("poison", 0.03, {"corner": c, "target": t}) for c, t in POISON_3
    ] + [("interclass", 0.05, {}), ("random_swap", 0.05, {})]
    for manip, size, ms in cases:
        for seed in seeds:
            run = api.train_run("digits", manipulation=manip, size=size, seed=seed, manipulation_settings=ms)
            for share in SHARES:
                for screen in (True, False):
                    q = quality(run, 0.1, "auto", {"screen": screen}, share)
                    rows.append(
                        {
                            "part": 2,
                            "manipulation": manip,
                            "size": size,
                            **ms,
                            "seed": seed,
                            "n_manipulated": len(run.manipulation.ids),
                            "false_flags": share,
                            "screen": screen,
                            **q,
                        }
                    )
            print(f"part 2 {manip} {ms} seed {seed} done", flush=True)
    return rows


def case_name(r: dict[str, Any]) -> str:
    if r["manipulation"] == "poison":
        return f"poison {r['size']:.0%} {r['corner']} -> {r['target']}"
    return f"{r['manipulation']} {r['size']:.0%}"


def per_seed(rows: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{r[key]:.2f}" for r in sorted(rows, key=lambda r: r["seed"]))


def mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(float(r[key]) for r in rows)


def report(data: dict[str, Any]) -> str:
    recs = data["records"]
    lines = [
        "# Forget-set expansion from few flags and with false flags (digits)",
        "",
        f"- Date: {data['date']}; machine: {data['machine']}; load before: `{data['load']}`; after: "
        f"`{data['load_after']}`.",
        f"- Command: `{data['command']}`; wall time {data['wall_minutes']:.1f} min; torch {data['torch']}.",
        "- Digits preset (cnn_small, 400 steps). **precision** and **recall** are of the expanded set (the flags "
        "kept plus the added samples) against S_m; a flagged sample the screen set aside is in neither, so a "
        "true one set aside costs recall and a false one kept costs precision. Per-seed values in seed order.",
        "- Every expansion sees only the model, the training split as given and S_f (no S_m).",
        "",
        "## Part 1: one or two flagged samples (issue 18.2)",
        "",
        "Target: poison 1 % with 1-2 flagged samples, recall >= 0.9 at precision >= 0.9 (3 seeds, every corner and "
        "target). `neighbours` is the single-flag behaviour of before (similarity >= 0.9; with 2 flags the "
        "cross-validated cutoff).",
        "",
        "| case | flags | strategy | chosen | precision per seed | recall per seed | n added (mean) | target met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    part1_rows = [r for r in recs if r["part"] == 1]
    cases = list(dict.fromkeys(case_name(r) for r in part1_rows))
    met_all = []
    for case in cases:
        for n_flags in (1, 2):
            for strategy in ("auto", "neighbours"):
                rows = [
                    r
                    for r in part1_rows
                    if case_name(r) == case and r["n_flagged"] == n_flags and r["strategy"] == strategy
                ]
                if not rows:
                    continue
                poison = case.startswith("poison")
                ok = all(r["expand_precision"] >= 0.9 and r["expand_recall"] >= 0.9 for r in rows)
                if poison and strategy == "auto":
                    met_all.append(ok)
                chosen = ", ".join(sorted({r["chosen"] for r in rows}))
                lines.append(
                    f"| {case} | {n_flags} | {strategy} | {chosen} | {per_seed(rows, 'expand_precision')} | "
                    f"{per_seed(rows, 'expand_recall')} | {mean(rows, 'n_added'):.1f} | "
                    f"{('yes' if ok else '**no**') if poison and strategy == 'auto' else '-'} |"
                )
    poison_runs = [r for r in part1_rows if r["strategy"] == "auto" and r["manipulation"] == "poison"]
    ok_runs = sum(r["expand_precision"] >= 0.9 and r["expand_recall"] >= 0.9 for r in poison_runs)
    lines += [
        "",
        f"`auto` meets the poison target in {ok_runs} of {len(poison_runs)} runs ({sum(met_all)} of {len(met_all)} "
        "(case, flag count) cells on every seed); the worst run: precision "
        f"{min(r['expand_precision'] for r in poison_runs):.2f}, "
        f"recall {min(r['expand_recall'] for r in poison_runs):.2f}.",
        "",
        "## Part 2: false flags (issue 18.4)",
        "",
        "Target: false flags at shares 0.5 and 1.0 of |S_f| (3 % poison, alpha 0.1): precision and recall >= 0.8 on "
        "poison. **set aside** = flagged samples the screen dropped (false / true ones).",
        "",
        "| case | false flags | screen | chosen | precision per seed | recall per seed | set aside false/true "
        "(sum) | n added (mean) | target met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    part2_rows = [r for r in recs if r["part"] == 2]
    for case in dict.fromkeys(case_name(r) for r in part2_rows):
        for share in SHARES:
            for screen in (True, False):
                rows = [
                    r
                    for r in part2_rows
                    if case_name(r) == case and r["false_flags"] == share and r["screen"] == screen
                ]
                if not rows:
                    continue
                aside_true = sum(r["set_aside_true"] for r in rows)
                aside_false = sum(r["n_set_aside"] for r in rows) - aside_true
                target = case.startswith("poison") and share > 0 and screen
                ok = all(r["expand_precision"] >= 0.8 and r["expand_recall"] >= 0.8 for r in rows)
                chosen = ", ".join(sorted({r["chosen"] for r in rows}))
                lines.append(
                    f"| {case} | {share:g} ({rows[0]['n_false_flags']} of {rows[0]['n_flagged']}) | "
                    f"{'on' if screen else 'off'} | {chosen} | {per_seed(rows, 'expand_precision')} | "
                    f"{per_seed(rows, 'expand_recall')} | {aside_false}/{aside_true} | {mean(rows, 'n_added'):.1f} | "
                    f"{('yes' if ok else '**no**') if target else '-'} |"
                )
    lines += ["", f"Raw records: `{NAME}.json`.", ""]
    if data.get("reading"):
        lines += ["## Reading", "", data["reading"], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--report", action="store_true", help="only re-write the .md from the .json")
    args = ap.parse_args()
    out_json, out_md = RESULTS / f"{NAME}.json", RESULTS / f"{NAME}.md"
    if not args.report:
        torch.set_num_threads(1)
        seeds = [int(s) for s in args.seeds.split(",")]
        load = os.popen("uptime").read().strip()
        start = time.perf_counter()
        records = part1(seeds) + part2(seeds)
        old = json.loads(out_json.read_text()) if out_json.exists() else {}
        data = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other sessions, 1 thread",
            "load": load,
            "load_after": os.popen("uptime").read().strip(),
            "command": f"OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/expand_flags.py --seeds {args.seeds}",
            "wall_minutes": (time.perf_counter() - start) / 60,
            "torch": torch.__version__,
            "reading": old.get("reading", ""),
            "records": records,
        }
        out_json.write_text(json.dumps(data, indent=1) + "\n")
    data = json.loads(out_json.read_text())
    out_md.write_text(report(data))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
