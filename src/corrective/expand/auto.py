"""`auto`: pick the strategy by cross-validation inside S_f (no S_m, no test data).

Every candidate strategy is cross-validated the same way (`expand.cutoff`): from all but one part of
S_f, how deep into the unflagged samples must one go to recover the held-out part? The candidate
whose held-out flagged samples rank highest among the unflagged ones (the smallest mean count, a
sample it never ranks counted as all of them; ties: the smaller median count, then the order of
`candidates`) is picked: the one that concentrates what the flagged samples share into the fewest
others. Its cutoff comes from
the same cross-validation.

A candidate is a strategy name, optionally with settings: `label_noise[restrict=labels]`.

With at most `few` flagged samples cross-validation inside S_f cannot choose a cutoff: `label_noise`
is picked when most of the flagged samples' given labels disagree with their feature-space
neighbours (their label_noise score reaches the strategy's majority threshold) and their coherent
group, if any, mostly does too; `cluster` otherwise (the coherent group of their label that the
model treats alike); either adds what reaches its threshold (`fallback`), no cross-validation.

Before any of this, `screen` (on by default) sets aside the flagged samples that show no sign of
manipulation (`expand.screen`): clean samples flagged by mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from corrective.expand.base import STRATEGIES, Cutoff, View, get_strategy, make_strategy_settings, register_special
from corrective.expand.cluster import flag_groups
from corrective.expand.cutoff import Recovery, cross_validate
from corrective.settings import parse_value, setting

# classifier and gradients never concentrated the held-out samples best on the benchmark
# (benchmarks/results/expand_digits.md): they are strategies of their own, candidates on request
DEFAULT_CANDIDATES = "neighbours,label_noise[restrict=labels],label_noise"
STRONG_GROUP = 0.01  # with few flags: a group this unlikely by chance outweighs a flagged label's disagreement
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
    few: int = setting(
        5, "with at most this many flagged samples: label_noise or cluster by threshold, no cross-validation", ge=1
    )
    screen: bool = setting(True, "set aside flagged samples that show no sign of manipulation before expanding")

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


register_special(
    "auto",
    AutoSettings,
    "screens S_f, then picks the strategy and its cutoff by cross-validation inside S_f "
    "(at most `few` flags: cluster or label_noise by threshold)",
)


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


def pick_few(view: View, flagged: Tensor, auto: AutoSettings) -> tuple[str, Any]:
    """With few flagged samples: label_noise or cluster, by what most flagged samples show (ties: cluster).

    A flagged sample votes label_noise when its given label disagrees with its neighbours (label_noise
    score >= its threshold), unless it sits in a coherent group that chance explains worse than
    `STRONG_GROUP` (binomial p-value, `cluster.flag_groups`): a tight group of its label, such as a
    trigger's, outweighs the disagreement of its neighbours. Every other flagged sample votes cluster.
    """
    s = candidate_settings("label_noise", auto)
    rank = STRATEGIES["label_noise"].score
    assert rank is not None  # label_noise ranks samples itself
    noisy = flagged & (rank(view, flagged, s) >= s.fallback)
    cs = candidate_settings("cluster", auto)
    strong = torch.zeros_like(flagged)
    for group in flag_groups(view, flagged, cs):
        if group.p_value <= STRONG_GROUP:
            strong |= group.flagged
    votes = int((noisy & ~strong).sum())
    if 2 * votes > int(flagged.sum()):
        return "label_noise", s
    return "cluster", cs
