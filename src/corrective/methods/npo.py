"""NPO — Negative Preference Optimisation (Zhang et al. 2024), forget-only, as used by REM (seed 002).

L = -(2/beta) * mean_{S_f} log sigmoid(beta * (CE_theta(x, y) - CE_ref(x, y))), beta = 1, the reference a
frozen copy of the starting model, labels as given. Epochs over S_f until the accuracy on S_f (given
labels, the model's inference mode) is <= gamma = 0.2: at least one epoch, at most the budget.
SGD at 1/5 of the training lr (REM's code: 0.005 with 0.025), momentum 0.9, wd 5e-4, constant lr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Batch, Pipeline
from corrective.methods.base import UnlearnTask, register_method
from corrective.metrics import accuracy
from corrective.settings import Checked, setting
from corrective.training import TrainConfig

FORGET_LOSSES = ("npo", "ascent")


@dataclass(frozen=True)
class NpoRecipe(Checked):
    """The settings NPO and REM share: their SGD recipe and NPO's loss (`method_config` reads them)."""

    lr: float | None = setting(
        None,
        "learning rate (constant); none: LR_SHARE of algorithm A's (REM's code: 0.005 with training lr 0.025)",
        gt=0,
    )
    momentum: float = setting(0.9, "SGD momentum", ge=0)
    weight_decay: float = setting(5e-4, "SGD weight decay", ge=0)
    beta: float = setting(1.0, "NPO's inverse temperature", gt=0)
    gamma: float = setting(0.2, "forget until the accuracy on S_f is at most this (REM: its flush)", ge=0, le=1)


@dataclass(frozen=True)
class NpoSettings(NpoRecipe):
    budget: float = setting(0.245, "at most this share of the original training steps (980 of 4000)", gt=0)


LR_SHARE = 0.2  # the unlearning lr as a share of the training lr when `lr` is None (REM's code: 0.005 / 0.025)


def method_config(task: UnlearnTask, s: NpoRecipe, steps: int) -> TrainConfig:
    """SGD with the method's lr (default: LR_SHARE of A's), momentum and weight decay at a constant rate;
    batches and augmentation of A."""
    lr = s.lr if s.lr is not None else LR_SHARE * task.config.lr
    return replace(
        task.config,
        steps=max(1, steps),
        lr=lr,
        momentum=s.momentum,
        weight_decay=s.weight_decay,
        schedule="constant",
        seed=task.seed,
    )


def npo_term(logits: Tensor, ref_logits: Tensor, y: Tensor, beta: float) -> Tensor:
    """Per-sample -(2/beta) log sigmoid(beta (CE_theta - CE_ref)): minimising it raises CE_theta; its negation,
    minimised, lowers CE_theta (REM's retain term)."""
    ce = F.cross_entropy(logits.float(), y, reduction="none")
    ce_ref = F.cross_entropy(ref_logits.float(), y, reduction="none")
    return -(2 / beta) * F.logsigmoid(beta * (ce - ce_ref))


def forget_term(
    model: nn.Module, ref: nn.Module, x: Tensor, y: Tensor, loss: str, beta: float, rows: Tensor | None = None
) -> Tensor:
    """Per-sample forgetting loss in the model's inference (drop) mode: NPO, or gradient ascent (-CE).

    `rows` (bool): the loss of those samples only. The model still sees the whole batch (its batch norm
    normalises over it); the frozen reference, in inference mode where each sample's logits are its own,
    sees only those rows (REM's repair: a few samples of S_f in a batch of S_tr)."""
    logits: Tensor = model(x)
    if rows is not None:
        logits, x, y = logits[rows], x[rows], y[rows]
    if loss == "ascent":
        return -F.cross_entropy(logits.float(), y, reduction="none")
    if len(y) == 0:
        return logits.sum(1)  # no row: an empty loss, still part of the graph
    with torch.no_grad():
        # a batch of one takes another kernel path on the CPU (its last bits differ from the same sample's in a
        # larger batch); two copies of it keep the numbers the whole batch gives
        ref_logits = ref(x if len(x) > 1 else torch.cat([x, x]))[: len(x)]
    return npo_term(logits, ref_logits, y, beta)


def forget_until(
    task: UnlearnTask,
    model: nn.Module,
    ref: nn.Module,
    forget: Split,
    pipeline: Pipeline,
    batches: Any,
    cfg: TrainConfig,
    *,
    gamma: float,
    max_steps: int,
    loss: str = "npo",
    beta: float = 1.0,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Epochs of the forgetting loss over S_f (from `batches`) until Acc(S_f) <= gamma, at least one epoch,
    at most `max_steps` steps (whole epochs where it fits); returns the steps taken. `optimizer`: see `fit`."""
    per_epoch = math.ceil(len(forget) / cfg.batch_size)
    taken = 0

    def stop(done: int) -> bool:
        nonlocal taken
        taken = done
        return done % per_epoch == 0 and accuracy(model, forget, pipeline) <= gamma

    def loss_fn(m: nn.Module, b: Batch) -> Tensor:
        return forget_term(m, ref, b.x, b.y, loss, beta).mean()

    task.fit(f"forget ({loss})", model, batches, replace(cfg, steps=max_steps), loss_fn, stop=stop, optimizer=optimizer)
    return taken


@register_method(NpoSettings, lambda: [{"lr": lr} for lr in (0.005, 0.01, 0.05)])
def npo(task: UnlearnTask, s: NpoSettings) -> nn.Module:
    """NPO on S_f only (Zhang et al. 2024), until Acc(S_f) <= gamma or the budget is spent."""
    model = task.copy_model()
    forget = task.forget()
    cfg = method_config(task, s, 1)
    batches = task.batches(forget, seeds.salt("npo", "batches"), cfg)
    budget = max(1, round(s.budget * task.config.steps))
    forget_until(
        task, model, task.teacher(), forget, task.pipeline, batches, cfg, gamma=s.gamma, max_steps=budget, beta=s.beta
    )
    return model
