"""A practitioner's model and data outside the registry, shared by the tests of `corrective.fix`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from corrective.data import Split, load_dataset
from corrective.data.batches import Pipeline
from corrective.training import TrainConfig, train


def ones_as_sevens(build: Callable[[], nn.Module], config: TrainConfig) -> dict[str, Any]:
    """Digits with 60 samples of class 1 relabelled 7 (the first 20 of them flagged) and a user's own network
    (`build()`, seeded 0) trained on them."""
    ds = load_dataset("digits", val_fraction=0.0)
    x, y = ds.train.x.clone(), ds.train.y.clone()
    ones = (y == 1).nonzero().squeeze(1)[:60]
    y[ones] = 7
    torch.manual_seed(0)
    net = build()
    pipe = Pipeline(ds.mean, ds.std)
    train(net, Split(x, y, torch.arange(len(y))), pipe, config, progress=False)
    return {"x": x, "y": y, "xt": ds.test.x, "yt": ds.test.y, "flagged": ones[:20], "net": net.eval(), "pipe": pipe}
