"""The results store: `results.jsonl` (one record per finished job) and `summary.csv`.

Only the parent process writes. Each record is one `write` of a whole line to a file opened
with O_APPEND, then flushed and fsync'ed; a torn last line (a crash mid-write) is ignored by
readers and cut off before the next append, so the file never holds a torn or duplicate record.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corrective.manipulations import record_settings
from corrective.names import SUMMARY_METRICS, mean_std
from corrective.runs import dumps

# A setting: the manipulation with its size and settings (None where it takes none), the false-flag share.
SETTING_KEYS = ("dataset", "model", "training", "manipulation", "size", *record_settings(), "false_flags")
GROUP_KEYS = (*SETTING_KEYS, "method", "expand", "selection", "alpha")
AXIS_DEFAULTS = {"expand": "none", "selection": "paper"}  # what records written before these axes existed used


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a results file (`results.jsonl`, or kept as `results.jsonl.gz`); a torn last line
    is ignored."""
    if not path.exists():
        return []
    records = []
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn tail of a crashed write
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class ResultStore:
    """Append-only records keyed by job id."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        self.records: dict[str, dict[str, Any]] = {}
        for r in read_records(self.path):
            self.records.setdefault(r.get("job_id", ""), r)

    def _cut_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())

    def done(self) -> set[str]:
        return set(self.records)

    def append(self, record: dict[str, Any]) -> None:
        """Write `record` as one line, durably; a job id already stored is never written twice."""
        job_id = record["job_id"]
        if job_id in self.records:
            return
        line = (dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path} ({written} of {len(line)} bytes); disk full?")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[job_id] = record


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # an interclass pair


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, model, training, manipulation, size, its settings, false flags, method, expand, selection,
    alpha): the selected settings and mean, sample std (n-1) and n over seeds of the main metrics. Originals' and
    expansions' records are left out."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("stage") in ("unlearn", "oracle"):
            groups.setdefault(tuple(_hashable(r.get(k, AXIS_DEFAULTS.get(k))) for k in GROUP_KEYS), []).append(r)
    rows = []
    for key, rs in groups.items():
        row: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in zip(GROUP_KEYS, key, strict=True)}
        row["is_method"] = rs[0].get("is_method")
        row["seeds"] = " ".join(str(s) for s in sorted(r["seed"] for r in rs))
        row["settings"] = " | ".join(sorted({json.dumps(r.get("settings", {}), sort_keys=True) for r in rs}))
        for m in SUMMARY_METRICS:
            values = [float(r[m]) for r in rs if isinstance(r.get(m), (int, float))]
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = mean_std(values)
        rows.append(row)
    order = {"oracle": 0}
    rows.sort(
        key=lambda r: (
            tuple("" if r[k] is None else str(r[k]) for k in SETTING_KEYS)
            + (order.get(r["method"], 1), r["method"], r["expand"], r["selection"], r["alpha"] or 0)
        )
    )
    return rows


def write_summary(rows: list[dict[str, Any]], path: Path) -> None:
    """`summary.csv`, written to a temporary file and renamed into place."""
    columns = [*GROUP_KEYS, "is_method", "seeds", "settings"]
    columns += [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std", "n")]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    os.replace(tmp, path)


KEPT = ("summary.csv", "spec.json")  # copied beside the compressed records when a run's records are kept


def keep_records(results_dir: Path, dest: Path) -> Path:
    """Keep a finished run's records in `dest` (a committed results folder): `results.jsonl` compressed to
    `results.jsonl.gz`, with `summary.csv` and `spec.json`; `benchmarks/rerender.py` re-renders its report."""
    source = Path(results_dir) / "results.jsonl"
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as f, gzip.open(dest / "results.jsonl.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    for name in KEPT:
        if (Path(results_dir) / name).exists():
            shutil.copy(Path(results_dir) / name, dest / name)
    return dest / "results.jsonl.gz"
