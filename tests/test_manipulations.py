from __future__ import annotations

import pytest
import torch

from corrective.errors import UserError
from corrective.manipulations import Trigger, manipulate


def test_poison_draws_from_every_class_and_sets_target(digits) -> None:
    m = manipulate(digits, "poison", seed=0, size=0.1)
    assert len(m.ids) == round(0.1 * len(digits.train))
    assert set(m.given_labels.tolist()) == {0}
    assert len(set(m.clean_labels.tolist())) > 5
    assert m.trigger == Trigger(2, "bottom-right", 1.0)  # 2x2 on 8x8 images


def test_manipulations_are_seeded(digits) -> None:
    for kind in ("poison", "interclass", "random_swap"):
        a, b, c = (manipulate(digits, kind, seed=s) for s in (1, 1, 2))
        assert torch.equal(a.ids, b.ids) and not torch.equal(a.ids, c.ids)


def test_forget_sets_are_nested(digits) -> None:
    m = manipulate(digits, "random_swap", seed=0)
    sets = [set(m.forget_ids(a / 10).tolist()) for a in range(1, 11)]
    assert all(small <= big for small, big in zip(sets, sets[1:], strict=False))
    assert sets[-1] == set(m.ids.tolist()) and len(sets[0]) >= 1
    with pytest.raises(UserError, match="alpha"):
        m.forget_ids(0.0)


def test_interclass_swaps_half_of_each_class(digits) -> None:
    m = manipulate(digits, "interclass", seed=0, size=20, classes=(3, 8))
    assert sorted(m.clean_labels.tolist()) == [3] * 10 + [8] * 10
    assert torch.equal(m.given_labels, torch.where(m.clean_labels == 3, 8, 3))
    train = m.apply(digits.train)
    pos = train.positions_of(m.ids)
    assert torch.equal(train.y[pos], m.given_labels)
    assert int((train.y != digits.train.y).sum()) == 20


def test_random_swap_never_keeps_the_true_label(digits) -> None:
    m = manipulate(digits, "random_swap", seed=0, size=0.5)
    assert bool((m.given_labels != m.clean_labels).all())
    assert set(m.given_labels.tolist()) == set(range(10))


@pytest.mark.parametrize(
    ("kind", "kwargs", "match"),
    [
        ("poison", {"size": 5000}, "has only"),
        ("poison", {"size": 0}, "> 0"),
        ("poison", {"target": 10}, "out of range"),
        ("interclass", {"classes": (3, 3)}, "two different"),
        ("interclass", {"size": 0.5}, "samples of class"),
        ("bogus", {}, "unknown manipulation"),
    ],
)
def test_bad_settings_are_clear_errors(digits, kind, kwargs, match) -> None:
    with pytest.raises(UserError, match=match):
        manipulate(digits, kind, seed=0, **kwargs)


def test_test_domains(digits) -> None:
    ic = manipulate(digits, "interclass", seed=0)
    inside, outside = ic.test_domains(digits.test)
    assert set(inside.y.tolist()) == {3, 8} and not {3, 8} & set(outside.y.tolist())
    p = manipulate(digits, "poison", seed=0)
    stamped, clean = p.test_domains(digits.test)
    assert len(stamped) == len(clean) == len(digits.test)
    x = stamped.stamp(torch.zeros(2, 1, 8, 8), torch.arange(2))
    assert float(x[:, :, -2:, -2:].min()) == 1.0 and float(x[:, :, :-2].max()) == 0.0


# ---------------------------------------------------------------- the registry


def test_every_registered_manipulation_draws_seeded_and_validated(digits) -> None:
    """Each registered manipulation draws on digits, seeded, with its declared settings recorded; names come
    from the registry (the CLI, the bench and the report read them there)."""
    from corrective.manipulations import BACKDOORS, MANIPULATIONS, get_manipulation, record_settings

    assert MANIPULATIONS[:4] == ("none", "poison", "interclass", "random_swap")
    assert set(BACKDOORS) >= {"poison"} and not {"interclass", "random_swap", "none"} & set(BACKDOORS)
    for kind in MANIPULATIONS:
        info = get_manipulation(kind)
        a, b = (manipulate(digits, kind, seed=3) for _ in range(2))
        assert torch.equal(a.ids, b.ids) and a.settings == b.settings
        assert set(info.setting_names()) <= set(a.settings) and set(info.setting_names()) <= set(record_settings())
        fields = a.setting_fields()
        assert fields["setting_names"] == list(info.setting_names())
        assert all(fields[k] is None for k in record_settings() if k not in info.setting_names())
        corr, retain = a.test_domains(digits.test)
        assert (a.target is not None) == info.backdoor == (kind in BACKDOORS)
        if info.backdoor:  # the triggered test set: every image, clean labels, the trigger applied
            assert corr is not None and torch.equal(corr.y, digits.test.y) and corr.stamp is not None
        if info.takes_size:
            assert len(a.ids) == round(0.05 * len(digits.train))


def test_settings_go_through_the_one_validator(digits) -> None:
    with pytest.raises(UserError, match="manipulation 'poison': corner must be one of 'bottom-right'"):
        manipulate(digits, "poison", seed=0, corner="middle")
    with pytest.raises(UserError, match="manipulation 'random_swap' has no setting 'target'"):
        manipulate(digits, "random_swap", seed=0, target=1)
    with pytest.raises(UserError, match=r"classes must be a pair of two different classes like \[3, 8\], got \[3, 3\]"):
        manipulate(digits, "interclass", seed=0, classes=[3, 3])
