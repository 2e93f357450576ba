"""SSD: Selective Synaptic Dampening (Foster et al. 2023), as benchmarked by Goel et al. (App. A.2 (3)).

1. Importances, the diagonal of the empirical Fisher: `I_D[θ] = mean over mini-batches of (∂ CE(batch)/∂θ)²`,
   the model in eval mode, no augmentation, on `S_f` (`I_f`) and on the retain set `D_r` (`I_r`; the
   original SSD uses the whole training set: `retain_set="train"`). `per_sample=True` averages true
   per-sample squared gradients instead (torch.func vmap + grad). `importance_batches="augmented"`
   draws the batches as the papers' code does: one shuffled epoch with the training augmentation
   (seeded by the task); the default is one un-augmented pass in order (deterministic). On digits the
   two select results that differ by more than the seed spread in places
   (benchmarks/results/ssd_importance_order.md), so both are offered.
2. Select the parameters with `I_f > a · I_r`.
3. Multiply each selected θ by `min(λ · I_r / I_f, 1)`; every other parameter is left bitwise unchanged.

Defaults a = 10, λ = 1 (`lambda_`: `lambda` is a Python keyword). The paper's grid is a ∈ {0.1 … 1e6} ×
λ ∈ {0.1a, 0.5a, a, 5a, 10a}, 50 settings; `run_grid` computes the importances once per (model, S_f)
and shares them with every setting (kept in `task.cache`, keyed by what was computed: Potion's label-free
importances, `kind="label_free"`, share the same loop and cache under their own key). `importance_ratios`
gives `I_f / I_r` per parameter (`ratios_of`); `ratio_histogram`, SSD's registered diagnostics, bins their pool
(`ratio_pool`) for the report's Figure 3. Potion shares the importances, the dampened values (`dampened`), the
ratios and their pool; it selects by a threshold on the pooled ratios instead of `a`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Batch, Pipeline, one_epoch, one_pass
from corrective.methods.base import UnlearnTask, register_method
from corrective.models import device_of
from corrective.models.layout import image_layout
from corrective.settings import Checked, setting

Importances = dict[str, Tensor]
# What an importance is: "fisher" (SSD) = mean over batches of (∂ CE / ∂θ)²; "label_free" (Potion, LFSSD) =
# mean over batches of |∂ L / ∂θ| with L the batch mean of the L2 norm of the logits (labels unused).
IMPORTANCE_KINDS = ("fisher", "label_free")
A_GRID = (0.1, 1.0, 10.0, 50.0, 100.0, 500.0, 1e3, 1e4, 1e5, 1e6)
LAMBDA_SHARES = (0.1, 0.5, 1.0, 5.0, 10.0)
HIST_EDGES = np.linspace(-8.0, 8.0, 65)  # log10 ratio bins of the diagnostics histogram, 0.25 wide


@dataclass(frozen=True)
class SSDSettings(Checked):
    a: float = setting(10.0, "selection threshold: dampen θ where I_f > a · I_r (the paper's α)", gt=0)
    lambda_: float = setting(1.0, "dampening constant λ (the paper's γ): factor min(λ I_r / I_f, 1)", gt=0)
    retain_set: str = setting(
        "retain",
        "I_r on D_r = S_tr \\ S_f (retain) or on all of S_tr (train, original SSD)",
        choices=("retain", "train"),
    )
    per_sample: bool = setting(False, "mean of per-sample squared gradients instead of squared batch gradients")
    batch_size: int = setting(0, "importance batch size; 0: the training recipe's", ge=0)
    importance_batches: str = setting(
        "pass", "pass: one un-augmented pass in order; augmented: as the papers' code", choices=("pass", "augmented")
    )


def ssd_grid() -> list[dict[str, Any]]:
    return [{"a": a, "lambda_": share * a} for a in A_GRID for share in LAMBDA_SHARES]


def importances(
    model: nn.Module,
    split: Split,
    pipeline: Pipeline,
    batch_size: int,
    per_sample: bool,
    kind: str = "fisher",
    gen: torch.Generator | None = None,
    precision: str = "fp32",
) -> Importances:
    """Per-parameter importance on `split`, in eval mode (a copy: M_o is untouched); `kind` in IMPORTANCE_KINDS.

    "fisher": mean squared gradient of the cross-entropy; "label_free": mean absolute gradient of the mean
    L2 norm of the logits. Averaged over mini-batches, or over samples with `per_sample`. With `gen`, the
    batches are one shuffled, augmented epoch drawn with it; without, one plain pass in order. The pass runs as
    the model computes: channels-last where it runs so (`models.layout`) and under bf16 autocast for `precision`
    "bf16" (a model trained in bf16: `task.precision`); on a CPU each is ~1.6x faster for cnn28.
    """
    if kind not in IMPORTANCE_KINDS:
        raise ValueError(f"importance kind must be one of {IMPORTANCE_KINDS}, got {kind!r}")
    net = copy.deepcopy(model).eval()
    device = device_of(model)
    it = batches(split.to(device), pipeline, batch_size, gen)
    first = next(it, None)
    count = 0

    def loss_of(out: Tensor, y: Tensor) -> Tensor:
        if kind == "fisher":
            return nn.functional.cross_entropy(out.float(), y)
        norm: Tensor = out.float().norm(p=2, dim=1).mean()
        return norm

    def aggregate(g: Tensor) -> Tensor:
        return g.pow(2) if kind == "fisher" else g.abs()

    with image_layout(net, first.x if first is not None else torch.zeros(0)) as put:
        params = {n: p.detach().requires_grad_() for n, p in net.named_parameters()}
        buffers = {n: b.detach() for n, b in net.named_buffers()}
        total = {n: torch.zeros_like(p) for n, p in params.items()}

        def loss_one(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return loss_of(functional_call(net, (p, buffers), (x.unsqueeze(0),)), y.unsqueeze(0))

        per_sample_grads = vmap(grad(loss_one), in_dims=(None, 0, 0))
        for batch in chain([first], it) if first is not None else ():
            x = put(batch.x)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                if per_sample:
                    for n, g in per_sample_grads(params, x, batch.y).items():
                        total[n] += aggregate(g.detach().float()).sum(0)
                    count += len(batch.y)
                else:
                    loss = loss_of(functional_call(net, (params, buffers), (x,)), batch.y)
                    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                    for n, g in zip(params, grads, strict=True):
                        if g is not None:
                            total[n] += aggregate(g.float())
                    count += 1
    return {n: (t / max(count, 1)).contiguous() for n, t in total.items()}


def batches(split: Split, pipeline: Pipeline, batch_size: int, gen: torch.Generator | None) -> Iterator[Batch]:
    return one_pass(split, pipeline, batch_size) if gen is None else one_epoch(split, pipeline, batch_size, gen)


def cached_importances(
    task: UnlearnTask,
    kind: str,
    retain_set: str = "retain",
    per_sample: bool = False,
    batch_size: int = 0,
    augmented: bool = False,
) -> tuple[Importances, Importances, float]:
    """(I_f on S_f, I on the retain set — D_r for "retain", S_tr for "train" —, seconds it took), computed once
    per task and recipe and kept in `task.cache` under the recipe: what was computed, on what, how."""
    key = ("importances", kind, retain_set, per_sample, batch_size) + (("augmented",) if augmented else ())
    if key not in task.cache:
        start = time.perf_counter()
        bs = batch_size or task.config.batch_size
        retain = task.retain() if retain_set == "retain" else task.train
        precision = task.precision
        imp_f = importances(
            task.model,
            task.forget(),
            task.pipeline,
            bs,
            per_sample,
            kind,
            gen=task.generator(seeds.salt("ssd", "forget_batches")) if augmented else None,
            precision=precision,
        )
        gen_r = task.generator(seeds.salt("ssd", "retain_batches")) if augmented else None
        imp_r = importances(task.model, retain, task.pipeline, bs, per_sample, kind, gen=gen_r, precision=precision)
        task.cache[key] = (imp_f, imp_r, time.perf_counter() - start)
    cached: tuple[Importances, Importances, float] = task.cache[key]
    return cached


def task_importances(task: UnlearnTask, settings: SSDSettings) -> tuple[Importances, Importances, float]:
    """(I_f on S_f, I_r on the retain set of `settings`, seconds it took), computed once per task and recipe."""
    return cached_importances(
        task,
        "fisher",
        settings.retain_set,
        settings.per_sample,
        settings.batch_size,
        settings.importance_batches == "augmented",
    )


def dampened(p: Tensor, imp_f: Tensor, imp_r: Tensor, lambda_: float = 1.0) -> Tensor:
    """θ · min(λ I_r / I_f, 1) for every θ of `p`: the value a selected parameter takes (SSD; Potion with λ = 1)."""
    return p * (lambda_ * imp_r / imp_f).clamp(max=1.0)


@torch.no_grad()
def dampen(model: nn.Module, imp_f: Importances, imp_r: Importances, a: float, lambda_: float) -> nn.Module:
    """A copy of `model` with θ ← θ · min(λ I_r / I_f, 1) where I_f > a · I_r; other θ bitwise unchanged."""
    out = copy.deepcopy(model)
    for n, p in out.named_parameters():
        p.copy_(torch.where(imp_f[n] > a * imp_r[n], dampened(p, imp_f[n], imp_r[n], lambda_), p))
    return out


def ratios_of(imp_f: Importances, imp_r: Importances) -> dict[str, Tensor]:
    """`I_f / I_r` per parameter in float64 on the CPU (inf where I_r = 0 < I_f, NaN where both are 0): float64
    so that no ratio of two float32 importances overflows to inf or underflows to 0."""
    return {n: imp_f[n].detach().cpu().double() / imp_r[n].detach().cpu().double() for n in imp_f}


def ratio_pool(ratios: dict[str, Tensor]) -> np.ndarray:
    """Every parameter's ratio in one flat array, in parameter order (inf and NaN included)."""
    return np.concatenate([r.flatten().numpy() for r in ratios.values()]) if ratios else np.zeros(0)


def importance_ratios(task: UnlearnTask, settings: SSDSettings | None = None) -> dict[str, Tensor]:
    """`I_f / I_r` per parameter of the task (`ratios_of`, SSD's default recipe): the paper's Figure 3."""
    imp_f, imp_r, _ = task_importances(task, settings or SSDSettings())
    return ratios_of(imp_f, imp_r)


def ratio_histogram(task: UnlearnTask) -> dict[str, Any]:
    """SSD's diagnostics: log10(I_f / I_r) of every parameter (default recipe) in 64 bins over [-8, 8].

    Ratios outside the range fall in the end bins; 0 (I_f = 0 < I_r), inf (I_f > 0 = I_r) and NaN (both 0)
    are counted apart, so `sum(counts) + n_zero + n_inf + n_nan == n_params`.
    """
    ratios = ratio_pool(importance_ratios(task))
    finite = ratios[np.isfinite(ratios)]
    positive = finite[finite > 0]
    counts, edges = np.histogram(np.clip(np.log10(positive), -8.0, 8.0), bins=HIST_EDGES)
    return {
        "importance_ratio": {
            "log10_edges": edges.tolist(),
            "counts": counts.tolist(),
            "n_params": int(ratios.size),
            "n_inf": int(np.isposinf(ratios).sum()),
            "n_nan": int(np.isnan(ratios).sum()),
            "n_zero": int((ratios == 0).sum()),
            "max_finite": float(finite.max()) if finite.size else None,
            "retain_set": SSDSettings().retain_set,
        }
    }


def run_ssd_grid(task: UnlearnTask, settings_list: list[SSDSettings]) -> Iterator[tuple[SSDSettings, nn.Module, float]]:
    """Every setting, computing the importances once per importance recipe; seconds = importances + dampening."""
    for s in settings_list:
        imp_f, imp_r, imp_seconds = task_importances(task, s)
        start = time.perf_counter()
        model = dampen(task.model, imp_f, imp_r, s.a, s.lambda_)
        yield s, model, imp_seconds + time.perf_counter() - start


@register_method(SSDSettings, ssd_grid, run_grid=run_ssd_grid, diagnostics=ratio_histogram)
def ssd(task: UnlearnTask, settings: SSDSettings) -> nn.Module:
    """SSD: dampen the parameters far more important to S_f than to the retain set (no training)."""
    imp_f, imp_r, _ = task_importances(task, settings)
    return dampen(task.model, imp_f, imp_r, settings.a, settings.lambda_)
