"""Does the original answer the trigger the transplant estimates from S_f? The evidence `auto` reads where its
expansion chose label_noise (`methods.transplant.trigger_response`), for every original model of bench folders.

    python benchmarks/trigger_response.py [--alphas 0.1,0.5] FOLDER [FOLDER ...] > rows.md

For every original kept in a bench folder (`corrective bench --out FOLDER`: its `models/` and `results.jsonl`) and
every alpha, takes S_f as the bench flags it and prints `trigger_response`'s figures: the share of unflagged samples
of other labels that the original assigns to the flags' most common label with the estimate stamped on
(`stamped`), the larger of the same with a random image of the estimate's norm and with nothing (`control`), their
difference and whether it reaches `RESPONDS` (`answers`). Where the folder has `auto` records, the strategy its
expansion chose is printed beside (the rule is read only where it chose label_noise). Only what a method may see is
read by the response (the model, the training data as given, S_f); the manipulation names the row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from guarded_resolution import read

from corrective import api
from corrective.methods.transplant import RESPONDS, TransplantSettings, trigger_response


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--alphas", default="0.1,0.5", help="comma list of discovery rates")
    args = ap.parse_args()
    torch.set_num_threads(1)
    alphas = [float(a) for a in args.alphas.split(",")]
    print(
        f"Rows: one per original and alpha. `answers`: stamped − control >= {RESPONDS} (auto then runs the transplant "
        "where its expansion chose label_noise). Values in %.\n"
    )
    columns = [
        "dataset",
        "manipulation",
        "size",
        "seed",
        "alpha",
        "flagged",
        "label",
        "stamped",
        "control",
        "margin",
        "answers",
    ]
    print("| " + " | ".join([*columns, "auto's expansion"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for folder in args.folders:
        rows = read(folder)
        chosen = {
            (r["original_id"], r["alpha"]): r.get("expand_chosen")
            for r in rows
            if r.get("method") == "auto" and r.get("selected")
        }
        for r in rows:
            if r["stage"] != "original" or not (folder / "models" / r["job_id"]).exists():
                continue
            run = api.load_run(folder / "models" / r["job_id"], device="cpu")
            for alpha in alphas:
                flagged = api.flagged_ids(run, alpha, 0.0)[0]
                task = api.make_task(run, flagged, progress=False)
                resp = trigger_response(task, TransplantSettings())
                margin = resp.stamped - resp.control
                print(
                    f"| {r['dataset']} | {r['manipulation']} | {100 * r['size']:g} % | {r['seed']} | {alpha:g} | "
                    f"{len(flagged)} | {resp.label} | {100 * resp.stamped:.1f} | {100 * resp.control:.1f} | "
                    f"{100 * margin:.1f} | {'yes' if resp.answers else 'no'} | "
                    f"{chosen.get((r['job_id'], alpha)) or '–'} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
