"""The planner: a spec becomes jobs with stable ids and stage dependencies.

Stages: the original model per (dataset, model, training, manipulation, size, seed), then its
oracle, then one unlearning job per (original, method, alpha) running the method's grid and
the selection rule. A job's id hashes everything that determines its result (the resolved
training recipe, settings with defaults filled in, seed, device type, package versions), so a
changed setting gives a new id and nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from corrective import __version__
from corrective.bench.spec import ORACLE, BenchSpec, MethodSpec, check_spec, method_specs, settings_grid
from corrective.data import get_info
from corrective.errors import UserError
from corrective.training import get_preset

STAGES = ("original", "oracle", "unlearn")


@dataclass(frozen=True)
class Job:
    id: str
    stage: str  # original | oracle | unlearn
    params: dict[str, Any]  # what the worker needs (JSON values)
    deps: tuple[str, ...] = ()  # ids of jobs that must finish first

    @property
    def label(self) -> str:
        p = self.params
        where = f"{p['dataset']}/{p['manipulation']}@{p['size']}/s{p['seed']}"
        if self.stage == "original":
            return f"train {where}"
        return f"{p['method']} a={p['alpha']} {where}"


def job_id(key: dict[str, Any]) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versions_key() -> dict[str, str]:
    return {"corrective": __version__, "torch": torch.__version__.split("+")[0]}


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
    originals, oracles, unlearns = [], [], []
    for dataset in spec.datasets:
        for model in spec.models:
            model_name = get_info(dataset).model if model == "default" else model
            for training in spec.training:
                for m in spec.manipulations:
                    for size in m.sizes:
                        for seed in spec.seeds:
                            params = {
                                "dataset": dataset, "model": model_name, "training": training,
                                "manipulation": m.kind, "size": size, "manipulation_settings": m.settings,
                                "seed": seed, "train_config": train_config(spec, dataset, seed),
                                "train_preset": spec.train_preset, "steps": spec.steps,
                                "val_fraction": spec.val_fraction, "device_type": device_type,
                            }
                            key = {"stage": "original", **params, "versions": versions_key()}
                            orig = Job(job_id(key), "original", {**params, "root": spec.roots.get(dataset)})
                            originals.append(orig)
                            if spec.oracle:
                                oracles.append(_unlearn_job(orig, "oracle", ORACLE, 1.0, oracle_grid))
                            for name, grid in methods.items():
                                for alpha in spec.alphas:
                                    unlearns.append(_unlearn_job(orig, "unlearn", name, alpha, grid))
    jobs = originals + oracles + unlearns
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise UserError("bench spec: the spec names the same experiment twice (duplicate jobs); remove the repeat")
    return jobs


def _unlearn_job(orig: Job, stage: str, method: str, alpha: float, grid: list[dict[str, Any]]) -> Job:
    key = {"stage": stage, "original": orig.id, "method": method, "alpha": alpha, "grid": grid,
           "versions": versions_key()}
    params = {**orig.params, "original_id": orig.id, "method": method, "alpha": alpha, "grid": grid}
    return Job(job_id(key), stage, params, (orig.id,))
