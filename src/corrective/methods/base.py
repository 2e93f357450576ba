"""What every unlearning method sees, the method registry, and settings validation.

A method is `fn(task: UnlearnTask, settings: S) -> nn.Module` with `S` a frozen dataclass of
its settings (the paper's defaults). The task holds only what a method may see: the
original model, the training data with its given labels, the identified ids `S_f`, the
training recipe and a way to build a fresh model. `S_m \\ S_f`, clean labels, the test set
and the manipulation type are not in it.

The set-up every trained method repeats is on the task: `task.batches(split, salt, cfg)` (endless seeded
batches on M_o's device), `task.fit(...)`/`task.train_on(...)` (the one training loop under the method's name,
with the task's progress), `task.teacher()` (a frozen copy of M_o) and `task.teacher_outputs(key)` (M_o's outputs
on a method's batches, computed once for the settings of a grid that draw the same batches). Salts are named in
`corrective.seeds`.

A method may also register `diagnostics(task) -> dict` (JSON-able): what it learned about the task
that a report can show (SSD: its importance-ratio histogram, the paper's Figure 3). It runs once per
(method, alpha) after the grid, outside the timed part, and may reuse work kept in `task.cache`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Batch, Pipeline, epochs, one_pass
from corrective.errors import UserError
from corrective.expand import Expansion
from corrective.models import ModelSpec, device_of
from corrective.models.adapters import ResetSpec, has_capacity, unreset
from corrective.registry import Registry
from corrective.settings import build_settings
from corrective.training import LossFn, TrainConfig, cross_entropy, feature_precision, fit, train, training_layout


@dataclass(frozen=True)
class UnlearnTask:
    """Everything an unlearning method may see."""

    model: nn.Module  # M_o; methods never modify it (use `task.copy_model()`)
    train: Split  # S_tr with the given labels, triggers as the original model saw them
    forget_ids: Tensor  # S_f, stable sample ids
    pipeline: Pipeline  # uint8 images -> model inputs
    config: TrainConfig  # algorithm A as used for M_o: budgets are shares of config.steps
    spec: ModelSpec  # architecture of M_o, for fresh models
    seed: int = 0
    progress: bool | None = None
    # Only for entries marked `is_method=False` (oracle bounds): every manipulated id, S_m.
    known_manipulated: Tensor | None = None
    # The expansion of S_f that a method expanding S_f itself (`MethodInfo.expand`: auto) works from, where the
    # caller has it already (`api` hands in the one it computed or was given); None: the method computes it.
    expansion: Expansion | None = None
    # Work a method shares between its settings and its diagnostics (e.g. SSD's importances), by key;
    # never copied: `dataclasses.replace` gives a task with its own, empty cache.
    cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def forget(self) -> Split:
        """S_f as a split (given labels)."""
        return self.train.subset(self.train.positions_of(self.forget_ids))

    def retain(self) -> Split:
        """D_r = S_tr \\ S_f (still holds the manipulated samples nobody identified)."""
        return self.train.without(self.forget_ids)

    @property
    def device(self) -> torch.device:
        """M_o's device, where a method's data and models go."""
        return device_of(self.model)

    @property
    def precision(self) -> str:
        """The precision M_o computes in ("bf16" or "fp32", `training.feature_precision`): its feature and
        importance passes run in it."""
        return feature_precision(self.config, self.device, self.train.x.shape[-1])

    def copy_model(self) -> nn.Module:
        return copy.deepcopy(self.model)

    def fresh_model(self, seed: int | None = None) -> nn.Module:
        """A newly initialised model of M_o's architecture on M_o's device."""
        return self.spec.build(self.seed if seed is None else seed, device_of(self.model))

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator of the run's seed and `salt` (`corrective.seeds`)."""
        return torch.Generator().manual_seed(seeds.derive(self.seed, salt))

    def teacher(self) -> nn.Module:
        """A frozen copy of M_o: a teacher (SCRUB, BadT) or a reference (NPO)."""
        return self.frozen(self.model)

    def frozen(self, model: nn.Module) -> nn.Module:
        """A frozen copy of `model` in the layout the task's training steps run in (`training.training_layout`:
        channels-last where they run in bf16 and the model runs so), for forwards inside those steps."""
        out = frozen(model)
        sample = next(one_pass(self.train.subset(torch.arange(min(2, len(self.train)))).to(self.device), self.pipeline))
        training_layout(out, sample.x, self.config)
        return out

    def teacher_outputs(self, key: Hashable) -> Callable[[Batch], Tensor]:
        """M_o's outputs (no gradients) on the batches a method draws, in the order it asks for them, shared by
        the settings of a grid that draw the same batches.

        `key` names everything that decides the batches (seed salt, steps, batch size, augmentation, ...); the
        settings of a grid that give the same key draw the same batches, and the frozen M_o gives the same
        outputs on them, so the first setting computes them and keeps them in `task.cache` (up to
        `SHARED_OUTPUTS_BYTES`) and the others read them back: a teacher's forward pass per step saved. A kept
        output is used only where the batch's positions are the kept batch's; otherwise it is computed.
        """
        shared: SharedOutputs = self.cache.setdefault(("teacher_outputs", key), SharedOutputs())
        teacher: nn.Module | None = None
        calls = 0

        def outputs(batch: Batch) -> Tensor:
            nonlocal teacher, calls
            step, calls = calls, calls + 1
            if step < len(shared.outputs) and torch.equal(shared.positions[step], batch.pos):
                return shared.outputs[step]
            if teacher is None:
                teacher = self.teacher()
            with torch.no_grad():
                out: Tensor = teacher(batch.x)
            shared.keep(step, batch.pos, out)
            return out

        return outputs

    def batches(self, split: Split, salt: int, cfg: TrainConfig) -> Iterator[Batch]:
        """Endless shuffled batches of `split` on M_o's device, `cfg`'s batch size and augmentation, drawn by
        `generator(salt)`."""
        gen = self.generator(salt)
        return epochs(split.to(self.device), self.pipeline, cfg.batch_size, gen, augment=cfg.augment)

    def fit(
        self, name: str, model: nn.Module, batches: Iterator[Batch], cfg: TrainConfig, loss_fn: LossFn, **kwargs: Any
    ) -> nn.Module:
        """`training.fit` under the method's name and the task's progress setting (`kwargs`: stop, optimizer)."""
        return fit(model, batches, cfg, loss_fn, desc=name, progress=self.progress, **kwargs)

    def train_on(
        self, name: str, model: nn.Module, split: Split, cfg: TrainConfig, loss_fn: LossFn = cross_entropy
    ) -> nn.Module:
        """Algorithm A (`training.train`) on `split` with `cfg` under the method's name (`loss_fn`: its loss)."""
        return train(model, split, self.pipeline, cfg, loss_fn, desc=name, progress=self.progress)


SHARED_OUTPUTS_BYTES = 256 * 2**20  # the most a task keeps of a teacher's outputs (steps past it are recomputed)


@dataclass
class SharedOutputs:
    """A teacher's outputs on a grid's batches, step by step (`UnlearnTask.teacher_outputs`)."""

    positions: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    nbytes: int = 0

    def keep(self, step: int, positions: Tensor, out: Tensor) -> None:
        """Keep the output of the next step not yet kept, within `SHARED_OUTPUTS_BYTES`."""
        size = out.nelement() * out.element_size() + positions.nelement() * positions.element_size()
        if step == len(self.outputs) and self.nbytes + size <= SHARED_OUTPUTS_BYTES:
            self.positions.append(positions)
            self.outputs.append(out)
            self.nbytes += size


def frozen(model: nn.Module) -> nn.Module:
    """A copy that never trains: inference mode, no gradients."""
    return copy.deepcopy(model).eval().requires_grad_(False)


Grid = Callable[[], list[dict[str, Any]]]

# What a method needs besides the task's data, checked before anything runs (`check_needs`).
NEEDS: dict[str, str] = {
    "model": "the model alone",
    "fresh": "a fresh model of the same architecture (default: a reset copy; factory= overrides)",
    "masks": "capacity masks (the project's own architectures: corrective models)",
}


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable[[UnlearnTask, Any], nn.Module]
    settings: type  # a frozen dataclass with defaults
    grid: Grid  # the settings searched by `--grid` (a list of overrides of the defaults)
    is_method: bool = True  # False for oracle bounds, which are handed S_m
    summary: str = ""
    # Optional: run a whole grid sharing work (e.g. SSD's importances); yields (settings, model, seconds)
    # where seconds is what that one setting would have cost alone, shared work included. It may leave out
    # candidates that do not apply to the task (auto: those of the base its expansion does not point to).
    run_grid: Callable[[UnlearnTask, list[Any]], Iterator[tuple[Any, nn.Module, float]]] | None = None
    diagnostics: Callable[[UnlearnTask], dict[str, Any]] | None = None  # see the module docstring
    # The selection rule (methods.selection.SELECTIONS) used when the caller chose none; None: the paper's.
    selection: str | None = None
    # The expansion strategy (corrective.expand) the method applies to S_f itself; None: it uses S_f as given.
    expand: str | None = None
    # True: the method searches its grid unless the caller says `grid=False` (auto); False: its defaults alone.
    grid_by_default: bool = False
    # True: when the selected candidate loses more than the guard on the clean held-out data, the original model
    # is returned unchanged (auto; `api.correct` does this for every method). False: the selection rule's choice.
    do_no_harm: bool = False
    # True: under the guarded rule the candidates run in grid order and the search stops at the first within the
    # guard (auto: a task its first candidate corrects costs one candidate).
    stop_at_guard: bool = False
    # Optional: the classes a candidate must heal on the task, each with its weight (None: no such classes). Under
    # the guarded rule a candidate that lowers their validation accuracy is not eligible, and a search that stops at
    # the guard ends there (auto where its evidence says label noise: the shares of the forget set's labels).
    heals: Callable[[UnlearnTask], dict[int, float] | None] | None = None
    needs: str = "model"  # a key of NEEDS


METHODS: Registry[MethodInfo] = Registry("method", see="corrective methods")


def register_method(
    settings: type,
    grid: Grid | None = None,
    *,
    name: str | None = None,
    is_method: bool = True,
    run_grid: Callable[..., Iterator[tuple[Any, nn.Module, float]]] | None = None,
    diagnostics: Callable[[UnlearnTask], dict[str, Any]] | None = None,
    selection: str | None = None,
    expand: str | None = None,
    grid_by_default: bool = False,
    do_no_harm: bool = False,
    stop_at_guard: bool = False,
    heals: Callable[[UnlearnTask], dict[int, float] | None] | None = None,
    needs: str = "model",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator filing a method under its function name (or `name`) with its settings dataclass and grid."""

    if needs not in NEEDS:
        raise ValueError(f"needs must be one of {', '.join(NEEDS)}, got {needs!r}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        METHODS.register(
            key,
            MethodInfo(
                key,
                fn,
                settings,
                grid or (lambda: [{}]),
                is_method,
                summary,
                run_grid,
                diagnostics,
                selection,
                expand,
                grid_by_default,
                do_no_harm,
                stop_at_guard,
                heals,
                needs,
            ),
        )
        return fn

    return wrap


def get_method(name: str) -> MethodInfo:
    return METHODS.lookup(name)


def check_needs(name: str, model: nn.Module, spec: ModelSpec) -> None:
    """What method `name` needs (`MethodInfo.needs`), checked before anything runs: one line naming the
    method, the need and the way out."""
    info = get_method(name)
    if info.needs == "masks" and not has_capacity(model):
        raise UserError(
            f"method {name!r} needs {NEEDS['masks']}; {type(model).__name__} has none: pick a method that needs "
            "the model alone (auto, scrub, ssd, ...: see `corrective methods`)"
        )
    if info.needs == "fresh" and isinstance(spec, ResetSpec) and spec.factory is None and spec.template is not None:
        kept = unreset(spec.template)
        if kept:
            more = f" and {len(kept) - 1} more" if len(kept) > 1 else ""
            raise UserError(
                f"method {name!r} needs a fresh model of the same architecture, but resetting a copy of "
                f"{type(spec.template).__name__} would keep {kept[0]}{more} "
                "as trained (no reset_parameters() covers it); pass factory= (a function building a new model)"
            )


def list_methods() -> list[str]:
    return METHODS.names()


def candidate_overrides(
    name: str, grid: bool | Sequence[dict[str, Any]] | None = False, settings: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The settings overrides of every candidate of method `name`: each entry of its registered grid
    (`grid=True`) or of the given list, or the defaults alone (`False`, empty), with `settings` on top.
    `None`: the method's own default (`MethodInfo.grid_by_default`: its grid for auto, else its defaults)."""
    info = get_method(name)
    if grid is None:
        grid = info.grid_by_default
    entries = info.grid() if grid is True else list(grid or []) or [{}]
    return [{**g, **(settings or {})} for g in entries]


def make_settings(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The method's settings dataclass with `overrides` applied and checked: unknown keys, types, ranges
    (`corrective.settings`; a renamed setting is accepted with a warning)."""
    return build_settings(get_method(name).settings, overrides, f"method {name!r}")


def settings_dict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def run_method(task: UnlearnTask, name: str, settings: Any) -> tuple[nn.Module, float]:
    """Apply one method with one setting; returns the new model and the method's wall-clock seconds."""
    info = _checked(task, name)
    before = _fingerprint(task.model)
    start = time.perf_counter()
    model = info.fn(task, settings)
    seconds = time.perf_counter() - start
    if not torch.equal(before, _fingerprint(task.model)):
        raise RuntimeError(f"method {name!r} modified the original model in place")
    return model.eval(), seconds


def run_methods_grid(task: UnlearnTask, name: str, settings_list: list[Any]) -> Iterator[tuple[Any, nn.Module, float]]:
    """Every setting of a grid: (settings, model, seconds), through the method's shared-work runner if it has one."""
    info = _checked(task, name)
    if info.run_grid is None:
        for s in settings_list:
            model, seconds = run_method(task, name, s)
            yield s, model, seconds
        return
    before = _fingerprint(task.model)
    for s, model, seconds in info.run_grid(task, settings_list):
        if not torch.equal(before, _fingerprint(task.model)):
            raise RuntimeError(f"method {name!r} modified the original model in place")
        yield s, model.eval(), seconds


def _checked(task: UnlearnTask, name: str) -> MethodInfo:
    """The method's entry; an oracle bound without S_m, or a method handed S_m, is refused."""
    info = get_method(name)
    if not info.is_method and task.known_manipulated is None:
        raise UserError(f"{name!r} is an oracle bound, not a method: it needs the manipulated ids S_m")
    if info.is_method and task.known_manipulated is not None:
        raise UserError(f"{name!r} is an unlearning method: it must not be handed the manipulated ids S_m")
    return info


def _fingerprint(model: nn.Module) -> Tensor:
    with torch.no_grad():
        return torch.stack([p.detach().double().sum() for p in model.state_dict().values() if p.is_floating_point()])
