"""One registry serves every named kind: register, look up with one message, list."""

from __future__ import annotations

import pytest

from corrective.bench.spec import preset_text, shipped_presets
from corrective.data import DATASETS, get_info
from corrective.errors import UserError
from corrective.expand import STRATEGIES, get_strategy
from corrective.manipulations import REGISTRY, get_manipulation
from corrective.methods import METHODS, get_method
from corrective.models import MODELS
from corrective.models.registry import get_factory
from corrective.registry import Registry
from corrective.training import PRESETS, get_preset

KINDS = [
    (MODELS, get_factory, "model", ""),
    (DATASETS, get_info, "dataset", " (see `corrective datasets`)"),
    (REGISTRY, get_manipulation, "manipulation", " (see `corrective manipulations`)"),
    (METHODS, get_method, "method", " (see `corrective methods`)"),
    (STRATEGIES, get_strategy, "expansion strategy", ""),
    (PRESETS, get_preset, "training preset", ""),
    (shipped_presets(), preset_text, "bench preset", ""),
]


@pytest.mark.parametrize(("registry", "get", "kind", "see"), KINDS, ids=[k[2] for k in KINDS])
def test_every_kind_is_one_registry_with_one_message(registry: Registry, get, kind: str, see: str) -> None:
    assert isinstance(registry, Registry) and registry.kind == kind
    assert registry.names() and set(registry.names()) == set(registry)
    with pytest.raises(UserError) as e:
        get("no-such-name")
    assert str(e.value) == f"unknown {kind} 'no-such-name'; known: {', '.join(registry.names())}{see}"


def test_register_lookup_and_order() -> None:
    r: Registry[int] = Registry("colour", order=list)
    assert r.register("red", 1) == 1 and r.register("blue", 2) == 2
    assert r.lookup("blue") == 2 and r.names() == ["red", "blue"]  # the kind's order: here, as registered
    assert Registry("colour", {"red": 1, "blue": 2}).names() == ["blue", "red"]  # default: sorted
    with pytest.raises(UserError, match=r"^unknown colour 'green'; known: red, blue$"):
        r.lookup("green")


def test_manipulations_keep_their_order_and_training_presets_theirs() -> None:
    assert REGISTRY.names()[:4] == ["none", "poison", "interclass", "random_swap"]
    assert PRESETS.names()[:3] == ["paper", "digits", "cpu28"]
