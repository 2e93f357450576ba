"""How many ranked samples to add, chosen by cross-validation inside `S_f` (never `S_m`).

The rule (docs/methods.md, "Forget-set expansion"):

1. Split `S_f` into `folds` parts (a seeded permutation). For each part, score every sample from the
   other parts alone and count, for each held-out flagged sample b, `e_b` = the number of unflagged
   samples (the set U = S_tr \\ S_f, the same in every fold and in the final run) scoring at least
   as high as b: how deep into U one has to go to recover b.
2. `k_recall` = the `recall` quantile of the counts (linear interpolation): adding the top `k_recall`
   of U recovers that share of held-out flagged samples.
3. Precision safeguard. If the flagged samples are a random part of the manipulated ones, the
   unflagged manipulated samples are ranked like the held-out ones. Assuming the better half of
   them sits above every clean sample, their number is about `P = 2 * median(e)`; the top k of U
   then holds about `P * R(k)` of them, R(k) the share of held-out samples with e_b <= k. The
   cutoff is the largest k <= k_recall (k_recall or one of the counts) whose estimated precision
   `P * R(k) / k` is at least `min_precision`.
4. Clear split: Otsu's two-group split of the unflagged samples' scores, when it explains at least
   `min_separation` of their variance (in the full run and on average over the folds) and the folds'
   splits put at least the `recall` share of held-out flagged samples (rounded down to whole
   samples) in the upper group, may extend the cutoff to the upper group: a manipulation that leaves
   a distinct cluster (a trigger) is taken whole, however few flagged samples mark it.
5. No structure: when the median count exceeds `max_share * |U|` (the held-out samples rank no
   better than a quarter of the data), the strategy has found nothing the flagged samples share:
   nothing is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from corrective.expand.base import Cutoff, Score, View


@dataclass(frozen=True)
class Recovery:
    """Cross-validation of one strategy inside S_f: per held-out flagged sample, the unflagged samples above it."""

    counts: np.ndarray  # float, inf where the strategy never ranks the held-out sample (score -inf)
    n_unflagged: int
    folds: int
    above_split: np.ndarray  # bool: the held-out sample scores at or above its fold's two-group split (`split_scores`)
    separation: float  # mean over folds of the split's between-group share of the score variance

    def recovered(self, k: float) -> float:
        """Share of held-out flagged samples recovered by adding the top k unflagged samples."""
        return float(np.mean(self.counts <= k)) if len(self.counts) else 0.0

    def quantile(self, q: float) -> float:
        finite = np.sort(self.counts)
        pos = q * (len(finite) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        if not math.isfinite(finite[hi]):
            return math.inf
        return float(finite[lo] + (finite[hi] - finite[lo]) * (pos - lo))

    def summary(self) -> dict[str, Any]:
        c = [None if not math.isfinite(v) else int(v) for v in self.counts]
        return {"counts": c, "n_unflagged": self.n_unflagged, "folds": self.folds,
                "median": _json(float(np.median(self.counts)))}


def fold_parts(n: int, folds: int, seed: int) -> list[Tensor]:
    """`min(folds, n)` disjoint parts of range(n), from a permutation seeded by `seed`."""
    k = min(folds, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [perm[i::k] for i in range(k)]


def cross_validate(view: View, flagged: Tensor, score: Score, settings: Any, seed: int) -> Recovery:
    """Score from all but one part of S_f, count how deep in U each held-out flagged sample ranks."""
    positions = flagged.nonzero().squeeze(1)
    unflagged = ~flagged
    parts = fold_parts(len(positions), settings.folds, seed)
    counts = np.zeros(len(positions))
    above_split = np.zeros(len(positions), dtype=bool)
    separations = []
    for part in parts:
        held = positions[part]
        seeds = flagged.clone()
        seeds[held] = False
        s = score(view, seeds, settings)
        u = torch.sort(s[unflagged], descending=True).values
        hs = s[held]
        # number of unflagged samples scoring >= each held-out score (u is descending: search on -u)
        above = torch.searchsorted(-u, -hs, right=True).double()
        above[torch.isneginf(hs)] = math.inf
        counts[part.numpy()] = above.numpy()
        threshold, separation = split_scores(u)
        above_split[part.numpy()] = (hs >= threshold).numpy()
        separations.append(separation)
    return Recovery(counts, int(unflagged.sum()), len(parts), above_split, float(np.mean(separations)))


def split_scores(scores: Tensor) -> tuple[float, float]:
    """Otsu's two-group split of the finite scores: (threshold, between-group share of the variance)."""
    s = scores[torch.isfinite(scores)].double()
    if len(s) < 2 or float(s.max() - s.min()) == 0.0:
        return math.inf, 0.0
    s = torch.sort(s, descending=True).values
    n = len(s)
    k = torch.arange(1, n, dtype=torch.float64)  # upper group = the top k
    csum = torch.cumsum(s, 0)[:-1]
    mean_hi, mean_lo = csum / k, (s.sum() - csum) / (n - k)
    between = k * (n - k) / n**2 * (mean_hi - mean_lo) ** 2
    # only split between different values
    between[s[:-1] == s[1:]] = -1.0
    best = int(torch.argmax(between))
    return float(s[best]), float(between[best] / s.var(unbiased=False))


def choose_cutoff(rec: Recovery, settings: Cutoff, scores: Tensor) -> tuple[int, dict[str, Any]]:
    """The number of top-ranked unflagged samples to add (`scores`: theirs in the full run), and how (JSON-able)."""
    median = float(np.median(rec.counts))
    k_recall = rec.quantile(settings.recall)
    info: dict[str, Any] = {"rule": "rank", "k_recall": _json(k_recall), "median_count": _json(median)}
    if not math.isfinite(median) or median > settings.max_share * rec.n_unflagged:
        info |= {"k": 0, "reason": f"held-out flagged samples rank below {settings.max_share:g} of the unflagged data "
                                   "(median): no shared structure found, nothing added"}
        return 0, info
    positives = 2.0 * median  # estimated manipulated samples among the unflagged
    # (k, share of held-out recovered) for k_recall and every count below it; the largest precise enough wins
    points = [(c, rec.recovered(c)) for c in sorted(set(rec.counts.tolist())) if c <= k_recall]
    if math.isfinite(k_recall):
        points.append((k_recall, settings.recall))
    k, recall = 0.0, 0.0
    for c, r in sorted(points):
        if positives * r / max(c, 1.0) >= settings.min_precision:
            k, recall = c, r
    k_int = int(round(k))
    info |= {"k_rank": k_int, "estimated_positives": positives, "estimated_recall": recall,
             "cut_by_precision": k < k_recall}
    # the two-group split of the scores, where it separates them clearly and held the held-out samples
    threshold, separation = split_scores(scores)
    gap_recall = float(rec.above_split.mean())
    needed = math.floor(settings.recall * len(rec.counts)) / len(rec.counts)
    k_gap = int((scores >= threshold).sum()) if math.isfinite(threshold) else 0
    info |= {"split_threshold": _json(threshold), "split_separation": separation, "split_recall": gap_recall,
             "cv_separation": rec.separation, "k_split": k_gap}
    if (separation >= settings.min_separation and rec.separation >= settings.min_separation
            and gap_recall >= needed and k_gap > k_int):
        k_int, info["rule"] = k_gap, "split"
    info["k"] = k_int
    return k_int, info


def _json(v: float) -> float | None:
    return v if math.isfinite(v) else None
