"""The experiment spec of `corrective bench`: a TOML file validated into frozen dataclasses.

`BenchSpec` is a checked dataclass of `setting(...)` fields, as `TrainConfig` is: loading checks structure,
types and ranges through the one validator (`corrective.settings`); every error names the bad field and
reads `must be RULE, got VALUE` (`bench spec: seeds[0]: must be an integer, got 'a'`). Whether the named
methods, datasets, models and presets exist is the planner's check (`plan.check_spec`), so a preset naming
methods of a newer version still loads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar, cast, get_origin, get_type_hints

from corrective.errors import UserError
from corrective.manipulations import DEFAULT_SIZE, check_setting, get_manipulation, is_list_setting, ordered
from corrective.methods.selection import SELECTIONS
from corrective.models.masks import TRAINING_TYPES
from corrective.names import MANIPULATIONS, RELEARN_DEFAULT, RELEARN_KINDS
from corrective.registry import Registry
from corrective.settings import Checked, Rule, SettingError, setting, validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
EXECUTORS = ("local", "ray")
TRAININGS = tuple(TRAINING_TYPES)
ALL = "all"  # `[methods.all]`: every registered method not listed by name (the oracle has its own stage)
ORACLE = "oracle"


def fail(where: str, message: str) -> UserError:
    return UserError(f"bench spec: {where}: {message}")


@dataclass(frozen=True)
class ManipulationSpec:
    kind: str
    sizes: tuple[float, ...]  # each a share of the training set (< 1) or a count (>= 1)
    # Axes of the manipulation's settings (as it declares them: `corrective manipulations`), each a tuple of
    # values; a setting not named keeps the manipulation's default.
    settings: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of the setting axes (one empty dict when none is named), in axis order."""
        out: list[dict[str, Any]] = [{}]
        for key, values in self.settings.items():
            out = [{**v, key: value} for v in out for value in values]
        return out


@dataclass(frozen=True)
class MethodSpec:
    name: str  # a registered method, or "all"
    grid: bool | tuple[dict[str, Any], ...] = True  # true: the method's registered grid; false: defaults; or a list
    settings: dict[str, Any] = field(default_factory=dict)  # applied on top of every grid entry
    exclude: tuple[str, ...] = ()  # only for "all"


def distinct(values: tuple[Any, ...]) -> str | None:
    """The rule a list axis of the spec breaks, if any: it is non-empty and names no value twice."""
    if not values:
        return "a non-empty list"
    return "a list without repeats" if len(set(map(repr, values))) != len(values) else None


def no_repeats(values: tuple[Any, ...]) -> str | None:
    """The rule a list axis that may be empty breaks, if any: it names no value twice."""
    return "a list without repeats" if len(set(map(repr, values))) != len(values) else None


def relearn_kinds(value: Any) -> Any:
    """The spec's `relearn` as a list of kinds in `names.RELEARN_KINDS` order (the same kinds plan the same ids):
    `true` (the specs of before kinds) is the mixed kind alone, `false` none; anything else goes to the validator
    as it is."""
    if isinstance(value, bool):
        return [RELEARN_DEFAULT] if value else []
    if not isinstance(value, list):
        value = [value]  # one kind (or a wrong value, which the validator names as the list's item)
    if isinstance(value, list) and all(v in RELEARN_KINDS for v in value) and len(set(value)) == len(value):
        return [k for k in RELEARN_KINDS if k in value]
    return value


@dataclass(frozen=True)
class BenchSpec(Checked):
    """A benchmark: every field a `setting` with its rule (the one validator, `corrective.settings`), but the
    manipulations, methods and roots tables (`parse_spec` reads them). Names are checked against the
    registries by the planner (`plan.check_spec`)."""

    name: str = setting("custom", "the experiment's name")
    datasets: tuple[str, ...] = setting(("digits",), "registered datasets", check=distinct)
    models: tuple[str, ...] = setting(("default",), "registered models; default: the dataset's", check=distinct)
    training: tuple[str, ...] = setting(
        ("standard",), "training types (capacity / etd: REM's)", choices=TRAININGS, check=distinct
    )
    manipulations: tuple[ManipulationSpec, ...] = ()
    seeds: tuple[int, ...] = setting((0,), "seeds", ge=0, check=distinct)
    alphas: tuple[float, ...] = setting(
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "discovery rates |S_f| / |S_m|", gt=0, le=1, check=distinct
    )
    methods: tuple[MethodSpec, ...] = (MethodSpec(ALL),)
    oracle: bool = setting(True, "train the oracle bound A(S_tr \\ S_m)")
    false_flags: tuple[float, ...] = setting(
        (0.0,), "clean samples mistakenly put in S_f, as shares of |S_f|", ge=0, check=distinct
    )
    # The relearn probe (bench.relearn) on every original, oracle and selected model: its kinds (names.RELEARN_KINDS),
    # none when off. In TOML `relearn = true` is `["mixed"]`, `false` is `[]`; `["mixed", "retain_only"]` runs both.
    relearn: tuple[str, ...] = setting(
        (),
        "kinds of relearn probe on every original, oracle and selected model (true: mixed; false: none)",
        choices=RELEARN_KINDS,
        check=no_repeats,
    )
    train_preset: str = setting("default", "training preset; default: the dataset's (digits on digits, else paper)")
    steps: int = setting(0, "training steps; 0: the preset's", ge=0)
    val_fraction: float = setting(0.1, "share of the training data held out for validation", gt=0, lt=1)
    roots: dict[str, str] = field(default_factory=dict)  # dataset -> data folder (default data/NAME)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")
    executor: str = setting("local", "where jobs run", choices=EXECUTORS)
    workers: int = setting(0, "parallel jobs; 0: one per core on CPU, one per GPU on CUDA", ge=0)
    address: str = setting("", "ray: cluster address (auto joins a running cluster; empty starts a local one)")
    # Selection rules (methods.selection.SELECTIONS), an axis; a method with its own rule (auto) keeps it.
    selection: tuple[str, ...] = setting(("paper",), "selection rules", choices=SELECTIONS, check=distinct)
    max_class_drop: float = setting(
        0.05, "the guarded rule's limit on any class's fall of validation accuracy (0.05: 5 points)", ge=0, lt=1
    )
    # Forget-set expansion strategies (corrective.expand), an axis: "none" hands the method S_f as found.
    expand: tuple[str, ...] = setting(("none",), "expansion strategies; none: S_f as found", check=distinct)


FIELDS = {f.name for f in fields(BenchSpec)}


def _value(where: str, value: Any, hint: type[T], **rule: Any) -> T:
    """`value` as `hint` (int, float, bool or str) within `rule` (a `constraints.Rule`), or one line naming where."""
    try:
        return cast(T, validate(value, hint, Rule(**rule)))
    except ValueError as e:
        raise fail(where, str(e)) from None


def _str(where: str, value: Any) -> str:
    return _value(where, value, str)


def _number(where: str, value: Any) -> float:
    return _value(where, value, float)


def _list(where: str, value: Any, item: Any) -> tuple[Any, ...]:
    """A list (a scalar counts as a one-item list, which is what `--set seeds=3` gives), non-empty."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise fail(where, "must be a non-empty list, got []")
    out = tuple(item(f"{where}[{i}]", v) for i, v in enumerate(values))
    broken = distinct(out)
    if broken:
        raise fail(where, f"must be {broken}, got {list(out)}")
    return out


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"must be a table, got {value!r}")
    return value


def _size(where: str, value: Any) -> float:
    s = _number(where, value)
    if s <= 0 or (s >= 1 and s != int(s)):
        raise fail(where, f"must be a share in (0, 1) or a whole count >= 1, got {value!r}")
    return s


def bench_manipulations() -> tuple[str, ...]:
    """The manipulations a spec may name: every registered one that manipulates samples (not `none`)."""
    return tuple(n for n, info in ordered().items() if info.takes_size)


def _axis(where: str, kind: str, key: str, value: Any) -> tuple[Any, ...]:
    """One setting's values, each checked by the manipulation's declared rule: a list is an axis, a scalar one
    value; for a setting whose value is a list (`classes = [3, 8]`), a flat list is one value."""
    if is_list_setting(kind, key) and isinstance(value, list) and value and not any(isinstance(v, list) for v in value):
        value = [value]

    def item(w: str, v: Any) -> Any:
        try:
            return check_setting(kind, key, v)
        except ValueError as e:
            raise fail(w, str(e)) from None

    return _list(where, value, item)


def _manipulations(raw: Any) -> tuple[ManipulationSpec, ...]:
    out = []
    known_kinds = bench_manipulations()
    for kind, value in _table("manipulations", raw).items():
        where = f"manipulations.{kind}"
        if kind not in known_kinds:
            raise fail("manipulations", f"unknown manipulation {kind!r}; known: {', '.join(known_kinds)}")
        settings: dict[str, tuple[Any, ...]] = {}
        if isinstance(value, dict):
            body = dict(value)
            if "sizes" not in body:
                raise fail(where, "a table needs `sizes` (a list of shares or counts)")
            sizes = _list(f"{where}.sizes", body.pop("sizes"), _size)
            known = get_manipulation(kind).setting_names()
            for key, values in body.items():
                if key not in known:
                    raise fail(f"{where}.{key}", f"unknown setting of {kind}; known: {', '.join(('sizes',) + known)}")
                settings[key] = _axis(f"{where}.{key}", kind, key, values)
        else:
            sizes = _list(where, value, _size)
        out.append(ManipulationSpec(kind, sizes, settings))
    if not out:
        raise fail("manipulations", f"name at least one of {', '.join(known_kinds)}")
    return tuple(out)


def _methods(raw: Any) -> tuple[MethodSpec, ...]:
    out = []
    for name, value in _table("methods", raw).items():
        where = f"methods.{name}"
        body = dict(_table(where, value))
        unknown = set(body) - {"grid", "settings", "exclude"}
        if unknown:
            raise fail(where, f"unknown field {sorted(unknown)[0]!r}; known: grid, settings, exclude")
        grid = body.get("grid", True)
        if isinstance(grid, list):
            grid = tuple(_table(f"{where}.grid[{i}]", g) for i, g in enumerate(grid))
            if not grid:
                raise fail(f"{where}.grid", "must be a non-empty list (grid = false runs the defaults alone), got []")
        elif not isinstance(grid, bool):
            raise fail(f"{where}.grid", f"must be true, false or a list of settings tables, got {grid!r}")
        exclude = _list(f"{where}.exclude", body["exclude"], _str) if "exclude" in body else ()
        if exclude and name != ALL:
            raise fail(f"{where}.exclude", "only [methods.all] takes exclude")
        out.append(MethodSpec(name, grid, dict(_table(f"{where}.settings", body.get("settings", {}))), exclude))
    if not out:
        raise fail("methods", "name at least one method, or [methods.all]")
    return tuple(out)


TABLES = ("manipulations", "methods", "roots")  # read by their own parsers; every other field is a setting


def parse_spec(raw: dict[str, Any]) -> BenchSpec:
    """Validate a spec dict (as read from TOML, overrides applied) into a BenchSpec: the settings through the
    one validator (a scalar where a list is due is a one-item list, what `--set seeds=3` gives), the tables
    through their parsers."""
    for key in raw:
        if key not in FIELDS:
            raise fail(key, f"unknown field; known: {', '.join(sorted(FIELDS))}")
    hints = get_type_hints(BenchSpec)
    values: dict[str, Any] = {
        k: v if get_origin(hints[k]) is not tuple or isinstance(v, list) else [v]
        for k, v in raw.items()
        if k not in TABLES
    }
    if "relearn" in raw:
        values["relearn"] = relearn_kinds(raw["relearn"])
    values["manipulations"] = _manipulations(raw.get("manipulations", dict.fromkeys(MANIPULATIONS, [DEFAULT_SIZE])))
    values["methods"] = _methods(raw.get("methods", {ALL: {"grid": True}}))
    values["roots"] = {k: _str(f"roots.{k}", v) for k, v in _table("roots", raw.get("roots", {})).items()}
    try:
        return BenchSpec(**values)
    except SettingError as e:
        raise fail(e.where, e.reason) from None


# ---------------------------------------------------------------- files, presets, overrides


def shipped_presets() -> Registry[Traversable]:
    """The bench presets shipped with the package (presets/NAME.toml), by name."""
    folder = resources.files("corrective.bench") / "presets"
    found = {p.name[: -len(".toml")]: p for p in folder.iterdir() if p.name.endswith(".toml")}
    return Registry("bench preset", found)


def list_presets() -> list[str]:
    return shipped_presets().names()


def preset_text(name: str) -> str:
    return shipped_presets().lookup(name).read_text()


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"bench spec {source} is not valid TOML: {e}") from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """`methods.scrub.grid` -> raw["methods"]["scrub"]["grid"] = value, creating tables on the way.

    A manipulation written as its sizes alone (`poison = [0.05]`) is the table `{sizes = [0.05]}`, so
    `manipulations.poison.target=3` sets an axis beside the sizes the preset names."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if i == 1 and parts[0] == "manipulations" and not isinstance(child, dict):
            child = node[part] = {"sizes": child}
        if not isinstance(child, dict):
            raise fail(".".join(parts[: i + 1]), f"is not a table, cannot set {key}")
        node = child
    node[parts[-1]] = value


def load_spec(
    preset: str | None = None, config: str | Path | None = None, sets: dict[str, Any] | None = None
) -> BenchSpec:
    """The spec of a preset (default: `default`) or a TOML file, with dotted `key=value` overrides applied."""
    if preset is not None and config is not None:
        raise UserError("give either --preset or --config, not both")
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise UserError(f"bench config {path} does not exist; pass a TOML file or use --preset")
        raw = parse_toml(path.read_text(), str(path))
    else:
        raw = parse_toml(preset_text(preset or "default"), f"preset {preset or 'default'}")
    for key, value in (sets or {}).items():
        set_dotted(raw, key, value)
    return parse_spec(raw)
