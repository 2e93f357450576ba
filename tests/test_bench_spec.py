"""The bench spec: validation errors name the field; presets load; overrides apply."""

from __future__ import annotations

import pytest

from corrective.bench import list_presets, load_spec, plan
from corrective.bench.plan import check_spec
from corrective.bench.spec import parse_spec, set_dotted
from corrective.errors import UserError


def test_defaults_and_overrides():
    spec = load_spec("smoke", sets={"seeds": [1, 2], "alphas": 0.3, "methods.none.grid": True, "steps": 5})
    assert spec.seeds == (1, 2) and spec.alphas == (0.3,) and spec.steps == 5
    assert {m.name: m.grid for m in spec.methods}["none"] is True
    assert spec.selection == ("paper",) and spec.expand == ("none",) and spec.max_class_drop == 0.05
    spec = load_spec("smoke", sets={"selection": "guarded", "max_class_drop": 0.1})
    assert spec.selection == ("guarded",) and spec.max_class_drop == 0.1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"seed": [0]}, "bench spec: seed: unknown field; known:"),
        ({"seeds": ["a"]}, "bench spec: seeds[0]: must be an integer, got 'a'"),
        ({"seeds": []}, "bench spec: seeds: must be a non-empty list, got []"),
        ({"alphas": [0.5, 1.5]}, "bench spec: alphas[1]: must be in (0, 1], got 1.5"),
        ({"training": ["fancy"]}, "bench spec: training[0]: must be one of 'standard', 'capacity', 'etd', got 'fancy'"),
        ({"manipulations": {"flip": [0.1]}}, "bench spec: manipulations: unknown manipulation 'flip'; known: poison,"),
        (
            {"manipulations": {"poison": [2.5]}},
            "bench spec: manipulations.poison[0]: must be a share in (0, 1) or a whole count >= 1, got 2.5",
        ),
        ({"methods": {"none": {"grd": True}}}, "bench spec: methods.none: unknown field 'grd'"),
        (
            {"methods": {"none": {"grid": "yes"}}},
            "bench spec: methods.none.grid: must be true, false or a list of settings tables, got 'yes'",
        ),
        ({"methods": {"none": {"exclude": ["x"]}}}, "bench spec: methods.none.exclude: only [methods.all]"),
        ({"executor": "dask"}, "bench spec: executor: must be one of 'local', 'ray', got 'dask'"),
        ({"oracle": "yes"}, "bench spec: oracle: must be true or false, got 'yes'"),
        ({"steps": -1}, "bench spec: steps: must be >= 0"),
        ({"selection": "best"}, "bench spec: selection[0]: must be one of 'paper', 'guarded', got 'best'"),
        (
            {"selection": ["paper", "paper"]},
            "bench spec: selection: must be a list without repeats, got ['paper', 'paper']",
        ),
        ({"max_class_drop": 5}, "bench spec: max_class_drop: must be in [0, 1), got 5.0"),
        ({"expand": []}, "bench spec: expand: must be a non-empty list, got []"),
        ({"expand": [3]}, "bench spec: expand[0]: must be a string, got 3"),
    ],
)
def test_structure_errors_name_the_field(raw, message):
    with pytest.raises(UserError) as e:
        parse_spec(raw)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"datasets": ["imagenet"]}, "bench spec: datasets[0]: unknown dataset 'imagenet'; known:"),
        ({"models": ["vgg"]}, "bench spec: models[0]: unknown model 'vgg'; known: default,"),
        ({"train_preset": "fast"}, "bench spec: train_preset: unknown training preset 'fast'"),
        ({"methods": {"magic": {}}}, "bench spec: methods: unknown method 'magic'; known:"),
        ({"methods": {"all": {"exclude": ["magic"]}}}, "bench spec: methods.all.exclude[0]: unknown method 'magic'"),
        ({"methods": {"none": {"grid": [{"alfa": 1}]}}}, "bench spec: methods.none.grid[0]: unknown setting 'alfa'"),
        ({"methods": {"none": {"settings": {"alfa": 1}}}}, "bench spec: methods.none.settings: unknown setting 'alfa'"),
    ],
)
def test_registry_errors_name_the_field(raw, message):
    with pytest.raises(UserError) as e:
        check_spec(parse_spec(raw))
    assert str(e.value).startswith(message), str(e.value)


def test_file_errors(tmp_path):
    with pytest.raises(UserError, match="unknown bench preset 'nope'; known: .*default"):
        load_spec("nope")
    with pytest.raises(UserError, match="does not exist"):
        load_spec(config=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seeds = [0,\n")
    with pytest.raises(UserError, match="is not valid TOML"):
        load_spec(config=bad)
    with pytest.raises(UserError, match="bench spec: seeds: is not a table"):
        set_dotted({"seeds": [0]}, "seeds.x", 1)


@pytest.mark.parametrize("preset", list_presets())
def test_every_shipped_preset_plans_a_complete_benchmark(preset):
    from corrective.bench.plan import method_specs

    spec = load_spec(preset)
    assert spec.name == preset  # results and reports name the preset they came from
    jobs = plan(spec, "cpu")  # every method, dataset and model it names is registered, every setting valid
    assert len({j.id for j in jobs}) == len(jobs)
    planned: set[str] = set()
    for j in jobs:  # in stage order: whatever a job needs is planned before it
        assert set(j.deps) <= planned, j.label
        planned.add(j.id)
    originals = [j for j in jobs if j.stage == "original"]
    keys = {(p["dataset"], p["model"], p["training"], p["seed"]) for p in (j.params for j in originals)}
    assert {k[3] for k in keys} == set(spec.seeds) and {k[0] for k in keys} == set(spec.datasets)
    assert {j.params["manipulation"] for j in originals} == {m.kind for m in spec.manipulations}
    methods = set(method_specs(spec))
    for o in originals:  # every method at every alpha on every original, and the oracle where asked for
        mine = [j for j in jobs if j.params.get("original_id") == o.id]
        ran = {(j.params["method"], j.params["alpha"]) for j in mine if j.stage == "unlearn"}
        assert ran >= {(m, a) for m in methods for a in spec.alphas}, (preset, o.label)
        assert sum(j.stage == "oracle" for j in mine) == (1 if spec.oracle else 0)


def test_an_unknown_preset_is_one_line_naming_the_known_ones():
    with pytest.raises(UserError, match="unknown bench preset 'defualt'; known: default, "):
        load_spec("defualt")


def test_a_setting_can_be_set_on_a_manipulation_written_as_sizes() -> None:
    # the smoke preset writes `poison = [0.05]`; --set manipulations.poison.target=3 adds an axis beside those sizes
    spec = load_spec("smoke", sets={"manipulations.poison.target": 3})
    poison = next(m for m in spec.manipulations if m.kind == "poison")
    assert poison.sizes == (0.05,) and poison.settings == {"target": (3,)}


def test_the_spec_is_a_checked_dataclass_like_the_training_recipe():
    """An invalid BenchSpec never exists, however it is built: the one validator runs in its constructor."""
    from corrective.bench import BenchSpec
    from corrective.settings import Checked

    assert issubclass(BenchSpec, Checked)
    with pytest.raises(ValueError, match=r"^steps must be >= 0, got -1$"):
        BenchSpec(steps=-1)
    with pytest.raises(ValueError, match=r"^seeds must be a list without repeats, got \[0, 0\]$"):
        BenchSpec(seeds=(0, 0))
    with pytest.raises(ValueError, match=r"^alphas must be in \(0, 1\], got 2.0$"):
        BenchSpec(alphas=(0.5, 2.0))
    assert BenchSpec(alphas=(1,)).alphas == (1.0,)  # coerced to the declared type
