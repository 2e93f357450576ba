"""Channels-last: the memory layout in which oneDNN runs convolutions fastest on a CPU, where the model allows it.

Image passes (training in bf16, the feature pass, predictions) run the model channels-last: on this project's
2-core CPU cnn28 predicts Fashion-MNIST about 2x faster so, at the same precision, with the same predictions
(benchmarks/results/eval_layout.md), and the feature pass 3.5x (expand_fashion.md). A model that reshapes its
activations with `.view` (e.g. `x.view(len(x), -1)` after a convolution, common in hand-written networks)
cannot take channels-last activations: a forward of two samples tells, and such a model keeps the default
layout instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain

import torch
from torch import Tensor, nn

from corrective.data.batches import Batch


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's 4-d weights are stored channels-last (one that is not also contiguous says so)."""
    return any(
        p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )


@torch.no_grad()
def try_channels_last(model: nn.Module, x: Tensor, was_channels_last: bool) -> bool:
    """Put the model channels-last and run two of the image batches like `x` through it, in eval mode (no running
    statistic changes; its mode restored after). True: it runs so, and is left channels-last. False (not image
    batches, or any failure in that layout): it is left in its own layout (`was_channels_last`)."""
    if x.ndim != 4 or len(x) == 0:
        return False
    was_training = model.training
    model.eval()
    try:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
        model(x[:2].contiguous(memory_format=torch.channels_last))
        return True
    except Exception:  # any failure in the other layout: the model keeps its own
        if not was_channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return False
    finally:
        model.train(was_training)


def runs_channels_last(model: nn.Module, x: Tensor) -> bool:
    """Whether `model` runs image batches like `x` channels-last (`try_channels_last`), its layout and mode
    restored after. False for other than image batches."""
    was_channels_last = is_channels_last(model)
    use = try_channels_last(model, x, was_channels_last)
    if use and not was_channels_last:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return use


@contextmanager
def image_layout(model: nn.Module, x: Tensor) -> Iterator[Callable[[Tensor], Tensor]]:
    """For a pass over batches like `x`: the model channels-last where it runs so (its layout restored after), and
    the function that puts a batch in the layout the model then runs in."""
    was_channels_last = is_channels_last(model)
    use = try_channels_last(model, x, was_channels_last)  # left channels-last where it runs so: no second move
    try:
        yield (lambda b: b.contiguous(memory_format=torch.channels_last)) if use else (lambda b: b)
    finally:
        if use and not was_channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


@contextmanager
def inputs_in_layout(model: nn.Module, batches: Iterable[Batch]) -> Iterator[Iterator[Tensor]]:
    """The inputs of `batches` in the layout the model runs in for the pass (channels-last where it can; the first
    batch decides), the model set to it and restored after."""
    it = iter(batches)
    first = next(it, None)
    if first is None:
        yield iter(())
        return
    with image_layout(model, first.x) as put:
        yield (put(b.x) for b in chain([first], it))
