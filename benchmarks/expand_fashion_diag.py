"""Diagnosis of the expansion on a trained run: what each score can reach against S_m (benchmark only).

For one trained run (`corrective train ... --out RUN`) and S_f = the first `--alpha` share of S_m, print
for several per-sample scores (computed from the model, the training split as given and S_f only) the
precision/recall curve against S_m: the best precision at recall >= 0.7 / 0.9, and the recall at
precision >= 0.8 — the limit of any cutoff on that score. Then `auto` as `corrective expand` runs it
(its cutoff details, precision, recall). S_m is read here, for the diagnosis, never by a strategy.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/expand_fashion_diag.py RUN [--alpha 0.1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def curve(score: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> dict[str, float]:
    """Best precision at recall >= 0.7 and 0.9, recall at precision >= 0.8 (over all cutoffs on the score)."""
    s = score[candidates].double().numpy()
    y = positive[candidates].numpy()
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(y[order])
    n = np.arange(1, len(order) + 1)
    total = int(positive.sum())
    prec, rec = tp / n, tp / max(total, 1)
    out: dict[str, float] = {}
    for r in (0.7, 0.9):
        ok = rec >= r
        out[f"P@R{r}"] = float(prec[ok].max()) if ok.any() else float("nan")
    ok = prec >= 0.8
    out["R@P0.8"] = float(rec[ok].max()) if ok.any() else 0.0
    return out


def main() -> None:
    from corrective import api
    from corrective.data.batches import Pipeline
    from corrective.expand.base import View
    from corrective.expand.label_noise import neighbour_votes
    from corrective.metrics import expansion_quality

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--auto", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--k", type=int, nargs="+", default=[20])
    ap.add_argument("--cache", type=Path, default=None, help="save/load the feature pass here (a .pt file)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = api.load_run(args.run)
    forget = run.manipulation.forget_ids(args.alpha)
    view = View(run.model, run.train_split, Pipeline.of(run.dataset), run.seed)
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.exists():
        blob = torch.load(args.cache, weights_only=False)  # expand_fashion.py's cache, or this script's own
        view.embedding = blob["embedding"] if isinstance(blob, dict) else blob  # type: ignore[misc]
    _ = view.features
    if args.cache is not None and not args.cache.exists():
        torch.save(view.embedding, args.cache)
    print(
        f"{args.run}: {run.manipulation.kind}, clean_acc {run.metrics.get('clean_acc')}, feature pass "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    manipulated = torch.isin(view.ids, run.manipulation.ids.cpu())
    flagged = torch.isin(view.ids, forget.cpu())
    labels_f = view.labels[flagged].unique()
    in_labels = torch.isin(view.labels, labels_f)
    rows = torch.arange(len(view))
    p_own = view.probs[rows, view.labels]
    scores: dict[str, torch.Tensor] = {"1 - p(given label)": 1 - p_own, "loss": view.loss, "-margin": -view.margin}
    # transitions: given label -> the model's most likely other label, the pairs S_f shows
    other = view.logits.scatter(1, view.labels[:, None], float("-inf"))
    allowed = torch.zeros(view.logits.shape[1], view.logits.shape[1], dtype=torch.bool)
    allowed[view.labels[flagged], other[flagged].argmax(1)] = True
    masked = torch.where(allowed[view.labels], view.logits, torch.tensor(float("-inf")))
    own = view.logits[rows, view.labels]
    scores["transition margin"] = masked.max(1).values - own
    pm = torch.where(allowed[view.labels], view.probs, torch.tensor(0.0))
    scores["transition p"] = pm.max(1).values
    print(f"  transitions S_f shows: {allowed.nonzero().tolist()[:20]} ({int(allowed.sum())})", flush=True)
    for k in args.k:
        t0 = time.perf_counter()
        v = neighbour_votes(view, k)
        print(f"  votes k={k}: {time.perf_counter() - t0:.1f} s", flush=True)
        scores[f"vote k={k}"] = 1 - v[rows, view.labels] + 1e-3 * (1 - p_own)
        scores[f"vote k={k} + (1-p)"] = 1 - v[rows, view.labels] + (1 - p_own)
        tv = (v * allowed[view.labels]).sum(1)
        scores[f"transition vote k={k}"] = tv + 1e-3 * (1 - p_own)
        scores[f"transition vote k={k} + p"] = tv + pm.max(1).values
    print(
        f"  n manipulated {int(manipulated.sum())}, flagged {int(flagged.sum())}, flagged labels "
        f"{labels_f.tolist()}; model disagrees (margin<0) on {int((view.margin < 0).sum())} samples, "
        f"{int((manipulated & (view.margin < 0)).sum())} of them manipulated",
        flush=True,
    )
    unflagged = ~flagged
    for where, cand in (("all", unflagged), ("flagged labels", unflagged & in_labels)):
        for name, s in scores.items():
            # the curve over the unflagged candidates, S_f counted as already in (as the expansion's P/R)
            c = curve(s, manipulated & unflagged, cand)
            print(f"  [{where}] {name:24s} " + " ".join(f"{k} {v:.3f}" for k, v in c.items()), flush=True)
    if args.auto:
        t0 = time.perf_counter()
        e = api.expand_run(run, args.alpha, "auto", progress=False)
        q = expansion_quality(e.ids, forget, run.manipulation.ids)
        print(
            f"  auto: chose {e.chosen}, added {len(e.added)}, {time.perf_counter() - t0:.1f} s, "
            f"P {q['expand_precision']:.3f} R {q['expand_recall']:.3f}"
        )
        print("  cutoff " + json.dumps(e.details.get("cutoff"), default=str))
        print(
            "  cv "
            + json.dumps(
                {k: {kk: vv for kk, vv in v.items() if kk != "counts"} for k, v in e.details.get("cv", {}).items()}
            )
        )


if __name__ == "__main__":
    main()
