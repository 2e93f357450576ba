"""Issue 18's `auto` targets on digits that no other benchmark measures: durability, one flag, false flags, cost.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/harm_targets.py [--part relearn,oneflag,falseflags] \
        [--out-root /tmp/harm_targets] [--keep] > benchmarks/results/harm_targets.md
    PYTHONPATH=src python benchmarks/harm_targets.py --skip-run --records   # re-print from the committed records

Three bench specs, each `auto` with its defaults (its own expansion, base and guarded selection) beside the
oracle (retraining without S_m), digits, seeds 0-2:

- `relearn` (benchmarks/harm_relearn.toml): poison, interclass and random swap at 5 %, alpha 0.1, with both
  kinds of relearn probe (mixed: clean training data plus 1 % of S_m; retain_only: the clean data alone).
  Target: auto's acc_corr after each probe within 5 points of the oracle's.
- `oneflag` (benchmarks/harm_oneflag.toml): BadNet poison at 1 % (12 samples), alpha 0.1 and 0.2 (1 and 2
  flagged samples), for each (corner, target) pair of benchmarks/expand_flags.py. Target: acc_corr >= 0.8x
  the oracle's.
- `falseflags` (benchmarks/harm_falseflags.toml): poison at 3 % (36 samples), alpha 0.1 (4 flagged), clean
  false flags at shares 0, 0.5 and 1.0 of |S_f|, two (corner, target) pairs. Target: acc_corr >= 0.8x the
  oracle's with target_acc within 2 points of the original's.

Cost (oneflag and falseflags, where no probe runs inside the jobs): `auto`'s whole job (every candidate of its
grid and its evaluation) plus its expansion job, in the workers' CPU seconds, over the oracle's job (one
retraining of the same recipe) at the same seed, measured in the same run. Target: <= 0.5. The relearn part's
jobs hold the relearn probes as well, so there `auto`'s own work alone is compared: every candidate that ran plus
the expansion, in seconds, over the oracle's training.

`--keep` copies each part's records (results.jsonl.gz and spec.json) to benchmarks/results/harm_relearn_bench/
(with its report.md and figures: the relearn view of both kinds) and harm_targets_bench/<part>/ for the others;
`--skip-run --records` prints the tables from those. `--seeds 0,1,...` runs other seeds than the specs' 0-2 (their
records are kept beside, e.g. results/harm_relearn_10seeds_bench/); `--workers N` runs N bench workers;
`--dataset fashion_mnist` runs the parts on Fashion-MNIST (records beside: harm_targets_bench/<part>_fashion_mnist/,
results/harm_relearn_fashion_mnist_bench/).
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench

HERE = Path(__file__).resolve().parent
KEPT = HERE / "results" / "harm_targets_bench"  # oneflag/, falseflags/: records and spec
KEPT_RELEARN = HERE / "results" / "harm_relearn_bench"  # records, spec and report (covered by rerender.py)
PARTS = ("relearn", "oneflag", "falseflags")
SPECS = {p: HERE / f"harm_{p}.toml" for p in PARTS}
PAIRS = {  # (corner, target) pairs per poisoning part, as benchmarks/expand_flags.py
    "oneflag": (("top-left", 3), ("bottom-left", 7), ("bottom-right", 0)),
    "falseflags": (("bottom-right", 0), ("top-left", 3)),
}
MANIPULATIONS = ("poison", "interclass", "random_swap")
KINDS = {"mixed": "relearn_", "retain_only": "relearn_retain_only_"}
RELEARN_POINTS = 0.05  # auto after the probe within 5 points of the oracle after it
RATIO = 0.8  # one flag, false flags: auto's acc_corr >= 0.8x the oracle's
TARGET_POINTS = 0.02  # false flags: target_acc within 2 points of the original's
COST = 0.5  # auto <= 0.5x one retrain, expansion included
# what each dataset sets over the parts' specs (the specs are digits'): Fashion-MNIST's 1 % poison is 540 samples,
# so alphas 0.002 and 0.004 flag 1 and 2 of them as digits' 0.1 and 0.2 flag 1 and 2 of its 12
DATASETS: dict[str, dict[str, dict[str, Any]]] = {
    "digits": {},
    "fashion_mnist": {
        part: {"datasets": ["fashion_mnist"], **({"alphas": [0.002, 0.004]} if part == "oneflag" else {})}
        for part in PARTS
    },
}


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def per_seed(values: list[float]) -> str:
    return ", ".join(pct(v) for v in values)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def load_line() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run_part(part: str, out: Path, extra: dict[str, Any]) -> float:
    """Run one part's spec (once per pair for the poisoning parts, `extra` settings over it) into `out`; its wall
    seconds."""
    start = time.perf_counter()
    pairs: tuple[tuple[str, int] | None, ...] = PAIRS.get(part, (None,))  # type: ignore[assignment]
    for pair in pairs:
        sets: dict[str, Any] = dict(extra)  # the pair's corner and target over the caller's settings
        if pair is not None:
            sets |= {"manipulations.poison.corner": pair[0], "manipulations.poison.target": pair[1]}
        result = run_bench(load_spec(config=SPECS[part], sets=sets), out, progress=False)
        if result.failed:
            raise SystemExit(f"{part}: bench jobs failed: {result.failed[:3]}")
    return time.perf_counter() - start


def kept(part: str, seeds: str | None = None, dataset: str = "digits") -> Path:
    """Where a part's records are kept; other seeds than the specs' (`--seeds`) keep theirs beside, named by
    their number (the relearn part's 10 seeds: results/harm_relearn_10seeds_bench), another dataset than digits
    by its name before it (results/harm_targets_bench/falseflags_fashion_mnist, ..._fashion_mnist_10seeds)."""
    tags = ([] if dataset == "digits" else [dataset]) + ([f"{len(seeds.split(','))}seeds"] if seeds else [])
    tag = "".join(f"_{t}" for t in tags)  # digits at the specs' seeds: none
    return KEPT_RELEARN.with_name(f"harm_relearn{tag}_bench") if part == "relearn" else KEPT / f"{part}{tag}"


def keep(part: str, out: Path, seeds: str | None = None, dataset: str = "digits") -> None:
    """The part's records (and spec) compressed into the repository; for relearn also its report (the relearn view
    with both kinds), as `rerender.py` re-draws it."""
    dest = kept(part, seeds, dataset)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.jsonl.gz").write_bytes(gzip.compress((out / "results.jsonl").read_bytes(), mtime=0))
    if (out / "spec.json").exists():
        shutil.copyfile(out / "spec.json", dest / "spec.json")
    if part == "relearn":
        from corrective.report import write_report

        write_report(out, out / "report_md", fmt="md")
        shutil.copyfile(out / "report_md" / "report.md", dest / "report.md")
        shutil.rmtree(dest / "figures", ignore_errors=True)
        shutil.copytree(out / "report_md" / "figures", dest / "figures")


def records_of(folder: Path) -> list[dict[str, Any]]:
    plain, packed = folder / "results.jsonl", folder / "results.jsonl.gz"
    if plain.exists():
        return read_records(plain)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"harm_targets_{os.getpid()}.jsonl"
    tmp.write_bytes(gzip.decompress(packed.read_bytes()))
    try:
        return read_records(tmp)
    finally:
        tmp.unlink()


def case(r: dict[str, Any]) -> str:
    """The manipulation and its corner and target where they were set."""
    if r["manipulation"] != "poison" or "corner" not in r:
        return str(r["manipulation"])
    return f"poison {r['corner']} -> {r['target']}"


class Records:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.originals = {r["job_id"]: r for r in records if r["stage"] == "original"}
        self.oracle = {r["original_id"]: r for r in records if r["stage"] == "oracle"}
        self.expands = {
            (r["original_id"], r["alpha"], r.get("false_flags", 0.0)): r for r in records if r["stage"] == "expand"
        }
        self.autos = [r for r in records if r["stage"] == "unlearn" and r["method"] == "auto"]

    def cost(self, r: dict[str, Any]) -> tuple[float, float]:
        """(auto's whole job + its expansion job in CPU seconds, over the oracle's job: the bench's measurements of
        each candidate included; auto's own work — every candidate that ran + the expansion, in seconds — over the
        oracle's training), at the same seed. (Until 2026-12-06 the second figure counted the selected candidate
        alone, which understated a search that ran two.)"""
        orc = self.oracle[r["original_id"]]
        exp = self.expands.get((r["original_id"], r["alpha"], r.get("false_flags", 0.0)), {})
        cpu = (r["job_cpu_seconds"] + exp.get("job_cpu_seconds", 0.0)) / orc["job_cpu_seconds"]
        ran = math.fsum(c["unlearn_seconds"] for c in r.get("candidates", [r]))
        work = (ran + r.get("expand_seconds", 0.0)) / orc["unlearn_seconds"]
        return cpu, work


def seed_list(recs: Records) -> str:
    seeds = sorted({r["seed"] for r in recs.autos})
    return f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds))


def relearn_table(recs: Records) -> list[str]:
    out = [
        "| manipulation | kind | oracle acc_corr before → after (per seed) | auto acc_corr before → after "
        "(per seed) | auto − oracle after (points) | auto attack_success after | oracle attack_success after "
        "| auto target_acc after | target |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for m in MANIPULATIONS:
        autos = sorted((r for r in recs.autos if r["manipulation"] == m), key=lambda r: r["seed"])
        if not autos:
            continue
        oracles = [recs.oracle[r["original_id"]] for r in autos]
        for kind, pre in KINDS.items():
            oa, aa = [o[f"{pre}acc_corr"] for o in oracles], [r[f"{pre}acc_corr"] for r in autos]
            diff = mean(aa) - mean(oa)
            ok = diff >= -RELEARN_POINTS
            poison = m == "poison"
            out.append(
                f"| {m} | {kind} | {pct(mean([o['acc_corr'] for o in oracles]))} → {pct(mean(oa))} ({per_seed(oa)}) "
                f"| {pct(mean([r['acc_corr'] for r in autos]))} → {pct(mean(aa))} ({per_seed(aa)}) | {100 * diff:+.1f} "
                f"| {pct(mean([r[f'{pre}attack_success'] for r in autos])) if poison else ''} "
                f"| {pct(mean([o[f'{pre}attack_success'] for o in oracles])) if poison else ''} "
                f"| {pct(mean([r[f'{pre}target_acc'] for r in autos])) if poison else ''} | {verdict(ok)} |"
            )
            verdicts.append(
                f"- relearn {m} {kind}: auto {pct(mean(aa))} vs oracle {pct(mean(oa))} after the probe "
                f"({100 * diff:+.1f} points; limit −5): {verdict(ok)}"
            )
        # the jobs' CPU seconds hold the relearn probes too, so only auto's own work is compared here
        work = [recs.cost(r)[1] for r in autos]
        verdicts.append(
            f"- cost (relearn {m}): auto's own work (every candidate + the expansion, over the oracle's training) "
            f"{mean(work):.2f}x ({', '.join(f'{w:.2f}' for w in work)}; candidates run "
            f"{', '.join(str(len(r.get('candidates', [r]))) for r in autos)}; limit {COST}): "
            f"{verdict(mean(work) <= COST)}"
        )
    return out + [""] + verdicts


def poison_table(recs: Records, part: str) -> list[str]:
    out = [
        "| case | alpha | false flags | n flagged | oracle acc_corr | auto acc_corr (per seed) | ratio | "
        "target_acc original → auto | expansion P / R | returned original | cost CPU (job + expansion) | "
        "cost, auto's work (candidates + expansion) | target |",
        "|---|---:|---:|---:|---:|---|---:|---|---|---:|---:|---:|---|",
    ]
    groups: dict[tuple[str, float, float], list[dict[str, Any]]] = defaultdict(list)
    for r in recs.autos:
        groups[(case(r), r["alpha"], r.get("false_flags", 0.0))].append(r)
    verdicts, all_cpu, all_work = [], [], []
    for (name, alpha, ff), rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["seed"])
        oracles = [recs.oracle[r["original_id"]] for r in rows]
        originals = [recs.originals[r["original_id"]] for r in rows]
        oc, ac = mean([o["acc_corr"] for o in oracles]), mean([r["acc_corr"] for r in rows])
        ot, at = mean([o["target_acc"] for o in originals]), mean([r["target_acc"] for r in rows])
        costs = [recs.cost(r) for r in rows]
        all_cpu += [c for c, _ in costs]
        all_work += [w for _, w in costs]
        ratio = ac / oc
        ok = ratio >= RATIO and (part != "falseflags" or at >= ot - TARGET_POINTS)
        flagged = sorted({r.get("n_flagged", 0) for r in rows})
        out.append(
            f"| {name} | {alpha:g} | {ff:g} | {', '.join(map(str, flagged))} | {pct(oc)} | {pct(ac)} "
            f"({per_seed([r['acc_corr'] for r in rows])}) | {ratio:.2f} | {pct(ot)} → {pct(at)} | "
            f"{per_seed([r.get('expand_precision', float('nan')) for r in rows])} / "
            f"{per_seed([r.get('expand_recall', float('nan')) for r in rows])} | "
            f"{sum(bool(r.get('returned_original')) for r in rows)} | {mean([c for c, _ in costs]):.2f} | "
            f"{mean([w for _, w in costs]):.2f} | {verdict(ok)} |"
        )
        if part == "falseflags" and ff == 0:
            continue  # the reference without false flags
        what = f"target_acc {pct(at)} vs original − 2 = {pct(ot - TARGET_POINTS)}; " if part == "falseflags" else ""
        verdicts.append(
            f"- {part} {name}, alpha {alpha:g}, false flags {ff:g}: acc_corr {pct(ac)} = {ratio:.2f}x oracle "
            f"{pct(oc)} (limit {RATIO}x); {what}{verdict(ok)}"
        )
    verdicts.append(
        f"- cost ({part}): auto's job + expansion {mean(all_cpu):.2f}x the oracle's retraining in CPU seconds "
        f"(range {min(all_cpu):.2f}–{max(all_cpu):.2f}; limit {COST}): {verdict(mean(all_cpu) <= COST)}; auto's own "
        f"work (every candidate + the expansion, over the oracle's training) {mean(all_work):.2f}x "
        f"(range {min(all_work):.2f}–{max(all_work):.2f})"
    )
    return out + [""] + verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    ap.add_argument("--out-root", type=Path, default=Path("/tmp/harm_targets"))
    ap.add_argument("--skip-run", action="store_true", help="only read records already there")
    ap.add_argument("--records", action="store_true", help="read the committed records (with --skip-run)")
    ap.add_argument("--keep", action="store_true", help="copy the records to benchmarks/results/harm_targets_bench")
    ap.add_argument("--seeds", help="comma list of seeds instead of the specs' 0,1,2 (e.g. 0,1,2,3,4,5,6,7,8,9)")
    ap.add_argument("--workers", type=int, help="bench workers instead of the specs' 1")
    ap.add_argument(
        "--dataset",
        default="digits",
        choices=DATASETS,
        help="fashion_mnist: the same parts on Fashion-MNIST (cnn28, cpu28; one flag at alphas giving 1 and 2 of its "
        "540 poisoned samples)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    parts = [p.strip() for p in args.part.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part {unknown[0]!r}; known: {', '.join(PARTS)}")
    print(f"# `auto` on issue 18's durability, one-flag, false-flag and cost targets ({args.dataset})\n")
    for part in parts:
        folder = kept(part, args.seeds, args.dataset) if args.records else args.out_root / part
        before = load_line()
        extra: dict[str, Any] = dict(DATASETS[args.dataset].get(part, {}))
        if args.seeds:
            extra["seeds"] = [int(x) for x in args.seeds.split(",")]
        if args.workers:
            extra["workers"] = args.workers
        wall = None if args.skip_run else run_part(part, folder, extra)
        if args.keep and not args.records:
            keep(part, folder, args.seeds, args.dataset)
        recs = Records(records_of(folder))
        print(f"## {part}\n")
        if wall is not None:
            print(
                f"- {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPU "
                f"cores, bench workers {args.workers or 1}, torch threads 1; corrective {__version__}, "
                f"torch {torch.__version__}; wall {wall / 60:.1f} min.\n- Load before: `{before}`; after: "
                f"`{load_line()}`."
            )
        print(
            f"- Spec: `benchmarks/{SPECS[part].name}`"
            + (f", once per (corner, target) in {PAIRS[part]}" if part in PAIRS else "")
            + (f", over it {extra}" if extra else "")
            + f"; records: `{kept(part, args.seeds, args.dataset).relative_to(HERE.parent)}/results.jsonl.gz`"
            + (" (with its report: the relearn view, both kinds)" if part == "relearn" else "")
            + f". Means over seeds {seed_list(recs)} in %; per-seed values in seed order.\n"
        )
        print("\n".join(relearn_table(recs) if part == "relearn" else poison_table(recs, part)))
        print()


if __name__ == "__main__":
    main()
