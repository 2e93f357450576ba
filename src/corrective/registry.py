"""One registry for every named kind: models, datasets, manipulations, training and bench presets, expansion
strategies and methods. Each is a `Registry`: `register(name, entry)`, `lookup(name)` (a missing name is one
line, `unknown KIND 'x'; known: a, b (see `corrective KINDS`)`) and `names()` in the kind's order.

A `Registry` is a dict of its entries (`name in R`, `R[name]`, `R.items()` work as before). Imports nothing of
the package but its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from corrective.errors import UserError

T = TypeVar("T")


class Registry(dict[str, T]):
    """Named entries of one kind. `order` lists the names (default: sorted); `see` is the command that lists
    them for a user (`corrective methods`)."""

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T] | None = None,
        *,
        see: str = "",
        order: Callable[[Iterable[str]], list[str]] = sorted,
    ) -> None:
        super().__init__(entries or {})
        self.kind, self.see, self.order = kind, see, order

    def register(self, name: str, entry: T) -> T:
        """File `entry` under `name` (a later registration of the same name replaces it); returns the entry."""
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry of `name`, or a UserError naming the kind and every known name."""
        if name not in self:
            see = f" (see `{self.see}`)" if self.see else ""
            raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}{see}")
        return self[name]

    def names(self) -> list[str]:
        return list(self.order(self))
