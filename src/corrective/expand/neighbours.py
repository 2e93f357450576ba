"""`neighbours`: cosine similarity of penultimate features to the flagged samples, within their given labels.

Samples manipulated the same way share what the model learned from the manipulation (a trigger, a
confused class), and it shows in the features the head reads. Each feature vector is centred on
the mean of its given label first: what the flagged samples share beyond their label (a poisoned
target class holds clean and triggered samples, whose common label direction would otherwise
dominate). A sample's score is its largest (or mean) cosine similarity to a flagged sample; only
samples whose given label occurs among the flagged ones are candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from corrective.expand.base import Cutoff, View, register_strategy
from corrective.settings import setting


@dataclass(frozen=True)
class NeighboursSettings(Cutoff):
    aggregate: str = setting("max", "similarity over the flagged samples", choices=("max", "mean"))
    centre: bool = setting(True, "centre features on their given label's mean")
    fallback: float = setting(
        0.9, "with a single flagged sample (no cross-validation): add those with similarity >= this"
    )


@register_strategy(NeighboursSettings)
def neighbours(view: View, seeds: Tensor, settings: NeighboursSettings) -> Tensor:
    """Cosine similarity of (label-centred) penultimate features to the flagged samples, same labels only."""
    feats = view.centred if settings.centre else view.features
    unit = torch.nn.functional.normalize(feats, dim=1)
    sims = unit @ unit[seeds].T
    score = sims.max(1).values if settings.aggregate == "max" else sims.mean(1)
    candidate = torch.isin(view.labels, view.labels[seeds].unique())
    return torch.where(candidate, score, torch.tensor(float("-inf")))
