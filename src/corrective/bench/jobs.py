"""What a worker does with one job: train (or reuse) an original model, or run one method's grid.

Workers never write `results.jsonl`; they return the job's record to the parent. Each job
writes its own log (`<out>/logs/<id>.log`). Trained models are cached under `<out>/models/<id>/`,
written to a private folder first and renamed into place, so a killed worker never leaves a
half-written model and two writers of the same model cannot clash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import torch

from corrective import api
from corrective.bench.plan import Job
from corrective.bench.relearn import relearn_all, relearn_kinds
from corrective.errors import UserError
from corrective.expand import Expansion
from corrective.manipulations import setting_fields
from corrective.metrics import expansion_quality
from corrective.runs import MANIFEST, dumps, read_manifest, versions

MODELS = "models"
EXPANSIONS = "expansions"  # <out>/expansions/<id>.json: one expanded forget set per (original, alpha, strategy)
LOGS = "logs"
CONFIG_KEYS = ("dataset", "model", "training", "manipulation", "size", "seed", "train_preset", "steps")


def model_dir(out: Path, original_id: str) -> Path:
    return Path(out) / MODELS / original_id


def execute(job: Job, out: str) -> dict[str, Any]:
    """Run one job, logging to its own file; returns its record. Errors name the log file."""
    out_dir = Path(out)
    log_path = out_dir / LOGS / f"{job.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"job {job.id} ({job.stage}) pid {os.getpid()} started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        print(json.dumps(job.params, default=str))
        try:
            if job.params["device_type"] == "cpu":
                torch.set_num_threads(1)
            stages = {"original": train_original, "expand": expand, "oracle": unlearn, "unlearn": unlearn}
            record = stages[job.stage](job, out_dir)
        except UserError as e:
            print(f"failed: {e}")
            raise UserError(f"{job.label}: {e} (log: {log_path})") from None
        except Exception as e:
            traceback.print_exc()
            raise RuntimeError(f"{job.label}: {type(e).__name__}: {e} (log: {log_path})") from None
        record["job_seconds"] = time.perf_counter() - start
        record["job_cpu_seconds"] = time.process_time() - cpu  # this worker's CPU time: contention-free cost
        print(f"done in {record['job_seconds']:.1f} s")
    plain: dict[str, Any] = json.loads(dumps(record))  # what the parent will store: JSON values only
    return plain


def _base(job: Job) -> dict[str, Any]:
    p = job.params
    return {"job_id": job.id, "stage": job.stage, **{k: p[k] for k in CONFIG_KEYS}, "versions": versions()}


def train_original(job: Job, out: Path) -> dict[str, Any]:
    """The original model of `job`, trained once and cached by its id; its record comes from the manifest."""
    final = model_dir(out, job.id)
    if not (final / MANIFEST).exists():
        p = job.params
        partial = out / MODELS / ".partial" / f"{job.id}.{uuid.uuid4().hex[:8]}"
        try:
            api.train_run(
                p["dataset"],
                manipulation=p["manipulation"],
                size=p["size"],
                seed=p["seed"],
                root=p["root"],
                model=p["model"],
                preset=p["train_preset"] if p["train_preset"] != "default" else None,
                steps=p["steps"] or None,
                val_fraction=p["val_fraction"],
                device=p["device_type"],
                manipulation_settings=dict(p["manipulation_settings"]),
                out=partial,
                progress=False,
                training=p["training"],
            )
            try:
                os.rename(partial, final)
            except OSError:
                if not (final / MANIFEST).exists():  # not someone else's identical model: a real error
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    man = read_manifest(final)
    if man["training"] != job.params["train_config"]:
        raise RuntimeError(
            f"cached model {final} was trained with {man['training']}, not the planned "
            f"{job.params['train_config']}; the planner's recipe and api.train_run disagree"
        )
    fields = setting_fields(job.params["manipulation"], man["manipulation"]["settings"])
    kinds = relearn_kinds(job.params.get("relearn"))
    probe = relearn_all(api.load_run(final, device=job.params["device_type"]), None, kinds) if kinds else {}
    return {
        **_base(job),
        **fields,
        "method": None,
        "alpha": None,
        "train_seconds": man["train_seconds"],
        "n_manipulated": len(man["manipulation"]["ids"]),
        **man["metrics"],
        **probe,
    }


def expansion_path(out: Path, expansion_id: str) -> Path:
    return Path(out) / EXPANSIONS / f"{expansion_id}.json"


def expand(job: Job, out: Path) -> dict[str, Any]:
    """Expand S_f of one (original, alpha) by one strategy, once: the expanded set is cached as JSON by the job's id
    and shared by every method and setting that uses it; the record adds its precision and recall of S_m."""
    p = job.params
    run = api.load_run(model_dir(out, p["original_id"]), device=p["device_type"])
    exp = api.expand_run(run, p["alpha"], p["expand"], false_flags=p.get("false_flags", 0.0), progress=False)
    path = expansion_path(out, job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(dumps(expansion_json(exp)))
    os.replace(tmp, path)
    print(
        f"  {exp.strategy} ({exp.chosen}): {len(exp.added)} added to {len(exp.ids) - len(exp.added)} in "
        f"{exp.seconds:.1f} s"
    )
    flagged = api.flagged_ids(run, p["alpha"], p.get("false_flags", 0.0))[0]
    return {
        **_base(job),
        **run.manipulation.setting_fields(),
        "method": None,
        "alpha": p["alpha"],
        "false_flags": p.get("false_flags", 0.0),
        "original_id": p["original_id"],
        "n_flagged": len(flagged),
        "n_manipulated": len(run.manipulation.ids),
        **exp.to_record(),
        **expansion_quality(exp.ids, flagged, run.manipulation.ids),
    }


def expansion_json(exp: Any) -> dict[str, Any]:
    return {
        "strategy": exp.strategy,
        "chosen": exp.chosen,
        "ids": exp.ids.tolist(),
        "added": exp.added.tolist(),
        "scores": exp.scores.tolist(),
        "seconds": exp.seconds,
        "details": exp.details,
        "set_aside": exp.set_aside.tolist(),
    }


def load_expansion(out: Path, expansion_id: str) -> Any:
    """The cached expansion written by the expand job `expansion_id`."""
    path = expansion_path(out, expansion_id)
    if not path.exists():
        raise RuntimeError(f"the expansion {path} its job should have written is missing; re-run the bench")
    d = json.loads(path.read_text())
    return Expansion(
        d["strategy"],
        d["chosen"],
        torch.tensor(d["ids"], dtype=torch.long),
        torch.tensor(d["added"], dtype=torch.long),
        torch.tensor(d["scores"]),
        float(d["seconds"]),
        d["details"],
        set_aside=torch.tensor(d.get("set_aside", []), dtype=torch.long),  # absent from caches before 2026-12-04
    )


def unlearn(job: Job, out: Path) -> dict[str, Any]:
    """One method at one alpha over its grid, from the cached original (and expansion); the selected candidate's
    record."""
    p = job.params
    run = api.load_run(model_dir(out, p["original_id"]), device=p["device_type"])
    exp = load_expansion(out, p["expansion_id"]) if p.get("expansion_id") else None
    result = api.unlearn(
        run,
        p["method"],
        p["alpha"],
        grid=p["grid"],
        selection=p.get("selection", "paper"),
        max_class_drop=p.get("max_class_drop"),
        expand=p.get("expand", "none"),
        expansion=exp,
        progress=False,
        false_flags=p.get("false_flags", 0.0),
    )
    # the settings that ran (the original model a do-no-harm method returned is the chosen record, not a candidate)
    ran = [r for r in result.records if not r.get("is_original")]
    candidates = [{k: v for k, v in r.items() if k != "diagnostics"} for r in ran]  # diagnostics kept once, below
    for c in candidates:
        print(
            f"  {json.dumps(c['settings'])}: acc_corr {c['acc_corr']} acc_retain {c['acc_retain']} "
            f"selected {c['selected']}"
        )
    chosen = {k: v for k, v in result.record.items() if k not in ("method", "alpha")}
    flagged = api.flagged_ids(run, p["alpha"], p.get("false_flags", 0.0))[0]
    quality = {} if exp is None else expansion_quality(exp.ids, flagged, run.manipulation.ids)
    if relearn_kinds(p.get("relearn")):  # the selected model only, after the method and the selection are done
        chosen |= relearn_all(run, result.model, relearn_kinds(p.get("relearn")))
    return {
        **_base(job),
        **run.manipulation.setting_fields(),
        "method": p["method"],
        "alpha": p["alpha"],
        "original_id": p["original_id"],
        **chosen,
        **quality,
        "grid_size": len(candidates),
        "candidates": candidates,
    }
