"""Settings declared once: each field's type, range and help; one validator; one message shape.

Used by methods' and expansion strategies' settings, the training recipe and the bench spec.

A method's settings are a frozen dataclass of `setting(...)` fields deriving from `Checked`, so an
instance that breaks a range never exists (in the spirit of scikit-learn's `_parameter_constraints`):

    @dataclass(frozen=True)
    class ScrubSettings(Checked):
        lr: float = setting(0.0025, "learning rate", gt=0)

Every message reads `must be RULE, got VALUE` after the setting's name or place (`method 'scrub': lr
must be > 0, got -1.0`, `bench spec: steps: must be >= 0, got -1`). `corrective methods` prints each rule and help.
Imports nothing of the package but its errors.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from corrective.errors import UserError


@dataclass(frozen=True)
class Rule:
    """A range (bounds open with gt/lt, closed with ge/le) or a set of choices; None where there is none."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None

    def holds(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, float) and math.isnan(value):
            return self == Rule()
        return not (
            (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt)
            or (self.le is not None and not value <= self.le)
        )

    def describe(self) -> str:
        """`> 0`, `>= 0`, `in (0, 10]`, `one of 'ce+kl', 'kl'`; '' for no rule."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = self.gt if self.gt is not None else self.ge
        high = self.lt if self.lt is not None else self.le
        if low is not None and high is not None:
            return f"in {'(' if self.gt is not None else '['}{low:g}, {high:g}{')' if self.lt is not None else ']'}"
        if low is not None:
            return f"{'>' if self.gt is not None else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.lt is not None else '<='} {high:g}"
        return ""


def setting(
    default: Any,
    help: str = "",
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """A dataclass field with its default, its rule and its help (shown by `corrective methods`).

    `check`, for what a range cannot say (an interclass pair of two different classes), returns the rule the
    value breaks (`a pair of two different classes like [3, 8]`) or None; it runs after the type and range."""
    metadata = {"rule": Rule(gt, ge, lt, le, choices), "help": help, "check": check}
    return dataclasses.field(default=default, metadata=metadata)


def rule_of(f: dataclasses.Field[Any]) -> Rule:
    rule: Rule = f.metadata.get("rule", Rule())
    return rule


def help_of(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("help", ""))


class ItemError(ValueError):
    """An item of a list setting that breaks its rule: `index` is its place, the message the rule's."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


class SettingError(ValueError):
    """A setting that breaks its rule: `name`, `reason` (`must be RULE, got VALUE`) and, for an item of a
    list, its `index`; the message is `name reason` (`lr must be > 0, got -1.0`)."""

    def __init__(self, name: str, reason: str, index: int | None = None) -> None:
        super().__init__(f"{name} {reason}")
        self.name, self.reason, self.index = name, reason, index

    @property
    def where(self) -> str:
        """The setting, and the item where one broke the rule: `seeds[1]`."""
        return self.name if self.index is None else f"{self.name}[{self.index}]"


def validate_field(f: dataclasses.Field[Any], value: Any, hint: Any) -> Any:
    """`validate` against the field's rule, then its `check`; a ValueError `must be RULE, got VALUE`."""
    value = validate(value, hint, rule_of(f))
    check = f.metadata.get("check")
    broken = None if check is None or value is None else check(value)
    if broken:
        raise ValueError(f"must be {broken}, got {plain(value)!r}")
    return value


def plain(value: Any) -> Any:
    """A tuple setting as the list a user wrote (in messages and records)."""
    return list(value) if isinstance(value, tuple) else value


TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def validate(value: Any, hint: Any, rule: Rule = Rule()) -> Any:
    """`value` as the declared type (int, float, bool or str; `X | None` takes None) keeping `rule`, else a
    ValueError `must be RULE, got VALUE` (the caller puts the name or place in front).

    An int is a float; nothing else converts (a bool is not an int, a string is not a number).
    None, where allowed, means 'not set' and keeps every rule; a float must be finite. `tuple[X, ...]`
    takes a list or tuple whose every item is an X keeping `rule`, and gives a tuple.
    """
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if type(None) in args and len(args) == 2:  # `X | None`
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        items = []
        for i, v in enumerate(value):
            try:
                items.append(validate(v, typing.get_args(hint)[0], rule))
            except ValueError as e:
                raise ItemError(i, str(e)) from None
        return tuple(items)
    if hint in TYPE_NAMES:
        if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if not math.isfinite(value):  # NaN and inf pass no rule and break JSON records
                raise ValueError(f"must be a finite number, got {value!r}")
        elif not (isinstance(value, hint) and (hint is bool or not isinstance(value, bool))):
            raise ValueError(f"must be {TYPE_NAMES[hint]}, got {value!r}")
    if not rule.holds(value):
        raise ValueError(f"must be {rule.describe()}, got {value!r}")
    return value


class Checked:
    """Base of a frozen dataclass of `setting` fields: each field is coerced to its declared type and its
    rule checked when an instance is created, so an invalid one never exists."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(cast(Any, self)):  # a dataclass: Checked is only ever a dataclass's base
            try:
                value = validate_field(f, getattr(self, f.name), hints[f.name])
            except ItemError as e:
                raise SettingError(f.name, str(e), e.index) from None
            except ValueError as e:
                raise SettingError(f.name, str(e)) from None
            object.__setattr__(self, f.name, value)


def build_settings(cls: type, overrides: dict[str, Any] | None, owner: str) -> Any:
    """`cls` (a frozen dataclass of settings) with `overrides` applied and checked; `owner` names it in errors.

    Unknown keys, types and ranges are one-line `UserError`s. A setting renamed since (`RENAMED` on the
    class, old -> new) is accepted with a warning.
    """
    known = [f.name for f in dataclasses.fields(cls)]
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    values: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key in renamed:
            warnings.warn(
                f"{owner}: setting {key!r} is now {renamed[key]!r}; the old name will go", FutureWarning, stacklevel=3
            )
            key = renamed[key]
        if key not in known:
            hint = f" (did you mean {key}_?)" if f"{key}_" in known else ""
            raise UserError(f"{owner} has no setting {key!r}{hint}; its settings: {', '.join(known) or 'none'}")
        values[key] = value
    try:
        return cls(**values)
    except ValueError as e:
        raise UserError(f"{owner}: {e}") from None


def parse_value(raw: str) -> Any:
    """A command-line value: true/false, a comma list, an int, a float, or the string itself."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if "," in raw:
        return [parse_value(p) for p in raw.split(",") if p]
    for number in (int, float):
        try:
            return number(raw)
        except ValueError:
            pass
    return raw
