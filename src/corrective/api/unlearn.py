"""Unlearn on a benchmark run: S_f at a discovery rate (with false flags), metrics against the true S_m."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from corrective.api.core import UnlearnResult, correct_task, reference_on, resolve_selection
from corrective.api.runs import Run, expand_run, flagged_ids, make_task
from corrective.data.batches import Pipeline
from corrective.methods import get_method
from corrective.metrics import evaluate


def unlearn(
    run: Run,
    method: str,
    alpha: float = 1.0,
    *,
    settings: dict[str, Any] | None = None,
    grid: bool | list[dict[str, Any]] | None = None,
    selection: str | None = None,
    max_class_drop: float | None = None,
    expand: str = "none",
    expansion: Any = None,
    progress: bool | None = None,
    false_flags: float = 0.0,
) -> UnlearnResult:
    """Apply `method` to a run with the first `alpha` share of S_m identified; evaluate; apply the selection rule.

    With `grid`, every setting of the method's grid (or of the given list of settings), each with
    `settings` applied on top, is a candidate (`None`: the method's own default — auto searches its grid,
    the others run their defaults). `selection` is `paper` or `guarded` (on the clean validation split;
    default: the method's own choice, else `paper`). A method that does no harm (`MethodInfo.do_no_harm`:
    auto) returns the original model when the chosen candidate loses more than the guard on a class or the
    whole of the validation split (`run_candidates`). `false_flags` adds
    round(false_flags * |S_f|) clean training samples to the flagged set (`Manipulation.false_flag_ids`):
    the method and the selection rule see them as flagged. `expand` names a strategy of
    `corrective.expand`: the method is handed the flagged set with the samples it adds (an `expansion`
    already computed for this run, alpha and false flags may be given). Every metric of the manipulation
    still reads the true S_m and the test domains; `forget_changed` (and so the selection score) is about
    the set the method acted on.
    """
    info = get_method(method)
    rule = resolve_selection(method, selection, max_class_drop)
    forget_ids, n_false = flagged_ids(run, alpha, false_flags)
    task = make_task(run, forget_ids, oracle=not info.is_method, progress=progress)
    reference = reference_on(run.model, run.dataset.val, Pipeline.of(run.dataset), run.dataset.num_classes)

    def measure_for(acted_on: torch.Tensor) -> Callable[[nn.Module], dict[str, Any]]:
        def measure(model: nn.Module) -> dict[str, Any]:
            metrics = evaluate(
                model, run.dataset, run.manipulation, reference=run.model, forget_ids=acted_on, original=run.metrics
            )
            return {"alpha": alpha, "false_flags": false_flags, "n_false_flags": n_false, **metrics}

        return measure

    return correct_task(
        task,
        method,
        given=forget_ids,
        expand=expand,
        expansion=expansion,
        compute=lambda s: expand_run(run, alpha, s, false_flags=false_flags, progress=progress),
        settings=settings,
        grid=grid,
        rule=rule,
        reference=reference,
        measure_for=measure_for,
        do_no_harm=info.do_no_harm,
    )
