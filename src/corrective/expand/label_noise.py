"""`label_noise`: a feature-space k-nearest-neighbour vote on each sample's given label.

A sample whose given label was changed (random swap, interclass confusion) sits among samples of its
true class in the model's penultimate features, so its neighbours' labels disagree with its own. The
score is the share of its `k` nearest neighbours (cosine similarity, itself excluded) whose given
label differs from its own; the model's own disagreement (1 - softmax probability of the given label)
breaks ties. The neighbours are found exactly up to 20,000 samples and by an approximate
inverted-file search above (`search`, `expand/knn.py`: on Fashion-MNIST, 54,000 samples, it finds
0.99 of the exact neighbours in ~6 % of the all-pairs work, and `auto`'s precision moved by at most
0.006; benchmarks/results/expand_scale.md). They may instead come from a seeded random subset of
`reference` samples (a search linear in N; off by default: on Fashion-MNIST's random swap a
10,000-sample subset lowered the expansion's precision from 0.89 to 0.76). The score does not depend on
S_f: the flagged samples calibrate it, through the cross-validated cutoff (how far down the vote the
held-out flagged samples sit). `restrict` narrows
the candidates to the given labels that occur in S_f ("labels") or to the label changes S_f shows
("transitions": given label -> the neighbours' majority label, counting only votes for those).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from corrective.expand.base import Cutoff, View, register_strategy
from corrective.expand.knn import approximate, nearest, reference_rows
from corrective.settings import setting

RESTRICT = ("none", "labels", "transitions")
SEARCH = ("auto", "exact", "approximate")
EXACT_UP_TO = 20_000  # `search=auto`: the exact search up to this many samples, the approximate one above


@dataclass(frozen=True)
class LabelNoiseSettings(Cutoff):
    k: int = setting(20, "neighbours that vote", ge=1)
    restrict: str = setting("none", "none, labels or transitions (see the module docstring)", choices=RESTRICT)
    natural: float | None = setting(0.5, "the majority vote: a score cutoff the cross-validation may accept")
    fallback: float = setting(
        0.5, "with one flagged sample (few, under auto): add those whose neighbours disagree this much"
    )
    reference: int = setting(
        0,
        "neighbours come from at most this many samples (a seeded random subset of the training split; "
        "0 or more than it has: every sample, the exact search)",
        ge=0,
    )
    search: str = setting(
        "auto",
        f"exact, approximate (an inverted-file search, expand/knn.py) or auto: exact up to {EXACT_UP_TO:,} samples",
        choices=SEARCH,
    )


def exact_search(search: str, n: int) -> bool:
    return search == "exact" or (search == "auto" and n <= EXACT_UP_TO)


def neighbour_votes(view: View, k: int, reference: int | None = None, search: str = "auto") -> Tensor:
    """(N, C) share of each sample's k nearest neighbours (cosine, itself excluded) per given label; cached.

    With `reference`, the neighbours come from a seeded random subset of at most that many samples (an
    exact search among them); otherwise `search` says how they are found.
    """
    reference = reference if reference and reference < len(view) else None
    exact = reference is not None or exact_search(search, len(view))
    key = ("votes", k, reference, exact)
    if key not in view.cache:
        unit = torch.nn.functional.normalize(view.features, dim=1)
        n, c = len(unit), int(view.labels.max()) + 1
        if exact:
            nearest_ids = nearest(unit, k, references=reference_rows(n, reference, view.seed))
        else:
            nearest_ids = approximate(unit, k, seed=view.seed)
        k = nearest_ids.shape[1]
        votes = torch.zeros(n, c).scatter_add_(1, view.labels[nearest_ids], torch.ones(n, k))
        view.cache[key] = votes / max(k, 1)
    cached: Tensor = view.cache[key]
    return cached


@register_strategy(LabelNoiseSettings)
def label_noise(view: View, seeds: Tensor, settings: LabelNoiseSettings) -> Tensor:
    """Share of feature-space neighbours whose given label disagrees with the sample's own."""
    votes = neighbour_votes(view, settings.k, settings.reference, settings.search)
    rows = torch.arange(len(view))
    tie = 1e-3 * (1.0 - view.probs[rows, view.labels])
    if settings.restrict == "transitions":
        other = votes.clone()
        other[rows, view.labels] = -1.0
        allowed = torch.zeros_like(votes, dtype=torch.bool)
        allowed[view.labels[seeds], other[seeds].argmax(1)] = True  # label changes S_f shows
        return (votes * allowed[view.labels]).sum(1) + tie
    score = 1.0 - votes[rows, view.labels] + tie
    if settings.restrict == "labels":
        score = torch.where(torch.isin(view.labels, view.labels[seeds].unique()), score, torch.tensor(float("-inf")))
    return score
