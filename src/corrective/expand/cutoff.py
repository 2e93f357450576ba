"""How many ranked samples to add, chosen by cross-validation inside `S_f` (never `S_m`).

The rule (docs/methods.md, "Forget-set expansion"):

1. Split `S_f` into `folds` parts (a seeded permutation). For each part, score every sample from the
   other parts alone and count, for each held-out flagged sample b, `e_b` = the number of unflagged
   samples (the set U = S_tr \\ S_f, the same in every fold and in the final run) scoring at least
   as high as b: how deep into U one has to go to recover b.
2. No structure: when the median count exceeds `max_share * |U|` (the held-out samples rank no
   better than that share of the data), the strategy found nothing the flagged samples share:
   nothing is added.
3. Rank cutoff: `k_recall` = the `recall` quantile of the counts (linear interpolation) recovers that
   share of held-out flagged samples. Precision safeguard: if the flagged samples are a random part
   of the manipulated ones, the unflagged manipulated samples rank like the held-out ones; assuming
   the better half of them sits above every clean sample, their number is about `P = 2 * median(e)`
   and the top k of U holds about `P * R(k)` of them, R(k) the share of held-out samples with
   `e_b <= k`. The rank cutoff is the largest k <= k_recall (k_recall or one of the counts) whose
   estimated precision `P * R(k) / k` is at least `min_precision`.
4. Score cutoffs may extend it. With six flagged samples the counts say little about how many
   manipulated samples there are; the scores of U say more where they fall into two groups:
   - the clear split: Otsu's two-group split of U's scores, when it explains at least
     `min_separation` of their variance (in the full run and on average over the folds);
   - the strategy's natural threshold, where it has one (`natural`: label_noise's majority vote,
     the classifier's corrected probability 0.5); the split never reaches below it.
   An extension counts only when, in the folds, it keeps at least the `extension_recall` share of
   held-out flagged samples (by default a majority: the flagged samples themselves lie above the
   threshold) and it adds at most `split_slack` times the generous estimate `2 * mean(e)` of the
   manipulated samples in U (a held-out sample never ranked counted as all of U). With at least
   `estimate_from` flagged samples the held-out shares are many enough to estimate an extension's
   precision the same way as the rank cutoff's (`P * cv recall / k`), and it must reach `min_precision`
   too (on Fashion-MNIST the natural threshold of label_noise took in thousands of naturally confused
   clean samples: benchmarks/results/expand_fashion.md). The clear split's extension is checked against a
   tighter estimate, the larger of `P` and the counts' 90 % quantile / 0.9: where the scores fall into two
   clear groups few clean samples rank among the manipulated ones, so the upper counts are not inflated by
   them, and the median alone (its relative error ~1/sqrt(n)) refused, on Fashion-MNIST poison seed 2, a
   split that held every poisoned sample at precision 1.0 (recall 0.663 instead of 0.996). The natural
   threshold and the rank cutoff keep the median's `P`: there clean samples do interleave (digits
   interclass, Fashion-MNIST T-shirt/Shirt lost up to 0.15 precision with the 90 % estimate;
   benchmarks/results/expand_positives.md). The smallest extension that passes replaces the rank cutoff
   when it is larger.
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
    settings: Any  # the strategy settings it was run with
    held_scores: np.ndarray  # each held-out sample's score in its fold
    above_split: np.ndarray  # bool: the held-out sample scores at or above its fold's two-group split
    separation: float  # mean over folds of the split's between-group share of the score variance

    def recovered(self, k: float) -> float:
        """Share of held-out flagged samples recovered by adding the top k unflagged samples."""
        return float(np.mean(self.counts <= k)) if len(self.counts) else 0.0

    def quantile(self, q: float) -> float:
        c = np.sort(self.counts)
        pos = q * (len(c) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        if not math.isfinite(c[hi]):
            return math.inf
        return float(c[lo] + (c[hi] - c[lo]) * (pos - lo))

    def mean_count(self) -> float:
        """Mean count, a held-out sample the strategy never ranks counted as all of U."""
        return float(np.mean(np.minimum(self.counts, self.n_unflagged)))

    def summary(self) -> dict[str, Any]:
        c = [None if not math.isfinite(v) else int(v) for v in self.counts]
        return {
            "counts": c,
            "n_unflagged": self.n_unflagged,
            "folds": self.folds,
            "k_recall": _json(self.quantile(getattr(self.settings, "recall", 0.9))),
            "mean_count": self.mean_count(),
            "median_count": _json(float(np.median(self.counts))),
        }


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
    held_scores = np.zeros(len(positions))
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
        idx = part.numpy()
        counts[idx], held_scores[idx] = above.numpy(), hs.double().numpy()
        threshold, separation = split_scores(u, getattr(settings, "natural", None))
        above_split[idx] = (hs >= threshold).numpy()
        separations.append(separation)
    return Recovery(
        counts, int(unflagged.sum()), len(parts), settings, held_scores, above_split, float(np.mean(separations))
    )


def split_scores(scores: Tensor, natural: float | None = None) -> tuple[float, float]:
    """Otsu's two-group split of the finite scores: (lowest score of the upper group, between-group variance share).

    Where the strategy has a natural threshold, the split never reaches below it (the strategy's own
    meaning of "manipulated": label_noise does not call a sample whose neighbours mostly agree noisy).
    """
    s = scores[torch.isfinite(scores)].double()
    if len(s) < 2 or float(s.max() - s.min()) == 0.0:
        return math.inf, 0.0
    s = torch.sort(s, descending=True).values
    n = len(s)
    k = torch.arange(1, n, dtype=torch.float64)  # upper group = the top k
    csum = torch.cumsum(s, 0)[:-1]
    mean_hi, mean_lo = csum / k, (s.sum() - csum) / (n - k)
    between = k * (n - k) / n**2 * (mean_hi - mean_lo) ** 2
    between[s[:-1] == s[1:]] = -1.0  # split only between different values
    best = int(torch.argmax(between))
    threshold = float(s[best]) if natural is None else max(float(s[best]), natural)
    return threshold, float(between[best] / s.var(unbiased=False))


def estimate_positives(rec: Recovery) -> float:
    """A conservative estimate of the manipulated samples among the unflagged: twice the median held-out count."""
    return 2.0 * float(np.median(rec.counts))


# The held-out counts' quantile a clear split's extension estimates the positives from (step 4)
SPLIT_QUANTILE = 0.9


def estimate_split_positives(rec: Recovery) -> float:
    """The positives a clear split's extension is checked against: the larger of twice the median count and the
    `SPLIT_QUANTILE` quantile divided by that share (where the scores fall into two clear groups, few clean samples
    rank among the manipulated ones, so the upper counts are not inflated by them and estimate more tightly)."""
    q = rec.quantile(SPLIT_QUANTILE)
    return max(estimate_positives(rec), q / SPLIT_QUANTILE if math.isfinite(q) else 0.0)


def choose_cutoff(rec: Recovery, settings: Any, scores: Tensor) -> tuple[int, dict[str, Any]]:
    """The number of top-ranked unflagged samples to add (`scores`: U's in the full run), and how (JSON-able)."""
    cut: Cutoff = settings
    median = float(np.median(rec.counts))
    k_recall = rec.quantile(cut.recall)
    info: dict[str, Any] = {"rule": "rank", "k_recall": _json(k_recall), "median_count": _json(median)}
    if not math.isfinite(median) or median > cut.max_share * rec.n_unflagged:
        info |= {
            "k": 0,
            "reason": f"held-out flagged samples rank below {cut.max_share:g} of the unflagged data "
            "(median): no shared structure found, nothing added",
        }
        return 0, info
    positives = estimate_positives(rec)
    # (k, share of held-out recovered) for k_recall and every count below it; the largest precise enough wins
    points = [(c, rec.recovered(c)) for c in sorted(set(rec.counts.tolist())) if c <= k_recall]
    if math.isfinite(k_recall):
        points.append((k_recall, cut.recall))
    k, recall = 0.0, 0.0
    for c, r in sorted(points):
        if positives * r / max(c, 1.0) >= cut.min_precision:
            k, recall = c, r
    k_rank = int(round(k))
    info |= {
        "k_rank": k_rank,
        "estimated_positives": positives,
        "estimated_recall": recall,
        "cut_by_precision": k < k_recall,
    }
    # score cutoffs that may extend the rank cutoff
    cap = cut.split_slack * 2.0 * rec.mean_count()
    extensions: dict[str, tuple[int, float]] = {}
    natural = getattr(settings, "natural", None)
    threshold, separation = split_scores(scores, natural)
    if math.isfinite(threshold) and separation >= cut.min_separation and rec.separation >= cut.min_separation:
        extensions["split"] = (int((scores >= threshold).sum()), float(rec.above_split.mean()))
    info |= {"split_separation": separation, "cv_separation": rec.separation}
    if natural is not None:
        extensions["natural"] = (int((scores >= natural).sum()), float(np.mean(rec.held_scores >= natural)))
    # with enough held-out samples, an extension's precision is estimated like the rank cutoff's
    check_precision = len(rec.counts) >= cut.estimate_from

    split_positives = estimate_split_positives(rec)

    def precision_of(name: str, k_ext: int, r: float) -> float:
        return (split_positives if name == "split" else positives) * r / max(k_ext, 1)

    info["extensions"] = {
        name: {"k": k_ext, "cv_recall": r, "estimated_precision": precision_of(name, k_ext, r)}
        for name, (k_ext, r) in extensions.items()
    }
    passing = [
        (k_ext, name)
        for name, (k_ext, r) in extensions.items()
        if r >= cut.extension_recall
        and k_rank < k_ext <= cap
        and (not check_precision or precision_of(name, k_ext, r) >= cut.min_precision)
    ]
    info |= {"extension_precision_checked": check_precision, "split_estimated_positives": split_positives}
    k_final = k_rank
    if passing:
        k_final, info["rule"] = min(passing)
    info |= {"k": k_final, "extension_cap": cap}
    return k_final, info


def _json(v: float) -> float | None:
    return v if math.isfinite(v) else None
