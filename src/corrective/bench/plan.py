"""The planner: a spec becomes jobs with stable ids and stage dependencies.

Stages: the original model per (dataset, model, training, manipulation, size, seed), then its
oracle, then one expansion of S_f per (original, alpha, false flags, strategy) that some job uses,
then one unlearning job per (original, method, false flags, alpha, expansion strategy, selection
rule) running the method's grid and the selection rule. A job's id hashes everything that
determines its result (the resolved training recipe, settings with defaults filled in, seed,
device type, package versions), so a changed setting gives a new id and nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

import torch

from corrective import __version__
from corrective.bench.spec import ALL, ORACLE, BenchSpec, MethodSpec, fail
from corrective.data import DATASETS, get_info, load_dataset
from corrective.errors import UserError
from corrective.expand import STRATEGIES
from corrective.manipulations import manipulate
from corrective.methods import METHODS, candidate_overrides, get_method, make_settings, settings_dict
from corrective.models import MODELS
from corrective.training import PRESETS, get_preset


@dataclass(frozen=True)
class Job:
    id: str
    stage: str  # original | oracle | expand | unlearn
    params: dict[str, Any]  # what the worker needs (JSON values)
    deps: tuple[str, ...] = ()  # ids of jobs that must finish first

    @property
    def label(self) -> str:
        p = self.params
        settings = "".join(f" {k}={v}" for k, v in p["manipulation_settings"].items())
        where = f"{p['dataset']}/{p['manipulation']}@{p['size']}{settings}/s{p['seed']}"
        if self.stage == "original":
            return f"train {where}"
        flags = f" ff={p['false_flags']:g}" if p.get("false_flags") else ""
        if self.stage == "expand":
            return f"expand {p['expand']} a={p['alpha']}{flags} {where}"
        extra = "".join(f" {k}={p[k]}" for k, d in (("expand", "none"), ("selection", "paper")) if p.get(k, d) != d)
        return f"{p['method']} a={p['alpha']}{flags}{extra} {where}"


def job_id(key: dict[str, Any]) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versions_key() -> dict[str, str]:
    return {"corrective": __version__, "torch": torch.__version__.split("+")[0]}


def check_spec(spec: BenchSpec) -> None:
    """The spec's names against the registries: datasets, models, training preset, methods and their settings,
    expansion strategies; each miss one line naming the field and the known names."""
    for field_name, names, registry, also in (
        ("datasets", spec.datasets, DATASETS, ()),
        ("models", spec.models, MODELS, ("default",)),
        ("train_preset", (spec.train_preset,), PRESETS, ("default",)),
        ("expand", spec.expand, STRATEGIES, ()),
    ):
        for i, name in enumerate(names):
            if name not in registry and name not in also:
                where = field_name if field_name == "train_preset" else f"{field_name}[{i}]"
                known = ", ".join([*also, *registry.names()])
                raise fail(where, f"unknown {registry.kind} {name!r}; known: {known}")
    known = ", ".join(METHODS.names())
    for m in spec.methods:
        for j, name in enumerate(m.exclude):
            if name not in METHODS:
                raise fail(f"methods.all.exclude[{j}]", f"unknown method {name!r}; known: {known}")
        if m.name != ALL and m.name not in METHODS:
            raise fail("methods", f"unknown method {m.name!r}; known: {known}")
    for name, m in method_specs(spec).items():
        settings_grid(name, m)


def method_specs(spec: BenchSpec) -> dict[str, MethodSpec]:
    """Every method the spec runs (not the oracle stage), by name, in registry order for `all`."""
    named = {m.name: m for m in spec.methods if m.name != ALL}
    out: dict[str, MethodSpec] = {}
    for m in spec.methods:
        if m.name == ALL:
            for name in METHODS:
                if name != ORACLE and name not in named and name not in m.exclude:
                    out[name] = MethodSpec(name, m.grid, m.settings)
        else:
            out[m.name] = m
    return out


def settings_grid(name: str, m: MethodSpec) -> list[dict[str, Any]]:
    """The full settings of every candidate of method `name` (defaults filled in), checked; a renamed setting
    (`fraction`, now `budget`) is accepted with a warning."""
    info = get_method(name)
    known = [f.name for f in fields(info.settings)]
    renamed = getattr(info.settings, "RENAMED", {})
    where = f"methods.{m.name}"
    out = []
    for i, full in enumerate(candidate_overrides(name, m.grid, m.settings)):
        for key in full:
            if key not in known and key not in renamed:
                part = "settings" if key in m.settings else f"grid[{i}]" if isinstance(m.grid, tuple) else "grid"
                raise fail(f"{where}.{part}", f"unknown setting {key!r} of {name}; known: {', '.join(known) or 'none'}")
        try:
            out.append(settings_dict(make_settings(name, full)))
        except UserError as e:
            raise fail(f"{where}.grid[{i}]", str(e)) from None
    return out


def train_config(spec: BenchSpec, dataset: str, seed: int) -> dict[str, Any]:
    """The resolved training recipe (preset values, steps override, seed): part of the original's id."""
    cfg = get_preset(get_info(dataset).preset if spec.train_preset == "default" else spec.train_preset).to_dict()
    return {**cfg, "seed": seed, **({"steps": spec.steps} if spec.steps else {})}


def plan(spec: BenchSpec, device_type: str) -> list[Job]:
    """Every job of the spec in stage order; raises a UserError naming the field for anything unknown."""
    check_spec(spec)
    methods = {name: settings_grid(name, m) for name, m in method_specs(spec).items()}
    if not methods and not spec.oracle:
        raise UserError("bench spec: methods: no method to run (every registered method excluded)")
    oracle_grid = settings_grid(ORACLE, MethodSpec(ORACLE, False))
    check_data(spec)
    # in the key only when on (a spec without it keeps its ids), and `mixed` alone as `true` (the ids of before kinds)
    relearn: dict[str, Any] = (
        {} if not spec.relearn else {"relearn": True if spec.relearn == ("mixed",) else list(spec.relearn)}
    )
    originals: list[Job] = []
    oracles: list[Job] = []
    expands: list[Job] = []
    unlearns: list[Job] = []
    for dataset in spec.datasets:
        for model in spec.models:
            model_name = get_info(dataset).model if model == "default" else model
            for training in spec.training:
                for m in spec.manipulations:
                    for variant in m.variants():
                        for size in m.sizes:
                            for seed in spec.seeds:
                                params = {
                                    "dataset": dataset,
                                    "model": model_name,
                                    "training": training,
                                    "manipulation": m.kind,
                                    "size": size,
                                    "manipulation_settings": variant,
                                    "seed": seed,
                                    "train_config": train_config(spec, dataset, seed),
                                    "train_preset": spec.train_preset,
                                    "steps": spec.steps,
                                    "val_fraction": spec.val_fraction,
                                    "device_type": device_type,
                                    **relearn,
                                }
                                key = {"stage": "original", **params, "versions": versions_key()}
                                orig = Job(job_id(key), "original", {**params, "root": spec.roots.get(dataset)})
                                originals.append(orig)
                                if spec.oracle:
                                    oracles.append(_unlearn_job(orig, "oracle", ORACLE, 1.0, oracle_grid))
                                expansions: dict[tuple[float, float, str], Job] = {}
                                for name, grid in methods.items():
                                    for flags in spec.false_flags:
                                        for alpha in spec.alphas:
                                            for strategy, rule in method_axes(spec, name):
                                                exp = None
                                                if strategy != "none":
                                                    k = (alpha, flags, strategy)
                                                    if k not in expansions:
                                                        expansions[k] = _expand_job(orig, alpha, strategy, flags)
                                                    exp = expansions[k]
                                                unlearns.append(
                                                    _unlearn_job(
                                                        orig,
                                                        "unlearn",
                                                        name,
                                                        alpha,
                                                        grid,
                                                        flags,
                                                        exp=exp,
                                                        rule=rule,
                                                        max_drop=spec.max_class_drop,
                                                    )
                                                )
                                expands.extend(expansions.values())
    jobs = originals + oracles + expands + unlearns
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise UserError("bench spec: the spec names the same experiment twice (duplicate jobs); remove the repeat")
    return jobs


def method_axes(spec: BenchSpec, method: str) -> list[tuple[str, str]]:
    """The (expansion strategy, selection rule) pairs a method runs with.

    A method with its own expansion or rule (`MethodInfo.expand` / `.selection`: auto) keeps it, so the
    spec's axes collapse to one value for it; an oracle bound (handed S_m) is never expanded.
    """
    info = METHODS[method]
    strategies = [info.expand] if info.expand else list(spec.expand) if info.is_method else ["none"]
    rules = [info.selection] if info.selection else list(spec.selection)
    return list(dict.fromkeys((e, r) for e in strategies for r in rules))


def _expand_job(orig: Job, alpha: float, strategy: str, false_flags: float = 0.0) -> Job:
    """One expansion of S_f (false flags included) per (original, alpha, false flags, strategy)."""
    flags = {"false_flags": false_flags} if false_flags else {}
    key = {
        "stage": "expand",
        "original": orig.id,
        "alpha": alpha,
        "expand": strategy,
        **flags,
        "versions": versions_key(),
    }
    params = {**orig.params, "original_id": orig.id, "alpha": alpha, "expand": strategy, "false_flags": false_flags}
    return Job(job_id(key), "expand", params, (orig.id,))


def _unlearn_job(
    orig: Job,
    stage: str,
    method: str,
    alpha: float,
    grid: list[dict[str, Any]],
    false_flags: float = 0.0,
    *,
    exp: Job | None = None,
    rule: str = "paper",
    max_drop: float = 0.05,
) -> Job:
    """One method at one alpha. The defaults (no false flags, expand none, the paper's rule) add nothing to the
    id, so specs written before these axes existed keep their jobs' ids."""
    flags = {"false_flags": false_flags} if false_flags else {}  # no false flags: the id of before the axis
    key = {
        "stage": stage,
        "original": orig.id,
        "method": method,
        "alpha": alpha,
        "grid": grid,
        **flags,
        "versions": versions_key(),
    }
    strategy = "none" if exp is None else exp.params["expand"]
    if exp is not None:
        key |= {"expand": strategy, "expansion": exp.id}
    if rule != "paper":
        key |= {"selection": rule, "max_class_drop": max_drop}
    params = {
        **orig.params,
        "original_id": orig.id,
        "method": method,
        "alpha": alpha,
        "grid": grid,
        "false_flags": false_flags,
        "expand": strategy,
        "expansion_id": None if exp is None else exp.id,
        "selection": rule,
        "max_class_drop": max_drop,
    }
    deps = (orig.id,) if exp is None else (orig.id, exp.id)
    return Job(job_id(key), stage, params, deps)


def check_data(spec: BenchSpec) -> None:
    """What only the data can tell, before any job runs: each manipulation's draw with each of its settings'
    values (a target class or pair against the dataset's classes, a trigger against its images), and whether
    enough clean samples exist for the largest false-flag share at the largest alpha. Loads a dataset only
    when needed."""
    if spec.false_flags == (0.0,) and not any(m.settings for m in spec.manipulations):
        return
    worst, top_alpha = max(spec.false_flags), max(spec.alphas)
    for dataset in spec.datasets:
        ds = load_dataset(dataset, spec.roots.get(dataset), val_fraction=spec.val_fraction, seed=spec.seeds[0])
        for m in spec.manipulations:
            where = f"manipulations.{m.kind}"
            for variant in m.variants():
                for size in m.sizes:
                    try:
                        manip = manipulate(ds, m.kind, seed=spec.seeds[0], size=size, **variant)
                    except UserError as e:
                        raise fail(where, f"{dataset}, size {size:g}: {e}") from None
                    n_f = max(1, round(top_alpha * len(manip.ids)))
                    need, clean = round(worst * n_f), len(ds.train) - len(manip.ids)
                    if need > clean:
                        raise fail(
                            "false_flags",
                            f"a share of {worst:g} asks for {need} clean samples in S_f "
                            f"({dataset}, {m.kind} size {size:g}, alpha {top_alpha:g}) but only {clean} "
                            f"exist; use shares of at most {clean / n_f:.2f}",
                        )
