"""Invariants checked on many generated cases (hypothesis): nested deletion sets, id files round-trip, spec
parsing that fails only with a clear line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from tempfile import TemporaryDirectory
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corrective import manipulations
from corrective.api import read_flagged
from corrective.bench.spec import parse_spec
from corrective.cli.expand import write_table
from corrective.data.base import Split
from corrective.errors import UserError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(n: int, classes: int) -> Split:
    """`n` 4x4 images, labels cycling over `classes`, ids that are not positions (offset and shuffled)."""
    g = torch.Generator().manual_seed(n)
    ids = 7 + torch.randperm(3 * n, generator=g)[:n]
    return Split(torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8), torch.arange(n) % classes, ids)


def draw(kind: str, train: Split, size: float, seed: int) -> manipulations.Manipulation:
    given: dict[str, Any] = {"poison": {"trigger_size": 2}, "interclass": {"classes": (1, 2)}}.get(kind, {})
    return manipulations.draw_on(train, 4, kind, size=size, seed=seed, **given)


@FAST
@given(
    kind=st.sampled_from(["poison", "interclass", "random_swap"]),
    n=st.integers(40, 200),
    size=st.floats(0.05, 0.4),
    seed=st.integers(0, 2**31 - 1),
    alphas=st.lists(st.floats(0.001, 1.0), min_size=2, max_size=5),
)
def test_deletion_sets_are_nested_prefixes_of_s_m(kind: str, n: int, size: float, seed: int, alphas: list[float]):
    train = split(n, 4)
    m = draw(kind, train, size, seed)
    s_m = m.ids.tolist()
    assert len(set(s_m)) == len(s_m) and set(s_m) <= set(train.ids.tolist())
    sets = [m.forget_ids(a).tolist() for a in sorted(alphas)]
    for a, s_f in zip(sorted(alphas), sets, strict=True):
        assert s_f == s_m[: len(s_f)]  # the first alpha share, so every smaller alpha's set is inside it
        assert len(s_f) == max(1, round(a * len(s_m)))
    assert sets[-1][: len(sets[0])] == sets[0]
    assert m.forget_ids(1.0).tolist() == s_m
    assert draw(kind, train, size, seed).ids.tolist() == s_m  # the seed alone decides the draw


@FAST
@given(n=st.integers(40, 120), seed=st.integers(0, 2**31 - 1), counts=st.lists(st.integers(0, 30), min_size=2))
def test_false_flags_are_nested_and_never_in_s_m(n: int, seed: int, counts: list[int]):
    train = split(n, 4)
    m = draw("random_swap", train, 0.1, seed)
    flags = [m.false_flag_ids(train, c).tolist() for c in sorted(counts)]
    for c, f in zip(sorted(counts), flags, strict=True):
        assert len(f) == c and len(set(f)) == c
        assert not set(f) & set(m.ids.tolist()) and set(f) <= set(train.ids.tolist())
        assert f == flags[-1][:c]


ID = st.integers(0, 2**53)  # ids as spreadsheets and JSON carry them exactly


def write_ids(folder: Path, form: str, ids: list[int]) -> Path:
    """`ids` written as a user (or `corrective expand`) would, in one of the formats read_flagged reads."""
    path = folder / f"ids.{'npy' if form == 'npy' else 'json' if form == 'json' else 'txt'}"
    if form == "lines":
        path.write_text("\n".join(map(str, ids)) + "\n")
    elif form == "commas":
        path.write_text(", ".join(map(str, ids)))
    elif form == "floats":  # a spreadsheet's export: 12.0, with a byte-order mark
        path.write_text("\ufeff" + "\n".join(f"{i}.0" for i in ids), encoding="utf-8")
    elif form == "json":
        path.write_text(json.dumps(ids))
    elif form == "npy":
        np.save(path, np.array(ids, dtype=np.int64))
    else:  # the table `corrective expand --out` writes: the flagged ids, then the added ones with scores
        half = len(ids) // 2
        scores = [1.0 / (k + 1) for k in range(len(ids) - half)]
        result = SimpleNamespace(added=ids[half:], scores=scores, set_aside=torch.zeros(0, dtype=torch.long))
        write_table(path, result, ids[:half])  # type: ignore[arg-type]
    return path


@FAST
@given(
    ids=st.lists(ID, min_size=1, max_size=60),
    form=st.sampled_from(["lines", "commas", "floats", "json", "npy", "table"]),
)
def test_id_files_round_trip(ids: list[int], form: str):
    if form == "floats":
        ids = [i for i in ids if float(i) == i and i < 2**53] or [0]
    with TemporaryDirectory() as tmp:
        assert read_flagged(write_ids(Path(tmp), form, ids)).tolist() == sorted(set(ids))


@FAST
@given(bad=st.sampled_from(["1.5", "x", "-", "1e400", "[1]"]), ids=st.lists(ID, max_size=5))
def test_a_bad_id_is_named(bad: str, ids: list[int]):
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "ids.txt"
        path.write_text("\n".join([*map(str, ids), bad]))
        with pytest.raises(UserError, match=f"{path}"):
            read_flagged(path)


FIELDS = ["seeds", "alphas", "datasets", "oracle", "steps", "false_flags", "selection", "expand", "max_class_drop"]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSONISH)
def test_a_spec_field_parses_or_fails_with_one_line_naming_it(field: str, value: Any):
    message = ""
    try:
        parse_spec({field: value})
    except UserError as e:
        message = str(e)
    assert not message or (message.startswith(f"bench spec: {field}") and "\n" not in message), message


@FAST
@given(
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True),
    alphas=st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=6, unique=True),
)
def test_a_spec_keeps_the_seeds_and_alphas_it_is_given(seeds: list[int], alphas: list[float]):
    spec = parse_spec({"seeds": seeds, "alphas": alphas})
    assert list(spec.seeds) == seeds and all(math.isclose(a, b) for a, b in zip(spec.alphas, alphas, strict=True))
    with pytest.raises(UserError, match="^bench spec: seeds: must be a list without repeats"):
        parse_spec({"seeds": [*seeds, seeds[0]]})
