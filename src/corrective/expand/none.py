"""`none`: no expansion, S_f as flagged."""

from __future__ import annotations

from dataclasses import dataclass

from corrective.expand.base import register_special


@dataclass(frozen=True)
class NoneSettings:
    pass


register_special("none", NoneSettings, "no expansion: the flagged samples only")
