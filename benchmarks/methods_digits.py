"""The paper's unlearning methods on digits: acc_corr / acc_retain per method and alpha, Table 1, alpha*, timing.

Superseded by the bench: `corrective bench --set seeds=0,1,2` (the default preset) and its report give every
table and figure below (benchmarks/results/report_digits/); kept with its results (benchmarks/README.md).

Poison and interclass confusion at the default sizes, alpha 0.1 ... 1.0, settings picked by the selection
rule (validation accuracy + forget_changed, never the test set), several seeds, 2 single-thread workers.

    PYTHONPATH=src python benchmarks/methods_digits.py            # run, then write the .json and .md
    PYTHONPATH=src python benchmarks/methods_digits.py --report   # re-write the .md from the .json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing as mp
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
PARTS = RESULTS / "methods_digits.parts"  # one file per finished (manipulation, seed): a rerun resumes
METHODS = ("retrain", "finetune", "bad_teacher", "scrub", "ssd")
ALPHAS = tuple(round(0.1 * i, 1) for i in range(1, 11))
KEEP = (
    "method",
    "alpha",
    "settings",
    "selected",
    "n_forget",
    "unlearn_seconds",
    "acc_corr",
    "acc_retain",
    "val_accuracy",
    "forget_changed",
    "target_acc",
    "attack_success",
    "healed",
    "clean_acc",
)


def slim(rec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {k: rec[k] for k in KEEP if k in rec}
    return {**extra, **{k: round(v, 5) if isinstance(v, float) else v for k, v in out.items()}}


def job(args: tuple[str, int]) -> dict[str, Any]:
    """One (manipulation, seed): the original model, the oracle, every method at every alpha, a timing pair."""
    torch.set_num_threads(1)
    from corrective import api
    from corrective.methods import make_settings, run_method, run_methods_grid
    from corrective.methods.ssd import SSDSettings, importance_ratios, ssd_grid

    manip, seed = args
    start = time.perf_counter()
    run = api.train_run("digits", manipulation=manip, seed=seed, progress=False)
    base = {"manipulation": manip, "seed": seed}
    records = [slim({**run.metrics, "method": "none", "alpha": 0.0, "selected": True, "settings": {}}, **base)]
    oracle = api.unlearn(run, "oracle", 1.0, progress=False)
    records.append(slim(oracle.record, **base))
    for alpha in ALPHAS:
        for method in METHODS:
            result = api.unlearn(run, method, alpha, grid=True, progress=False)
            records += [slim(r, **base) for r in result.records]
    # Timing side by side in this process: SSD's whole grid (no evaluation) against one retrain, alpha 0.1 and 1.0.
    timing = []
    for alpha in (0.1, 1.0):
        task = api.make_task(run, run.manipulation.forget_ids(alpha), progress=False)
        t0 = time.perf_counter()
        _, retrain_seconds = run_method(task, "retrain", make_settings("retrain"))
        t1 = time.perf_counter()
        for _ in run_methods_grid(task, "ssd", [make_settings("ssd", g) for g in ssd_grid()]):
            pass
        timing.append(
            {
                **base,
                "alpha": alpha,
                "retrain_seconds": retrain_seconds,
                "ssd_grid_seconds": time.perf_counter() - t1,
                "retrain_wall": t1 - t0,
            }
        )
    # Figure 3: SSD's importance ratios I_f / I_r at alpha 0.5.
    task = api.make_task(run, run.manipulation.forget_ids(0.5), progress=False)
    ratios = torch.cat([r.flatten() for r in importance_ratios(task, SSDSettings()).values()])
    finite = ratios[torch.isfinite(ratios)].double()
    ratio_stats = {
        **base,
        "n_params": len(ratios),
        "n_inf": int(torch.isinf(ratios).sum()),
        "max": float(finite.max()),
        "q999": float(finite.quantile(0.999)),
        "q99": float(finite.quantile(0.99)),
        "median": float(finite.median()),
        "above_10": int((ratios > 10).sum()),
        "above_100": int((ratios > 100).sum()),
    }
    part = {"records": records, "timing": timing, "ratios": ratio_stats, "seconds": time.perf_counter() - start}
    PARTS.mkdir(parents=True, exist_ok=True)
    (PARTS / f"{manip}_{seed}.json").write_text(json.dumps(part, separators=(",", ":")))
    return part


def load_or_run(args: tuple[str, int]) -> dict[str, Any]:
    """A finished job's saved part (an interrupted run resumes), else the job."""
    path = PARTS / f"{args[0]}_{args[1]}.json"
    return json.loads(path.read_text()) if path.exists() else job(args)


def run_all(seeds: int, workers: int) -> dict[str, Any]:
    jobs = [(m, s) for s in range(seeds) for m in ("poison", "interclass")]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(load_or_run, jobs, chunksize=1)
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {mp.cpu_count()} CPU cores shared with other developers, "
        f"{workers} workers x 1 thread",
        "command": f"PYTHONPATH=src python benchmarks/methods_digits.py --seeds {seeds} --workers {workers}",
        "torch": torch.__version__,
        "wall_seconds": time.perf_counter() - start,
        "records": [r for p in parts for r in p["records"]],
        "timing": [t for p in parts for t in p["timing"]],
        "ratios": [p["ratios"] for p in parts],
    }


# ----------------------------------------------------------------------------------------------- report


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f}±{100 * sd:.1f}"


def selected(data: dict[str, Any], manip: str, method: str, alpha: float | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in data["records"]
        if r["manipulation"] == manip
        and r["method"] == method
        and r["selected"]
        and (alpha is None or r["alpha"] == alpha)
    ]


def metric_table(data: dict[str, Any], manip: str, metric: str) -> list[str]:
    lines = ["| method | " + " | ".join(f"{a:.1f}" for a in ALPHAS) + " |", "|---" * (len(ALPHAS) + 1) + "|"]
    for name in ("none", "oracle"):
        v = mean_std([r[metric] for r in selected(data, manip, name)])
        lines.append(f"| {name} (any alpha) | " + " | ".join([v] * len(ALPHAS)) + " |")
    for m in METHODS:
        cells = [mean_std([r[metric] for r in selected(data, manip, m, a)]) for a in ALPHAS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def alpha_star(data: dict[str, Any], manip: str, method: str) -> str:
    target = 0.9 * statistics.mean(r["acc_corr"] for r in selected(data, manip, "oracle"))
    for a in ALPHAS:
        rows = selected(data, manip, method, None if method == "none" else a)
        if statistics.mean(r["acc_corr"] for r in rows) >= target:
            return f"{a:.1f}"
    return "> 1.0 (never)"


def report(data: dict[str, Any]) -> str:
    seeds = sorted({r["seed"] for r in data["records"]})
    out = [
        "# The paper's unlearning methods on digits",
        "",
        f"- Date: {data['date']}; machine: {data['machine']} (timings are noisy: the CPU was shared).",
        f"- Command: `{data['command']}`; wall time {data['wall_seconds'] / 60:.1f} min; torch {data['torch']}.",
        f"- Seeds {seeds}; digits preset (cnn_small, 400 steps, batch 64); poison 5 % (61 samples, 2x2 trigger, "
        "target 0) and interclass 5 % (classes 3 and 8).",
        "- Each (method, alpha): the candidate picked by the selection rule (0.5 val_accuracy + 0.5 forget_changed, "
        "validation split carved before manipulation; never the test set). SSD: 50 settings, SCRUB: 8, others: 1.",
        "- Cells: mean±std over seeds, in %. Raw records of every candidate: `methods_digits.json`.",
        "",
    ]
    manips = [m for m in ("poison", "interclass") if any(r["manipulation"] == m for r in data["records"])]
    for manip in manips:
        title = {"poison": "BadNet poison", "interclass": "Interclass confusion"}[manip]
        out += [f"## {title}", "", "### acc_corr", "", *metric_table(data, manip, "acc_corr"), ""]
        if manip == "poison":
            out += [
                "### target_acc (clean test accuracy on the target class 0)",
                "",
                *metric_table(data, manip, "target_acc"),
                "",
            ]
        out += ["### acc_retain", "", *metric_table(data, manip, "acc_retain"), ""]
    out += [
        "## Change in acc_retain (paper's Table 1)",
        "",
        "Mean over alpha of (method − original), in points; ± is the std over the 10 alphas of the seed means.",
        "",
        "| method | poison | interclass |",
        "|---|---|---|",
    ]
    for m in METHODS:
        cells = []
        for manip in manips:
            orig = statistics.mean(r["acc_retain"] for r in selected(data, manip, "none"))
            per_alpha = [statistics.mean(r["acc_retain"] for r in selected(data, manip, m, a)) - orig for a in ALPHAS]
            cells.append(f"{100 * statistics.mean(per_alpha):+.2f} ± {100 * statistics.stdev(per_alpha):.2f}")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## alpha* (smallest alpha with mean acc_corr ≥ 0.9 × oracle acc_corr)",
        "",
        "| method | poison | interclass |",
        "|---|---|---|",
    ]
    for m in ("none", *METHODS):
        out.append(f"| {m} | " + " | ".join(alpha_star(data, manip, m) for manip in manips) + " |")
    out += [
        "",
        "## Timing (wall clock of the method alone, mean over seeds and alphas, seconds)",
        "",
        "| method | poison | interclass |",
        "|---|---|---|",
    ]
    for m in METHODS:
        cells = [f"{statistics.mean(r['unlearn_seconds'] for r in selected(data, manip, m)):.2f}" for manip in manips]
        out.append(f"| {m} (one setting) | " + " | ".join(cells) + " |")
    ratios = [t["ssd_grid_seconds"] / t["retrain_seconds"] for t in data["timing"]]
    out += [
        "",
        f"SSD's whole 50-setting grid (importances once + 50 dampenings, no evaluation) against one retrain, "
        f"measured back to back in the same process ({len(ratios)} pairs): "
        f"ratio mean {statistics.mean(ratios):.3f}, max {max(ratios):.3f} (target ≤ 0.5).",
        "",
    ]
    out += [
        "## SSD's importance ratios I_f / I_r (paper's Figure 3), alpha 0.5",
        "",
        "| manipulation | seed | params | max (finite) | 99.9th pct | 99th pct | median | > 10 | > 100 | inf |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(data["ratios"], key=lambda s: (s["manipulation"], s["seed"])):
        out.append(
            f"| {s['manipulation']} | {s['seed']} | {s['n_params']} | {s['max']:.3g} | {s['q999']:.3g} | "
            f"{s['q99']:.3g} | {s['median']:.3g} | {s['above_10']} | {s['above_100']} | {s['n_inf']} |"
        )
    out += ["", *ssd_diagnosis(data), "", *claims(data)]
    return "\n".join(out) + "\n"


def curve(data: dict[str, Any], manip: str, method: str, metric: str = "acc_corr") -> list[float]:
    return [statistics.mean(r[metric] for r in selected(data, manip, method, a)) for a in ALPHAS]


def claims(data: dict[str, Any]) -> list[str]:
    """The paper's findings, each checked against these numbers (computed, not written by hand)."""

    def base(manip: str, name: str, metric: str = "acc_corr") -> float:
        return statistics.mean(r[metric] for r in selected(data, manip, name))

    def verdict(ok: bool) -> str:
        return "reproduces" if ok else "does NOT reproduce"

    p_none, p_orc, i_none = base("poison", "none"), base("poison", "oracle"), base("interclass", "none")
    retrain = curve(data, "poison", "retrain")
    early = max(v for a, v in zip(ALPHAS, retrain, strict=True) if a <= 0.7)
    ssd_p, ssd_t = curve(data, "poison", "ssd"), curve(data, "poison", "ssd", "target_acc")
    ssd_i = curve(data, "interclass", "ssd")
    ssd_retain = statistics.mean(curve(data, "poison", "ssd", "acc_retain")) - base("poison", "none", "acc_retain")
    mean = statistics.mean
    sc_p, cf_p = mean(curve(data, "poison", "scrub")), mean(curve(data, "poison", "finetune"))
    sc_i, cf_i = mean(curve(data, "interclass", "scrub")), mean(curve(data, "interclass", "finetune"))

    def gain(manip: str, method: str) -> float:
        """Mean over alpha of the share of the original-to-oracle gap in acc_corr that the method closes."""
        lo, hi = base(manip, "none"), base(manip, "oracle")
        return (mean(curve(data, manip, method)) - lo) / (hi - lo)

    bt = [gain(m, "bad_teacher") for m in ("poison", "interclass")]
    secs = {
        m: mean(r["unlearn_seconds"] for r in data["records"] if r["method"] == m and r["selected"]) for m in METHODS
    }
    order = sorted(METHODS, key=lambda m: -secs[m])
    return [
        "## The paper's findings, checked on these numbers (generated from the records)",
        "",
        f"- RewoD needs alpha ≥ 0.8 against poison: best acc_corr at alpha ≤ 0.7 is {100 * early:.1f} % "
        f"(original {100 * p_none:.1f} %, oracle {100 * p_orc:.1f} %), alpha* = {alpha_star(data, 'poison', 'retrain')}"
        f" → {verdict(early < 0.9 * p_orc and alpha_star(data, 'poison', 'retrain') in ('0.8', '0.9', '1.0'))}.",
        f"- SSD fixes poison at alpha 0.1: acc_corr {100 * ssd_p[0]:.1f} % vs 0.9 × oracle = {90 * p_orc:.1f} %, "
        f"with target_acc {100 * ssd_t[0]:.1f} % → {verdict(ssd_p[0] >= 0.9 * p_orc)}"
        f"{' (and the target class is erased)' if ssd_t[0] < 0.5 else ''}.",
        f"- SSD gives nothing on IC: mean acc_corr over alpha {100 * mean(ssd_i):.1f} % vs original "
        f"{100 * i_none:.1f} % → {verdict(mean(ssd_i) <= i_none + 0.02)}.",
        f"- SSD costs utility on poison: mean change in acc_retain {100 * ssd_retain:+.2f} points "
        f"→ {verdict(ssd_retain < -1e-2)}.",
        f"- BadT poor on both: it closes {100 * bt[0]:.0f} % (poison) and {100 * bt[1]:.0f} % (IC) of the gap "
        f"between the original and the oracle acc_corr, mean over alpha → {verdict(max(bt) < 0.5)}.",
        f"- SCRUB beats CF on poison: mean acc_corr {100 * sc_p:.1f} % vs {100 * cf_p:.1f} % → {verdict(sc_p > cf_p)}.",
        f"- CF beats SCRUB on IC: mean acc_corr {100 * cf_i:.1f} % vs {100 * sc_i:.1f} % → {verdict(cf_i > sc_i)}.",
        f"- Table 3's order of cost (RewoD > BadT > Scrub > CF > SSD): here {' > '.join(order)} "
        f"→ {verdict(order == ['retrain', 'bad_teacher', 'scrub', 'finetune', 'ssd'])}.",
    ]


def ssd_diagnosis(data: dict[str, Any]) -> list[str]:
    """What SSD's grid could have done on poison: the selected candidate vs the best that keeps the target class."""
    lines = [
        "## SSD on poison: selected candidate vs the best candidate that keeps the target class",
        "",
        "Per alpha, mean over seeds. 'best keeping class 0' = the candidate with the highest acc_corr among those "
        "with target_acc ≥ 0.9 (a look at the test set, for diagnosis only, never used for selection).",
        "",
        "| alpha | selected acc_corr | selected target_acc | selected acc_retain | best-keeping acc_corr | "
        "its target_acc | its acc_retain |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in ALPHAS:
        sel, best = [], []
        for seed in sorted({r["seed"] for r in data["records"]}):
            cands = [
                r
                for r in data["records"]
                if r["manipulation"] == "poison" and r["method"] == "ssd" and r["alpha"] == a and r["seed"] == seed
            ]
            sel += [r for r in cands if r["selected"]]
            keep = [r for r in cands if r["target_acc"] >= 0.9]
            if keep:
                best.append(max(keep, key=lambda r: r["acc_corr"]))
        cells = [mean_std([r[k] for r in sel]) for k in ("acc_corr", "target_acc", "acc_retain")]
        cells += [mean_std([r[k] for r in best]) for k in ("acc_corr", "target_acc", "acc_retain")]
        lines.append(f"| {a:.1f} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only re-write the .md from the committed .json")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "methods_digits.json"
    if args.report:
        data = json.loads(path.read_text())
    else:
        data = run_all(args.seeds, args.workers)
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    (RESULTS / "methods_digits.md").write_text(report(data) + NOTES)
    print(report(data))


NOTES = """
## Investigation of what does not reproduce (written after the run of 2026-11-22; re-check after a rerun)

**Run cost.** 37 min wall instead of the planned ~25: the two cores were shared with other developers'
benchmarks (load average 6–10 during the run). The timing *ratios* above were measured back to back in one
process, so they hold; absolute seconds do not.

**SSD fixes poison at alpha 0.1 — not on digits, and the reason is mostly the dataset plus the selection rule,
not the implementation.**
- The selected SSD candidates reach 72 % acc_corr at alpha 0.1 but with target_acc 26 % and acc_retain 80 %:
  much of the apparent backdoor removal is class 0 being erased. The selection rule rewards this on digits:
  changing every prediction on S_f earns up to +0.5 (forget_changed), losing one class of ten costs about
  0.05 of validation accuracy. The "best keeping class 0" table (a test-set look, diagnosis only) shows what
  SSD can do without erasing the class: 39±46 % at alpha 0.1 — it works on one seed and not on the others.
- The mechanism itself works: `ssd_digits_probe.md` shows that on seed 1 at alpha 0.1 a setting with
  (a, λ) = (0.1, 0.1) removes the backdoor (91 % acc_corr) keeping class 0 and 98 % acc_retain, and with I_r on
  all of S_tr (the original SSD) the selection rule itself picks a clean fix (90 % acc_corr, target_acc 91 %).
  On seed 0 no setting does (best 15 %). The importance ratios explain the difference: on poison seeds 1 and 2
  the ratio distribution has a small median (0.44, 0.06) and a few outliers thousands of times larger — the
  paper's Figure 3 picture, where dampening a few parameters removes the trigger — while on seed 0 the median
  ratio is 15.8 with no isolated outliers, so any threshold that catches the trigger weights dampens half the
  network. With 61 poisoned samples among ~1200, 8×8 inputs and a 2×2 trigger (6 % of the pixels, against
  0.3 % on CIFAR-10), whether the trigger is carried by a few weights depends on the seed.
- True per-sample squared gradients (`per_sample=True`, removing the small-batch variance that inflates I_f
  when |S_f| is a few samples) do not change the picture (probe table).

**BadT on IC: alpha* = 0.3 is not a success.** On digits the 5 % interclass confusion barely hurts: the
original model is already at 89.6 % acc_corr ≥ 0.9 × oracle (89.4 %), so `none` itself has alpha* 0.1 on IC
and alpha* is not informative there. BadT leaves IC acc_corr where it was (it closes −6 % of the gap), as in
the paper. This is the dataset: IC at this size on digits is a weak manipulation.

**CF vs SCRUB on IC: a tie on digits (92.1 % vs 93.1 %, seed std 1–7 points).** Two dataset-scale reasons,
both measurable from the setup rather than a bug: (1) as above, IC leaves only ~10 points between the original
and the oracle, smaller than the seed spread at low alpha; (2) SCRUB's forget phase is tiny here: 100 SCRUB
steps, forget steps allowed in the first 20; |S_f| ≤ 61 fits in one batch of 64 and a pass over D_r is ~18
steps, so SCRUB takes 1–2 forget steps in total (on CIFAR-10 with 10 % IC, |S_f| up to 5000 = 10 batches per
pass, about 30 forget steps). The step-kind test (`tests/test_methods.py::test_scrub_*`) checks that the
schedule is the paper's; the small number of ascent steps is what that schedule gives at this scale.

**Table 1.** The sign pattern reproduces (SSD is the only method with a large utility loss: −10.6 points on
poison, paper −8.9), but the other methods' small gains (+0.3 to +1.0 in the paper) do not appear: digits
models are at 99.3 % acc_retain, leaving no headroom. SSD's IC loss is larger than the paper's (−7.0 vs −1.6),
again because the selection rule on digits prefers candidates that flip S_f at some cost in accuracy.
"""

if __name__ == "__main__":
    main()
