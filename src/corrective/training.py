"""The one training loop (algorithm A of the paper, Appendix A.1), shared by every method.

SGD with momentum and weight decay, linear warm-up then linear decay, a step budget, bf16
autocast where it pays, a progress bar. Callers bring the batches and the loss, so the
original model, the oracle, retraining and every fine-tuning method use this same loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from corrective.data.base import Split
from corrective.data.batches import Batch, Pipeline, epochs
from corrective.errors import UserError
from corrective.models.device import device_of
from corrective.models.layout import runs_channels_last
from corrective.progress import Progress
from corrective.registry import Registry
from corrective.settings import Checked, setting

LossFn = Callable[[nn.Module, Batch], Tensor]


@dataclass(frozen=True)
class TrainConfig(Checked):
    steps: int = setting(4000, "optimiser steps (the budget)", ge=1)
    lr: float = setting(0.025, "peak learning rate", gt=0)
    batch_size: int = setting(512, "batch size", ge=1)
    momentum: float = setting(0.9, "SGD momentum", ge=0)
    weight_decay: float = setting(5e-4, "SGD weight decay", ge=0)
    warmup: float = setting(0.01, "share of the steps spent warming up linearly", ge=0, le=1)
    t_mult: float = setting(1.25, "decay reaches lr * (1 - 1/t_mult) at the last step", gt=0)
    schedule: str = setting("linear", "linear (warm-up + decay) or constant", choices=("linear", "constant"))
    augment: bool = setting(True, "flips and crops as the dataset allows")
    precision: str = setting(
        "auto", "auto (bf16 on CUDA and for images >= 32 px), bf16 or fp32", choices=("auto", "bf16", "fp32")
    )
    seed: int = setting(0, "seed of the batch order and augmentation")

    def scaled(self, fraction: float, **changes: Any) -> TrainConfig:
        """The same recipe with `fraction` of the steps (at least one), e.g. 0.25 for fine-tuning budgets."""
        return replace(self, steps=max(1, round(self.steps * fraction)), **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: Registry[TrainConfig] = Registry("training preset", order=list)
for _name, _config in {
    "paper": TrainConfig(),
    # 8x8 digits: ~1200 training images, ~21 epochs of batch 64 in 400 steps (~2.5 s on one core)
    "digits": TrainConfig(steps=400, lr=0.05, batch_size=64),
    # 28x28 grey images (MNIST, Fashion-MNIST) with cnn28 on a CPU: 1200 steps of 256 (5.7 epochs of 54,000
    # images), bf16 (channels-last), 5 % warm-up then a linear decay to ~0 (benchmarks/results/fashion_recipe.md)
    "cpu28": TrainConfig(steps=1200, lr=0.1, batch_size=256, warmup=0.05, t_mult=1.0, precision="bf16"),
}.items():
    PRESETS.register(_name, _config)


def get_preset(name: str) -> TrainConfig:
    return PRESETS.lookup(name)


DEFAULT_EPOCHS = 40.0  # the paper's recipe: 4000 steps of 512 over CIFAR-10's 50,000 training images, ~41 epochs


def steps_for(epochs: float, n: int, batch_size: int) -> int:
    """Optimiser steps of `epochs` passes over `n` samples in batches of `batch_size` (at least one)."""
    return max(1, round(epochs * n / batch_size))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at optimiser step `step` (0-based): linear warm-up, then linear decay."""
    if cfg.schedule == "constant":
        return cfg.lr
    w = max(1, round(cfg.warmup * cfg.steps))
    if step < w:
        return cfg.lr * (step + 1) / w
    return cfg.lr * (1 - (step - w) / (cfg.t_mult * cfg.steps))


def cross_entropy(model: nn.Module, batch: Batch) -> Tensor:
    return nn.functional.cross_entropy(model(batch.x), batch.y)


def example_tied_cross_entropy(model: nn.Module, batch: Batch) -> Tensor:
    """Cross-entropy with each example's capacity mask on (`models.masks`): capacity and ETD training."""
    return nn.functional.cross_entropy(model(batch.x, ids=batch.ids, mode="masked"), batch.y)


def use_bf16(precision: str, device: torch.device, image_size: int) -> bool:
    if precision not in ("auto", "bf16", "fp32"):
        raise UserError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision == "auto":
        return device.type == "cuda" or image_size >= 32
    return precision == "bf16"


def feature_precision(cfg: TrainConfig, device: torch.device, image_size: int) -> str:
    """The precision a model trained with `cfg` computes in ("bf16" or "fp32"): the expansion's feature pass's."""
    return "bf16" if use_bf16(cfg.precision, device, image_size) else "fp32"


def training_layout(model: nn.Module, x: Tensor, cfg: TrainConfig) -> bool:
    """Whether a training step of `cfg` on batches like `x` runs under bf16 autocast; where it does and the model
    runs image batches channels-last (`models.layout`), the model is put so: `fit`'s layout for the model it
    trains, and for the frozen teachers and references whose forwards run inside its steps (in the default layout,
    cnn28's max-pool alone took a third of SCRUB's time on Fashion-MNIST)."""
    bf16 = use_bf16(cfg.precision, device_of(model), x.shape[-1])
    if bf16 and runs_channels_last(model, x):
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    return bf16


def sgd(params: Any, cfg: TrainConfig) -> torch.optim.SGD:
    """Algorithm A's optimiser: SGD with the recipe's momentum and weight decay (`fit` sets the lr each step)."""
    return torch.optim.SGD(
        params, lr=lr_at(0, cfg), momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False
    )


def fit(
    model: nn.Module,
    batches: Iterator[Batch],
    cfg: TrainConfig,
    loss_fn: LossFn = cross_entropy,
    *,
    desc: str = "train",
    progress: bool | None = None,
    params: list[nn.Parameter] | None = None,
    stop: Callable[[int], bool] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module:
    """Run `cfg.steps` SGD steps of `loss_fn` over `batches`; trains `model` in place and returns it.

    `stop`, when given, is called after each step with the number of steps done; True ends the run early.
    `optimizer` (from `sgd`), when given, is used instead of a new one, so its momentum carries over
    between calls (REM's flush and repair phases share one).
    """
    device = device_of(model)
    opt = optimizer if optimizer is not None else sgd(params if params is not None else model.parameters(), cfg)
    model.train()
    bar = Progress(cfg.steps, desc, progress, leave=False)
    bf16: bool | None = None
    for step in range(cfg.steps):
        batch = next(batches)
        if bf16 is None:
            bf16 = training_layout(model, batch.x, cfg)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
            loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if stop is not None and stop(step + 1):
            break
    bar.close()
    model.eval()
    return model


def train(
    model: nn.Module,
    split: Split,
    pipeline: Pipeline,
    cfg: TrainConfig,
    loss_fn: LossFn = cross_entropy,
    *,
    desc: str = "train",
    progress: bool | None = None,
) -> nn.Module:
    """Algorithm A on `split`: seeded shuffled epochs with augmentation, `cfg.steps` steps."""
    if len(split) == 0:
        raise UserError("cannot train on an empty training set")
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = epochs(split.to(device_of(model)), pipeline, cfg.batch_size, gen, augment=cfg.augment)
    return fit(model, batches, cfg, loss_fn, desc=desc, progress=progress)
