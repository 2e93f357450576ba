"""The experiment spec of `corrective bench`: a TOML file validated into frozen dataclasses.

Loading checks structure, types and ranges through the one validator (`corrective.settings`); every
error names the bad field and reads `must be RULE, got VALUE` (`bench spec: seeds[0]: must be an integer,
got 'a'`); a name that is not known lists the known ones. Whether the named methods,
datasets and models exist is checked against the registries by `check_spec` (the planner
calls it), so a preset naming methods of a newer version still loads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

from corrective.data import DATASETS
from corrective.errors import UserError
from corrective.manipulations import DEFAULT_SIZE, check_setting, get_manipulation, is_list_setting, ordered
from corrective.methods import METHODS, candidate_overrides, get_method, make_settings, settings_dict
from corrective.methods.selection import SELECTIONS
from corrective.models import MODELS
from corrective.models.masks import TRAINING_TYPES
from corrective.names import MANIPULATIONS, RELEARN_DEFAULT, RELEARN_KINDS
from corrective.settings import Rule, validate
from corrective.training import PRESETS

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


@dataclass(frozen=True)
class BenchSpec:
    name: str = "custom"
    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ("default",)  # "default": the dataset's model
    training: tuple[str, ...] = ("standard",)  # training types (capacity / etd need REM's training)
    manipulations: tuple[ManipulationSpec, ...] = ()
    seeds: tuple[int, ...] = (0,)
    alphas: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    methods: tuple[MethodSpec, ...] = (MethodSpec(ALL),)
    oracle: bool = True
    false_flags: tuple[float, ...] = (0.0,)  # clean samples mistakenly put in S_f, as shares of |S_f|
    # The relearn probe (bench.relearn) on every original, oracle and selected model: its kinds (names.RELEARN_KINDS),
    # none when off. In TOML `relearn = true` is `["mixed"]`; `relearn = ["mixed", "retain_only"]` runs both.
    relearn: tuple[str, ...] = ()
    train_preset: str = "default"  # "default": the dataset's (digits on digits, else paper)
    steps: int = 0  # 0: the preset's step budget
    val_fraction: float = 0.1
    roots: dict[str, str] = field(default_factory=dict)  # dataset -> data folder (default data/NAME)
    device: str = "auto"
    executor: str = "local"
    workers: int = 0  # 0: one per core on CPU, one per GPU on CUDA
    address: str = ""  # ray: cluster address ("auto" joins a running cluster; empty starts a local one)
    # Selection rules (methods.selection.SELECTIONS), an axis; a method with its own rule (auto) keeps it.
    selection: tuple[str, ...] = ("paper",)
    max_class_drop: float = 0.05  # the guarded rule's limit on any class's fall of validation accuracy
    # Forget-set expansion strategies (corrective.expand), an axis: "none" hands the method S_f as found.
    expand: tuple[str, ...] = ("none",)


FIELDS = {f.name for f in fields(BenchSpec)}


def _value(where: str, value: Any, hint: type[T], **rule: Any) -> T:
    """`value` as `hint` (int, float, bool or str) within `rule` (a `constraints.Rule`), or one line naming where."""
    try:
        return cast(T, validate(value, hint, Rule(**rule)))
    except ValueError as e:
        raise fail(where, str(e)) from None


def _str(where: str, value: Any) -> str:
    return _value(where, value, str)


def _int(where: str, value: Any, minimum: int | None = None) -> int:
    return _value(where, value, int, ge=minimum)


def _number(where: str, value: Any) -> float:
    return _value(where, value, float)


def _list(where: str, value: Any, item: Any) -> tuple[Any, ...]:
    """A list (a scalar counts as a one-item list, which is what `--set seeds=3` gives), non-empty."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise fail(where, "must be a non-empty list, got []")
    out = tuple(item(f"{where}[{i}]", v) for i, v in enumerate(values))
    if len(set(map(repr, out))) != len(out):
        raise fail(where, f"must not repeat a value, got {list(out)}")
    return out


def _choice(where: str, value: Any, known: tuple[str, ...]) -> str:
    return _value(where, value, str, choices=known)


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"must be a table, got {value!r}")
    return value


def _alpha(where: str, value: Any) -> float:
    return _value(where, value, float, gt=0, le=1)


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


def parse_spec(raw: dict[str, Any]) -> BenchSpec:
    """Validate a spec dict (as read from TOML, overrides applied) into a BenchSpec."""
    for key in raw:
        if key not in FIELDS:
            raise fail(key, f"unknown field; known: {', '.join(sorted(FIELDS))}")
    d = BenchSpec()
    get = raw.get
    return BenchSpec(
        name=_str("name", get("name", d.name)),
        datasets=_list("datasets", get("datasets", list(d.datasets)), _str),
        models=_list("models", get("models", list(d.models)), _str),
        training=_list("training", get("training", list(d.training)), lambda w, v: _choice(w, v, TRAININGS)),
        manipulations=_manipulations(get("manipulations", dict.fromkeys(MANIPULATIONS, [DEFAULT_SIZE]))),
        seeds=_list("seeds", get("seeds", list(d.seeds)), lambda w, v: _int(w, v, 0)),
        alphas=_list("alphas", get("alphas", list(d.alphas)), _alpha),
        methods=_methods(get("methods", {ALL: {"grid": True}})),
        oracle=_bool("oracle", get("oracle", d.oracle)),
        false_flags=_list("false_flags", get("false_flags", list(d.false_flags)), _share),
        relearn=_relearn("relearn", get("relearn", False)),
        train_preset=_str("train_preset", get("train_preset", d.train_preset)),
        steps=_int("steps", get("steps", d.steps), 0),
        val_fraction=_fraction("val_fraction", get("val_fraction", d.val_fraction)),
        roots={k: _str(f"roots.{k}", v) for k, v in _table("roots", get("roots", {})).items()},
        device=_str("device", get("device", d.device)),
        executor=_choice("executor", get("executor", d.executor), EXECUTORS),
        workers=_int("workers", get("workers", d.workers), 0),
        address=_str("address", get("address", d.address)),
        selection=_list("selection", get("selection", list(d.selection)), lambda w, v: _choice(w, v, SELECTIONS)),
        max_class_drop=_max_drop("max_class_drop", get("max_class_drop", d.max_class_drop)),
        expand=_list("expand", get("expand", list(d.expand)), _str),
    )


def _max_drop(where: str, value: Any) -> float:
    return _value(where, value, float, ge=0, lt=1)  # a fraction of a class's accuracy: 0.05 = 5 points


def _relearn(where: str, value: Any) -> tuple[str, ...]:
    """`true`/`false` (the mixed probe or none), a kind, or a list of kinds of the relearn probe."""
    if isinstance(value, bool):
        return (RELEARN_DEFAULT,) if value else ()
    if isinstance(value, str) and value in RELEARN_KINDS:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        kinds = _list(where, value, lambda w, v: _choice(w, v, RELEARN_KINDS))
        return tuple(k for k in RELEARN_KINDS if k in kinds)  # one order, so that the same kinds plan the same ids
    known = ", ".join(RELEARN_KINDS)
    raise fail(where, f"must be true, false, or a list of the probe's kinds ({known}), got {value!r}")


def _bool(where: str, value: Any) -> bool:
    return _value(where, value, bool)


def _share(where: str, value: Any) -> float:
    return _value(where, value, float, ge=0)  # false flags as a share of |S_f|


def _fraction(where: str, value: Any) -> float:
    return _value(where, value, float, gt=0, lt=1)


# ---------------------------------------------------------------- files, presets, overrides


def list_presets() -> list[str]:
    folder = resources.files("corrective.bench") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_text(name: str) -> str:
    if name not in list_presets():
        raise UserError(f"unknown bench preset {name!r}; known: {', '.join(list_presets())}")
    return (resources.files("corrective.bench") / "presets" / f"{name}.toml").read_text()


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


# ---------------------------------------------------------------- registry checks


def check_spec(spec: BenchSpec) -> None:
    """Check names against the registries: datasets, models, training preset, methods and their settings."""
    for i, name in enumerate(spec.datasets):
        if name not in DATASETS:
            raise fail(f"datasets[{i}]", f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    for i, name in enumerate(spec.models):
        if name != "default" and name not in MODELS:
            raise fail(f"models[{i}]", f"unknown model {name!r}; known: default, {', '.join(sorted(MODELS))}")
    if spec.train_preset != "default" and spec.train_preset not in PRESETS:
        known = ", ".join(["default", *PRESETS])
        raise fail("train_preset", f"unknown training preset {spec.train_preset!r}; known: {known}")
    known = ", ".join(sorted(METHODS))
    for m in spec.methods:
        for j, name in enumerate(m.exclude):
            if name not in METHODS:
                raise fail(f"methods.all.exclude[{j}]", f"unknown method {name!r}; known: {known}")
        if m.name != ALL and m.name not in METHODS:
            raise fail("methods", f"unknown method {m.name!r}; known: {known}")
    for name, m in method_specs(spec).items():
        settings_grid(name, m)
    strategies = [s for s in spec.expand if s != "none"]
    if strategies:
        from corrective.expand import list_strategies

        for i, name in enumerate(spec.expand):
            if name not in list_strategies():
                raise fail(f"expand[{i}]", f"unknown strategy {name!r}; known: {', '.join(list_strategies())}")


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
    """The full settings of every candidate of method `name` (defaults filled in), checked."""
    info = get_method(name)
    known = [f.name for f in fields(info.settings)]
    where = f"methods.{m.name}"
    out = []
    for i, full in enumerate(candidate_overrides(name, m.grid, m.settings)):
        for key in full:
            if key not in known:
                part = "settings" if key in m.settings else f"grid[{i}]" if isinstance(m.grid, tuple) else "grid"
                raise fail(f"{where}.{part}", f"unknown setting {key!r} of {name}; known: {', '.join(known) or 'none'}")
        try:
            out.append(settings_dict(make_settings(name, full)))
        except UserError as e:
            raise fail(f"{where}.grid[{i}]", str(e)) from None
    return out
