"""The few functions a user calls: train a (manipulated) model, load a run, evaluate it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from corrective.data import Dataset, Split, get_info, load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import Expansion, View, expand, get_strategy
from corrective.expand import expand as expand_fn  # for functions whose `expand` argument names a strategy
from corrective.manipulations import Manipulation, manipulate
from corrective.methods import (
    UnlearnTask,
    candidate_overrides,
    get_method,
    make_settings,
    run_methods_grid,
    settings_dict,
)
from corrective.methods.selection import Reference, Selection, class_drop, selection_record
from corrective.metrics import accuracy, evaluate, per_class_accuracy, predict
from corrective.models import ModelSpec, resolve_device
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
from corrective.training import TrainConfig, cross_entropy, example_tied_cross_entropy, get_preset, train


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
            save_model(self.model, tmp / WEIGHTS)
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
    val_fraction: float = 0.1,
    device: str = "auto",
    manipulation_settings: dict[str, Any] | None = None,
    dataset_options: dict[str, Any] | None = None,
    download: bool = False,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    training: str = "standard",
) -> Run:
    """Load data, manipulate it, train algorithm A on it, evaluate; save to `out` when given.

    `training` is the training type (`models.masks.TRAINING_TYPES`): standard, capacity (half the
    masked channels trained, the rest reserved for REM) or etd (example-tied dropout). Capacity and
    etd models infer in drop mode.
    """
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
    cfg = get_preset(preset or get_info(dataset).preset)
    try:
        cfg = TrainConfig(**{**cfg.to_dict(), "seed": seed, **({"steps": steps} if steps is not None else {})})
    except ValueError as e:
        raise UserError(f"training recipe: {e}") from None
    model = model or get_info(dataset).model
    kwargs = {
        **({"width": width} if width is not None else {}),
        **TRAINING_TYPES[training],
        **data_settings(model, ds.image_size),
    }
    spec = ModelSpec(model, ds.num_classes, ds.in_channels, kwargs)
    net = spec.build(seed, dev)
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


@dataclass
class UnlearnResult:
    """Every candidate setting of one (method, alpha) as records, the selected one marked, and its model.

    The selected record also holds the method's `diagnostics`, where it registered some (SSD's ratio histogram).

    Only the selected candidate's model is kept: a 50-setting grid of a large model would not fit in memory.
    """

    records: list[dict[str, Any]]
    model: nn.Module
    selected: int

    @property
    def record(self) -> dict[str, Any]:
        return self.records[self.selected]

    @property
    def diagnostics(self) -> dict[str, Any]:
        """The method's diagnostics for this task (empty where it registered none)."""
        diagnostics: dict[str, Any] = self.record.get("diagnostics", {})
        return diagnostics


def resolve_selection(method: str, selection: str | Selection | None, max_class_drop: float | None) -> Selection:
    """The rule the caller chose, else the one the method asks for (`MethodInfo.selection`), else the paper's."""
    if isinstance(selection, Selection):
        return selection
    rule = selection or get_method(method).selection or "paper"
    return Selection(rule) if max_class_drop is None else Selection(rule, max_class_drop)


def reference_on(model: nn.Module, split: Split, pipeline: Pipeline, num_classes: int) -> Reference:
    """What the guarded rule compares candidates with: the original model's accuracy on each class of
    `split` (clean validation or trusted held-out data) and the class's number of samples."""
    counts = torch.bincount(split.y.cpu(), minlength=num_classes)[:num_classes].tolist()
    return Reference(tuple(per_class_accuracy(model, split, pipeline, num_classes)), tuple(counts))


def run_candidates(
    task: UnlearnTask,
    method: str,
    settings: dict[str, Any] | None,
    grid: bool | list[dict[str, Any]] | None,
    measure: Callable[[nn.Module], dict[str, Any]],
    selection: Selection | None = None,
    reference: Reference | None = None,
    do_no_harm: bool = False,
) -> UnlearnResult:
    """Run `method` once per candidate, measure each model, select by `selection` (default: the paper's rule).

    The candidates are `settings` alone, or with `grid` every setting of the method's grid (or of the
    given list) with `settings` applied on top (`None`: the method's own default, its grid for auto).
    `measure` gives each model's figures, `val_per_class_acc` among them; `reference` is the original model
    on the validation split (`reference_on`), which the guarded rule compares against (each record gets its
    `val_class_drop`, the largest fall of a class).

    With `do_no_harm`, every record says whether the rule's choice stayed within the guard (every class and
    the whole of the reference split within `max_class_drop` or one sample): `do_no_harm` is `kept` when it
    did, `unchecked` without a reference, and `original` when it did not — then the original model is
    returned unchanged (`returned_original`): a last record (`is_original`, selected, no settings) holds the
    original's figures, with `unlearn_seconds` the whole search's, and the rule's choice is marked
    `rejected_by_guard`.
    """
    info = get_method(method)
    selection = selection or Selection()
    if selection.rule == "guarded" and reference is None:
        raise UserError(
            "guarded selection needs clean held-out data to compare classes on; provide it or use selection 'paper'"
        )
    candidates = [make_settings(method, o) for o in candidate_overrides(method, grid, settings)]
    records: list[dict[str, Any]] = []
    best: nn.Module | None = None
    best_key: tuple[float, float] | None = None
    chosen = 0
    for s, model, seconds in run_methods_grid(task, method, candidates):
        record = {"method": method, "settings": settings_dict(s), "selected": False, "is_method": info.is_method}
        record |= {"n_forget": len(task.forget_ids), "unlearn_seconds": seconds}
        record |= measure(model)
        if reference is not None:
            record["val_class_drop"] = class_drop(record, reference)
        records.append(record)
        key = selection.key(record, reference)
        if best_key is None or key > best_key:  # strict: the first of equals wins
            best, best_key, chosen = model, key, len(records) - 1
    choice = selection_record(records, chosen, selection, reference)
    if do_no_harm:
        within = (
            None
            if reference is None
            else Selection("guarded", selection.max_class_drop).eligible(records[chosen], reference)
        )
        outcome = "unchecked" if within is None else "kept" if within else "original"
        choice |= {"do_no_harm": outcome, "returned_original": within is False}
        choice["max_class_drop"] = selection.max_class_drop
        if within is False:
            records[chosen]["rejected_by_guard"] = True
            records.append(original_record(task, method, records, measure, reference))
            chosen, best = len(records) - 1, task.copy_model().eval()
    records[chosen]["selected"] = True
    for r in records:
        r |= choice
    if info.diagnostics is not None:  # once per (method, S_f), untimed; on the selected record only
        records[chosen]["diagnostics"] = info.diagnostics(task)
    assert best is not None
    return UnlearnResult(records, best, chosen)


def original_record(
    task: UnlearnTask,
    method: str,
    candidates: list[dict[str, Any]],
    measure: Callable[[nn.Module], dict[str, Any]],
    reference: Reference | None,
) -> dict[str, Any]:
    """The record of the original model returned unchanged by `method`: its figures, no settings, and the
    seconds of the whole search that found no candidate within the guard."""
    record: dict[str, Any] = {"method": method, "settings": {}, "selected": False, "is_method": True}
    record |= {"is_original": True, "n_forget": len(task.forget_ids)}
    record["unlearn_seconds"] = math.fsum(r["unlearn_seconds"] for r in candidates)
    record |= measure(task.model)
    if reference is not None:
        record["val_class_drop"] = class_drop(record, reference)
    return record


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


def check_expand(method: str, expand: str) -> None:
    """An unknown strategy, or --expand on a method that expands S_f itself or on an oracle bound: one clear line."""
    get_strategy(expand)
    expansion_for(method, expand, None, lambda strategy: None)


def expansion_for(method: str, expand: str, expansion: Any, compute: Callable[[str], Any]) -> Any:
    """The expansion a (method, --expand) pair uses, or None: the given one, else computed by `compute(strategy)`.

    A method that expands S_f itself (`MethodInfo.expand`, e.g. auto) takes only its own strategy.
    """
    info = get_method(method)
    if info.expand is not None:
        if expand not in ("none", info.expand):
            raise UserError(f"method {method!r} expands S_f itself (strategy {info.expand!r}); drop --expand {expand}")
        strategy = info.expand
    else:
        strategy = expand
    if strategy == "none":
        if expansion is not None:
            raise UserError("an expansion was given but expand is 'none'; name its strategy")
        return None
    if not info.is_method:
        raise UserError(f"{method!r} is an oracle bound handed every manipulated id; expansion does not apply")
    if expansion is not None:
        if expansion.strategy != strategy:
            raise UserError(f"the given expansion is by {expansion.strategy!r}, not {strategy!r}")
        return expansion
    return compute(strategy)


def expansion_task(task: UnlearnTask, method: str, expansion: Any) -> UnlearnTask:
    """The task the method runs on: S_f replaced by the expanded set, or (for a method that expands itself)
    S_f with the expansion handed in as `task.expansion`, so the method does not compute it again."""
    if expansion is None:
        return task
    if get_method(method).expand is not None:
        return replace(task, expansion=expansion)
    return replace(task, forget_ids=expansion.ids.to(task.forget_ids.device))


def unlearn(
    run: Run,
    method: str,
    alpha: float = 1.0,
    *,
    settings: dict[str, Any] | None = None,
    grid: bool | list[dict[str, Any]] | None = None,
    selection: str | None = None,
    max_class_drop: float | None = None,
    expand: str = "none",
    expansion: Any = None,
    progress: bool | None = None,
    false_flags: float = 0.0,
) -> UnlearnResult:
    """Apply `method` to a run with the first `alpha` share of S_m identified; evaluate; apply the selection rule.

    With `grid`, every setting of the method's grid (or of the given list of settings), each with
    `settings` applied on top, is a candidate (`None`: the method's own default — auto searches its grid,
    the others run their defaults). `selection` is `paper` or `guarded` (on the clean validation split;
    default: the method's own choice, else `paper`). A method that does no harm (`MethodInfo.do_no_harm`:
    auto) returns the original model when the chosen candidate loses more than the guard on a class or the
    whole of the validation split (`run_candidates`). `false_flags` adds
    round(false_flags * |S_f|) clean training samples to the flagged set (`Manipulation.false_flag_ids`):
    the method and the selection rule see them as flagged. `expand` names a strategy of
    `corrective.expand`: the method is handed the flagged set with the samples it adds (an `expansion`
    already computed for this run, alpha and false flags may be given). Every metric of the manipulation
    still reads the true S_m and the test domains; `forget_changed` (and so the selection score) is about
    the set the method acted on.
    """
    info = get_method(method)
    rule = resolve_selection(method, selection, max_class_drop)
    forget_ids, n_false = flagged_ids(run, alpha, false_flags)
    task = make_task(run, forget_ids, oracle=not info.is_method, progress=progress)
    exp = expansion_for(
        method, expand, expansion, lambda s: expand_run(run, alpha, s, false_flags=false_flags, progress=progress)
    )
    task = expansion_task(task, method, exp)
    acted_on = forget_ids if exp is None else exp.ids
    reference = reference_on(run.model, run.dataset.val, Pipeline.of(run.dataset), run.dataset.num_classes)

    def measure(model: nn.Module) -> dict[str, Any]:
        metrics = evaluate(
            model, run.dataset, run.manipulation, reference=run.model, forget_ids=acted_on, original=run.metrics
        )
        return {"alpha": alpha, "false_flags": false_flags, "n_false_flags": n_false, **metrics}

    result = run_candidates(task, method, settings, grid, measure, rule, reference, do_no_harm=info.do_no_harm)
    notes = describe_flags(
        run.model, run.train_split, Pipeline.of(run.dataset), forget_ids, acted_on, expanded=exp is not None
    )
    for r in result.records:
        r |= notes
    return with_expansion(result, exp, len(forget_ids))


def with_expansion(result: UnlearnResult, expansion: Any, n_flagged: int) -> UnlearnResult:
    """Every record says which expansion (if any) the method's forget set came from, and how big S_f was."""
    extra = {"expand": "none", "n_expanded": 0, "n_flagged": n_flagged}
    if expansion is not None:
        extra |= expansion.to_record() | {"n_forget": len(expansion.ids)}
    for r in result.records:
        r |= extra
    return result


def sample_id(value: Any) -> int:
    """An id as written by hand or a spreadsheet: `12`, `12.0` or 12.0 are 12; `12.5`, `x` and true are refused."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(value, int):
        return value
    raise ValueError(value)


def read_flagged(path: str | Path, keep_repeats: bool = False) -> torch.Tensor:
    """Flagged sample ids from a file: whitespace/comma separated integers, a JSON list, a .npy array, or the
    tab-separated table `corrective expand` writes (header `id`, the ids in the first column).

    A byte-order mark is skipped and integral floats (`12.0`, as spreadsheets export ids) are ids;
    anything else that is not a whole number is refused, naming it. The ids come sorted, each once; with
    `keep_repeats` an id the file repeats comes as often as written (for `describe_flags` to say so).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"flagged-ids file {path} does not exist; write one sample id per line")
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False).reshape(-1).tolist()
        elif path.suffix == ".json":
            values = json.loads(path.read_text(encoding="utf-8-sig"))
        else:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            if lines and lines[0].split("\t")[0].strip() == "id":  # a table of `corrective expand`: ids first
                values = [line.split("\t")[0] for line in lines[1:] if line.strip()]
            else:
                values = " ".join(lines).replace(",", " ").split()
        if not isinstance(values, list):
            raise TypeError(values)
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} must hold integer sample ids (one per line, a JSON list or a .npy array)") from None
    ids = []
    for v in values:
        try:
            ids.append(sample_id(v))
        except (ValueError, OverflowError):
            raise UserError(
                f"{path}: {v!r} is not a sample id; ids are whole numbers (one per line, a JSON list or a .npy array)"
            ) from None
    if not ids:
        raise UserError(f"{path} flags no sample; the identified set S_f must hold at least one id")
    return torch.tensor(sorted(ids if keep_repeats else set(ids)), dtype=torch.long)


def expand_run(
    run: Run,
    alpha: float = 1.0,
    strategy: str = "auto",
    settings: dict[str, Any] | None = None,
    *,
    false_flags: float = 0.0,
    progress: bool | None = None,
) -> Expansion:
    """Expand the first `alpha` share of a run's manipulated ids (with `false_flags`, as `unlearn` flags them),
    seeing only what a method sees.

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
    )


def check_flagged(train: Split, flagged: torch.Tensor) -> torch.Tensor:
    """Flagged ids as a LongTensor of ids present in `train`; a clear error naming the first stray ones."""
    flagged = torch.as_tensor(flagged, dtype=torch.long).reshape(-1).cpu().unique()
    if len(flagged) == 0:
        raise UserError("no sample is flagged; the identified set S_f must hold at least one id")
    known = torch.isin(flagged, train.ids.cpu())
    if not bool(known.all()):
        stray = flagged[~known][:5].tolist()
        lo, hi = int(train.ids.min()), int(train.ids.max())
        raise UserError(f"flagged ids {stray} are not in the training data (ids {lo}..{hi}); flag training sample ids")
    return flagged


WHOLE_CLASS_PURITY = 0.95  # an expanded set (nearly) all of one given label, which the model predicts on it, ...
WHOLE_CLASS_GAP = 1.5  # ... whose samples sit no farther from the rest of that label than from each other (median
# ratio below this; a backdoor's samples stand apart: 1.9 on digits, clean samples of a class 1.0-1.3) looks like
# ordinary samples of that class rather than a manipulation


def describe_flags(
    model: nn.Module,
    train: Split,
    pipeline: Pipeline,
    flagged: torch.Tensor,
    acted_on: torch.Tensor,
    expanded: bool,
) -> dict[str, Any]:
    """What the flagged ids (as given, repeats included) and the set a method acts on look like, from what a
    method may see: the ids, their given labels, the model's predictions and features (never S_m).

    `flag_notes` holds one line for each thing worth saying: repeated ids; an expanded set that looks like
    ordinary samples of one class rather than a manipulation — (nearly) all one given label, which the model
    predicts on them, and not standing apart from the rest of that label in the model's feature space (the
    median over the set of: distance to the nearest other sample of the label / distance to the nearest
    other sample of the set, below `WHOLE_CLASS_GAP`). Flags used as given (no expansion) are not judged so:
    the unflagged rest of a manipulation sits as close to them as a class's own samples do. The other fields
    are the figures behind the notes (`flags_gap` None where not computed).
    """
    flagged = torch.as_tensor(flagged).reshape(-1).cpu()
    unique, counts = flagged.unique(return_counts=True)
    repeated = unique[counts > 1]
    n_repeated = int((counts - 1).sum())
    acted = train.subset(train.positions_of(acted_on.cpu().unique()))
    labels = acted.y.cpu()
    per_label = torch.bincount(labels, minlength=int(train.y.max()) + 1)
    label = int(per_label.argmax())
    purity = float(per_label[label]) / max(len(labels), 1)
    cover = float(per_label[label]) / max(int((train.y.cpu() == label).sum()), 1)
    agree = float((predict(model, acted, pipeline) == labels).float().mean()) if len(labels) else 0.0
    gap: float | None = None
    if expanded and purity >= WHOLE_CLASS_PURITY and agree >= WHOLE_CLASS_PURITY and len(labels) >= 2:
        gap = class_gap(model, train, pipeline, acted.ids.cpu(), label)
    notes = []
    if n_repeated:
        shown = ", ".join(str(i) for i in repeated[:5].tolist())
        notes.append(
            f"the flagged ids hold {n_repeated} repeat(s) of {len(repeated)} id(s) ({shown}"
            f"{', ...' if len(repeated) > 5 else ''}): each sample is unlearned once; check how the file was made"
        )
    if gap is not None and gap < WHOLE_CLASS_GAP:
        notes.append(
            f"the {len(labels)} ids to unlearn ({cover:.0%} of the training samples labelled {label}) all carry "
            f"label {label}, which the model predicts on them, and do not stand apart from the rest of that label "
            f"(gap {gap:.2f}): they look like ordinary samples of class {label} rather than a manipulation — "
            "unlearning them hurts that class (the guard then returns the original model)"
        )
    return {
        "n_repeated_ids": n_repeated,
        "flags_label": label,
        "flags_label_share": purity,
        "flags_class_cover": cover,
        "flags_model_agrees": agree,
        "flags_gap": gap,
        "flag_notes": notes,
    }


def class_gap(model: nn.Module, train: Split, pipeline: Pipeline, ids: torch.Tensor, label: int) -> float:
    """Median over the samples `ids` (all labelled `label`) of: distance to the nearest other training sample
    labelled `label` / distance to the nearest other sample of `ids`, in the model's normalised features.
    Inf when no other sample carries the label."""
    view = View(model, train, pipeline)
    feats = torch.nn.functional.normalize(view.features, dim=1)
    inside = torch.isin(view.ids, ids)
    rest = feats[(view.labels == label) & ~inside]
    if len(rest) == 0:
        return math.inf
    own = feats[inside]
    within = torch.cdist(own, own)
    within.fill_diagonal_(math.inf)
    ratio = torch.cdist(own, rest).min(1).values / within.min(1).values.clamp(min=1e-12)
    return float(ratio.median())


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

    def compute(strategy: str) -> Any:
        return expand_fn(model, train, flagged, pipeline, strategy, seed=seed, progress=progress)

    exp = expansion_for(method, expand, None, compute)
    task = expansion_task(task, method, exp)
    acted_on = flagged if exp is None else exp.ids
    flagged_split = train.subset(train.positions_of(acted_on))
    before = predict(model, flagged_split, pipeline)

    def measure(new: nn.Module) -> dict[str, Any]:
        after = predict(new, flagged_split, pipeline)
        return {
            "val_accuracy": accuracy(new, held_out, pipeline) if held_out is not None else float("nan"),
            **(
                {}
                if held_out is None
                else {"val_per_class_acc": per_class_accuracy(new, held_out, pipeline, num_classes)}
            ),
            "forget_changed": float((after != before).float().mean()),
            "flagged_given_label_acc": float((after == flagged_split.y.cpu()).float().mean()),
        }

    result = run_candidates(task, method, settings, grid, measure, rule, reference, do_no_harm=True)
    notes = describe_flags(model, train, pipeline, given, acted_on, expanded=exp is not None)
    for r in result.records:
        r |= notes
    return with_expansion(result, exp, len(flagged))
