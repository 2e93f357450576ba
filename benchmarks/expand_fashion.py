"""Forget-set expansion (`auto`) on trained Fashion-MNIST runs: precision, recall, n added, cost vs a training.

Each RUN is a folder written by `corrective train --dataset fashion_mnist --manipulation KIND --seed S --out RUN`.
For each run and alpha, `auto` expands S_f (the first alpha share of S_m) exactly as `corrective expand
--strategy auto` does; precision and recall against S_m are computed here (a strategy never sees S_m).
Cost: the feature pass (one forward pass over the training split) is timed once per run and shared by
the alphas (memoised; `--cache-dir` keeps it on disk between invocations, so a before/after comparison
reads the same features); **one training** is a `--probe-steps` training of the run's recipe timed in the
same process right before the expansions, scaled to the full step count (side by side: the machine is
shared). Records carry a `--label` (e.g. before / after a change), so two code versions can be compared:

    OMP_NUM_THREADS=1 PYTHONPATH=/work/main/src python benchmarks/expand_fashion.py RUN... --label before
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/expand_fashion.py RUN... --label after --append
    PYTHONPATH=src python benchmarks/expand_fashion.py --report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
# issue 17's targets for `auto` at alpha 0.1: (precision, recall); cost <= 0.1 x one training
TARGETS = {"poison": (0.95, 0.9), "interclass": (0.8, 0.7), "random_swap": (0.8, 0.7)}
COST_TARGET = 0.1


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_MEMO: dict[str, Any] = {}  # the current run's feature pass: {"file": cache file or None, "embedding": ...}
TIMING: dict[str, float] = {}


def memoise_embedding(cache_file: Path | None) -> None:
    """One feature pass per run shared by its expansions (timed once; on disk when `cache_file` is set)."""
    import corrective.expand.base as base

    _MEMO.clear()
    TIMING.clear()
    _MEMO["file"] = cache_file
    if getattr(base.embed, "memoised", False):
        return
    original = base.embed

    def embed(model: Any, split: Any, pipeline: Any, batch_size: int = 256, precision: str = "fp32") -> Any:
        if "embedding" not in _MEMO:
            cache = _MEMO["file"]
            if cache is not None and precision != "fp32":
                cache = cache.with_name(f"{cache.stem}_{precision}{cache.suffix}")
            if cache is not None and cache.exists():
                blob = torch.load(cache, weights_only=False)
                _MEMO["embedding"], TIMING["seconds"] = blob["embedding"], blob["seconds"]
            else:
                start = time.perf_counter()
                extra = {"precision": precision} if precision != "fp32" else {}  # older code: fp32 only
                _MEMO["embedding"] = original(model, split, pipeline, batch_size, **extra)
                TIMING["seconds"] = time.perf_counter() - start
                if cache is not None:
                    torch.save({"embedding": _MEMO["embedding"], "seconds": TIMING["seconds"]}, cache)
        return _MEMO["embedding"]

    embed.memoised = True  # type: ignore[attr-defined]
    base.embed = embed  # type: ignore[assignment]


def training_seconds(run: Any, probe_steps: int) -> float:
    """One full training of the run's recipe, from a `probe_steps` training timed now (per-step cost x steps)."""
    from dataclasses import replace

    from corrective.data.batches import Pipeline
    from corrective.training import cross_entropy, train

    net = run.spec.build(1, next(run.model.parameters()).device)
    cfg = replace(run.config, steps=probe_steps)
    start = time.perf_counter()
    train(net, run.train_split, Pipeline.of(run.dataset), cfg, cross_entropy, progress=False)
    return (time.perf_counter() - start) / probe_steps * run.config.steps


def job(
    folder: Path,
    alphas: list[float],
    label: str,
    probe_steps: int,
    cache_dir: Path | None,
    precision: str | None = None,
) -> list[dict]:
    from corrective import api
    from corrective.metrics import expansion_quality

    run = api.load_run(folder)
    cache = cache_dir / f"{folder.name}.pt" if cache_dir else None
    memoise_embedding(cache)
    timing = TIMING
    train_s = training_seconds(run, probe_steps)
    load = os.getloadavg()[0]
    # the feature pass, timed here (before the expansions, which then read it): not inside their seconds
    import corrective.expand.base as base
    from corrective.data.batches import Pipeline

    try:
        from corrective.training import feature_precision
    except ImportError:  # code from before the bf16 feature pass: fp32 only
        prec = "fp32"
    else:
        prec = precision or feature_precision(run.config, next(run.model.parameters()).device, run.dataset.image_size)
    base.embed(run.model, run.train_split, Pipeline.of(run.dataset), precision=prec)
    m = run.manipulation
    classes = getattr(m, "classes", None)
    kind = m.kind + (f" {'/'.join(map(str, classes))}" if classes and m.kind == "interclass" else "")
    rows = []
    for alpha in alphas:
        e = api.expand_run(run, alpha, "auto", progress=False, **({"precision": precision} if precision else {}))
        forget = m.forget_ids(alpha)
        q = expansion_quality(e.ids, forget[~torch.isin(forget, e.set_aside)], m.ids)
        cost = (e.seconds + timing["seconds"]) / train_s
        rows.append(
            {
                "label": label,
                "run": folder.name,
                "manipulation": m.kind,
                "case": kind,
                "seed": run.seed,
                "alpha": alpha,
                "n_manipulated": len(m.ids),
                "n_flagged": len(forget),
                "chosen": e.chosen,
                "n_added": len(e.added),
                "n_set_aside": len(e.set_aside),
                "n_returned": len(e.ids),
                "seconds": e.seconds,
                "embed_seconds": timing["seconds"],
                "train_seconds": train_s,
                "cost": cost,
                "load1": load,
                "rss_peak_mib": peak_mib(),
                "cutoff": e.details.get("cutoff"),
                "feature_precision": prec,
                "clean_acc": run.metrics.get("clean_acc"),
                **q,
            }
        )
        print(
            f"{label} {folder.name} alpha {alpha}: {e.chosen} +{len(e.added)} P {q['expand_precision']:.3f} "
            f"R {q['expand_recall']:.3f}, {e.seconds:.0f} s + features {timing['seconds']:.0f} s vs training "
            f"{train_s:.0f} s = {cost:.3f}, rule {e.details.get('cutoff', {}).get('rule')}, load {load:.1f}",
            flush=True,
        )
    return rows


def report(data: dict[str, Any]) -> str:
    recs = data["records"]
    lines = [
        "# Forget-set expansion (`auto`) on Fashion-MNIST",
        "",
        "Written by `benchmarks/expand_fashion.py` (its docstring says how); raw records in "
        f"`{data.get('name', 'expand_fashion')}.json`. S_f = the first alpha share of S_m; "
        "**precision**/**recall** of the returned "
        "set (S_f kept by the screen + added) against S_m; **cost** = (expansion seconds + the feature pass) / "
        "one training of the run's recipe, timed in the same process (a probe training scaled to the full "
        "step count); load = the 1-minute load average when the row ran.",
        "",
        "Runs of the batch(es):",
        "",
    ]
    for run in data["runs"]:
        lines.append(f"- {run}")
    lines += [
        "",
        "| label | case | seed | alpha | n S_m | n S_f | chosen | n added | n returned | precision | recall | "
        "target | met | rule | seconds | features s | training s | cost | load | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(recs, key=lambda r: (r["case"], r["seed"], r["alpha"], r["label"])):
        pt, rt = TARGETS.get(r["manipulation"], (float("nan"), float("nan")))
        met = r["expand_precision"] >= pt and r["expand_recall"] >= rt
        target = f"P>={pt} at R>={rt}" if r["alpha"] == 0.1 else "-"
        lines.append(
            f"| {r['label']} | {r['case']} | {r['seed']} | {r['alpha']:g} | {r['n_manipulated']} | {r['n_flagged']} | "
            f"{r['chosen']} | {r['n_added']} | {r['n_returned']} | {r['expand_precision']:.3f} | "
            f"{r['expand_recall']:.3f} | {target} | {('yes' if met else '**no**') if r['alpha'] == 0.1 else '-'} | "
            f"{(r['cutoff'] or {}).get('rule')} | {r['seconds']:.0f} | {r['embed_seconds']:.0f} | "
            f"{r['train_seconds']:.0f} | {r['cost']:.3f} | {r['load1']:.1f} | {r['rss_peak_mib']:.0f} |"
        )
    lines += ["", *data.get("notes", []), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--alphas", default="0.1")
    ap.add_argument("--label", default="after")
    ap.add_argument("--probe-steps", type=int, default=60)
    ap.add_argument("--cache-dir", type=Path, default=None, help="keep each run's feature pass here")
    ap.add_argument("--name", default="expand_fashion")
    ap.add_argument("--precision", default=None, help="the feature pass's (default: the run's training precision)")
    ap.add_argument("--append", action="store_true", help="add to the .json's records (same label+run replaced)")
    ap.add_argument("--report", action="store_true", help="only re-write the .md from the .json")
    args = ap.parse_args()
    out_json, out_md = RESULTS / f"{args.name}.json", RESULTS / f"{args.name}.md"
    if not args.report:
        torch.set_num_threads(1)
        alphas = [float(a) for a in args.alphas.split(",")]
        if args.cache_dir:
            args.cache_dir.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        import corrective

        batch = (
            f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} label {args.label}: "
            f"corrective from {Path(corrective.__file__).parent} (worktree at {commit}), {platform.machine()}, "
            f"{os.cpu_count()} cores shared, 1 thread, load before `{os.popen('uptime').read().strip()}`; "
            f"`OMP_NUM_THREADS=1 python benchmarks/expand_fashion.py {' '.join(map(str, args.runs))} "
            f"--alphas {args.alphas} --label {args.label} --probe-steps {args.probe_steps}"
            + (f" --precision {args.precision}" if args.precision else "")
            + "`"
        )
        records: list[dict[str, Any]] = []
        for folder in args.runs:
            records += job(folder, alphas, args.label, args.probe_steps, args.cache_dir, args.precision)
        old = json.loads(out_json.read_text()) if args.append and out_json.exists() else {"records": [], "runs": []}
        done = {(r["label"], r["run"], r["alpha"]) for r in records}
        data = {
            "name": args.name,
            "runs": old["runs"] + [batch],
            "notes": old.get("notes", []),
            "records": [r for r in old["records"] if (r["label"], r["run"], r["alpha"]) not in done] + records,
        }
        out_json.write_text(json.dumps(data, indent=1, default=str) + "\n")
    data = json.loads(out_json.read_text())
    out_md.write_text(report(data))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
