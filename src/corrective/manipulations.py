"""Manipulations of the training data: BadNet poisoning, interclass confusion, random label swap.

Each draw takes an explicit seed. A `Manipulation` records the manipulated ids `S_m` (in the
order of one seeded permutation, so the deletion sets `S_f` for growing alpha are nested),
their clean and given labels, and the affected test domain `D_m`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from corrective import names
from corrective.data.base import Dataset, Split
from corrective.data.registry import get_info
from corrective.errors import UserError
from corrective.names import RECORD_SETTINGS, SETTINGS

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
FALSE_FLAG_SALT = 7919  # separates the false-flag draw from the manipulation's own draws of the same seed


def setting_fields(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting of `RECORD_SETTINGS`: the manipulation's values, None where it takes no such setting."""
    return {k: settings.get(k) if k in SETTINGS.get(kind, ()) else None for k in RECORD_SETTINGS}


@dataclass(frozen=True)
class Trigger:
    """A square patch of one value on every channel at a corner (BadNet)."""

    size: int = 3
    corner: str = "bottom-right"
    value: float = 1.0  # in [0, 1] image units: 1.0 is the maximal pixel value

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise UserError(f"trigger corner {self.corner!r} is not one of {', '.join(CORNERS)}")
        if self.size < 1:
            raise UserError(f"trigger size must be >= 1 pixel, got {self.size}")

    def stamp(self, x: Tensor) -> Tensor:
        """A copy of float images in [0, 1] with the patch set."""
        x = x.clone()
        s = self.size
        rows = slice(-s, None) if self.corner.startswith("bottom") else slice(0, s)
        cols = slice(-s, None) if self.corner.endswith("right") else slice(0, s)
        x[..., rows, cols] = self.value
        return x

    def stamp_where(self, mask: Tensor) -> Any:
        """A split `stamp`: the trigger on the positions where `mask` is True."""

        def stamp(x: Tensor, pos: Tensor) -> Tensor:
            hit = mask.to(pos.device)[pos]
            return torch.where(hit.view(-1, 1, 1, 1), self.stamp(x), x)

        return stamp


@dataclass(frozen=True)
class Manipulation:
    """What was done to the training set; `ids` is `S_m` in deletion order."""

    kind: str  # "poison" | "interclass" | "random_swap" | "none"
    ids: Tensor
    clean_labels: Tensor
    given_labels: Tensor
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    trigger: Trigger | None = None
    classes: tuple[int, ...] = ()  # interclass: the confused classes A, B

    @property
    def target(self) -> int | None:
        return self.settings.get("target") if self.kind == "poison" else None

    def apply(self, train: Split) -> Split:
        """The manipulated training split: given labels set, trigger stamped on `S_m` after augmentation."""
        if self.kind == "none":
            return train
        pos = train.positions_of(self.ids)
        y = train.y.clone()
        y[pos] = self.given_labels.to(y.device)
        stamp = None
        if self.trigger is not None:
            mask = torch.zeros(len(train), dtype=torch.bool, device=train.x.device)
            mask[pos] = True
            stamp = self.trigger.stamp_where(mask)
        return Split(train.x, y, train.ids, stamp)

    def forget_ids(self, alpha: float) -> Tensor:
        """The identified subset `S_f` for discovery rate alpha: the first `alpha` share of `S_m`,
        rounded to the nearest count (at least one)."""
        if not 0.0 < alpha <= 1.0:
            raise UserError(f"alpha must be in (0, 1], got {alpha}")
        k = max(1, round(alpha * len(self.ids))) if len(self.ids) else 0
        return self.ids[:k]

    def false_flag_ids(self, train: Split, count: int) -> Tensor:
        """`count` clean training ids (never in `S_m`) mistakenly flagged, from one seeded permutation.

        The draw depends on the manipulation's seed only, so growing counts are nested and every method and
        alpha of a seed sees the same false flags.
        """
        ids = train.ids.cpu()
        clean = ids[~torch.isin(ids, self.ids.cpu())]
        if count > len(clean):
            raise UserError(
                f"false_flags: {count} false flags asked for but the training data has only "
                f"{len(clean)} clean samples; use a smaller false-flag share"
            )
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + FALSE_FLAG_SALT)
        return clean[torch.randperm(len(clean), generator=gen)[:count]]

    def corrupted_split(self, train: Split) -> Split:
        """`S_m` as the model saw it (given labels, trigger stamped) but with clean labels, for `healed`."""
        split = self.apply(train)
        sub = split.subset(split.positions_of(self.ids))
        return sub.with_labels(self.clean_labels.to(sub.y.device))

    def test_domains(self, test: Split) -> tuple[Split, Split]:
        """(`D_m` part of the test set with clean labels, the rest): what `acc_corr` and `acc_retain` read."""
        if self.kind == "poison":
            trigger = self.trigger
            assert trigger is not None
            stamped = Split(test.x, test.y, test.ids, lambda x, pos: trigger.stamp(x))
            return stamped, test
        if self.kind == "interclass":
            inside = torch.isin(test.y, torch.tensor(self.classes, device=test.y.device))
            return test.subset(inside.nonzero().squeeze(1)), test.subset((~inside).nonzero().squeeze(1))
        empty = test.subset(torch.zeros(0, dtype=torch.long))
        return empty, test

    def setting_fields(self) -> dict[str, Any]:
        return setting_fields(self.kind, self.settings)

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "settings": self.settings,
            "ids": self.ids.tolist(),
            "clean_labels": self.clean_labels.tolist(),
            "given_labels": self.given_labels.tolist(),
        }


def _count(size: float, n: int, what: str) -> int:
    """A size given as a fraction of `n` (< 1) or a count (>= 1)."""
    if not (size > 0 and math.isfinite(size)):
        raise UserError(f"--size must be a finite number > 0 (a fraction of the training set or a count), got {size}")
    k = int(round(size * n)) if size < 1 else int(size)
    if size >= 1 and size != math.floor(size):
        raise UserError(f"--size {size} is neither a fraction below 1 nor a whole count")
    if k > n:
        raise UserError(f"--size {size} asks for {k} samples but {what} has only {n}")
    if k == 0:
        raise UserError(f"--size {size} selects no sample of {what} ({n} samples); use a larger size")
    return k


def _check_class(c: int, num_classes: int, what: str) -> int:
    if not 0 <= c < num_classes:
        raise UserError(f"{what} {c} is out of range: the dataset has classes 0..{num_classes - 1}")
    return int(c)


def poison(
    train: Split,
    num_classes: int,
    *,
    size: float,
    seed: int,
    target: int = 0,
    trigger_size: int = 3,
    corner: str = "bottom-right",
    value: float = 1.0,
) -> Manipulation:
    """BadNet: `size` samples drawn from the whole training set (any class) get the trigger and label `target`."""
    target = _check_class(target, num_classes, "target class")
    if trigger_size > min(train.x.shape[-2:]):
        raise UserError(f"trigger size {trigger_size} exceeds the {tuple(train.x.shape[-2:])} images")
    k = _count(size, len(train), "the training set")
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randperm(len(train), generator=gen)[:k].to(train.ids.device)
    clean = train.y[pos].cpu()
    settings = {"size": size, "target": target, "trigger_size": trigger_size, "corner": corner, "value": value}
    return Manipulation(
        "poison",
        train.ids[pos].cpu(),
        clean,
        torch.full_like(clean, target),
        seed,
        settings,
        trigger=Trigger(trigger_size, corner, value),
    )


def interclass(train: Split, num_classes: int, *, size: float, seed: int, classes: tuple[int, int]) -> Manipulation:
    """Interclass confusion: `size/2` samples of each of classes A and B get the other's label."""
    a, b = (_check_class(c, num_classes, "interclass class") for c in classes)
    if a == b:
        raise UserError(f"interclass needs two different classes, got {a} and {b}")
    k = _count(size, len(train), "the training set")
    gen = torch.Generator().manual_seed(seed)
    chosen, given = [], []
    for c, other in ((a, b), (b, a)):
        members = (train.y.cpu() == c).nonzero().squeeze(1)
        half = k // 2 if c == a else k - k // 2
        if half > len(members):
            raise UserError(f"--size {size} needs {half} samples of class {c} but it has {len(members)}")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:half]])
        given.append(torch.full((half,), other))
    pos, given_labels = torch.cat(chosen), torch.cat(given)
    order = torch.randperm(len(pos), generator=gen)  # deletion order mixes both classes
    pos, given_labels = pos[order], given_labels[order]
    settings = {"size": size, "classes": [a, b]}
    return Manipulation(
        "interclass", train.ids.cpu()[pos], train.y.cpu()[pos], given_labels, seed, settings, classes=(a, b)
    )


def random_swap(train: Split, num_classes: int, *, size: float, seed: int) -> Manipulation:
    """Random label swap: `size` samples get a label drawn uniformly from the other classes."""
    k = _count(size, len(train), "the training set")
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randperm(len(train), generator=gen)[:k]
    clean = train.y.cpu()[pos]
    shift = torch.randint(1, num_classes, (k,), generator=gen)
    return Manipulation("random_swap", train.ids.cpu()[pos], clean, (clean + shift) % num_classes, seed, {"size": size})


DEFAULT_SIZE = dict.fromkeys(names.MANIPULATIONS, 0.05)
MANIPULATIONS = ("none", *names.MANIPULATIONS)


def manipulate(dataset: Dataset, kind: str, *, seed: int, size: float | None = None, **settings: Any) -> Manipulation:
    """Draw a manipulation of `dataset.train` by name, with per-dataset defaults (IC classes, trigger size)."""
    train = dataset.train
    if kind == "none":
        empty = torch.zeros(0, dtype=torch.long)
        return Manipulation("none", empty, empty, empty, seed)
    if kind not in MANIPULATIONS:
        raise UserError(f"unknown manipulation {kind!r}; known: {', '.join(MANIPULATIONS)}")
    size = DEFAULT_SIZE[kind] if size is None else size
    if kind == "poison":
        settings.setdefault("trigger_size", 2 if dataset.image_size <= 8 else 3)
        return poison(train, dataset.num_classes, size=size, seed=seed, **settings)
    if kind == "interclass":
        classes = settings.pop("classes", None) or get_info(dataset.name).interclass or (0, 1)
        return interclass(train, dataset.num_classes, size=size, seed=seed, classes=tuple(classes), **settings)
    return random_swap(train, dataset.num_classes, size=size, seed=seed, **settings)
