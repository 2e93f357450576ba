"""`auto`: pick the strategy by cross-validation inside S_f (no S_m, no test data).

Every candidate strategy is cross-validated the same way (`expand.cutoff`): from all but one part of
S_f, how deep into the unflagged samples must one go to recover the held-out part? The strategy that
recovers the `recall` share of held-out flagged samples with the fewest unflagged samples (the
smallest `k_recall`; ties: the smaller median count, then the order of `candidates`) is picked; its
cutoff comes from the same cross-validation.

With a single flagged sample there is nothing to cross-validate: `label_noise` is picked when that
sample's given label disagrees with its feature-space neighbours (its label_noise score reaches the
strategy's fallback threshold), `neighbours` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from torch import Tensor

from corrective.expand.base import STRATEGIES, Cutoff, View, get_strategy, make_strategy_settings, register_special
from corrective.expand.cutoff import Recovery, cross_validate

DEFAULT_CANDIDATES = "neighbours,label_noise,classifier,gradients"


@dataclass(frozen=True)
class AutoSettings(Cutoff):
    candidates: str = DEFAULT_CANDIDATES  # comma-separated strategies to choose from, in tie-break order

    def names(self) -> list[str]:
        return [n.strip() for n in self.candidates.split(",") if n.strip()]

    def __post_init__(self) -> None:
        super().__post_init__()
        names = self.names()
        if not names:
            raise ValueError("candidates must name at least one strategy")
        for n in names:
            if n in ("auto", "none") or (n in STRATEGIES and STRATEGIES[n].score is None):
                raise ValueError(f"candidates must be ranking strategies, not {n!r}")


register_special("auto", AutoSettings, "picks the strategy and its cutoff by cross-validation inside S_f")


def candidate_settings(name: str, auto: AutoSettings) -> Any:
    """The candidate's default settings with auto's cutoff settings."""
    cut = {f.name: getattr(auto, f.name) for f in fields(Cutoff)}
    return replace(make_strategy_settings(name), **cut)


def pick(view: View, flagged: Tensor, auto: AutoSettings, seed: int) -> tuple[str, Any, dict[str, Recovery]]:
    """The chosen strategy, its settings and every candidate's cross-validation (at least 2 flagged samples)."""
    recs: dict[str, Recovery] = {}
    best: tuple[float, float, int] | None = None
    chosen = ""
    for i, name in enumerate(auto.names()):
        info = get_strategy(name)
        assert info.score is not None
        rec = cross_validate(view, flagged, info.score, candidate_settings(name, auto), seed)
        recs[name] = rec
        key = (rec.quantile(auto.recall), float(sorted(rec.counts)[len(rec.counts) // 2]), i)
        if best is None or key < best:
            best, chosen = key, name
    return chosen, candidate_settings(chosen, auto), recs


def pick_single(view: View, flagged: Tensor, auto: AutoSettings) -> str:
    """With one flagged sample: label_noise when its label disagrees with its neighbours, else neighbours."""
    names = auto.names()
    if "label_noise" in names and "label_noise" in STRATEGIES:
        s = candidate_settings("label_noise", auto)
        score = STRATEGIES["label_noise"].score(view, flagged, s)  # type: ignore[misc]
        own = float(score[flagged][0])
        if math.isfinite(own) and own >= s.fallback:
            return "label_noise"
    return "neighbours" if "neighbours" in names else names[0]
