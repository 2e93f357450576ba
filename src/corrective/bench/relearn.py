"""Does the correction last? The relearn probe: benchmark only, since it needs the manipulated set S_m.

Purified models are known to re-learn a backdoor from a handful of poisoned samples (Min et al., NeurIPS
2024, arXiv 2410.09838), and an unlearned model can recover what it forgot from fine-tuning on the clean
retain data alone ("From Dormant to Deleted", Siddiqui et al. 2025). The probe fine-tunes a copy of a model
(the probed model is never changed) for `STEPS` of the training recipe's steps at its learning rate, with
the one training loop, then measures it. Its kinds (`names.RELEARN_KINDS`) differ only in the data:
`mixed`: the clean training data (`S_tr \\ S_m`) mixed with a fixed few manipulated samples drawn from
`S_m` as the model saw them (`SHARE` of the probe's data; the same samples for every method and alpha of a
seed) — does a little renewed exposure bring the manipulation back?; `retain_only`: the clean training data
alone — does ordinary further training on clean data wake a manipulation that was only hidden?
A genuine removal should behave like the oracle under the same fine-tuning; a masked one springs back.

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
from corrective.names import RELEARN_DEFAULT, RELEARN_OF, relearn_prefix
from corrective.training import cross_entropy, train

if TYPE_CHECKING:
    from corrective.api import Run

STEPS = 0.05  # share of the training recipe's steps
SHARE = 0.01  # share of the probe's data drawn from S_m


def probe_split(run: Run, share: float = SHARE, kind: str = RELEARN_DEFAULT) -> tuple[Split, int]:
    """(The probe's training data, how many of its samples come from S_m).

    Every clean training sample (`S_tr \\ S_m`, its own label) and, for the `mixed` kind,
    k = round(share * n / (1 - share)) samples of `S_m` with their given labels and trigger (share k / (n + k)
    of the probe's data), drawn by one permutation seeded by the run's seed: the same for every method and alpha
    of that run. The `retain_only` kind: the clean samples alone (k = 0).
    """
    relearn_prefix(kind)  # an unknown kind: ValueError naming the known ones
    train_split = run.train_split  # the training data as given: manipulated labels, triggers on S_m
    s_m = run.manipulation.ids.cpu()
    clean = ~torch.isin(train_split.ids.cpu(), s_m)
    n_clean = int(clean.sum())
    k = min(len(s_m), max(1, round(share * n_clean / (1 - share)))) if len(s_m) and kind == "mixed" else 0
    gen = torch.Generator().manual_seed(seeds.derive(run.seed, seeds.salt("run", "relearn_probe")))
    chosen = s_m[torch.randperm(len(s_m), generator=gen)[:k]]
    positions = torch.cat([clean.nonzero().squeeze(1), train_split.positions_of(chosen).cpu()])
    return train_split.subset(positions), k


def relearn(
    run: Run,
    model: nn.Module | None = None,
    *,
    kind: str = RELEARN_DEFAULT,
    steps: float = STEPS,
    share: float = SHARE,
) -> dict[str, Any]:
    """Probe a copy of `model` (a model of `run`'s task; default the run's own) with one kind of probe: the
    record fields `relearn_*` (mixed) or `relearn_retain_only_*`."""
    model = run.model if model is None else model
    split, k = probe_split(run, share, kind)
    cfg = run.config.scaled(steps, seed=run.seed)
    probe = copy.deepcopy(model)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        train(probe, split, Pipeline.of(run.dataset), cfg, cross_entropy, desc="relearn probe", progress=False)
    metrics = evaluate(probe, run.dataset, run.manipulation)
    seconds = time.perf_counter() - start  # fine-tuning and measuring: the probe's whole cost
    pre = relearn_prefix(kind)
    out: dict[str, Any] = {f"{pre}{m}": metrics[m] for m in RELEARN_OF if m in metrics}
    return out | {f"{pre}steps": cfg.steps, f"{pre}manipulated": k, f"{pre}seconds": seconds}


def relearn_kinds(value: Any) -> tuple[str, ...]:
    """The probe kinds a job's `relearn` parameter asks for: true (the plans of before) is `mixed` alone."""
    if value is True:
        return (RELEARN_DEFAULT,)
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def relearn_all(run: Run, model: nn.Module | None, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Every asked kind of probe on copies of `model`, and `relearn_kinds` naming them: the record's fields."""
    out: dict[str, Any] = {"relearn_kinds": list(kinds)} if kinds else {}
    for kind in kinds:
        out |= relearn(run, model, kind=kind)
    return out
