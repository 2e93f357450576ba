"""A model's penultimate features: the input of its linear head, read with a forward hook.

Every registered model ends with one `nn.Linear` head (`fc`; the ViT calls it `head`), so the
features are what that layer receives; no model file needs to know about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline, one_pass
from corrective.errors import UserError

HEAD_NAMES = ("fc", "head")  # where a registered model keeps its final linear layer


def linear_head(model: nn.Module) -> nn.Linear:
    """The model's final linear layer; a clear error for a model that exposes none."""
    for name in HEAD_NAMES:
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    raise UserError(
        f"model {type(model).__name__} has no linear head `fc` (an nn.Linear as its last layer), so it exposes "
        "no penultimate features; use a registered model (see `corrective train --help`) or --strategy none"
    )


@dataclass(frozen=True)
class Embedding:
    """Per sample of a split, in its order: penultimate features, logits and given labels (float32/int64, CPU)."""

    features: Tensor  # (N, D)
    logits: Tensor  # (N, C)
    labels: Tensor  # (N,)
    ids: Tensor  # (N,)


@torch.no_grad()
def embed(model: nn.Module, split: Split, pipeline: Pipeline, batch_size: int = 1024) -> Embedding:
    """Features (the head's input) and logits of every sample of `split`, stamp applied, model in eval mode."""
    head = linear_head(model)
    captured: list[Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits: list[Tensor] = []
    try:
        for batch in one_pass(split.to(device), pipeline, batch_size):
            logits.append(model(batch.x).float().cpu())
    finally:
        hook.remove()
        model.train(was_training)
    c = head.out_features
    feats = torch.cat(captured) if captured else torch.zeros(0, head.in_features)
    out = torch.cat(logits) if logits else torch.zeros(0, c)
    if feats.ndim != 2 or len(feats) != len(split):
        raise UserError(f"model {type(model).__name__}: its head `fc` did not see one feature vector per sample")
    return Embedding(feats, out, split.y.cpu(), split.ids.cpu())
