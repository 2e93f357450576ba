"""Aggregates of result rows over seeds: cells, reference lines, holes, alpha*, Table 1, REM's score, timings.

Every number comes from the records; nothing is recomputed from models or data. Means skip nulls
(NaN) and say how many values they average.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from corrective.errors import UserError
from corrective.names import DEFENCE, MANIPULATIONS, mean_std
from corrective.report.records import ExpansionRow, RatioHist, Results, Row

ORIGINAL, ORACLE, RETRAIN = "none", "oracle", "retrain"
FLAT = (ORIGINAL, ORACLE)  # drawn as horizontal lines: they do not depend on alpha
TARGET_DROP = 0.20  # flag target_acc this far (a fraction) below the original model's
ALPHA_STAR_SHARE = 0.9  # alpha* = smallest alpha with acc_corr >= this share of the oracle's


def rank(manipulation: str) -> int:
    """Position of a manipulation on REM's regularity axis (high to low); unknown ones last."""
    return MANIPULATIONS.index(manipulation) if manipulation in MANIPULATIONS else 9


RELEARN_ALPHAS = (0.1, 0.5, 1.0)  # the relearn figure's alphas (those of them the results hold)

BlockKey = tuple[str, str | None, str]  # (dataset, model, training): what the settings of one figure share


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of the non-NaN values, and how many there were."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        return cls(*mean_std(values))


@dataclass(frozen=True)
class GroupKey:
    """One experimental setting: the curves of a plot share it."""

    dataset: str
    manipulation: str
    size: float | None
    model: str | None
    training: str
    variant: str = ""  # the manipulation settings that vary in these results, e.g. "target 3 · corner top-left"
    false_flags: float | None = None  # the share of false flags in S_f, where the results vary it

    def sort_key(self) -> tuple[str, str, str, int, str, float, str, float]:
        return (
            self.dataset,
            self.model or "",
            self.training,
            rank(self.manipulation),
            self.manipulation,
            -1.0 if self.size is None else self.size,
            self.variant,
            -1.0 if self.false_flags is None else self.false_flags,
        )

    def setting(self) -> str:
        """The manipulation's size, the settings that vary and the false-flag share: 'size 0.05 · target 3'."""
        parts = [] if self.size is None else [f"size {self.size:g}"]
        parts += [self.variant] if self.variant else []
        parts += [] if self.false_flags is None else [f"false flags {self.false_flags:g}"]
        return " · ".join(parts)

    def label(self) -> str:
        parts = [self.dataset, self.manipulation] + ([self.setting()] if self.setting() else [])
        if self.model:
            parts.append(self.model)
        parts.append(f"{self.training} training")
        return " · ".join(parts)


def group_keys(rows: list[Row]) -> dict[int, list[GroupKey]]:
    """Each row's groups (by index): its setting, labelled by the manipulation settings that vary among the
    rows of its manipulation, and its false-flag share where any row has false flags. The original model and
    the oracle do not depend on false flags: their rows join every false-flag share of their setting."""

    def base(r: Row) -> tuple[str, str | None, str, str]:
        return (r.dataset, r.model, r.training, r.manipulation)

    values: dict[tuple[str, str | None, str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        for name, text in r.manipulation_settings:
            values[base(r)][name].add(text)
    varying = {b: {name for name, texts in v.items() if len(texts) > 1} for b, v in values.items()}

    def key(r: Row, flags: float | None) -> GroupKey:
        variant = " · ".join(f"{name} {text}" for name, text in r.manipulation_settings if name in varying[base(r)])
        return GroupKey(r.dataset, r.manipulation, r.size, r.model, r.training, variant, flags)

    with_flags = any(r.false_flags for r in rows)
    shared = [r.method == ORACLE or r.false_flags is None for r in rows]
    shares: dict[GroupKey, set[float]] = defaultdict(set)
    for r, flat in zip(rows, shared, strict=True):
        if with_flags and not flat:
            shares[key(r, None)].add(r.false_flags or 0.0)
    out = {}
    for i, (r, flat) in enumerate(zip(rows, shared, strict=True)):
        if not with_flags:
            out[i] = [key(r, None)]
        elif flat:
            out[i] = [key(r, f) for f in sorted(shares[key(r, None)])] or [key(r, None)]
        else:
            out[i] = [key(r, r.false_flags or 0.0)]
    return out


@dataclass
class Group:
    """The selected rows of one setting, one per (method, alpha, seed), plus every grid candidate."""

    key: GroupKey
    rows: list[Row]
    candidates: list[Row] = field(default_factory=list)
    # The grid expected of this setting (unions over its dataset, or its dataset/model/training for methods);
    # empty: what its own rows show.
    grid_alphas: list[float] = field(default_factory=list)
    grid_seeds: list[int] = field(default_factory=list)
    grid_methods: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by: dict[tuple[str, float | None], dict[int, Row]] = defaultdict(dict)
        for r in self.rows:
            self._by[(r.method, r.alpha)][r.seed] = r

    @property
    def methods(self) -> list[str]:
        """Methods first (alphabetical), then bounds (is_method false), then the flat reference lines."""
        names = {**self.grid_methods, **{r.method: r.is_method for r in self.rows}}
        return sorted(names, key=lambda m: (m in FLAT, not names[m], m))

    def is_method(self, method: str) -> bool:
        return self.grid_methods.get(method, any(r.is_method for r in self.rows if r.method == method))

    @property
    def curves(self) -> list[str]:
        return [m for m in self.methods if m not in FLAT]

    @property
    def alphas(self) -> list[float]:
        """The alphas of the grid: those of any curve (of any row when there is no curve)."""
        rows = [r for r in self.rows if r.method not in FLAT] or self.rows
        return sorted({r.alpha for r in rows if r.alpha is not None} | set(self.grid_alphas))

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.rows} | set(self.grid_seeds))

    def values(self, method: str, alpha: float | None, metric: str) -> list[float]:
        return [r.get(metric) for _, r in sorted(self._by.get((method, alpha), {}).items())]

    def cell(self, method: str, alpha: float, metric: str) -> Stat:
        return Stat.of(self.values(method, alpha, metric))

    def reference(self, method: str, metric: str) -> Stat | None:
        """A flat line: per seed, the mean over the alphas it was recorded at; then mean/std over seeds."""
        per_seed: dict[int, list[float]] = defaultdict(list)
        for r in self.rows:
            if r.method == method:
                per_seed[r.seed].append(r.get(metric))
        if not per_seed:
            return None
        return Stat.of(Stat.of(v).mean for _, v in sorted(per_seed.items()))

    def missing(self, method: str) -> list[tuple[float | None, int]]:
        """(alpha, seed) pairs of the grid with no selected record; alpha None for a flat line missing a seed."""
        if method in FLAT:
            have = {r.seed for r in self.rows if r.method == method}
            return [(None, s) for s in self.seeds if s not in have]
        return [(a, s) for a in self.alphas for s in self.seeds if s not in self._by.get((method, a), {})]

    def target_flag(self, method: str, alpha: float | None) -> bool:
        """True where mean target_acc is more than TARGET_DROP below the original model's (backdoors only)."""
        original = self.reference(ORIGINAL, "target_acc")
        if not self.backdoor or original is None or math.isnan(original.mean):
            return False
        stat = self.reference(method, "target_acc") if alpha is None else self.cell(method, alpha, "target_acc")
        return stat is not None and not math.isnan(stat.mean) and stat.mean < original.mean - TARGET_DROP

    def alpha_star(self, method: str) -> tuple[float | None, list[float]]:
        """(alpha*, the grid alphas below it with no data); alpha* None when no alpha reaches the bar.

        Raises LookupError when there is no oracle to compare with.
        """
        oracle = self.reference(ORACLE, "acc_corr")
        if oracle is None or math.isnan(oracle.mean):
            raise LookupError("no oracle records")
        gaps: list[float] = []
        for a in self.alphas:
            stat = self.cell(method, a, "acc_corr")
            if stat.n == 0:
                gaps.append(a)
            elif stat.mean >= ALPHA_STAR_SHARE * oracle.mean:
                return a, gaps
        return None, gaps

    def retain_change(self, method: str) -> tuple[Stat, int]:
        """Table 1: the method's mean acc_retain minus the original model's, mean ± std over alpha; #alphas."""
        original = self.reference(ORIGINAL, "acc_retain")
        if original is None:
            return Stat.of([]), 0
        if method in FLAT:
            ref = self.reference(method, "acc_retain")
            return (Stat.of([]), 0) if ref is None else (Stat(ref.mean - original.mean, math.nan, 1), 1)
        delta = Stat.of(self.cell(method, a, "acc_retain").mean - original.mean for a in self.alphas)
        return delta, delta.n

    def settings_cells(self, method: str, metric: str) -> dict[str, dict[float, Stat]]:
        """Every grid setting of `method` (selected or not): settings JSON -> alpha -> Stat over seeds."""
        by: dict[str, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        for r in self.candidates:
            if r.method == method and r.alpha is not None:
                by[r.settings][r.alpha][r.seed] = r.get(metric)  # a repeated record: the last one counts
        return {s: {a: Stat.of(v.values()) for a, v in sorted(per.items())} for s, per in sorted(by.items())}

    def has_relearn(self) -> bool:
        """Whether any selected record holds the relearn probe's figures."""
        return any(not math.isnan(r.get("relearn_acc_corr")) for r in self.rows)

    @property
    def backdoor(self) -> bool:
        """A backdoor setting (poisoning, blended, WaNet, SIG...): its records measure attack success, so
        target_acc and the defence view apply. Read from the records: the report cannot import the registry."""
        return any(not math.isnan(r.get("attack_success")) for r in self.rows)

    def has_defence(self) -> bool:
        """Whether any selected record holds BackdoorBench's C-Acc, ASR, R-Acc or DER (older records do not)."""
        return any(not math.isnan(r.get(m)) for r in self.rows for m in DEFENCE)

    def relearn_alphas(self) -> list[float]:
        return [a for a in self.alphas if any(math.isclose(a, b) for b in RELEARN_ALPHAS)]

    def before_after(self, method: str, alpha: float | None, metric: str) -> tuple[Stat, Stat]:
        """`metric` of the selected model and `relearn_<metric>` of its probed copy, over the seeds that hold both.

        For the original model and the oracle (alpha None) each seed's values are first averaged over the alphas
        they were recorded at, as for their reference lines."""
        per_seed: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for r in self.rows:
            if r.method == method and (method in FLAT or r.alpha == alpha):
                before, after = r.get(metric), r.get(f"relearn_{metric}")
                if not (math.isnan(before) or math.isnan(after)):
                    per_seed[r.seed].append((before, after))
        pairs = [(Stat.of(b for b, _ in v).mean, Stat.of(a for _, a in v).mean) for _, v in sorted(per_seed.items())]
        return Stat.of(b for b, _ in pairs), Stat.of(a for _, a in pairs)

    def ratio_hists(self) -> dict[float, tuple[RatioHist, int]]:
        """SSD's importance-ratio histograms per alpha, summed over seeds: (histogram, records summed)."""
        by: dict[float, dict[int, RatioHist]] = defaultdict(dict)
        for r in self.rows:
            if r.ratio_hist is not None and r.alpha is not None:
                by[r.alpha][r.seed] = r.ratio_hist
        return {a: (sum_hists(list(h.values())), len(h)) for a, h in sorted(by.items())}


def sum_hists(hists: list[RatioHist]) -> RatioHist:
    """Add histograms over the same bins (a UserError if the bins differ); max_finite is the largest."""
    first = hists[0]
    if any(h.edges != first.edges for h in hists):
        raise UserError(
            "SSD importance-ratio histograms with different bins cannot be added; "
            "re-run the SSD jobs with one version of corrective"
        )
    maxima = [h.max_finite for h in hists if not math.isnan(h.max_finite)]
    return RatioHist(
        first.edges,
        tuple(map(sum, zip(*(h.counts for h in hists), strict=True))),
        sum(h.n_params for h in hists),
        sum(h.n_inf for h in hists),
        sum(h.n_nan for h in hists),
        sum(h.n_zero for h in hists),
        max(maxima) if maxima else math.nan,
    )


def build_groups(results: Results) -> tuple[list[Group], list[str]]:
    """Split rows into groups; keep the last of duplicate selected records (with a note)."""
    notes: list[str] = []
    chosen: dict[GroupKey, dict[tuple[str, float | None, int], Row]] = defaultdict(dict)
    candidates: dict[GroupKey, list[Row]] = defaultdict(list)
    duplicates = 0
    keys_of = group_keys(results.rows)
    for i, r in enumerate(results.rows):
        for key in keys_of[i]:
            candidates[key].append(r)
            if r.selected:
                slot = (r.method, r.alpha, r.seed)
                duplicates += slot in chosen[key]
                chosen[key][slot] = r
    if duplicates:
        notes.append(
            f"{duplicates} selected record(s) repeat a (setting, method, alpha, seed) already seen; "
            "the last one of each is used"
        )
    keys = sorted(chosen, key=GroupKey.sort_key)
    alphas: dict[str, set[float]] = defaultdict(set)
    seeds: dict[str, set[int]] = defaultdict(set)
    methods: dict[BlockKey, dict[str, bool]] = defaultdict(dict)
    for dataset, (spec_seeds, spec_alphas) in results.expected.items():
        seeds[dataset].update(spec_seeds)
        alphas[dataset].update(spec_alphas)
    for r in results.rows:
        seeds[r.dataset].add(r.seed)
        if r.method not in FLAT and r.alpha is not None:
            alphas[r.dataset].add(r.alpha)
        methods[(r.dataset, r.model, r.training)][r.method] = r.is_method
    groups = [
        Group(
            k,
            list(chosen[k].values()),
            candidates[k],
            sorted(alphas[k.dataset]),
            sorted(seeds[k.dataset]),
            methods[(k.dataset, k.model, k.training)],
        )
        for k in keys
    ]
    return groups, notes


@dataclass(frozen=True)
class ScoreRow:
    """REM's score for one (dataset, model, method, training type): means over manipulations, alphas, seeds."""

    dataset: str
    model: str | None
    method: str
    training: str
    is_method: bool
    score: Stat
    healed: Stat
    utility: Stat
    manipulations: tuple[str, ...]
    all_manipulations: tuple[str, ...]


def score_rows(groups: list[Group]) -> list[ScoreRow]:
    rows: dict[tuple[str, str | None, str, str], list[Row]] = defaultdict(list)  # dataset, model, method, training
    manips: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    seen: set[int] = set()  # a row shared by several groups (an oracle across false-flag shares) counts once
    for g in groups:
        manips[(g.key.dataset, g.key.model)].add(g.key.manipulation)
        for r in g.rows:
            if id(r) not in seen:
                seen.add(id(r))
                rows[(g.key.dataset, g.key.model, r.method, r.training)].append(r)
    out = []
    for (dataset, model, method, training), rs in rows.items():
        out.append(
            ScoreRow(
                dataset,
                model,
                method,
                training,
                any(r.is_method for r in rs),
                Stat.of(r.get("score") for r in rs),
                Stat.of(r.get("healed") for r in rs),
                Stat.of(r.get("utility") for r in rs),
                tuple(sorted({r.manipulation for r in rs if not math.isnan(r.get("score"))})),
                tuple(sorted(manips[(dataset, model)])),
            )
        )
    return sorted(
        out, key=lambda s: (s.dataset, s.model or "", s.method in FLAT, not s.is_method, s.method, s.training)
    )


@dataclass(frozen=True)
class TimingRow:
    """unlearn_seconds of one method in one (dataset, model, training): per selected setting, and per grid search.

    For a method handed an expanded forget set, the expansion's seconds are added (computed once per alpha and
    shared by the grid, they count once per selected setting and once per grid search)."""

    dataset: str
    model: str | None
    training: str
    method: str
    is_method: bool
    seconds: Stat
    grid_seconds: Stat | None  # sum over every candidate setting of one (alpha, seed); None without a grid
    retrain_ratio: float


def expand_seconds(row: Row) -> float:
    """The seconds of the expansion the row's method was handed (0 without one)."""
    seconds = row.get("expand_seconds")
    return 0.0 if math.isnan(seconds) else seconds


def timing_rows(groups: list[Group]) -> list[TimingRow]:
    chosen: dict[tuple[str, str | None, str, str], list[Row]] = defaultdict(list)  # dataset, model, training, method
    # the same key -> (setting, alpha, seed) -> the seconds of each grid candidate of that job
    grids: dict[tuple[str, str | None, str, str], dict[tuple[GroupKey, float | None, int], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    seen: set[int] = set()  # a row shared by several groups counts once
    seen_candidates: set[int] = set()
    for g in groups:
        for r in g.rows:
            if id(r) not in seen:
                seen.add(id(r))
                chosen[(g.key.dataset, g.key.model, g.key.training, r.method)].append(r)
        for r in g.candidates:
            if id(r) in seen_candidates:
                continue
            seen_candidates.add(id(r))
            grids[(g.key.dataset, g.key.model, g.key.training, r.method)][(g.key, r.alpha, r.seed)].append(
                r.get("unlearn_seconds")
            )
    out = []
    for (dataset, model, training, method), rs in chosen.items():
        seconds = Stat.of(r.get("unlearn_seconds") + expand_seconds(r) for r in rs)
        per_job = grids[(dataset, model, training, method)].values()
        expansion = Stat.of(expand_seconds(r) for r in rs).mean if rs else 0.0
        grid = Stat.of(math.fsum(v) + expansion for v in per_job) if any(len(v) > 1 for v in per_job) else None
        retrain = chosen.get((dataset, model, training, RETRAIN))
        base = Stat.of(r.get("unlearn_seconds") for r in retrain).mean if retrain else math.nan
        ratio = seconds.mean / base if base and not math.isnan(base) else math.nan
        out.append(TimingRow(dataset, model, training, method, any(r.is_method for r in rs), seconds, grid, ratio))
    return sorted(
        out, key=lambda t: (t.dataset, t.model or "", t.training, t.method in FLAT, not t.is_method, t.method)
    )


@dataclass(frozen=True)
class ExpansionCell:
    """One expansion strategy at one alpha of one setting, over seeds."""

    dataset: str
    model: str | None
    training: str
    manipulation: str
    size: float | None
    panel: str  # the setting: manipulation, size, settings, false flags
    strategy: str
    alpha: float
    precision: Stat
    recall: Stat
    n_expanded: Stat
    seconds: Stat
    chosen: tuple[str, ...]  # what `auto` picked, over seeds


def expansion_cells(rows: list[ExpansionRow]) -> list[ExpansionCell]:
    """The bench's expand-stage records averaged over seeds, per (setting, strategy, alpha)."""
    by: dict[tuple[str, str | None, str, str, float | None, str, str, float], list[ExpansionRow]] = defaultdict(list)
    for r in rows:
        by[(r.dataset, r.model, r.training, r.manipulation, r.size, r.panel(), r.strategy, r.alpha)].append(r)
    out = [
        ExpansionCell(
            *key,
            Stat.of(r.precision for r in rs),
            Stat.of(r.recall for r in rs),
            Stat.of(r.n_expanded for r in rs),
            Stat.of(r.seconds for r in rs),
            tuple(sorted({r.chosen for r in rs})),
        )
        for key, rs in by.items()
    ]
    return sorted(
        out,
        key=lambda c: (
            c.dataset,
            c.model or "",
            c.training,
            rank(c.manipulation),
            c.manipulation,
            -1.0 if c.size is None else c.size,
            c.panel,
            c.strategy,
            c.alpha,
        ),
    )
