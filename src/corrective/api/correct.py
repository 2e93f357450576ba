"""Correct a practitioner's model: their training data, flagged ids and trusted held-out data; no S_m anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from corrective.api.core import UnlearnResult, correct_task, reference_on, resolve_selection
from corrective.api.flagged import check_flagged
from corrective.data import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import expand as expand_fn  # for functions whose `expand` argument names a strategy
from corrective.methods import UnlearnTask, get_method
from corrective.metrics import per_class, predict, share
from corrective.models import ModelSpec, device_of
from corrective.training import TrainConfig, feature_precision


def correct(
    model: nn.Module,
    train: Split,
    flagged: torch.Tensor,
    *,
    method: str,
    pipeline: Pipeline,
    config: TrainConfig,
    spec: ModelSpec,
    held_out: Split | None = None,
    settings: dict[str, Any] | None = None,
    grid: bool | None = None,
    selection: str | None = None,
    max_class_drop: float | None = None,
    expand: str = "none",
    seed: int = 0,
    progress: bool | None = None,
) -> UnlearnResult:
    """The practitioner's call: remove the effect of the data around `flagged` from `model`.

    `train` is the training data as the model saw it (labels as given), `flagged` the ids found to be
    manipulated, `config` the recipe the model was trained with (method budgets are shares of its
    steps). With `grid` (default: the method's own — auto searches its grid, the others run their defaults),
    settings are chosen on `held_out`, trusted clean data, by the paper's rule (0.5 * accuracy on it + 0.5 *
    share of flagged samples whose prediction changed) or by `guarded` (the same among candidates losing at
    most `max_class_drop` on every class of `held_out`). `expand` names a strategy of `corrective.expand`
    that adds to `flagged` the training samples that look manipulated like them; the method is then handed
    the expanded set (`forget_changed` is about it).

    Do no harm, for every method: when the chosen model's accuracy on `held_out` fell by more than
    `max_class_drop` (default 0.05; one sample of a class always allowed) on any class or on the whole, the
    original model is returned unchanged and the records say so (`do_no_harm: original`,
    `returned_original`; see `run_candidates`). Without `held_out` this cannot be checked
    (`do_no_harm: unchecked`).
    """
    given = torch.as_tensor(flagged, dtype=torch.long).reshape(-1).cpu()
    flagged = check_flagged(train, flagged)
    info = get_method(method)
    rule = resolve_selection(method, selection, max_class_drop)
    if not info.is_method:
        raise UserError(f"{method!r} is an oracle bound that needs every manipulated id; pick a method")
    if grid is None:
        grid = info.grid_by_default
    if grid and (held_out is None or len(held_out) == 0):
        raise UserError(
            f"{method}'s grid search selects settings on trusted held-out data; provide a test split "
            "(or run the defaults alone: --no-grid)"
        )
    if rule.rule == "guarded" and (held_out is None or len(held_out) == 0):
        raise UserError(
            "guarded selection compares classes on trusted held-out data; provide a test split "
            "(or use --selection paper)"
        )
    num_classes = int(spec.num_classes)
    reference = None if held_out is None or len(held_out) == 0 else reference_on(model, held_out, pipeline, num_classes)
    task = UnlearnTask(model, train, flagged, pipeline, config, spec, seed, progress)

    def held_out_figures(new: nn.Module) -> dict[str, Any]:
        """Accuracy on `held_out`, whole and per class, from one prediction pass."""
        if held_out is None:
            return {"val_accuracy": float("nan")}
        y = held_out.y.cpu()
        correct = predict(new, held_out, pipeline) == y
        return {"val_accuracy": share(correct), "val_per_class_acc": per_class(correct, y, num_classes)}

    def measure_for(acted_on: torch.Tensor) -> Callable[[nn.Module], dict[str, Any]]:
        flagged_split = train.subset(train.positions_of(acted_on))
        before = predict(model, flagged_split, pipeline)

        def measure(new: nn.Module) -> dict[str, Any]:
            after = predict(new, flagged_split, pipeline)
            return {
                **held_out_figures(new),
                "forget_changed": float((after != before).float().mean()),
                "flagged_given_label_acc": float((after == flagged_split.y.cpu()).float().mean()),
            }

        return measure

    def compute(strategy: str) -> Any:
        precision = feature_precision(config, device_of(model), train.x.shape[-1])  # the model's own
        return expand_fn(model, train, flagged, pipeline, strategy, seed=seed, progress=progress, precision=precision)

    return correct_task(
        task,
        method,
        given=given,
        expand=expand,
        expansion=None,
        compute=compute,
        settings=settings,
        grid=grid,
        rule=rule,
        reference=reference,
        measure_for=measure_for,
        do_no_harm=True,
    )
