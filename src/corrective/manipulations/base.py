"""The manipulation registry: what was done to the training data, one file per manipulation.

A manipulation module registers a draw function with `@register_manipulation(Settings, ...)`: `Settings` is
a frozen dataclass of `corrective.settings.setting` fields (the one validator: types, ranges, help, shown by
`corrective manipulations`), the draw turns the training split, a size and a seed into a `Manipulation`, and
the registration says whether it is a **backdoor** (a test-time trigger sends inputs to a `target` class:
`attack_success`, `target_acc` and the defence view apply) and what its **test domains** are (what `acc_corr`
reads; `acc_retain` reads the rest). Metrics, the bench's axes, the CLI, the records and the docs read all of
this from the registry; nothing branches on a manipulation's name.

Each draw takes an explicit seed. A `Manipulation` records the manipulated ids `S_m` (in the order of one
seeded permutation, so the deletion sets `S_f` for growing alpha are nested), their clean and given labels,
and how the training data carries it: a trigger stamped on the carriers after augmentation (`Split.stamp`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from corrective import names, seeds
from corrective.data.base import Dataset, Split
from corrective.errors import UserError
from corrective.registry import Registry
from corrective.settings import build_settings, plain, validate_field

DEFAULT_SIZE = 0.05  # a manipulation's size when none is given: 5 % of the training set


class Pattern(Protocol):
    """A backdoor's test-time trigger: float images in [0, 1] (N, C, H, W) -> the same images triggered."""

    def stamp(self, x: Tensor) -> Tensor: ...


# (float images after augmentation, the samples' ids) -> images: how the training data carries a manipulation
Carry = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Manipulation:
    """What was done to the training set; `ids` is `S_m` in deletion order.

    `trigger` (backdoors) is the test-time pattern; `carry`, when set, stamps the training images by sample id
    (default: `trigger` on the members of `S_m`). `classes` are the interclass pair A, B.
    """

    kind: str
    ids: Tensor
    clean_labels: Tensor
    given_labels: Tensor
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    trigger: Pattern | None = None
    classes: tuple[int, ...] = ()
    carry: Carry | None = field(default=None, repr=False, compare=False)

    @property
    def info(self) -> ManipulationInfo:
        return get_manipulation(self.kind)

    @property
    def backdoor(self) -> bool:
        return self.info.backdoor

    @property
    def target(self) -> int | None:
        """A backdoor's target class; None for any other manipulation."""
        return self.settings.get("target") if self.backdoor else None

    def _carry(self) -> Carry | None:
        if self.carry is not None:
            return self.carry
        trigger = self.trigger
        if trigger is None:
            return None
        members = self.ids.cpu()

        def carry(x: Tensor, ids: Tensor) -> Tensor:
            hit = torch.isin(ids, members.to(ids.device)).to(x.device)
            return torch.where(hit.view(-1, 1, 1, 1), trigger.stamp(x), x)

        return carry

    def apply(self, train: Split) -> Split:
        """The manipulated training split: given labels set, the trigger stamped on its carriers after augmentation."""
        if not len(self.ids) and self.carry is None:
            return train
        pos = train.positions_of(self.ids)
        y = train.y.clone()
        y[pos] = self.given_labels.to(y.device)
        carry = self._carry()
        stamp = None
        if carry is not None:
            ids = train.ids
            stamp = lambda x, p: carry(x, ids[p.to(ids.device)])  # noqa: E731
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
        gen = torch.Generator().manual_seed(seeds.derive(self.seed, seeds.salt("run", "false_flags")))
        return clean[torch.randperm(len(clean), generator=gen)[:count]]

    def corrupted_split(self, train: Split) -> Split:
        """`S_m` as the model saw it (given labels, trigger stamped) but with clean labels, for `healed`."""
        split = self.apply(train)
        sub = split.subset(split.positions_of(self.ids))
        return sub.with_labels(self.clean_labels.to(sub.y.device))

    def test_domains(self, test: Split) -> tuple[Split | None, Split]:
        """(`D_m` part of the test set with clean labels, the rest): what `acc_corr` and `acc_retain` read.
        None for `D_m` where the manipulation has no test-side domain (`acc_corr` then reads `S_m` itself)."""
        return self.info.test_domains(self, test)

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


# (training split, the dataset's number of classes, size, seed, checked settings) -> the manipulation
Draw = Callable[[Split, int, float, int, Any], Manipulation]
TestDomains = Callable[[Manipulation, Split], tuple[Split | None, Split]]


def backdoor_domains(m: Manipulation, test: Split) -> tuple[Split | None, Split]:
    """A backdoor's domains: every test image with the trigger (clean labels), and the clean test set."""
    trigger = m.trigger
    assert trigger is not None, f"backdoor {m.kind!r} drew no trigger"
    return Split(test.x, test.y, test.ids, lambda x, pos: trigger.stamp(x)), test


def no_domain(m: Manipulation, test: Split) -> tuple[Split | None, Split]:
    """No test-side domain: `acc_corr` reads the manipulated training samples; `acc_retain` the whole test set."""
    return None, test


@dataclass(frozen=True)
class ManipulationInfo:
    name: str
    draw: Draw
    settings: type  # a frozen `Checked` dataclass of `setting` fields
    backdoor: bool  # a test-time trigger sends inputs to `settings.target`: attack success, target_acc, defence view
    test_domains: TestDomains
    summary: str = ""
    # Per-dataset defaults of settings the user did not give (BadNet's 2-pixel trigger on 8x8 images).
    defaults: Callable[[Dataset], dict[str, Any]] | None = None
    takes_size: bool = True  # False: no sample is manipulated (`none`)

    def setting_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.settings))


def registry_order(names_: Iterable[str]) -> list[str]:
    """`none`, the papers' three (REM's order, `names.MANIPULATIONS`), then the rest by name."""
    papers = ("none", *names.MANIPULATIONS)
    rank = {n: i for i, n in enumerate(papers)}
    return sorted(names_, key=lambda n: (rank.get(n, len(papers)), n))


REGISTRY: Registry[ManipulationInfo] = Registry("manipulation", see="corrective manipulations", order=registry_order)


def register_manipulation(
    settings: type,
    *,
    backdoor: bool = False,
    test_domains: TestDomains | None = None,
    defaults: Callable[[Dataset], dict[str, Any]] | None = None,
    name: str | None = None,
    takes_size: bool = True,
) -> Callable[[Draw], Draw]:
    """Decorator filing a draw under its function name (or `name`); a backdoor's domains default to the
    triggered test set, any other's to none (`acc_corr` on `S_m` itself)."""

    def wrap(fn: Draw) -> Draw:
        key = name or fn.__name__
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        domains = test_domains or (backdoor_domains if backdoor else no_domain)
        REGISTRY.register(key, ManipulationInfo(key, fn, settings, backdoor, domains, summary, defaults, takes_size))
        return fn

    return wrap


def ordered() -> dict[str, ManipulationInfo]:
    """The registry in its order (`registry_order`)."""
    return {n: REGISTRY[n] for n in REGISTRY.names()}


def get_manipulation(name: str) -> ManipulationInfo:
    return REGISTRY.lookup(name)


def record_settings() -> tuple[str, ...]:
    """Every setting of every manipulation, in registry order: the record fields that hold them."""
    return tuple(dict.fromkeys(k for info in ordered().values() for k in info.setting_names()))


def setting_fields(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A record's setting fields: every setting of `record_settings()` (the manipulation's values, None where it
    takes no such setting) and `setting_names`, the manipulation's own (what the report, which cannot import
    the registry, labels a setting with)."""
    own = get_manipulation(kind).setting_names()
    fields = {k: plain(settings.get(k)) if k in own else None for k in record_settings()}
    return {**fields, names.SETTING_NAMES: list(own)}


def check_setting(kind: str, key: str, value: Any) -> Any:
    """One value of one setting of `kind`, checked by the setting's type, rule and check; ValueError
    `must be RULE, got VALUE` otherwise, KeyError for a setting `kind` does not take."""
    cls = get_manipulation(kind).settings
    f = {f.name: f for f in dataclasses.fields(cls)}[key]
    return plain(validate_field(f, value, typing.get_type_hints(cls)[key]))


def is_list_setting(kind: str, key: str) -> bool:
    """True for a setting whose one value is a list (an interclass pair)."""
    hint = typing.get_type_hints(get_manipulation(kind).settings)[key]
    return typing.get_origin(hint) is tuple


def manipulate(dataset: Dataset, kind: str, *, seed: int, size: float | None = None, **settings: Any) -> Manipulation:
    """Draw a manipulation of `dataset.train` by name with checked settings (per-dataset defaults filled in)."""
    info = get_manipulation(kind)
    given = {**(info.defaults(dataset) if info.defaults else {}), **settings}
    return draw_on(dataset.train, dataset.num_classes, kind, seed=seed, size=size, **given)


def draw_on(
    train: Split, num_classes: int, kind: str, *, seed: int, size: float | None = None, **settings: Any
) -> Manipulation:
    """Draw a manipulation of a bare training split by name with checked settings (no per-dataset defaults)."""
    info = get_manipulation(kind)
    checked = build_settings(info.settings, settings, f"manipulation {kind!r}")
    return info.draw(train, num_classes, DEFAULT_SIZE if size is None else size, seed, checked)


def settings_of(size: float, settings: Any) -> dict[str, Any]:
    """The manipulation's record of its settings: the size, then each setting (lists for tuples)."""
    return {"size": size, **{f.name: plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}}


def count(size: float, n: int, what: str) -> int:
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


def check_class(c: int, num_classes: int, what: str) -> int:
    if not 0 <= c < num_classes:
        raise UserError(f"{what} {c} is out of range: the dataset has classes 0..{num_classes - 1}")
    return int(c)


def generator(seed: int, salt: int = 0) -> torch.Generator:
    """A CPU generator of the manipulation's seed; `salt` separates a manipulation's draws from one another."""
    return torch.Generator().manual_seed(seeds.derive(seed, salt) if salt else seed)
