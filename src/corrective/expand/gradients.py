"""`gradients`: similarity of last-layer per-sample gradients to those of the flagged samples (TracIn-style).

TracIn scores a training sample's influence on another by the dot product of their loss gradients.
For the last layer `z = W h + b` under cross-entropy the per-sample gradient has a closed form,
`dL/dW = (p - e_y) h^T` and `dL/db = p - e_y` (p the softmax, e_y the given label's one-hot), so the
inner product of two samples' gradients is `<p_i - e_yi, p_j - e_yj> * (<h_i, h_j> + 1)` (the `+ 1`
only where the head has a bias): no per-sample backward pass. The score is the mean (TracIn's sum
over the flagged samples, scaled) or the largest cosine similarity (`normalise`) or dot product to the
flagged samples' gradients, from the original model's single checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from corrective.expand.base import Cutoff, View, register_strategy
from corrective.models.embedding import linear_head
from corrective.settings import setting


@dataclass(frozen=True)
class GradientsSettings(Cutoff):
    aggregate: str = setting(
        "max", "mean (TracIn's sum over S_f, scaled) or max over the flagged samples", choices=("max", "mean")
    )
    normalise: bool = setting(True, "cosine similarity of the gradients instead of their dot product")
    fallback: float = setting(0.9, "with a single flagged sample: add those with similarity >= this (cosine)")


@register_strategy(GradientsSettings)
def gradients(view: View, seeds: Tensor, settings: GradientsSettings) -> Tensor:
    """Similarity of closed-form last-layer cross-entropy gradients to the flagged samples' (TracIn, one checkpoint)."""
    rows = torch.arange(len(view))
    delta = view.probs.clone()
    delta[rows, view.labels] -= 1.0  # dL/dz = p - e_y
    feats = view.features.double()
    bias = 1.0 if linear_head(view.model).bias is not None else 0.0
    sims = (delta.double() @ delta[seeds].double().T) * (feats @ feats[seeds].T + bias)
    if settings.normalise:
        norms = delta.double().norm(dim=1) * (feats.pow(2).sum(1) + bias).sqrt()
        sims = sims / (norms[:, None] * norms[seeds][None, :]).clamp(min=1e-12)
    score = sims.max(1).values if settings.aggregate == "max" else sims.mean(1)
    return score.float()
