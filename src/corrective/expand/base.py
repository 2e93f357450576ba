"""What an expansion strategy sees, the strategy registry, and the expansion result.

A strategy is `score(view: View, seeds: Tensor, settings: S) -> Tensor`: from the flagged samples at
the positions `seeds` (a bool mask over the training split), a score for every training sample,
higher meaning more likely manipulated; `-inf` for a sample it will never add. `S` is a frozen
dataclass of its settings. The view holds only what a method may see: the original model, the
training split as given (labels as given, triggers as the model saw them) and what the model says
about it. `S_m`, clean labels, the test set and the manipulation type are not in it.

How many of the ranked samples to add (the cutoff) is not the strategy's business: `corrective.expand.cutoff`
chooses it by cross-validation inside `S_f`, the same way for every strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.models.embedding import Embedding, embed
from corrective.registry import Registry
from corrective.settings import Checked, build_settings, setting


@dataclass(frozen=True)
class Expansion:
    """An expanded forget set: `S_f` plus the samples a strategy ranked as most likely manipulated."""

    strategy: str  # the strategy asked for
    chosen: str  # the strategy that produced the ids (auto: the one it picked; otherwise == strategy)
    ids: Tensor  # S_f ∪ added: sorted unique int64 sample ids, on CPU
    added: Tensor  # the added ids (never in S_f), by descending score
    scores: Tensor  # float score of each added id, same order
    seconds: float  # wall-clock seconds of the expansion
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able: cutoff, threshold, CV recoveries, settings
    # flagged ids the screen set aside (auto): in neither `ids` nor `added`, so never unlearned
    set_aside: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def to_record(self) -> dict[str, Any]:
        return {
            "expand": self.strategy,
            "expand_chosen": self.chosen,
            "n_expanded": len(self.added),
            "n_set_aside": len(self.set_aside),
            "set_aside_ids": self.set_aside.tolist(),
            "expand_seconds": self.seconds,
        }


@dataclass(frozen=True)
class Cutoff(Checked):
    """How many ranked samples to add; shared by every strategy's settings (see `expand.cutoff`)."""

    recall: float = setting(0.9, "share of held-out flagged samples the cutoff must recover", gt=0, le=1)
    min_precision: float = setting(0.8, "estimated precision the cutoff may not fall below (the safeguard)", ge=0, le=1)
    max_share: float = setting(
        0.25, "held-out samples ranked (median) below this share of the data: no structure, add none", gt=0, le=1
    )
    folds: int = setting(5, "cross-validation folds inside S_f (at most |S_f|)", ge=2)
    min_separation: float = setting(
        0.75, "a two-group split of the scores explaining this share of their variance: a cluster", gt=0, le=1
    )
    extension_recall: float = setting(
        0.5, "a score cutoff must keep this share of held-out flagged samples", ge=0, le=1
    )
    split_slack: float = setting(4.0, "a score cutoff may add at most this many times 2 * mean count", ge=0)
    estimate_from: int = setting(
        50, "with at least this many flagged samples a score cutoff must also keep min_precision (estimated)", ge=2
    )


class View:
    """The model's view of the training split, computed once and shared by every strategy and fold."""

    def __init__(
        self, model: nn.Module, train: Split, pipeline: Pipeline, seed: int = 0, precision: str = "fp32"
    ) -> None:
        self.model, self.train, self.pipeline, self.seed = model, train, pipeline, seed
        self.precision = precision  # of the feature pass (`models.embedding.embed`)
        self.labels = train.y.cpu()
        self.ids = train.ids.cpu()
        self.cache: dict[Any, Any] = {}  # work strategies share between folds (e.g. neighbour lists)

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def embedding(self) -> Embedding:
        return embed(self.model, self.train, self.pipeline, precision=self.precision)

    @property
    def features(self) -> Tensor:
        return self.embedding.features

    @property
    def logits(self) -> Tensor:
        return self.embedding.logits

    @cached_property
    def probs(self) -> Tensor:
        return self.logits.softmax(1)

    @cached_property
    def loss(self) -> Tensor:
        """Cross-entropy of each sample's given label under the model."""
        return torch.nn.functional.cross_entropy(self.logits, self.labels, reduction="none")

    @cached_property
    def margin(self) -> Tensor:
        """Logit of the given label minus the largest other logit (negative: the model disagrees with the label)."""
        own = self.logits.gather(1, self.labels[:, None]).squeeze(1)
        other = self.logits.scatter(1, self.labels[:, None], float("-inf")).max(1).values
        return own - other

    @cached_property
    def centred(self) -> Tensor:
        """Features minus the mean feature of the samples with the same given label."""
        f = self.features
        means = torch.zeros(int(self.labels.max()) + 1, f.shape[1]).index_add_(0, self.labels, f)
        counts = torch.bincount(self.labels, minlength=len(means)).clamp(min=1)
        return f - (means / counts[:, None])[self.labels]


Score = Callable[[View, Tensor, Any], Tensor]


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    score: Score | None  # None: a strategy that ranks nothing itself (none, auto)
    settings: type  # a frozen dataclass with defaults
    summary: str = ""


STRATEGIES: Registry[StrategyInfo] = Registry("expansion strategy")


def register_strategy(settings: type, *, name: str | None = None) -> Callable[[Score], Score]:
    """Decorator filing a scoring function under its name (or `name`) with its settings dataclass."""

    def wrap(fn: Score) -> Score:
        key = name or fn.__name__
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        STRATEGIES.register(key, StrategyInfo(key, fn, settings, summary))
        return fn

    return wrap


def register_special(name: str, settings: type, summary: str) -> None:
    """File a strategy the driver handles itself (none, auto)."""
    STRATEGIES.register(name, StrategyInfo(name, None, settings, summary))


def get_strategy(name: str) -> StrategyInfo:
    return STRATEGIES.lookup(name)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def make_strategy_settings(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The strategy's settings dataclass with `overrides` applied and checked: unknown keys, wrong types."""
    return build_settings(get_strategy(name).settings, overrides, f"expansion strategy {name!r}")


def check_model_classes(num_classes: int, train: Split, forget_ids: Tensor) -> None:
    """Flagged samples labelled with a class the model (with `num_classes` outputs) does not have: one clear line."""
    labels = train.y[train.positions_of(forget_ids)].cpu()
    bad = labels[labels >= num_classes].unique().tolist()
    if bad:
        raise UserError(
            f"the flagged samples are labelled {', '.join(map(str, bad))} but the model has only classes "
            f"0..{num_classes - 1}; the data does not belong to this model (check --dataset/--model)"
        )
    if int(train.y.max()) >= num_classes:
        raise UserError(
            f"the training labels go up to {int(train.y.max())} but the model has only {num_classes} "
            "classes; the data does not belong to this model (check --dataset/--model)"
        )
