"""`auto`: find the rest of the manipulated data, unlearn it with the base method the evidence points to, and
select a setting that erases no class — or return the original model.

1. Expand `S_f` with `corrective.expand`'s `auto` strategy (it picks a strategy and its cutoff by
   cross-validation inside `S_f`; it sees only `M_o`, the training data as given and `S_f`).
2. Pick the base method from what the expansion found (`base = "evidence"`, the default): where the
   expansion chose `label_noise` — the flagged samples' given labels disagree with what the model and
   their neighbours say — **fine-tuning** on the rest (`finetune`), which drops the noisy labels and
   re-learns — unless the original answers the trigger the flags share (`transplant.trigger_response`: stamped with
   the transplant's estimate of it, at least 20 points more of other labels' unflagged samples go to the flags'
   label than with a random image of its norm): a dirty-label backdoor's flags disagree with their neighbours too
   (digits 1 %, one flag: blended seed 0 fine-tuned to 57-72 % attack success); otherwise (`neighbours`, `cluster`:
   the flagged samples share a feature, e.g. a trigger) and there, **trigger transplant** (`transplant`):
   fine-tuning on the rest with the trigger the expanded set shares (estimated) stamped on a share of it, labels
   kept. Why: on held-out digits seeds fine-tuning on the
   expansion healed label noise better than SCRUB (interclass 88.3 vs 83.4 %, random swap 96.7 vs 94.0)
   (benchmarks/results/auto_base.md); on backdoors the transplant removed what SCRUB left — BadNet, blended
   and SIG — at a fraction of SCRUB's grid's cost, and where a group of label-noise flags was taken for a
   shared feature it fine-tunes as `finetune` does (benchmarks/results/transplant.md). `base = "scrub"`,
   `"finetune"` or `"transplant"` fixes the base; `follow_evidence = false` runs every candidate of the
   grid, every base, and lets the selection rule choose.
3. Run the base over its candidates of auto's grid (the transplant's five, fine-tuning's two learning rates,
   SCRUB's `kl_weight` grid) on the expanded set **in order, stopping at the first candidate within the guard**
   (`MethodInfo.stop_at_guard`): the transplant's candidates are ordered gentlest and cheapest first (half algorithm
   A's learning rate at 25 % of its steps first), fine-tuning's half the rate first too, so a task the first one
   corrects costs one candidate; the later ones run only where the earlier ones lost more than the guard on a class;
   where none of the evidence's base kept it, the other fine-tuning base's candidates follow (`fallback`: the
   transplant after fine-tuning and back). Under the `guarded` rule (`MethodInfo.selection`) that first candidate
   within the guard is the rule's choice among those that ran; a caller who names the `paper` rule gets the whole
   grid ranked. The grid is searched unless the caller says `grid=False` (`MethodInfo.grid_by_default`), and when no
   candidate keeps every class and the whole of the clean validation (held-out) data within the guard, the original
   model is returned unchanged (`MethodInfo.do_no_harm`, `api.run_candidates`).
4. Heal or stop: where the evidence says label noise, a candidate must also not lower the clean validation accuracy
   of the expanded set's classes (`heal_shares`, `MethodInfo.heals`; `selection.unhealed`), and where it did while
   the split as a whole held, the search ends there — the forget set holds clean samples of those classes, and every
   candidate unlearns the same set (benchmarks/results/harm_targets.md, "Heal or stop").

The grid is declared before the task is known (the union of both bases' candidates, each naming its base);
once the expansion is known, `run_grid` runs only the candidates of the base it points to — a candidate that
does not apply to the task is not run and has no record. Every record's `settings.base` says which base ran;
the selected record's `diagnostics` say which base the evidence points to and why (`evidence_base`,
`base_reason`).

The expansion is computed once per task and shared by every setting of the grid; `api` hands it in
as `task.expansion` when it already has it (the bench computes it once per original
model and alpha), and the records carry it (`expand`, `n_expanded`, `expand_seconds`). A setting's
`unlearn_seconds` is the base method's time; the expansion's time is `expand_seconds`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from corrective.expand import Expansion, expand
from corrective.methods import finetune as _finetune  # noqa: F401  (registers a base before auto refers to it)
from corrective.methods import scrub as _scrub  # noqa: F401
from corrective.methods import transplant as _transplant  # noqa: F401
from corrective.methods.base import METHODS, UnlearnTask, register_method, run_methods_grid
from corrective.methods.finetune import FinetuneSettings
from corrective.methods.scrub import ScrubSettings
from corrective.methods.transplant import LR_GRID, Response, TransplantSettings, trigger_response
from corrective.methods.votes import MAJORITY
from corrective.settings import setting

STRATEGY = "auto"  # the expansion strategy
COMPUTED = ("expansion", STRATEGY)  # task.cache key of the expansion auto computed itself
BASES = ("transplant", "finetune", "scrub")  # the methods auto may run on the expanded set
LABEL_NOISE_BASE = "finetune"  # where the expansion chose label_noise
OTHER_BASE = "transplant"  # everywhere else (a shared feature: a trigger)
FINE_TUNING = {"finetune": FinetuneSettings, "transplant": TransplantSettings}  # bases that take budget, lr_factor
REASONS = {
    "finetune": "the expansion chose label_noise (the flagged labels disagree with the model and their "
    "neighbours) and the original does not answer the trigger the flags share ({response}): fine-tuning on the rest "
    "heals label noise better than SCRUB (benchmarks/results/auto_base.md)",
    "transplant": "the expansion chose {chosen} (the flagged samples share a feature, as a trigger): fine-tuning "
    "with the estimated trigger stamped on the rest removes BadNet, blended and SIG backdoors that SCRUB leaves "
    "(benchmarks/results/transplant.md)",
    "answers": "the expansion chose label_noise, but the original answers the trigger the flags share ({response}): "
    "a backdoor, whose trigger the transplant removes (benchmarks/results/transplant.md, 'trigger response')",
}
RESPONSE = ("auto", "response")  # task.cache key of the original's response to the flags' trigger


def described(r: Response) -> str:
    return (
        f"{100 * r.stamped:.1f} % of other labels' samples stamped with it go to label {r.label}, "
        f"{100 * r.control:.1f} % without it"
    )


@dataclass(frozen=True)
class AutoSettings(ScrubSettings):
    """SCRUB's settings (for the scrub base), the base, and whether the grid follows the evidence.

    Fine-tuning and the transplant take `budget` and `lr_factor` (of algorithm A's learning rate)."""

    base: str = setting(
        "evidence",
        "method run on the expansion: evidence (finetune where it chose label_noise and the original does not "
        "answer the flags' trigger, else transplant), transplant, finetune or scrub",
        choices=("evidence", *BASES),
    )
    lr_factor: float = setting(1.0, "the fine-tuning bases' learning rate: algorithm A's times this", gt=0)
    relabel: bool = setting(
        True,
        "the fine-tuning bases keep flagged samples whose pixel neighbours vote for another class, under that class",
    )
    keep_confirmed: bool = setting(
        False,
        "with relabel: flagged samples whose pixel neighbours vote for their own label stay in under it (the "
        "transplant's with its trigger estimate taken off); off: they stay out",
    )
    relabel_share: float = setting(
        MAJORITY,
        "with relabel: relabel where more than this share of a flagged sample's neighbours name one other class "
        "(0.5: a majority)",
        ge=0.5,
        le=1,
    )
    probe: bool = setting(
        True,
        "with relabel: where the flags' votes confuse 2-4 labels, the fine-tuning bases also take the samples of "
        "those labels that a cross-validated linear probe on pixels puts in another of them, and relabel only where "
        "the probe and the pixel neighbours name one class",
    )
    anchor: float = setting(
        0.0,
        "the fine-tuning bases hold the model's outputs on the clean samples at the original's with this weight "
        "(the transplant's last candidate: 1)",
        ge=0,
    )
    resume: bool = setting(
        False,
        "the fine-tuning bases start from the model of the search's previous candidate of the base, not the "
        "original (the transplant's second and fifth candidates)",
    )
    follow_evidence: bool = setting(
        True, "with a grid: run only the candidates of the base the evidence points to (false: all; the rule picks)"
    )
    fallback: bool = setting(
        True,
        "with follow_evidence: after the evidence base's candidates, the other fine-tuning base's (the transplant "
        "after fine-tuning and back), tried where none of the first kept the guard",
    )


def expansion_of(task: UnlearnTask) -> Expansion:
    """The task's expansion: the one handed in (`task.expansion`), else computed from S_f once (the feature
    pass in the precision the model was trained in) and kept in `task.cache` for the grid's other settings."""
    if task.expansion is not None:
        return task.expansion
    if COMPUTED not in task.cache:
        task.cache[COMPUTED] = expand(
            task.model,
            task.train,
            task.forget_ids,
            task.pipeline,
            STRATEGY,
            seed=task.seed,
            progress=task.progress,
            precision=task.precision,
        )
    expansion: Expansion = task.cache[COMPUTED]
    return expansion


def response_of(task: UnlearnTask) -> Response:
    """The original's response to the trigger the flags (S_f as given) share, computed once per task."""
    if RESPONSE not in task.cache:
        task.cache[RESPONSE] = trigger_response(task, TransplantSettings())
    response: Response = task.cache[RESPONSE]
    return response


def evidence(task: UnlearnTask) -> tuple[str, str]:
    """The base the evidence points to and why: fine-tuning where the expansion chose label_noise and the original
    does not answer the flags' trigger (label noise), the transplant otherwise (a shared feature, or label evidence
    from a dirty-label backdoor whose trigger the original answers)."""
    exp = expansion_of(task)
    if exp.chosen != "label_noise":
        return OTHER_BASE, REASONS[OTHER_BASE].format(chosen=exp.chosen)
    response = response_of(task)
    if response.answers:
        return OTHER_BASE, REASONS["answers"].format(response=described(response))
    return LABEL_NOISE_BASE, REASONS[LABEL_NOISE_BASE].format(response=described(response))


def evidence_base(task: UnlearnTask) -> str:
    return evidence(task)[0]


def base_of(task: UnlearnTask, settings: AutoSettings) -> str:
    return evidence_base(task) if settings.base == "evidence" else settings.base


def base_settings(base: str, settings: AutoSettings) -> Any:
    """The base method's own settings from auto's."""
    if base in FINE_TUNING:
        return FINE_TUNING[base](
            budget=settings.budget,
            lr_factor=settings.lr_factor,
            relabel=settings.relabel,
            keep_confirmed=settings.keep_confirmed,
            relabel_share=settings.relabel_share,
            probe=settings.probe,
            anchor=settings.anchor,
            resume=settings.resume,
        )
    scrub = {f.name: getattr(settings, f.name) for f in dataclasses.fields(ScrubSettings)}
    return ScrubSettings(**scrub)


def expanded_task(task: UnlearnTask) -> UnlearnTask:
    ids = expansion_of(task).ids.to(task.forget_ids.device)
    return dataclasses.replace(task, forget_ids=ids)


# Fine-tuning runs at half algorithm A's learning rate, then the whole of it, under auto: with one candidate the guard
# returned the original where it lost two validation samples of a class to noise.
CANDIDATES = {"finetune": LR_GRID}  # auto's own candidates for a base; the base's registered grid otherwise


def auto_grid() -> list[dict[str, Any]]:
    """Every base's candidates, each naming its base (which of them run is decided once the expansion is known)."""
    return [{"base": base, **entry} for base in BASES for entry in CANDIDATES.get(base) or METHODS[base].grid()]


def applies(task: UnlearnTask, settings: AutoSettings) -> bool:
    """Whether a candidate runs on this task: with `follow_evidence`, only those of the evidence's base."""
    return not settings.follow_evidence or base_of(task, settings) == evidence_base(task)


FALLBACK = {"finetune": "transplant", "transplant": "finetune"}  # the other fine-tuning base, tried after the first


def falls_back(task: UnlearnTask, settings: AutoSettings) -> bool:
    """Whether a candidate is of the base tried after the evidence's (`fallback`)."""
    return settings.follow_evidence and settings.fallback and base_of(task, settings) == FALLBACK[evidence_base(task)]


def auto_run_grid(task: UnlearnTask, settings_list: list[Any]) -> Iterator[tuple[Any, nn.Module, float]]:
    """The candidates that apply to the task, base by base, on the expanded set (through each base's shared-work
    runner where it has one): the evidence's base first, then (with `fallback`) the other fine-tuning base's, so
    a search that stops at the guard reaches them only where none of the first kept it. When none of the list
    applies (a grid of the other base only, or a base the caller fixed), all of it runs; candidates that hand the
    base the same settings run once. The evidence's own time (the original's response to the flags' trigger, where
    it is read) is counted in the first candidate's seconds; the expansion's is the records' `expand_seconds`."""
    expansion_of(task)
    start = time.perf_counter()
    first = evidence_base(task)
    evidence_seconds = time.perf_counter() - start
    applying = [s for s in settings_list if applies(task, s)]
    chosen = applying + [s for s in settings_list if falls_back(task, s)] if applying else settings_list
    order = dict.fromkeys([first, FALLBACK[first], *BASES])  # the evidence's base, then the other fine-tuning one
    expanded = expanded_task(task)
    seen: set[Any] = set()
    for base in order:
        group = []
        for s in chosen:  # candidates that give the base the same settings run once (the first of them)
            if base_of(task, s) == base and base_settings(base, s) not in seen:
                seen.add(base_settings(base, s))
                group.append(s)
        if group:
            ran = run_methods_grid(expanded, base, [base_settings(base, s) for s in group])
            for s, (_, model, seconds) in zip(group, ran, strict=True):
                yield s, model, seconds + evidence_seconds
                evidence_seconds = 0.0


def heal_shares(task: UnlearnTask) -> dict[int, float] | None:
    """Where the evidence says label noise, the classes a correction must heal: each class's share of the expanded
    set's labels as given (the guarded rule refuses a candidate that lowers their validation accuracy, and the search
    stops there); None for a shared feature (a trigger), whose removal need not raise clean accuracy."""
    if evidence_base(task) != LABEL_NOISE_BASE:
        return None
    train = task.train  # the labels alone: no images are read (a streamed training set stays on disk)
    labels = train.y[train.positions_of(expansion_of(task).ids.to(train.ids.device))].cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    return {int(c): int(n) / len(labels) for c, n in zip(classes, counts, strict=True)}


def auto_diagnostics(task: UnlearnTask) -> dict[str, Any]:
    """Which base the evidence points to, and why (with the original's response to the flags' trigger where the
    expansion chose label_noise)."""
    base, reason = evidence(task)
    out: dict[str, Any] = {"evidence_base": base, "base_reason": reason}
    if RESPONSE in task.cache:
        r = response_of(task)
        out["trigger_response"] = {"label": r.label, "stamped": r.stamped, "control": r.control}
    return out


@register_method(
    AutoSettings,
    auto_grid,
    run_grid=auto_run_grid,
    diagnostics=auto_diagnostics,
    selection="guarded",
    expand=STRATEGY,
    grid_by_default=True,
    do_no_harm=True,
    stop_at_guard=True,
    heals=heal_shares,
)
def auto(task: UnlearnTask, settings: AutoSettings) -> nn.Module:
    """Expand S_f (auto strategy), unlearn it with the base the evidence points to, guarded selection."""
    base = base_of(task, settings)
    return METHODS[base].fn(expanded_task(task), base_settings(base, settings))
