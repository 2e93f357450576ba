"""`expand`: from the model, the training split as given and S_f, the expanded forget set."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import auto as auto_mod
from corrective.expand.base import (
    Expansion,
    View,
    check_model_classes,
    get_strategy,
    make_strategy_settings,
)
from corrective.expand.cutoff import choose_cutoff, cross_validate
from corrective.runs import jsonable


def expand(
    model: nn.Module,
    train: Split,
    forget_ids: Tensor,
    pipeline: Pipeline,
    strategy: str = "auto",
    settings: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> Expansion:
    """S_f plus the training samples `strategy` ranks as manipulated like it, as many as the cutoff rule allows.

    Sees only the model, `train` (labels as given) and `forget_ids`; deterministic for a given `seed`.
    `strategy` is one of `list_strategies()`, `settings` overrides its settings dataclass (checked: an
    unknown key or a wrong type is one clear line). `progress` is accepted for symmetry with the
    methods; an expansion is a few passes over cached features and shows no bar.
    """
    start = time.perf_counter()
    get_strategy(strategy)  # an unknown strategy is one clear line
    chosen_settings = make_strategy_settings(strategy, settings)
    flagged_ids = torch.as_tensor(forget_ids, dtype=torch.long).reshape(-1).cpu().unique()
    if len(flagged_ids) == 0:
        raise UserError("the flagged set S_f is empty; flag at least one sample")
    positions = train.positions_of(flagged_ids).cpu()
    details: dict[str, Any] = {"settings": dict(vars(chosen_settings)), "n_flagged": len(flagged_ids)}
    if strategy == "none":
        return Expansion(
            "none",
            "none",
            flagged_ids,
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0),
            time.perf_counter() - start,
            jsonable(details),
        )
    if strategy == "auto":
        auto_mod.check(chosen_settings)  # every candidate known, its settings valid: before any work
    view = View(model, train, pipeline, seed)
    check_model_classes(int(view.logits.shape[1]), train, flagged_ids)
    flagged = torch.zeros(len(view), dtype=torch.bool)
    flagged[positions] = True
    single = len(flagged_ids) < 2
    rec = None
    if strategy == "auto":
        if single:
            chosen, chosen_settings = auto_mod.pick_single(view, flagged, chosen_settings)
        else:
            chosen, chosen_settings, recs = auto_mod.pick(view, flagged, chosen_settings, seed)
            rec = next(r for r in recs.values() if r.settings == chosen_settings)
            details["cv"] = {name: r.summary() for name, r in recs.items()}
        details["chosen_settings"] = dict(vars(chosen_settings))
    else:
        chosen = strategy
    score_fn = get_strategy(chosen).score
    assert score_fn is not None
    scores = score_fn(view, flagged, chosen_settings)
    unflagged = (~flagged).nonzero().squeeze(1)
    su = scores[unflagged]
    order = torch.sort(su, descending=True, stable=True).indices
    order = order[torch.isfinite(su[order])]
    if single:
        k = int((su[order] >= chosen_settings.fallback).sum())
        details["cutoff"] = {
            "rule": "fallback",
            "k": k,
            "threshold": chosen_settings.fallback,
            "reason": "one flagged sample: cross-validation inside S_f is impossible; added the "
            f"samples scoring >= the strategy's fallback {chosen_settings.fallback:g}",
        }
    else:
        if rec is None:
            rec = cross_validate(view, flagged, score_fn, chosen_settings, seed)
            details["cv"] = {chosen: rec.summary()}
        k, details["cutoff"] = choose_cutoff(rec, chosen_settings, su)
    take = unflagged[order[:k]]
    added_scores = scores[take]
    details["threshold"] = float(added_scores[-1]) if len(take) else None
    added = view.ids[take]
    ids = torch.cat([flagged_ids, added]).unique()
    return Expansion(strategy, chosen, ids, added, added_scores.float(), time.perf_counter() - start, jsonable(details))
