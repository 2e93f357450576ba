"""CF: catastrophic forgetting by fine-tuning (Goel et al., App. A.2 (2)).

Continue training all layers of `M_o` on `D_r = S_tr \\ S_f` with algorithm A's optimiser, learning rate
and schedule (linear warm-up then linear decay, laid over the fine-tuning budget: "the same
hyperparameters are used during unlearning unless otherwise specified", App. A.1) for 25 % of the
original training steps (1000 of 4000 on CIFAR-10).

With `relabel` (off for CF, on where `auto` runs it), the flagged samples whose pixel neighbours vote for another
class than their label (a majority of them) are not left out but kept under the voted class (`methods.votes`): a
sample the model memorised under a wrong label is taught the right one rather than only no longer seen — a
quarter of the original steps on the rest does not overwrite what the model memorised of samples it no longer
sees (benchmarks/results/harm_targets.md). A flagged sample whose neighbours confirm its label, or have no majority,
stays out (`keep_confirmed` keeps a confirmed one in under its label). With `probe` as well (on where `auto` runs
it), where the votes show a confusion of a few labels the samples of those labels that a cross-validated linear
probe on pixels puts in another of them join the flagged ones (`votes.probed`): the flagged set's expansion misses
part of a confusion, and a missed sample stays memorised under its wrong label (digits interclass: healed equalled
the expansion's recall, benchmarks/results/harm_targets.md). Not part of CF (Goel et al.).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Batch
from corrective.errors import UserError
from corrective.methods.base import UnlearnTask, register_method
from corrective.methods.votes import MAJORITY, flagged_vote, majority, probed, relabelled
from corrective.settings import Checked, setting
from corrective.training import LossFn, TrainConfig


@dataclass(frozen=True)
class FinetuneSettings(Checked):
    budget: float = setting(0.25, "share of the original training steps", gt=0, le=10)
    lr: float | None = setting(None, "learning rate; none: algorithm A's times lr_factor", gt=0)
    lr_factor: float = setting(1.0, "with lr none: algorithm A's learning rate times this", gt=0)
    relabel: bool = setting(
        False, "flagged samples whose pixel neighbours vote for another class join the fine-tuning set under it"
    )
    keep_confirmed: bool = setting(
        False,
        "with relabel: flagged samples whose pixel neighbours vote for their own label stay in under it (the "
        "transplant's with its trigger estimate taken off); off: they stay out",
    )
    relabel_share: float = setting(
        MAJORITY,
        "with relabel: a flagged sample is relabelled where more than this share of its neighbours name one other "
        "class (0.5: a majority; 1: never); below it the sample stays out",
        ge=0.5,
        le=1,
    )
    probe: bool = setting(
        False,
        "with relabel: where the flags' votes confuse 2-4 labels, the samples of those labels that a cross-validated "
        "linear probe on pixels puts in another of them join the flagged ones, and a relabel stands only where the "
        "probe names the class the pixel neighbours vote for (else the sample is left out)",
    )
    anchor: float = setting(
        0.0,
        "weight of a distillation term that holds the model's outputs on the unflagged (and, in the transplant, "
        "unstamped) samples at the original's (KL at temperature 2, as LwF); 0: none",
        ge=0,
    )
    k: int = setting(10, "neighbours whose majority label names a flagged sample's class", ge=1)
    reference: int = setting(10_000, "the neighbours come from at most this many unflagged samples (seeded)", ge=1)
    resume: bool = setting(
        False,
        "start from the model the search's previous candidate of this method returned (its budget's steps are "
        "added to that one's, over batches of their own) instead of from the original; the first candidate cannot",
    )

    RENAMED: ClassVar[dict[str, str]] = {"fraction": "budget"}  # every method's budget is `budget`


ANCHOR_TEMPERATURE = 2.0  # LwF's (Li & Hoiem 2017)


def anchored(teacher: nn.Module, flagged: Tensor, hits: dict[str, Tensor] | None, weight: float) -> LossFn:
    """Cross-entropy on the batch, plus `weight` times the KL from the original's (`teacher`) softened outputs to
    the model's on the rows that are neither flagged nor stamped (`hits["last"]`, noted by the transplant's
    `stamped`; none: no row stamped): the clean samples keep the original's decisions (between confusable classes
    too) while the flagged ones, left out or relabelled, and the stamped ones unlearn the manipulation. On a
    flagged or stamped row the original would teach it back."""

    def loss(model: nn.Module, b: Batch) -> Tensor:
        logits = model(b.x)
        ce = F.cross_entropy(logits, b.y)
        clean = ~torch.isin(b.ids, flagged)
        if hits is not None:
            clean &= ~hits["last"].to(b.x.device)
        if not bool(clean.any()):
            return ce
        with torch.no_grad():
            target = F.softmax(teacher(b.x[clean]).float() / ANCHOR_TEMPERATURE, 1)
        own = F.log_softmax(logits[clean].float() / ANCHOR_TEMPERATURE, 1)
        return ce + weight * ANCHOR_TEMPERATURE**2 * F.kl_div(own, target, reduction="batchmean")

    return loss


LAST = "last_model"  # task.cache key, with the method's name: the model its previous candidate in the search returned


def start_model(task: UnlearnTask, name: str, settings: FinetuneSettings) -> nn.Module:
    """Where a candidate of fine-tuning base `name` starts: a copy of M_o, or with `resume` a copy of the model the
    previous candidate of `name` on this task (the search's) returned."""
    if not settings.resume:
        return task.copy_model()
    if (LAST, name) not in task.cache:
        raise UserError(
            f"{name}: resume continues the model of the search's previous {name} candidate and none ran before it; "
            "put a candidate without resume first"
        )
    last: nn.Module = task.cache[(LAST, name)]
    return copy.deepcopy(last)


def tune(
    task: UnlearnTask,
    name: str,
    data: Split,
    settings: FinetuneSettings,
    search: UnlearnTask,
    hits: dict[str, Tensor] | None = None,
) -> nn.Module:
    """Algorithm A on `data` for the fine-tuning bases' budget (`finetune_config`) from where the candidate starts
    (`start_model`), its loss `anchored` to M_o where `settings.anchor` asks (`hits`: the rows the transplant's stamp
    drew). `search` is the task the search's candidates share (`task` may be `with_probe`'s copy of it, whose cache
    is its own): it keeps the model each candidate returns, which a resumed one starts from. A resumed candidate
    draws batches of its own: the steps it adds are not a replay of the ones before."""
    start = start_model(search, name, settings)
    cfg = finetune_config(task, settings)
    if settings.resume:
        cfg = dataclasses.replace(cfg, seed=seeds.derive(task.seed, seeds.salt(name, "resume_batches")))
    if settings.anchor == 0:
        model = task.train_on(name, start, data, cfg)
    else:
        loss = anchored(task.frozen(task.model), task.forget_ids, hits, settings.anchor)
        model = task.train_on(name, start, data, cfg, loss)
    search.cache[(LAST, name)] = model
    return model


def finetune_config(task: UnlearnTask, settings: FinetuneSettings) -> TrainConfig:
    """Algorithm A's recipe for `budget` of its steps at `lr` (or its learning rate times `lr_factor`)."""
    lr = settings.lr if settings.lr is not None else task.config.lr * settings.lr_factor
    return task.config.scaled(settings.budget, lr=lr)


@register_method(FinetuneSettings)
def finetune(task: UnlearnTask, settings: FinetuneSettings) -> nn.Module:
    """CF: continue training M_o on S_tr minus S_f with algorithm A, 25 % of its steps."""
    data = task.retain()
    search = task  # `with_probe` gives a task of its own
    if settings.relabel:
        key = ("votes", settings.k, settings.reference)  # a grid over the learning rate votes once
        if key not in task.cache:
            task.cache[key] = flagged_vote(task, settings.k, settings.reference)
        flagged = task.train.positions_of(task.forget_ids)
        voted, share = task.cache[key]
        content = majority(voted, share, settings.relabel_share)
        if settings.probe:
            flagged, content, task = with_probe(task, key, flagged, content, settings)
        data = relabelled(task.train, flagged, content, settings.keep_confirmed)
    return tune(task, "finetune", data, settings, search)


def with_probe(
    task: UnlearnTask, vote: Hashable, flagged: Tensor, content: Tensor, settings: FinetuneSettings
) -> tuple[Tensor, Tensor, UnlearnTask]:
    """`votes.probed` on the flagged positions and their votes (`content`: the vote kept in `task.cache` under
    `vote`, at `relabel_share`; once per task and vote), and the task with the samples it found among the flagged
    ones (the anchor then leaves them alone too). Keyed by the vote it widens: under `auto` both bases run on one
    task, and the transplant's votes (on the flagged images less its trigger estimate) are not fine-tuning's."""
    key = ("probe", vote, settings.relabel_share)
    if key not in task.cache:
        task.cache[key] = probed(task, flagged, content, settings.k, settings.reference, settings.relabel_share)
    wider, votes = task.cache[key]
    return wider, votes, dataclasses.replace(task, forget_ids=task.train.ids[wider])
