"""A run: a model trained on (manipulated) data with everything that determines it — train, save, load,
evaluate — and what a method may be handed of it (its S_f at a discovery rate, its expansion)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corrective.data import Dataset, Split, get_info, load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import Expansion, expand
from corrective.manipulations import Manipulation, manipulate
from corrective.methods import UnlearnTask
from corrective.metrics import evaluate
from corrective.models import ModelSpec, device_of, resolve_device
from corrective.models.masks import TRAINING_TYPES
from corrective.models.registry import data_settings
from corrective.runs import (
    FORMAT,
    MANIFEST,
    WEIGHTS,
    check_out_dir,
    load_weights,
    read_manifest,
    save_model,
    versions,
    write_dir,
    write_json,
)
from corrective.training import (
    DEFAULT_EPOCHS,
    TrainConfig,
    cross_entropy,
    example_tied_cross_entropy,
    feature_precision,
    get_preset,
    steps_for,
    train,
)


@dataclass
class Run:
    """A trained model with everything that determines it: data, manipulation, recipe, seed."""

    dataset: Dataset
    manipulation: Manipulation
    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    seed: int
    data: dict[str, Any]  # how to reload the dataset: name, root, val_fraction, options
    metrics: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = float("nan")
    path: Path | None = None
    training_type: str = "standard"  # models.masks.TRAINING_TYPES: standard, capacity or etd

    @property
    def train_split(self) -> Split:
        """The training data as given to the original model (manipulated labels, triggers)."""
        return self.manipulation.apply(self.dataset.train)

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "data": self.data,
            "model": {
                "name": self.spec.name,
                "num_classes": self.spec.num_classes,
                "in_channels": self.spec.in_channels,
                "kwargs": self.spec.kwargs,
            },
            "manipulation": self.manipulation.to_record(),
            "training": self.config.to_dict(),
            "training_type": self.training_type,
            "seed": self.seed,
            "metrics": self.metrics,
            "train_seconds": self.train_seconds,
            "versions": versions(),
        }

    def save(self, out: Path, overwrite: bool = False) -> Path:
        def fill(tmp: Path) -> None:
            save_model(self.model, tmp / WEIGHTS, self.config.to_dict())
            write_json(tmp / MANIFEST, self.manifest())

        self.path = write_dir(Path(out), overwrite, fill)
        return self.path


def train_run(
    dataset: str = "digits",
    *,
    manipulation: str = "poison",
    size: float | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    model: str | None = None,
    width: float | None = None,
    preset: str | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    val_fraction: float = 0.1,
    device: str = "auto",
    manipulation_settings: dict[str, Any] | None = None,
    dataset_options: dict[str, Any] | None = None,
    download: bool = False,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    training: str = "standard",
    announce: Callable[[TrainConfig, int], None] | None = None,
) -> Run:
    """Load data, manipulate it, train algorithm A on it, evaluate; save to `out` when given.

    `training` is the training type (`models.masks.TRAINING_TYPES`): standard, capacity (half the
    masked channels trained, the rest reserved for REM) or etd (example-tied dropout). Capacity and
    etd models infer in drop mode.

    The budget: `steps`, or `epochs` over the training split, else the preset's steps — except on a user's own
    data (`DatasetInfo.budget_in_epochs`: npz, imagefolder) without a preset, where it is
    `training.DEFAULT_EPOCHS` epochs of its size. `announce(config, n_train)` is called before training starts.
    """
    if steps is not None and epochs is not None:
        raise UserError("give --epochs or --steps, not both")
    if epochs is not None and not (isinstance(epochs, (int, float)) and epochs > 0 and math.isfinite(epochs)):
        raise UserError(f"--epochs must be a finite number > 0, got {epochs}")
    if training not in TRAINING_TYPES:
        raise UserError(f"unknown training type {training!r}; known: {', '.join(TRAINING_TYPES)}")
    if out is not None:
        check_out_dir(Path(out), overwrite)  # fail before training, not after
    dev = resolve_device(device)
    data = {
        "name": dataset,
        "root": None if root is None else str(root),
        "val_fraction": val_fraction,
        "options": dataset_options or {},
    }
    ds = load_dataset(dataset, root, val_fraction=val_fraction, seed=seed, download=download, **(dataset_options or {}))
    manip = manipulate(ds, manipulation, seed=seed, size=size, **(manipulation_settings or {}))
    info = get_info(dataset)
    cfg = get_preset(preset or info.preset)
    if epochs is None and steps is None and preset is None and info.budget_in_epochs:
        epochs = DEFAULT_EPOCHS
    if epochs is not None:
        steps = steps_for(epochs, len(ds.train), cfg.batch_size)
    try:
        cfg = TrainConfig(**{**cfg.to_dict(), "seed": seed, **({"steps": steps} if steps is not None else {})})
    except ValueError as e:
        raise UserError(f"training recipe: {e}") from None
    model = model or info.model
    kwargs = {
        **({"width": width} if width is not None else {}),
        **TRAINING_TYPES[training],
        **data_settings(model, ds.image_size),
    }
    spec = ModelSpec(model, ds.num_classes, ds.in_channels, kwargs)
    net = spec.build(seed, dev)
    if announce is not None:
        announce(cfg, len(ds.train))
    start = time.perf_counter()
    desc = f"train {dataset}/{manipulation}"
    loss_fn = cross_entropy if training == "standard" else example_tied_cross_entropy
    train(net, manip.apply(ds.train).to(dev), Pipeline.of(ds), cfg, loss_fn, desc=desc, progress=progress)
    seconds = time.perf_counter() - start
    run = Run(ds.to(dev), manip, net, spec, cfg, seed, data, train_seconds=seconds, training_type=training)
    run.metrics = evaluate(net, run.dataset, manip)
    if out is not None:
        run.save(Path(out), overwrite)
    return run


def load_run(run_dir: str | Path, device: str = "auto") -> Run:
    """Rebuild a run from its folder: the data and manipulation are re-derived and checked against the manifest."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    dev = resolve_device(device)
    try:
        data, mrec, mod = man["data"], man["manipulation"], man["model"]
        seed = int(man["seed"])
        ds = load_dataset(data["name"], data["root"], val_fraction=data["val_fraction"], seed=seed, **data["options"])
        settings = dict(mrec["settings"])
        size = settings.pop("size", None)
        manip = manipulate(ds, mrec["kind"], seed=int(mrec["seed"]), size=size, **settings)
        spec = ModelSpec(mod["name"], int(mod["num_classes"]), int(mod["in_channels"]), dict(mod["kwargs"]))
        cfg = TrainConfig(**man["training"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{run_dir / MANIFEST} lacks or mangles field {e}; re-create the run") from None
    if manip.ids.tolist() != mrec["ids"]:
        raise UserError(
            f"{run_dir}: the data no longer gives the manipulated ids recorded in its manifest "
            "(different data files?); re-create the run"
        )
    net = load_weights(spec.build(), run_dir / WEIGHTS).to(dev).eval()
    seconds = man.get("train_seconds") or float("nan")
    training = man.get("training_type", "standard")
    return Run(ds.to(dev), manip, net, spec, cfg, seed, data, man.get("metrics", {}), seconds, run_dir, training)


def evaluate_run(run_dir: str | Path, device: str = "auto") -> dict[str, Any]:
    """Re-compute a run's metrics from its files."""
    run = load_run(run_dir, device)
    return evaluate(run.model, run.dataset, run.manipulation)


def make_task(run: Run, forget_ids: torch.Tensor, *, oracle: bool = False, progress: bool | None = None) -> UnlearnTask:
    """What a method may see of a run; an oracle bound also gets S_m."""
    if len(forget_ids) == 0:
        raise UserError("the identified set S_f is empty; flag at least one sample")
    return UnlearnTask(
        model=run.model,
        train=run.train_split,
        forget_ids=forget_ids,
        pipeline=Pipeline.of(run.dataset),
        config=run.config,
        spec=run.spec,
        seed=run.seed,
        progress=progress,
        known_manipulated=run.manipulation.ids if oracle else None,
    )


def flagged_ids(run: Run, alpha: float, false_flags: float = 0.0) -> tuple[torch.Tensor, int]:
    """(S_f for discovery rate `alpha` followed by its false flags, how many false flags)."""
    if not (isinstance(false_flags, (int, float)) and false_flags >= 0 and math.isfinite(false_flags)):
        raise UserError(f"false_flags must be a share >= 0 of |S_f|, got {false_flags!r}")
    forget_ids = run.manipulation.forget_ids(alpha)
    n_false = round(false_flags * len(forget_ids))
    if n_false == 0:
        return forget_ids, 0
    extra = run.manipulation.false_flag_ids(run.dataset.train, n_false)
    return torch.cat([forget_ids.cpu(), extra]), n_false


def expand_run(
    run: Run,
    alpha: float = 1.0,
    strategy: str = "auto",
    settings: dict[str, Any] | None = None,
    *,
    false_flags: float = 0.0,
    progress: bool | None = None,
    precision: str | None = None,
) -> Expansion:
    """Expand the first `alpha` share of a run's manipulated ids (with `false_flags`, as `unlearn` flags them),
    seeing only what a method sees. The feature pass runs in `precision` (default: the one the run's model
    was trained in, `training.feature_precision`).

    The strategy gets the model, the training split as given and S_f; S_m stays here (compare with
    `metrics.expansion_quality(expansion.ids, forget_ids, run.manipulation.ids)`).
    """
    forget_ids, _ = flagged_ids(run, alpha, false_flags)
    if len(forget_ids) == 0:
        raise UserError("the run has no manipulated samples to flag (manipulation 'none'); nothing to expand")
    return expand(
        run.model,
        run.train_split,
        forget_ids,
        Pipeline.of(run.dataset),
        strategy,
        settings,
        seed=run.seed,
        progress=progress,
        precision=precision or feature_precision(run.config, device_of(run.model), run.dataset.image_size),
    )
