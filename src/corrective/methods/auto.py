"""`auto`: find the rest of the manipulated data, unlearn it with the method that does best on expanded
sets, and select a setting that erases no class.

1. Expand `S_f` with `corrective.expand`'s `auto` strategy (it picks a strategy and its cutoff by
   cross-validation inside `S_f`; it sees only `M_o`, the training data as given and `S_f`).
2. Run `BASE` (chosen from the benchmark on expanded sets: docs/methods.md) on the expanded set, over
   `BASE`'s own settings and grid.
3. Select by the `guarded` rule (`MethodInfo.selection`), unless the caller names another rule. The grid
   is searched unless the caller says `grid=False` (`MethodInfo.grid_by_default`), and when the chosen
   candidate loses more than the guard on a class or the whole of the clean validation (held-out) data,
   the original model is returned unchanged (`MethodInfo.do_no_harm`, `api.run_candidates`).

The expansion is computed once per task and shared by every setting of the grid; `api` hands it in
through `task.cache[EXPANSION_CACHE]` when it already has it (the bench computes it once per original
model and alpha), and the records carry it (`expand`, `n_expanded`, `expand_seconds`). A setting's
`unlearn_seconds` is the base method's time; the expansion's time is `expand_seconds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from torch import nn

from corrective.expand import Expansion, expand
from corrective.methods import scrub  # noqa: F401  (registers BASE before auto copies its settings)
from corrective.methods.base import EXPANSION_CACHE, METHODS, UnlearnTask, register_method, run_methods_grid

BASE = "scrub"  # the method run on the expanded set (docs/methods.md: why)
STRATEGY = "auto"  # the expansion strategy


def expansion_of(task: UnlearnTask) -> Expansion:
    """The task's expansion: the one handed in, else computed from S_f (and kept for the grid's other settings)."""
    if EXPANSION_CACHE not in task.cache:
        task.cache[EXPANSION_CACHE] = expand(
            task.model, task.train, task.forget_ids, task.pipeline, STRATEGY, seed=task.seed, progress=task.progress
        )
    expansion: Expansion = task.cache[EXPANSION_CACHE]
    return expansion


def expanded_task(task: UnlearnTask) -> UnlearnTask:
    ids = expansion_of(task).ids.to(task.forget_ids.device)
    return dataclasses.replace(task, forget_ids=ids)


def auto_grid() -> list[dict[str, Any]]:
    return METHODS[BASE].grid()


def auto_run_grid(task: UnlearnTask, settings_list: list[Any]) -> Iterator[tuple[Any, nn.Module, float]]:
    """The base method's grid on the expanded set (through its shared-work runner where it has one)."""
    yield from run_methods_grid(expanded_task(task), BASE, settings_list)


@register_method(
    METHODS[BASE].settings,
    auto_grid,
    run_grid=auto_run_grid,
    selection="guarded",
    expand=STRATEGY,
    grid_by_default=True,
    do_no_harm=True,
)
def auto(task: UnlearnTask, settings: Any) -> nn.Module:
    """Expand S_f (auto strategy), unlearn the expanded set with the strongest method, guarded selection."""
    return METHODS[BASE].fn(expanded_task(task), settings)
