"""The one core of `unlearn` (a benchmark run) and `correct` (a practitioner's model): expand S_f where asked,
run the method's candidates, measure and select them (guarded, do no harm), describe the flags."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from corrective.api.flagged import describe_flags
from corrective.data import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import get_strategy
from corrective.methods import (
    UnlearnTask,
    candidate_overrides,
    get_method,
    make_settings,
    run_methods_grid,
    settings_dict,
)
from corrective.methods.selection import Reference, Selection, class_drop, heal_change, selection_record, unhealed
from corrective.metrics import per_class_accuracy


@dataclass
class UnlearnResult:
    """Every candidate setting of one (method, alpha) as records, the selected one marked, and its model.

    The selected record also holds the method's `diagnostics`, where it registered some (SSD's ratio histogram).

    Only the selected candidate's model is kept: a 50-setting grid of a large model would not fit in memory.
    """

    records: list[dict[str, Any]]
    model: nn.Module
    selected: int

    @property
    def record(self) -> dict[str, Any]:
        return self.records[self.selected]

    @property
    def diagnostics(self) -> dict[str, Any]:
        """The method's diagnostics for this task (empty where it registered none)."""
        diagnostics: dict[str, Any] = self.record.get("diagnostics", {})
        return diagnostics


def resolve_selection(method: str, selection: str | Selection | None, max_class_drop: float | None) -> Selection:
    """The rule the caller chose, else the one the method asks for (`MethodInfo.selection`), else the paper's."""
    if isinstance(selection, Selection):
        return selection
    rule = selection or get_method(method).selection or "paper"
    return Selection(rule) if max_class_drop is None else Selection(rule, max_class_drop)


def reference_on(model: nn.Module, split: Split, pipeline: Pipeline, num_classes: int) -> Reference:
    """What the guarded rule compares candidates with: the original model's accuracy on each class of
    `split` (clean validation or trusted held-out data) and the class's number of samples."""
    counts = torch.bincount(split.y.cpu(), minlength=num_classes)[:num_classes].tolist()
    return Reference(tuple(per_class_accuracy(model, split, pipeline, num_classes)), tuple(counts))


def run_candidates(
    task: UnlearnTask,
    method: str,
    settings: dict[str, Any] | None,
    grid: bool | list[dict[str, Any]] | None,
    measure: Callable[[nn.Module], dict[str, Any]],
    selection: Selection | None = None,
    reference: Reference | None = None,
    do_no_harm: bool = False,
) -> UnlearnResult:
    """Run `method` once per candidate, measure each model, select by `selection` (default: the paper's rule).

    The candidates are `settings` alone, or with `grid` every setting of the method's grid (or of the
    given list) with `settings` applied on top (`None`: the method's own default, its grid for auto).
    `measure` gives each model's figures, `val_per_class_acc` among them; `reference` is the original model
    on the validation split (`reference_on`), which the guarded rule compares against (each record gets its
    `val_class_drop`, the largest fall of a class).

    With `do_no_harm`, every record says whether the rule's choice stayed within the guard (every class and
    the whole of the reference split within `max_class_drop` or one sample): `do_no_harm` is `kept` when it
    did, `unchecked` without a reference, and `original` when it did not — then the original model is
    returned unchanged (`returned_original`): a last record (`is_original`, selected, no settings) holds the
    original's figures, with `unlearn_seconds` the whole search's, and the rule's choice is marked
    `rejected_by_guard`.

    A method that stops at the guard (`MethodInfo.stop_at_guard`: auto), under the guarded rule with a reference,
    runs its candidates in order and stops at the first within the guard — the rule's choice among those that ran
    (every record says `stopped_at_guard`: True where a candidate within the guard ended the search, False where
    none was and every candidate ran).

    A method that names classes to heal on the task (`MethodInfo.heals`: auto where its evidence says label noise)
    has them in the reference: each record gets `val_heal` (their validation accuracy's change, weighted by their
    shares), a candidate that lowers it beyond the allowance is not within the guard (`unhealed`), and a search that
    stops at the guard ends at one that did so while the split as a whole held (`stopped_unhealed`: the forget set's
    doing, which every candidate shares; `Selection.forget_set_fault`).
    """
    info = get_method(method)
    selection = selection or Selection()
    if selection.rule == "guarded" and reference is None:
        raise UserError(
            "guarded selection needs clean held-out data to compare classes on; provide it or use selection 'paper'"
        )
    candidates = [make_settings(method, o) for o in candidate_overrides(method, grid, settings)]
    stop_at_guard = info.stop_at_guard and selection.rule == "guarded" and reference is not None
    heal: dict[int, float] | None = None
    records: list[dict[str, Any]] = []
    best: nn.Module | None = None
    best_key: tuple[float, float] | None = None
    chosen = 0
    for s, model, seconds in run_methods_grid(task, method, candidates):
        if not records and reference is not None and info.heals is not None:  # after the first candidate, whose
            heal = info.heals(task)  # seconds hold what the method's evidence cost (auto's)
            if heal is not None:
                reference = replace(reference, heal=tuple(heal.get(c, 0.0) for c in range(len(reference.accuracy))))
        record = {"method": method, "settings": settings_dict(s), "selected": False, "is_method": info.is_method}
        record |= {"n_forget": len(task.forget_ids), "unlearn_seconds": seconds}
        record |= measure(model)
        if reference is not None:
            record["val_class_drop"] = class_drop(record, reference)
        if heal is not None:
            record |= {"val_heal": heal_change(record, reference), "unhealed": unhealed(record, reference)}
        records.append(record)
        key = selection.key(record, reference)
        if best_key is None or key > best_key:  # strict: the first of equals wins
            best, best_key, chosen = model, key, len(records) - 1
        if stop_at_guard and (selection.eligible(record, reference) or selection.forget_set_fault(record, reference)):
            break  # the first candidate within the guard, or one whose forget set lowered the classes to heal
    choice = selection_record(records, chosen, selection, reference)
    if stop_at_guard:  # the search ends at a candidate within the guard, or ran every candidate without one
        choice["stopped_at_guard"] = selection.eligible(records[-1], reference)
        if heal is not None:
            choice["stopped_unhealed"] = selection.forget_set_fault(records[-1], reference)
    if do_no_harm:
        within = (
            None
            if reference is None
            else Selection("guarded", selection.max_class_drop).eligible(records[chosen], reference)
        )
        outcome = "unchecked" if within is None else "kept" if within else "original"
        choice |= {"do_no_harm": outcome, "returned_original": within is False}
        choice["max_class_drop"] = selection.max_class_drop
        if within is False:
            records[chosen]["rejected_by_guard"] = True
            records.append(original_record(task, method, records, measure, reference))
            chosen, best = len(records) - 1, task.copy_model().eval()
    records[chosen]["selected"] = True
    for r in records:
        r |= choice
    if info.diagnostics is not None:  # once per (method, S_f), untimed; on the selected record only
        records[chosen]["diagnostics"] = info.diagnostics(task)
    assert best is not None
    return UnlearnResult(records, best, chosen)


def original_record(
    task: UnlearnTask,
    method: str,
    candidates: list[dict[str, Any]],
    measure: Callable[[nn.Module], dict[str, Any]],
    reference: Reference | None,
) -> dict[str, Any]:
    """The record of the original model returned unchanged by `method`: its figures, no settings, and the
    seconds of the whole search that found no candidate within the guard."""
    record: dict[str, Any] = {"method": method, "settings": {}, "selected": False, "is_method": True}
    record |= {"is_original": True, "n_forget": len(task.forget_ids)}
    record["unlearn_seconds"] = math.fsum(r["unlearn_seconds"] for r in candidates)
    record |= measure(task.model)
    if reference is not None:
        record["val_class_drop"] = class_drop(record, reference)
    return record


def check_expand(method: str, expand: str) -> None:
    """An unknown strategy, or --expand on a method that expands S_f itself or on an oracle bound: one clear line."""
    get_strategy(expand)
    expansion_for(method, expand, None, lambda strategy: None)


def expansion_for(method: str, expand: str, expansion: Any, compute: Callable[[str], Any]) -> Any:
    """The expansion a (method, --expand) pair uses, or None: the given one, else computed by `compute(strategy)`.

    A method that expands S_f itself (`MethodInfo.expand`, e.g. auto) takes only its own strategy.
    """
    info = get_method(method)
    if info.expand is not None:
        if expand not in ("none", info.expand):
            raise UserError(f"method {method!r} expands S_f itself (strategy {info.expand!r}); drop --expand {expand}")
        strategy = info.expand
    else:
        strategy = expand
    if strategy == "none":
        if expansion is not None:
            raise UserError("an expansion was given but expand is 'none'; name its strategy")
        return None
    if not info.is_method:
        raise UserError(f"{method!r} is an oracle bound handed every manipulated id; expansion does not apply")
    if expansion is not None:
        if expansion.strategy != strategy:
            raise UserError(f"the given expansion is by {expansion.strategy!r}, not {strategy!r}")
        return expansion
    return compute(strategy)


def expansion_task(task: UnlearnTask, method: str, expansion: Any) -> UnlearnTask:
    """The task the method runs on: S_f replaced by the expanded set, or (for a method that expands itself)
    S_f with the expansion handed in as `task.expansion`, so the method does not compute it again."""
    if expansion is None:
        return task
    if get_method(method).expand is not None:
        return replace(task, expansion=expansion)
    return replace(task, forget_ids=expansion.ids.to(task.forget_ids.device))


def with_expansion(result: UnlearnResult, expansion: Any, n_flagged: int) -> UnlearnResult:
    """Every record says which expansion (if any) the method's forget set came from, and how big S_f was."""
    extra = {"expand": "none", "n_expanded": 0, "n_flagged": n_flagged}
    if expansion is not None:
        extra |= expansion.to_record() | {"n_forget": len(expansion.ids)}
    for r in result.records:
        r |= extra
    return result


def correct_task(
    task: UnlearnTask,
    method: str,
    *,
    given: torch.Tensor,
    expand: str,
    expansion: Any,
    compute: Callable[[str], Any],
    settings: dict[str, Any] | None,
    grid: bool | list[dict[str, Any]] | None,
    rule: Selection,
    reference: Reference | None,
    measure_for: Callable[[torch.Tensor], Callable[[nn.Module], dict[str, Any]]],
    do_no_harm: bool,
) -> UnlearnResult:
    """The steps `unlearn` and `correct` share, on a task whose `forget_ids` are the flagged ids (S_f):

    1. the expansion the (method, `expand`) pair uses — `expansion` where given, else `compute(strategy)` —
       and the task the method runs on (`expansion_task`);
    2. every candidate run, measured by `measure_for(acted_on)` (the set the method acts on: S_f or its
       expansion) and selected by `rule` against `reference`, the original returned where `do_no_harm` and
       the choice fell beyond the guard (`run_candidates`);
    3. every record told what the flags (`given`, repeats included) and the acted-on set look like
       (`describe_flags`) and which expansion the forget set came from (`with_expansion`).
    """
    flagged = task.forget_ids
    exp = expansion_for(method, expand, expansion, compute)
    acted_on = flagged if exp is None else exp.ids
    result = run_candidates(
        expansion_task(task, method, exp), method, settings, grid, measure_for(acted_on), rule, reference, do_no_harm
    )
    notes = describe_flags(
        task.model, task.train, task.pipeline, given, acted_on, expanded=exp is not None, seed=task.seed
    )
    for r in result.records:
        r |= notes
    return with_expansion(result, exp, len(flagged))
