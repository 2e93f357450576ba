"""Result rows grouped by setting and averaged over seeds: what every view of the report reads.

A `Group` holds the selected rows of one setting (and its grid candidates) and answers the questions every
view asks: a cell (method, alpha) over seeds, a flat reference line, the holes of the grid, the target_acc
flag. What only one view needs lives in that view's module. Every number comes from the records; nothing is
recomputed from models or data. Means skip nulls (NaN) and say how many values they average.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from corrective.names import MANIPULATIONS, mean_std
from corrective.report.records import Results, Row

ORIGINAL, ORACLE, RETRAIN = "none", "oracle", "retrain"
FLAT = (ORIGINAL, ORACLE)  # drawn as horizontal lines: they do not depend on alpha
TARGET_DROP = 0.20  # flag target_acc this far (a fraction) below the original model's


def rank(manipulation: str) -> int:
    """Position of a manipulation on REM's regularity axis (high to low); unknown ones last."""
    return MANIPULATIONS.index(manipulation) if manipulation in MANIPULATIONS else 9


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

    @property
    def backdoor(self) -> bool:
        """A backdoor setting (poisoning, blended, WaNet, SIG...): its records measure attack success, so
        target_acc and the defence view apply. Read from the records: the report cannot import the registry."""
        return any(not math.isnan(r.get("attack_success")) for r in self.rows)

    def target_flag(self, method: str, alpha: float | None) -> bool:
        """True where mean target_acc is more than TARGET_DROP below the original model's (backdoors only)."""
        original = self.reference(ORIGINAL, "target_acc")
        if not self.backdoor or original is None or math.isnan(original.mean):
            return False
        stat = self.reference(method, "target_acc") if alpha is None else self.cell(method, alpha, "target_acc")
        return stat is not None and not math.isnan(stat.mean) and stat.mean < original.mean - TARGET_DROP


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


def seeds_of(groups: list[Group]) -> int:
    """How many seeds the groups' grid has (those with records and those the spec asked for)."""
    return len({s for g in groups for s in g.seeds})


def over_seeds(n: int, std: bool = True) -> str:
    """What a value shown is: 'mean ± std over 3 seeds', 'mean over 3 seeds', or 'one seed' (no mean, no std)."""
    if n == 1:
        return "one seed"
    return f"mean ± std over {n} seeds" if std else f"mean over {n} seeds"


def blocks(groups: list[Group]) -> dict[BlockKey, list[Group]]:
    """The groups by (dataset, model, training): one figure, table or paragraph per block in most views."""
    out: dict[BlockKey, list[Group]] = defaultdict(list)
    for g in groups:
        out[(g.key.dataset, g.key.model, g.key.training)].append(g)
    return out


def ordered_methods(groups: list[Group]) -> list[tuple[str, bool]]:
    """Every method of the groups with its is_method: methods, then bounds, then the flat references."""
    seen: dict[str, bool] = {}
    for g in groups:
        for m in g.methods:
            seen.setdefault(m, g.is_method(m))
    return sorted(seen.items(), key=lambda mi: (mi[0] in FLAT, not mi[1], mi[0]))


def block_label(dataset: str, model: str | None, training: str) -> str:
    return " · ".join([dataset] + ([model] if model else []) + [f"{training} training"])


def panel_title(g: Group) -> str:
    return f"{g.key.manipulation} ({g.key.setting()})" if g.key.setting() else g.key.manipulation


def short_title(g: Group) -> str:
    """A group's label inside its (dataset, model, training) block: a table column, a legend entry."""
    parts = [g.key.manipulation] + ([] if g.key.size is None else [f"{g.key.size:g}"])
    parts += [g.key.variant] if g.key.variant else []
    parts += [] if g.key.false_flags is None else [f"ff {g.key.false_flags:g}"]
    return " ".join(parts)


def method_label(method: str, is_method: bool) -> str:
    """'original (none)' for the original model; bounds (handed S_m, not methods) as 'name (bound)'."""
    if method == ORIGINAL:
        return "original (none)"
    return method if is_method else f"{method} (bound)"
