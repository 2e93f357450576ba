"""A model's penultimate features: the input of its classifier, read with a forward hook.

Every registered model ends with one `nn.Linear` head (`fc`; the ViT calls it `head`), so the
features are what that layer receives; no model file needs to know about it. Any other model:
its `get_classifier()` (timm), else its last `nn.Linear`, else the layer the caller names (`Featured`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline, one_pass
from corrective.errors import UserError
from corrective.models.layout import inputs_in_layout

HEAD_NAMES = ("fc", "head")  # where a registered model keeps its final linear layer


def classifier(model: nn.Module) -> nn.Module:
    """The layer whose input is the model's features: `get_classifier()` where the model has it (timm),
    else a linear `fc`/`head` (the registered models), else the last `nn.Linear` in the module tree.

    A model with none of them is wrapped by the caller in `Featured` naming its classifier.
    """
    get = getattr(model, "get_classifier", None)
    if callable(get):
        layer = get()
        if isinstance(layer, nn.Module) and not isinstance(layer, nn.Identity):
            return layer
    for name in HEAD_NAMES:
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    raise UserError(
        f"model {type(model).__name__} has no classifier to read features from (no get_classifier(), no "
        "nn.Linear); name the layer whose input is the features with feature_layer='name'"
    )


def linear_head(model: nn.Module) -> nn.Linear:
    """The model's classifier as an `nn.Linear`; a clear error for a model whose classifier is not one."""
    layer = classifier(model)
    if not isinstance(layer, nn.Linear):
        raise UserError(
            f"model {type(model).__name__}: its classifier is a {type(layer).__name__}, not an nn.Linear; "
            "this needs a linear classifier (use another expansion strategy)"
        )
    return layer


class Featured(nn.Module):
    """A model with its classifier named (`feature_layer`): computes what `model` computes and exposes the
    named layer as `get_classifier()`, so features are read from that layer's input."""

    def __init__(self, model: nn.Module, feature_layer: str) -> None:
        super().__init__()
        self.model = model
        try:
            self.layer = model.get_submodule(feature_layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][-3:]
            raise UserError(
                f"model {type(model).__name__} has no layer {feature_layer!r}; name one of its modules "
                f"(e.g. {', '.join(names)})"
            ) from None

    def get_classifier(self) -> nn.Module:
        return self.layer

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


@dataclass(frozen=True)
class Embedding:
    """Per sample of a split, in its order: penultimate features, logits and given labels (float32/int64, CPU)."""

    features: Tensor  # (N, D)
    logits: Tensor  # (N, C)
    labels: Tensor  # (N,)
    ids: Tensor  # (N,)


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    """The feature pass's precision is fp32 or bf16; one clear line otherwise."""
    if precision not in PRECISIONS:
        raise UserError(f"the feature pass's precision must be fp32 or bf16, got {precision!r}")


@torch.no_grad()
def embed(
    model: nn.Module, split: Split, pipeline: Pipeline, batch_size: int = 256, precision: str = "fp32"
) -> Embedding:
    """Features (the head's input) and logits of every sample of `split`, stamp applied, model in eval mode.

    Image batches run channels-last where the model can (`models.layout`; its memory format is restored
    afterwards): on a CPU with oneDNN 3.5x faster than the default layout at batch 1,024 for cnn28 on
    Fashion-MNIST, same precision (benchmarks/results/expand_fashion.md). `precision` "bf16" runs the pass under
    bf16 autocast, as a model trained in bf16 was (about half the time again on a CPU with bf16 instructions;
    features and logits come back as float32); "fp32" (the default) does not.
    """
    check_precision(precision)
    head = classifier(model)
    captured: list[Tensor] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits: list[Tensor] = []
    try:
        with inputs_in_layout(model, one_pass(split.to(device), pipeline, batch_size)) as inputs:
            hook = head.register_forward_pre_hook(  # after the layout's trial forward
                lambda _m, args: captured.append(args[0].detach().float().flatten(1).cpu())
            )
            try:
                for x in inputs:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                        logits.append(model(x).float().cpu())
            finally:
                hook.remove()
    finally:
        model.train(was_training)
    feats = torch.cat(captured) if captured else torch.zeros(0, 0)
    out = torch.cat(logits) if logits else torch.zeros(0, 0)
    if feats.ndim != 2 or len(feats) != len(split):
        raise UserError(
            f"model {type(model).__name__}: its classifier {type(head).__name__} did not see one feature vector "
            "per sample (called more or less than once per forward); name another layer with feature_layer='name'"
        )
    return Embedding(feats, out, split.y.cpu(), split.ids.cpu())
