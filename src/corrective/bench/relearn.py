"""Does the correction last? The relearn probe: benchmark only, since it needs the manipulated set S_m.

Purified models are known to re-learn a backdoor from a handful of poisoned samples (Min et al., NeurIPS
2024, arXiv 2410.09838). The probe fine-tunes a copy of a model (the probed model is never changed) for
`STEPS` of the training recipe's steps at its learning rate, with the one training loop, on the clean
training data (`S_tr \\ S_m`) mixed with a fixed few manipulated samples drawn from `S_m` as the model saw
them (`SHARE` of the probe's data; the same samples for every method and alpha of a seed), then measures it.
A genuine removal should behave like the oracle under the same exposure; a masked one springs back.

No method can reach this module: methods see only `UnlearnTask`, and the bench calls the probe after a
method has returned its model.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.metrics import evaluate
from corrective.names import RELEARN_OF
from corrective.training import cross_entropy, train

if TYPE_CHECKING:
    from corrective.api import Run

STEPS = 0.05  # share of the training recipe's steps
SHARE = 0.01  # share of the probe's data drawn from S_m


def probe_split(run: Run, share: float = SHARE) -> tuple[Split, int]:
    """(The probe's training data, how many of its samples come from S_m).

    Every clean training sample (`S_tr \\ S_m`, its own label) and k = round(share * n / (1 - share)) samples
    of `S_m` with their given labels and trigger (share k / (n + k) of the probe's data), drawn by one
    permutation seeded by the run's seed: the same for every method and alpha of that run.
    """
    train_split = run.train_split  # the training data as given: manipulated labels, triggers on S_m
    s_m = run.manipulation.ids.cpu()
    clean = ~torch.isin(train_split.ids.cpu(), s_m)
    n_clean = int(clean.sum())
    k = min(len(s_m), max(1, round(share * n_clean / (1 - share)))) if len(s_m) else 0
    gen = torch.Generator().manual_seed(seeds.derive(run.seed, seeds.salt("run", "relearn_probe")))
    chosen = s_m[torch.randperm(len(s_m), generator=gen)[:k]]
    positions = torch.cat([clean.nonzero().squeeze(1), train_split.positions_of(chosen).cpu()])
    return train_split.subset(positions), k


def relearn(run: Run, model: nn.Module | None = None, *, steps: float = STEPS, share: float = SHARE) -> dict[str, Any]:
    """Probe a copy of `model` (a model of `run`'s task; default the run's own): the record fields `relearn_*`."""
    model = run.model if model is None else model
    split, k = probe_split(run, share)
    cfg = run.config.scaled(steps, seed=run.seed)
    probe = copy.deepcopy(model)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        train(probe, split, Pipeline.of(run.dataset), cfg, cross_entropy, desc="relearn probe", progress=False)
    metrics = evaluate(probe, run.dataset, run.manipulation)
    seconds = time.perf_counter() - start  # fine-tuning and measuring: the probe's whole cost
    out: dict[str, Any] = {f"relearn_{m}": metrics[m] for m in RELEARN_OF if m in metrics}
    return out | {"relearn_steps": cfg.steps, "relearn_manipulated": k, "relearn_seconds": seconds}
