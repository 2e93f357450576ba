"""Potion: poison unlearning by label-free, adaptive selective synaptic dampening (Schoepf, Foster, Brintrup
2024, arXiv 2406.09173 — "Potion: Towards Poison Unlearning").

SSD (methods/ssd.py) with its two settings replaced by a search that needs none:

1. Label-free importances: the loss of a batch is the mean over its samples of the L2 norm of the logits,
   `L = mean_i ‖f(x_i)‖₂`; a parameter's importance is the mean over batches of `|∂L/∂θ|`. Computed, in eval
   mode and without augmentation, on the retain set `D_r = S_tr \\ S_f` as given (`I_D`; it still holds the
   undiscovered `S_m \\ S_f`, so it is not trusted) and on `S_f` (`I_f`). Once per task, in `task.cache`,
   through SSD's importance loop (`kind="label_free"`).
2. Selection at a share `s`: pool the ratios `I_f / I_D` of every parameter (NaN and inf removed); the
   threshold is the pool's value at percentile `100 − ln(1 + 100·s)`; every θ with `I_f > threshold · I_D`
   is multiplied by `min(1, I_D / I_f)` (SSD's dampening with a = threshold, λ = 1); the rest is untouched.
   The comparison is made on the float64 ratios of the pool, so selection and threshold agree exactly.
3. PTN search: start at `s = |S_f| / |S_tr| / 25`; dampen a fresh copy of `M_o`; stop once the accuracy on
   `S_f` (given labels) is `<= rho ×` its value under `M_o`; else `s ← 1.1·s` and retry from `M_o`. At most
   `max_tries` tries; a search that hits the cap returns its last try, and its record says `met: false`.

`rho` = 0.2 by default (REM's runs); the grid is a few `rho` values. The tries are shared by the grid: every
`rho` walks the same sequence of `s`, so each try is computed once per task (a try whose selection equals
the previous one's gives the same model and is not recomputed); a try writes M_o's dampened values into one
working copy (the same numbers as a fresh copy, without copying the model each time). Each setting's
seconds are what it would cost alone: importances, the original accuracy on `S_f` and its own tries. The
diagnostics record, per `rho` searched, the tries, the final `s`, percentile, threshold, number of
dampened parameters and accuracy on `S_f`, and whether `rho` was met.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline, one_pass
from corrective.methods.base import UnlearnTask, register_method
from corrective.methods.ssd import Importances, cached_importances, dampened, ratio_pool, ratios_of
from corrective.models import device_of
from corrective.settings import Checked, setting

START_DIVISOR = 25.0  # s starts at |S_f| / |S_tr| / 25
GROWTH = 1.1  # s ← 1.1 · s after a try that did not meet rho
RHO_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)
CHUNK = 32  # S_f is scored in chunks; a try that already has too many right is not scored further


@dataclass(frozen=True)
class PotionSettings(Checked):
    rho: float = setting(
        0.2, "stop once Acc(S_f) <= rho · Acc_{M_o}(S_f) (a share of the original accuracy)", gt=0, lt=1
    )
    max_tries: int = setting(500, "cap on the search's tries (the paper's code: 500)", ge=1)
    batch_size: int = setting(0, "importance batch size; 0: the training recipe's", ge=0)


def potion_grid() -> list[dict[str, Any]]:
    return [{"rho": r} for r in RHO_GRID]


def finite_pool(ratios: dict[str, Tensor]) -> np.ndarray:
    """Every parameter's ratio (SSD's `ratio_pool`), NaN and inf removed, sorted."""
    pool = ratio_pool(ratios)
    return np.sort(pool[np.isfinite(pool)])


def percentile_of(s: float) -> float:
    """The pool percentile that sets the threshold at share s: 100 − ln(1 + 100·s), at least 0."""
    return max(0.0, 100.0 - math.log1p(100.0 * s))


def threshold_of(pool: np.ndarray, s: float) -> float:
    """The selection threshold at share s (linear interpolation between pool values); inf for an empty pool."""
    return float(np.percentile(pool, percentile_of(s))) if pool.size else math.inf


def n_selected(ratios: dict[str, Tensor], threshold: float) -> int:
    """How many parameters `I_f > threshold · I_D` selects (inf ratios always, NaN never)."""
    return sum(int((r > threshold).sum()) for r in ratios.values())


class Dampener:
    """M_o dampened at any threshold, written into one working copy: θ ← θ · min(1, I_D / I_f) where
    I_f / I_D > threshold, every other θ bitwise M_o's. No copy of the model per try."""

    def __init__(self, model: nn.Module, imp_f: Importances, imp_d: Importances, ratios: dict[str, Tensor]) -> None:
        self.work = copy.deepcopy(model).eval()
        self.params = dict(self.work.named_parameters())
        self.current: float | None = None  # the threshold the working copy holds
        with torch.no_grad():
            self.orig = {n: p.detach().clone() for n, p in self.params.items()}
            self.ratios = {n: ratios[n].to(p.device) for n, p in self.params.items()}
            self.damped = {n: dampened(self.orig[n], imp_f[n], imp_d[n]) for n in self.params}

    @torch.no_grad()
    def at(self, threshold: float) -> nn.Module:
        """The working copy (inference mode), dampened at `threshold` (valid until the next call)."""
        if threshold != self.current:
            for n, p in self.params.items():
                p.copy_(torch.where(self.ratios[n] > threshold, self.damped[n], self.orig[n]))
            self.current = threshold
        return self.work


def dampen(
    model: nn.Module, imp_f: Importances, imp_d: Importances, ratios: dict[str, Tensor], threshold: float
) -> nn.Module:
    """A copy of `model` with θ ← θ · min(1, I_D / I_f) where I_f / I_D > threshold; every other θ bitwise unchanged."""
    return Dampener(model, imp_f, imp_d, ratios).at(threshold)


class ForgetSet:
    """S_f's model inputs (prepared once, in chunks of CHUNK) and given labels: what the search stops on."""

    def __init__(self, forget: Split, pipeline: Pipeline, device: torch.device) -> None:
        batches = list(one_pass(forget.to(device), pipeline, CHUNK))
        self.x = [b.x for b in batches]
        self.y = [b.y.cpu() for b in batches]
        self.n = len(forget)

    @torch.no_grad()
    def correct(self, model: nn.Module, chunk: int) -> int:
        """How many samples of one chunk `model` (in inference mode) predicts as their given label."""
        return int((model(self.x[chunk]).argmax(1).cpu() == self.y[chunk]).sum())

    def accuracy(self, model: nn.Module) -> float:
        """Share predicted as the given label (inference mode), an exact ratio of counts."""
        was_training = model.training
        model.eval()
        correct = sum(self.correct(model, k) for k in range(len(self.x)))
        model.train(was_training)
        return correct / self.n


@dataclass
class Score:
    """How much of S_f a try has scored so far, and how many of those it predicts as their given label."""

    correct: int = 0
    chunks: int = 0


@dataclass
class Try:
    s: float
    percentile: float
    threshold: float
    n_dampened: int
    score: Score  # shared with the previous try where the selection is the same (same model)
    seconds: float


@dataclass
class Search:
    """The PTN search of one task, shared by every rho: the tries made so far and each rho's outcome."""

    dampener: Dampener
    forget: ForgetSet  # S_f, given labels
    pool: np.ndarray  # every finite I_f / I_D, sorted
    start_s: float
    acc_original: float  # Acc_{M_o}(S_f), given labels
    base_seconds: float  # importances + the original accuracy
    tries: list[Try] = field(default_factory=list)
    outcomes: dict[float, dict[str, Any]] = field(default_factory=dict)

    def attempt(self, i: int) -> Try:
        """Try number i (0-based): the threshold at s = start · 1.1^i and what it selects, made once."""
        while len(self.tries) <= i:
            k = len(self.tries)
            start = time.perf_counter()
            s = self.start_s * GROWTH**k
            t = threshold_of(self.pool, s)
            n = n_selected(self.dampener.ratios, t)
            prev = self.tries[-1] if self.tries else None
            # selection is monotone in t: the same count is the same set, whose score is already known
            known = prev.score if prev is not None and prev.n_dampened == n else Score()
            self.tries.append(
                Try(
                    s,
                    percentile_of(s),
                    t,
                    n,
                    known,
                    time.perf_counter() - start,
                )
            )
        return self.tries[i]

    def score_chunk(self, tr: Try) -> None:
        start = time.perf_counter()
        tr.score.correct += self.forget.correct(self.dampener.at(tr.threshold), tr.score.chunks)
        tr.score.chunks += 1
        tr.seconds += time.perf_counter() - start

    def meets(self, tr: Try, goal: float) -> bool:
        """Acc(S_f) <= goal at this try. S_f is scored chunk by chunk, and no further once more samples are
        right than the goal allows: the answer is the same as scoring all of it."""
        while True:
            if tr.score.correct / self.forget.n > goal:
                return False
            if tr.score.chunks == len(self.forget.x):
                return True
            self.score_chunk(tr)

    def accuracy(self, tr: Try) -> float:
        """Acc(S_f) at this try, scoring what is left of S_f."""
        while tr.score.chunks < len(self.forget.x):
            self.score_chunk(tr)
        return tr.score.correct / self.forget.n


def task_search(task: UnlearnTask, settings: PotionSettings) -> Search:
    key = ("potion search", settings.batch_size)
    if key not in task.cache:
        imp_f, imp_d, imp_seconds = cached_importances(task, "label_free", "retain", False, settings.batch_size)
        start = time.perf_counter()
        forget = ForgetSet(task.forget(), task.pipeline, device_of(task.model))
        start_s = len(task.forget_ids) / len(task.train) / START_DIVISOR
        ratios = ratios_of(imp_f, imp_d)
        task.cache[key] = Search(
            Dampener(task.model, imp_f, imp_d, ratios),
            forget,
            finite_pool(ratios),
            start_s,
            forget.accuracy(task.model),
            imp_seconds + time.perf_counter() - start,
        )
    cached: Search = task.cache[key]
    return cached


def search(task: UnlearnTask, settings: PotionSettings) -> tuple[nn.Module, float]:
    """The PTN search for `settings.rho`: (the dampened model, what this setting alone costs in seconds)."""
    srch = task_search(task, settings)
    goal = settings.rho * srch.acc_original
    met = False
    for i in range(settings.max_tries):
        tr = srch.attempt(i)
        if srch.meets(tr, goal):
            met = True
            break
    acc = srch.accuracy(tr)
    start = time.perf_counter()
    model = copy.deepcopy(srch.dampener.at(tr.threshold))
    seconds = srch.base_seconds + sum(t.seconds for t in srch.tries[: i + 1]) + time.perf_counter() - start
    srch.outcomes[settings.rho] = {
        "rho": settings.rho,
        "met": met,
        "tries": i + 1,
        "max_tries": settings.max_tries,
        "s": tr.s,
        "percentile": tr.percentile,
        "threshold": tr.threshold,
        "n_dampened": tr.n_dampened,
        "acc_forget": acc,
    }
    return model, seconds


def run_potion_grid(
    task: UnlearnTask, settings_list: list[PotionSettings]
) -> Iterator[tuple[PotionSettings, nn.Module, float]]:
    """Every rho, sharing the importances and the tries."""
    for s in settings_list:
        model, seconds = search(task, s)
        yield s, model, seconds


def ptn_diagnostics(task: UnlearnTask) -> dict[str, Any]:
    """Potion's diagnostics: the search's start, the original accuracy on S_f and, per rho searched, its outcome."""
    searches = [v for k, v in task.cache.items() if isinstance(k, tuple) and k[:1] == ("potion search",)]
    if not searches:
        search(task, PotionSettings())
        return ptn_diagnostics(task)
    srch = searches[0]
    return {
        "ptn_search": {
            "start_s": srch.start_s,
            "growth": GROWTH,
            "acc_forget_original": srch.acc_original,
            "n_ratios": int(srch.pool.size),
            "n_params": sum(r.numel() for r in srch.dampener.ratios.values()),
            "outcomes": [srch.outcomes[r] for r in sorted(srch.outcomes)],
        }
    }


@register_method(PotionSettings, potion_grid, run_grid=run_potion_grid, diagnostics=ptn_diagnostics)
def potion(task: UnlearnTask, settings: PotionSettings) -> nn.Module:
    """Potion: SSD with label-free importances and a threshold searched until Acc(S_f) <= rho x original."""
    model, _ = search(task, settings)
    return model
