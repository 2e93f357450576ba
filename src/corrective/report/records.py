"""Read a results folder: `results.jsonl` (one JSON record per finished job) -> flat `Row`s.

A record holds its config and metrics as top-level fields, as `corrective bench` writes them
(`bench/jobs.py`); a missing field is a one-line `UserError` naming it.
Records of the bench's `original` stage (the trained model, no method) become rows of method `none`
without an alpha; the unselected grid candidates a record nests under `candidates` become rows of their own.
A record may carry method diagnostics (`diagnostics.importance_ratio`: SSD's histogram of I_f / I_r).
A method run on an expanded forget set, or selected by a rule other than the paper's, is its own entry:
`scrub+auto` (expand strategy auto), `ssd[guarded]`, `auto+auto`... shortened to `auto[guarded]` where the
method and its strategy share a name. Records of the bench's `expand` stage (an expanded forget set with its
precision and recall of S_m) become `ExpansionRow`s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corrective import names
from corrective.errors import UserError
from corrective.names import LEGACY_SETTINGS, SETTING_NAMES

# The record's config fields, each under the key the bench writes it with (bench/jobs.py).
CONFIG_FIELDS = {
    "dataset": "dataset",
    "manipulation": "manipulation",
    "seed": "seed",
    "model": "model",
    "training": "training",
    "size": "size",
    "job": "job_id",
}
REQUIRED_CONFIG = ("dataset", "manipulation", "seed")
REQUIRED_RECORD = ("method", "alpha", "is_method", "acc_corr", "acc_retain")
ORIGINAL_STAGE = "original"  # a bench record of the trained original model: method none, no alpha
EXPAND_STAGE = "expand"  # a bench record of one expanded forget set: strategy, alpha, precision, recall
METRICS = (*names.METRICS, names.SECONDS, *names.EXPANSION, names.GUARD, *names.RELEARN_METRICS)
DEFAULT_TRAINING = "standard"  # records written before training types existed


@dataclass(frozen=True)
class RatioHist:
    """Counts of log10(I_f / I_r) over a model's parameters in fixed bins, plus what the bins cannot hold."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    n_params: int
    n_inf: int
    n_nan: int
    n_zero: int
    max_finite: float


def ratio_hist(record: dict[str, Any], where: str) -> RatioHist | None:
    """The record's `diagnostics.importance_ratio`, checked; None when absent."""
    diag = record.get("diagnostics")
    h = diag.get("importance_ratio") if isinstance(diag, dict) else None
    if h is None:
        return None
    try:
        edges = tuple(float(e) for e in h["log10_edges"])
        counts = tuple(int(c) for c in h["counts"])
        hist = RatioHist(
            edges,
            counts,
            int(h["n_params"]),
            int(h["n_inf"]),
            int(h["n_nan"]),
            int(h["n_zero"]),
            math.nan if h["max_finite"] is None else float(h["max_finite"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{where}: diagnostics.importance_ratio is malformed ({type(e).__name__}: {e}); "
            "re-run that SSD job or delete its diagnostics"
        ) from None
    if len(edges) != len(counts) + 1:
        raise UserError(
            f"{where}: diagnostics.importance_ratio has {len(edges)} edges for {len(counts)} counts; "
            "re-run that SSD job or delete its diagnostics"
        )
    return hist


@dataclass(frozen=True)
class Row:
    """One result record, flattened: its config, the method and alpha, and its metrics (NaN where null)."""

    dataset: str
    manipulation: str
    seed: int
    method: str
    alpha: float | None  # None: the original model's own record (it does not depend on alpha)
    is_method: bool
    selected: bool
    metrics: dict[str, float]
    model: str | None = None
    training: str = DEFAULT_TRAINING
    size: float | None = None
    job: str | None = None
    line: int = 0
    settings: str = ""  # the method's settings as canonical JSON: tells grid candidates apart
    ratio_hist: RatioHist | None = None  # SSD's importance-ratio histogram, when the record holds one
    # The manipulation's recorded settings (target, trigger_size, corner, value, classes) as (name, text), and the
    # share of false flags in S_f (None: not recorded, e.g. an original model's record)
    manipulation_settings: tuple[tuple[str, str], ...] = ()
    false_flags: float | None = None
    expand: str = "none"  # the forget-set expansion the method was handed (none: S_f as found)
    selection: str = "paper"  # the selection rule that picked the setting
    guard_fallback: bool = False  # guarded: no candidate kept every class, the least damaging one was taken

    def get(self, metric: str) -> float:
        return self.metrics.get(metric, math.nan)


@dataclass(frozen=True)
class ExpansionRow:
    """One expanded forget set of the bench's expand stage: a strategy at one alpha, scored against S_m."""

    dataset: str
    manipulation: str
    seed: int
    strategy: str
    chosen: str  # for `auto`: the strategy it picked
    alpha: float
    precision: float
    recall: float
    n_expanded: float
    seconds: float
    model: str | None = None
    training: str = DEFAULT_TRAINING
    size: float | None = None
    variant: str = ""  # the manipulation's recorded settings, e.g. "target 3"
    false_flags: float = 0.0  # the share of false flags in the S_f it expanded

    def panel(self) -> str:
        """The setting it belongs to, as a panel title: 'poison (size 0.05 · target 3 · false flags 0.2)'."""
        parts = ([] if self.size is None else [f"size {self.size:g}"]) + ([self.variant] if self.variant else [])
        parts += [f"false flags {self.false_flags:g}"] if self.false_flags else []
        return f"{self.manipulation} ({' · '.join(parts)})" if parts else self.manipulation


def entry_label(method: str, expand: str, selection: str) -> str:
    """A method's name in figures and tables: with `+strategy` when handed an expanded set, `[rule]` when a
    rule other than the paper's selected it."""
    label = method
    if expand not in ("none", method):
        label += f"+{expand}"
    if selection != "paper":
        label += f"[{selection}]"
    return label


@dataclass
class Results:
    """The rows of one results file and what was noticed while reading it."""

    path: Path
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    # dataset -> (seeds, alphas) the spec asked for, so a seed with no record at all still shows as missing
    expected: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    expansions: list[ExpansionRow] = field(default_factory=list)  # the bench's expand stage


def scalar(record: dict[str, Any], key: str) -> Any:
    """The record's value at `key` when it is a scalar; None otherwise."""
    value = record.get(key)
    return None if isinstance(value, (dict, list)) else value


def to_float(value: Any, name: str, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: field {name!r} should be a number or null, got {value!r}")
    return float(value)


def to_row(record: dict[str, Any], where: str = "record", line: int = 0) -> Row:
    """Map one result record to a `Row`; a missing required field is a `UserError` naming it and where."""
    if record.get("stage") == ORIGINAL_STAGE and record.get("method") is None:
        record = {**record, "method": "none", "alpha": None, "is_method": True, "selected": True}
    found = {name: scalar(record, key) for name, key in CONFIG_FIELDS.items()}
    for name in REQUIRED_CONFIG:
        if found[name] is None:
            raise UserError(
                f"{where}: record lacks field {CONFIG_FIELDS[name]!r}; is this a {names.RESULTS} "
                "written by `corrective bench`?"
            )
    for name in REQUIRED_RECORD:
        if name == "alpha" and record.get("stage") == ORIGINAL_STAGE:
            continue
        missing = record.get(name) is None if name in ("method", "alpha", "is_method") else name not in record
        if missing:
            raise UserError(
                f"{where}: record lacks field {name!r}; is this a {names.RESULTS} written by `corrective bench`?"
            )
    metrics = {m: to_float(scalar(record, m), m, where) for m in METRICS}
    size = found["size"]
    expand, selection = str(record.get("expand") or "none"), str(record.get("selection") or "paper")
    return Row(
        dataset=str(found["dataset"]),
        manipulation=str(found["manipulation"]),
        seed=int(to_float(found["seed"], "seed", where)),
        method=entry_label(str(record["method"]), expand, selection),
        alpha=None if record["alpha"] is None else to_float(record["alpha"], "alpha", where),
        is_method=bool(record["is_method"]),
        selected=bool(record.get("selected", True)),
        metrics=metrics,
        model=None if found["model"] is None else str(found["model"]),
        training=DEFAULT_TRAINING if found["training"] is None else str(found["training"]),
        size=None if size is None else to_float(size, "size", where),
        job=None if found["job"] is None else str(found["job"]),
        line=line,
        settings=json.dumps(record.get("settings") or {}, sort_keys=True),
        ratio_hist=ratio_hist(record, where),
        manipulation_settings=tuple(
            (k, setting_text(record[k])) for k in setting_keys(record) if record.get(k) is not None
        ),
        false_flags=None
        if record.get("false_flags") is None
        else to_float(record["false_flags"], "false_flags", where),
        expand=expand,
        selection=selection,
        guard_fallback=bool(record.get("guard_fallback", False)),
    )


def to_expansion(record: dict[str, Any], where: str) -> ExpansionRow:
    """Map one record of the bench's expand stage; a missing field is a `UserError` naming it."""
    found = {name: scalar(record, key) for name, key in CONFIG_FIELDS.items()}
    for name in (*REQUIRED_CONFIG, "expand", "alpha"):
        if (found.get(name) if name in found else record.get(name)) is None:
            raise UserError(
                f"{where}: expansion record lacks field {name!r}; is this a {names.RESULTS} written by "
                "`corrective bench`?"
            )
    size = found["size"]
    return ExpansionRow(
        dataset=str(found["dataset"]),
        manipulation=str(found["manipulation"]),
        seed=int(to_float(found["seed"], "seed", where)),
        strategy=str(record["expand"]),
        chosen=str(record.get("expand_chosen") or record["expand"]),
        alpha=to_float(record["alpha"], "alpha", where),
        precision=to_float(record.get("expand_precision"), "expand_precision", where),
        recall=to_float(record.get("expand_recall"), "expand_recall", where),
        n_expanded=to_float(record.get("n_expanded"), "n_expanded", where),
        seconds=to_float(record.get("expand_seconds"), "expand_seconds", where),
        model=None if found["model"] is None else str(found["model"]),
        training=DEFAULT_TRAINING if found["training"] is None else str(found["training"]),
        size=None if size is None else to_float(size, "size", where),
        variant=" · ".join(f"{k} {setting_text(record[k])}" for k in setting_keys(record) if record.get(k) is not None),
        false_flags=to_float(record.get("false_flags") or 0.0, "false_flags", where),
    )


def setting_keys(record: dict[str, Any]) -> tuple[str, ...]:
    """The record fields holding its manipulation's settings: as the record names them, else (records written
    before the manipulation registry) the settings of those days."""
    own = record.get(SETTING_NAMES)
    return tuple(own) if isinstance(own, list) else LEGACY_SETTINGS


def setting_text(value: Any) -> str:
    """A manipulation setting as a label: 3, 0.5, bottom-right, 3-8 (an interclass pair)."""
    if isinstance(value, list):
        return "-".join(setting_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def record_rows(record: dict[str, Any], where: str = "record", line: int = 0) -> list[Row]:
    """The record's row, then one per unselected grid candidate nested in it (with the record's config)."""
    candidates = record.get("candidates")
    if not isinstance(candidates, list):
        return [to_row(record, where, line)]
    parent = {k: v for k, v in record.items() if k != "candidates"}
    config = {k: v for k, v in parent.items() if k != "diagnostics"}  # diagnostics belong to the job, once
    return [to_row(parent, where, line)] + [
        to_row({**config, **c}, f"{where} candidate {k}", line)
        for k, c in enumerate(candidates)
        if isinstance(c, dict) and not c.get("selected")
    ]


def results_file(path: Path) -> Path:
    """`path` itself if it is a file, else `path/results.jsonl`; clear errors when neither exists."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise UserError(f"results folder {path} does not exist; pass the folder `corrective bench` wrote (its --out)")
    if not (path / names.RESULTS).is_file():
        raise UserError(f"{path} has no {names.RESULTS}; pass the folder `corrective bench` wrote (its --out)")
    return path / names.RESULTS


def read_results(path: str | Path) -> Results:
    """Read every record of a results folder (or a .jsonl file); a torn last line is skipped with a note."""
    file = results_file(Path(path))
    lines = file.read_text(encoding="utf-8").splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    rows: list[Row] = []
    expansions: list[ExpansionRow] = []
    notes: list[str] = []
    for k, (number, line) in enumerate(numbered):
        where = f"{file}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if k == len(numbered) - 1:
                notes.append(f"skipped line {number} of {file.name}: torn or unfinished record (a job still writing?)")
                continue
            raise UserError(f"{where} is not valid JSON ({e.msg}); repair or delete that line") from None
        if not isinstance(record, dict):
            raise UserError(f"{where} is not a JSON object but {type(record).__name__}; one record per line expected")
        if record.get("stage") == EXPAND_STAGE:
            expansions.append(to_expansion(record, where))
            continue
        rows += record_rows(record, where, number)
    if not rows:
        raise UserError(f"{file} holds no records; run `corrective bench` first or wait for a job to finish")
    return Results(file, rows, notes, expected_grid(file.parent / names.SPEC, notes), expansions)


def expected_grid(spec: Path, notes: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    """Seeds and alphas per dataset from the bench's spec.json, if there is a readable one."""
    if not spec.is_file():
        return {}
    try:
        s = json.loads(spec.read_text(encoding="utf-8"))
        seeds, alphas = [int(x) for x in s["seeds"]], [float(a) for a in s["alphas"]]
        return {str(d): (seeds, alphas) for d in s["datasets"]}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        notes.append(f"{spec} is unreadable: missing runs are judged from the records alone")
        return {}
