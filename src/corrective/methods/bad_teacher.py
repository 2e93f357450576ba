"""BadT: knowledge distillation from a competent and an incompetent teacher (Chundawat et al. 2023),
as benchmarked by Goel et al. (App. A.2 (4)).

The student starts from `M_o`. Two frozen teachers: `M_o` (competent) and a freshly initialised copy
of its architecture (incompetent). A sample's target is `softmax(z_bad / T)` if it is in `S_f`, else
`softmax(z_orig / T)`; the loss is `KL(target ‖ softmax(z_student / T))` summed over classes and
averaged over the batch, T = 1. Trained over all of `S_tr` for 25 % of the original steps (1000 of
4000) with algorithm A's optimiser, learning rate and schedule (App. A.1: unchanged unless stated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from corrective import seeds
from corrective.data.batches import Batch
from corrective.methods.base import UnlearnTask, register_method
from corrective.settings import Checked, setting


@dataclass(frozen=True)
class BadTeacherSettings(Checked):
    temperature: float = setting(1.0, "distillation temperature T", gt=0)
    budget: float = setting(0.25, "share of the original training steps", gt=0, le=10)

    RENAMED: ClassVar[dict[str, str]] = {"fraction": "budget"}  # every method's budget is `budget`


def teacher_targets(z_orig: Tensor, z_bad: Tensor, in_forget: Tensor, temperature: float) -> Tensor:
    """Per-sample target distributions: the incompetent teacher's on S_f, the competent one's elsewhere."""
    good = F.softmax(z_orig.float() / temperature, dim=1)
    bad = F.softmax(z_bad.float() / temperature, dim=1)
    return torch.where(in_forget.view(-1, 1), bad, good)


@register_method(BadTeacherSettings, name="bad_teacher", needs="fresh")
def bad_teacher(task: UnlearnTask, settings: BadTeacherSettings) -> nn.Module:
    """BadT: distil M_o on S_tr minus S_f and a randomly initialised teacher on S_f."""
    competent = task.teacher()
    incompetent = task.frozen(
        task.fresh_model(seed=seeds.derive(task.seed, seeds.salt("bad_teacher", "incompetent_teacher")))
    )
    student = task.copy_model()
    forget_ids = task.forget_ids.to(task.device)
    t = settings.temperature

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        with torch.no_grad():
            target = teacher_targets(competent(batch.x), incompetent(batch.x), torch.isin(batch.ids, forget_ids), t)
        log_student = F.log_softmax(model(batch.x).float() / t, dim=1)
        return F.kl_div(log_student, target, reduction="batchmean")

    cfg = task.config.scaled(settings.budget)
    batches = task.batches(task.train, seeds.salt("bad_teacher", "batches"), cfg)
    return task.fit("bad_teacher", student, batches, cfg, loss_fn)
