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
from corrective.expand.screen import screen, second_look
from corrective.models.embedding import check_precision
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
    precision: str = "fp32",
) -> Expansion:
    """S_f plus the training samples `strategy` ranks as manipulated like it, as many as the cutoff rule allows.

    Sees only the model, `train` (labels as given) and `forget_ids`; deterministic for a given `seed`.
    `strategy` is one of `list_strategies()`, `settings` overrides its settings dataclass (checked: an
    unknown key or a wrong type is one clear line). `progress` is accepted for symmetry with the
    methods; an expansion is a few passes over cached features and shows no bar. `precision` is the
    feature pass's: "bf16" for a model trained in bf16 (`training.feature_precision`), else "fp32".
    """
    start = time.perf_counter()
    get_strategy(strategy)  # an unknown strategy is one clear line
    check_precision(precision)  # before any work
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
    view = View(model, train, pipeline, seed, precision)
    check_model_classes(int(view.logits.shape[1]), train, flagged_ids)
    flagged = torch.zeros(len(view), dtype=torch.bool)
    flagged[positions] = True
    if strategy == "auto" and chosen_settings.screen:
        flagged, details["screen"] = screen(view, flagged)
    set_aside = flagged_ids[~torch.isin(flagged_ids, view.ids[flagged])]
    n_kept = int(flagged.sum())
    # few flagged samples: cross-validation inside S_f cannot choose a cutoff; the strategy's threshold does
    by_threshold = n_kept < 2 or (strategy == "auto" and n_kept <= chosen_settings.few)
    rec = None
    few = getattr(chosen_settings, "few", 1)
    if strategy == "auto":
        if by_threshold:
            chosen, chosen_settings = auto_mod.pick_few(view, flagged, chosen_settings)
        else:
            chosen, chosen_settings, recs = auto_mod.pick(view, flagged, chosen_settings, seed)
            rec = next(r for r in recs.values() if r.settings == chosen_settings)
            details["cv"] = {name: r.summary() for name, r in recs.items()}
            rank = get_strategy(chosen).score
            assert rank is not None  # auto's candidates rank samples themselves
            flagged, set_aside, rec, back = second_look(view, flagged, set_aside, rank, chosen_settings, rec, seed)
            if len(back):  # the chosen strategy ranks them among the kept flags: the screen was wrong about them
                details["cv"]["after_readmission"] = rec.summary()
                details["screen"] |= {
                    "n_readmitted": len(back),
                    "readmitted_ids": back.tolist(),
                    "n_set_aside": len(set_aside),
                    "set_aside_ids": set_aside.tolist(),
                }
        details["chosen_settings"] = dict(vars(chosen_settings))
    else:
        chosen = strategy
    score_fn = get_strategy(chosen).score
    assert score_fn is not None
    scores = score_fn(view, flagged, chosen_settings)
    unflagged = (~flagged).nonzero().squeeze(1)
    if len(set_aside):  # a set-aside flag is neither kept nor added back
        unflagged = unflagged[~torch.isin(view.ids[unflagged], set_aside)]
    su = scores[unflagged]
    order = torch.sort(su, descending=True, stable=True).indices
    order = order[torch.isfinite(su[order])]
    if by_threshold:
        k = int((su[order] >= chosen_settings.fallback).sum())
        what = "one flagged sample" if n_kept < 2 else f"{n_kept} flagged samples (at most few={few})"
        details["cutoff"] = {
            "rule": "fallback",
            "k": k,
            "threshold": chosen_settings.fallback,
            "reason": f"{what}: cross-validation inside S_f cannot choose a cutoff; added the "
            f"samples scoring >= the strategy's threshold {chosen_settings.fallback:g}",
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
    ids = torch.cat([view.ids[flagged], added]).unique()  # the kept flags (readmitted ones included) and the added
    return Expansion(
        strategy,
        chosen,
        ids,
        added,
        added_scores.float(),
        time.perf_counter() - start,
        jsonable(details),
        set_aside=set_aside,
    )
