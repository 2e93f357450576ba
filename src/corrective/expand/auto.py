"""`auto`: pick the strategy by cross-validation inside S_f (no S_m, no test data).

Every candidate strategy is cross-validated the same way (`expand.cutoff`): from all but one part of
S_f, how deep into the unflagged samples must one go to recover the held-out part? The candidate
whose held-out flagged samples rank highest among the unflagged ones (the smallest mean count, a
sample it never ranks counted as all of them; ties: the smaller median count, then the order of
`candidates`) is picked: the one that concentrates what the flagged samples share into the fewest
others. Its cutoff comes from
the same cross-validation.

A candidate is a strategy name, optionally with settings: `label_noise[restrict=labels]`.

With a single flagged sample there is nothing to cross-validate: `label_noise` is picked when that
sample's given label disagrees with its feature-space neighbours (its label_noise score reaches the
strategy's fallback threshold), `neighbours` otherwise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from torch import Tensor

from corrective.expand.base import STRATEGIES, Cutoff, View, get_strategy, make_strategy_settings, register_special
from corrective.expand.cutoff import Recovery, cross_validate
from corrective.settings import parse_value, setting

# classifier and gradients never concentrated the held-out samples best on the benchmark
# (benchmarks/results/expand_digits.md): they are strategies of their own, candidates on request
DEFAULT_CANDIDATES = "neighbours,label_noise[restrict=labels],label_noise"
_CANDIDATE = re.compile(r"^\s*([a-z_]+)\s*(?:\[([^\]]*)\])?\s*$")


def parse_candidates(text: str) -> list[tuple[str, dict[str, Any]]]:
    """`a,b[key=value;key=value]` as [(name, settings)]; a clear error for anything else."""
    out: list[tuple[str, dict[str, Any]]] = []
    for item in re.split(r",(?![^\[]*\])", text):
        if not item.strip():
            continue
        m = _CANDIDATE.match(item)
        if not m:
            raise ValueError(f"candidate {item.strip()!r} is not NAME or NAME[key=value;...]")
        name, body = m.group(1), m.group(2) or ""
        settings: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in body.split(";"))):
            key, sep, raw = pair.partition("=")
            if not sep:
                raise ValueError(f"candidate {item.strip()!r}: {pair!r} is not key=value")
            settings[key.strip()] = parse_value(raw.strip())
        out.append((name, settings))
    return out


@dataclass(frozen=True)
class AutoSettings(Cutoff):
    candidates: str = setting(DEFAULT_CANDIDATES, "strategies (with settings) to choose from, in tie-break order")

    def parsed(self) -> list[tuple[str, dict[str, Any]]]:
        return parse_candidates(self.candidates)

    def __post_init__(self) -> None:
        super().__post_init__()
        parsed = self.parsed()
        if not parsed:
            raise ValueError("candidates must name at least one strategy")
        for name, _ in parsed:
            if name in ("auto", "none") or (name in STRATEGIES and STRATEGIES[name].score is None):
                raise ValueError(f"candidates must be ranking strategies, not {name!r}")


register_special("auto", AutoSettings, "picks the strategy and its cutoff by cross-validation inside S_f")


def candidate_settings(name: str, auto: AutoSettings, overrides: dict[str, Any] | None = None) -> Any:
    """The candidate's settings (its defaults with `overrides`) with auto's cutoff settings."""
    cut = {f.name: getattr(auto, f.name) for f in fields(Cutoff)}
    return replace(make_strategy_settings(name, overrides), **cut)


def label(name: str, overrides: dict[str, Any]) -> str:
    return name + ("[" + ";".join(f"{k}={v}" for k, v in overrides.items()) + "]" if overrides else "")


def check(auto: AutoSettings) -> None:
    """Every candidate is a known strategy with valid settings (one clear line otherwise)."""
    for name, overrides in auto.parsed():
        candidate_settings(name, auto, overrides)


def pick(view: View, flagged: Tensor, auto: AutoSettings, seed: int) -> tuple[str, Any, dict[str, Recovery]]:
    """The chosen strategy, its settings and every candidate's cross-validation (at least 2 flagged samples)."""
    recs: dict[str, Recovery] = {}
    best: tuple[float, float, int] | None = None
    chosen, chosen_settings = "", None
    for i, (name, overrides) in enumerate(auto.parsed()):
        settings = candidate_settings(name, auto, overrides)
        score = get_strategy(name).score
        assert score is not None
        rec = cross_validate(view, flagged, score, settings, seed)
        recs[label(name, overrides)] = rec
        key = (rec.mean_count(), float(np.median(rec.counts)), i)
        if best is None or key < best:
            best, chosen, chosen_settings = key, name, settings
    return chosen, chosen_settings, recs


def pick_single(view: View, flagged: Tensor, auto: AutoSettings) -> tuple[str, Any]:
    """With one flagged sample: label_noise when its label disagrees with its neighbours, else neighbours."""
    names = [n for n, _ in auto.parsed()]
    if "label_noise" in names:
        s = candidate_settings("label_noise", auto)
        rank = STRATEGIES["label_noise"].score
        assert rank is not None  # label_noise ranks samples itself
        score = rank(view, flagged, s)
        own = float(score[flagged][0])
        if math.isfinite(own) and own >= s.fallback:
            return "label_noise", s
    name = "neighbours" if "neighbours" in names else names[0]
    return name, candidate_settings(name, auto)
