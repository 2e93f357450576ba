"""REM's cost against a retrain and its score, two versions of the package side by side in one run.

For each cell (manipulation, training type, seed, alpha) of the rem-digits protocol and each version (a `src`
folder: `--before`, `--after`), one worker process on one thread trains the original (seeded: the same
model in both), then times a retrain and REM on the same task and scores both (`metrics.evaluate`). The
versions alternate per cell (before first on even cells, after first on odd ones), so load drifts reach both
alike. Prints a markdown table and writes the rows as JSON (`--out`); REM's models are compared by a
fingerprint (the exact sum of |parameters|), so "same model" means the same numbers.

    git archive <commit> src | tar -x -C /tmp/before          # the version to compare against
    OMP_NUM_THREADS=1 python benchmarks/rem_speed.py --before /tmp/before/src --after src --out rows.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def protocol() -> tuple[list[str], list[str]]:
    """The rem-digits preset's manipulations and training types (the cells' seeds and alphas: `--seeds`,
    `--alphas`), read from the package the script runs beside (`--after`'s by default)."""
    from corrective.bench import load_spec

    spec = load_spec(preset="rem-digits")
    return [m.kind for m in spec.manipulations], list(spec.training)


def worker(cell: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from corrective import api
    from corrective.methods import make_settings, run_method
    from corrective.metrics import evaluate

    run = api.train_run("digits", manipulation=cell["manipulation"], training=cell["training"], seed=cell["seed"])
    forget_ids = run.manipulation.forget_ids(cell["alpha"])
    task = api.make_task(run, forget_ids, progress=False)
    out: dict = {}
    for method in ("retrain", "rem"):
        start = time.perf_counter()
        model, _ = run_method(task, method, make_settings(method))
        out[f"{method}_s"] = time.perf_counter() - start
        out[f"{method}_score"] = evaluate(model, run.dataset, run.manipulation, reference=run.model)["score"]
        if method == "rem":
            state = model.state_dict().values()
            out["rem_fingerprint"] = repr(float(sum(v.double().abs().sum() for v in state if v.is_floating_point())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="src folder of the version to compare against")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--alphas", default="0.5")
    ap.add_argument("--out")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    versions = {"before": args.before, "after": args.after}
    manipulations, trainings = protocol()
    cells = [
        {"manipulation": m, "training": t, "seed": int(s), "alpha": float(a)}
        for s in args.seeds.split(",")
        for a in args.alphas.split(",")
        for m in manipulations
        for t in trainings
    ]
    rows = []
    for i, cell in enumerate(cells):
        order = list(versions) if i % 2 == 0 else list(reversed(versions))
        for version in order:
            env = {**os.environ, "PYTHONPATH": versions[version], "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, __file__, "--worker", json.dumps(cell)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row = {**cell, "version": version, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("| version | REM / retrain (median over cells) | REM s (sum) | retrain s (sum) | REM score | retrain score |")
    print("|---|---|---|---|---|---|")
    for version in versions:
        mine = [r for r in rows if r["version"] == version]
        ratio = statistics.median(r["rem_s"] / r["retrain_s"] for r in mine)
        print(
            f"| {version} | {ratio:.2f} | {sum(r['rem_s'] for r in mine):.1f} | {sum(r['retrain_s'] for r in mine):.1f}"
            f" | {100 * statistics.mean(r['rem_score'] for r in mine):.2f}"
            f" | {100 * statistics.mean(r['retrain_score'] for r in mine):.2f} |"
        )
    same = sum(
        a["rem_fingerprint"] == b["rem_fingerprint"]
        for a in rows
        for b in rows
        if a["version"] == "before" and b["version"] == "after" and all(a[k] == b[k] for k in cells[0])
    )
    print(f"\nREM's model the same number for number in {same} of {len(cells)} cells")


if __name__ == "__main__":
    main()
