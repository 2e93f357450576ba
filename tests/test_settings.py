"""The one validator of settings: types, ranges, choices, and one message shape."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from corrective.settings import Checked, Rule, help_of, rule_of, setting, validate


@dataclass(frozen=True)
class Demo(Checked):
    lr: float = setting(0.1, "learning rate", gt=0)
    share: float = setting(0.5, "a share", ge=0, le=1)
    steps: int = setting(3, "steps", ge=1)
    mode: str = setting("a", "a mode", choices=("a", "b"))
    cap: float | None = setting(None, "optional", gt=0, lt=10)


def test_rules_describe_themselves() -> None:
    assert [rule_of(f).describe() for f in fields(Demo)] == [
        "> 0",
        "in [0, 1]",
        ">= 1",
        "one of 'a', 'b'",
        "in (0, 10)",
    ]
    assert help_of(fields(Demo)[0]) == "learning rate" and Rule().describe() == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0}, "lr must be > 0, got 0.0"),
        ({"share": 1.5}, "share must be in [0, 1], got 1.5"),
        ({"steps": 2.0}, "steps must be an integer, got 2.0"),
        ({"steps": True}, "steps must be an integer, got True"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"mode": "c"}, "mode must be one of 'a', 'b', got 'c'"),
        ({"cap": 10}, "cap must be in (0, 10), got 10.0"),
        ({"lr": float("nan")}, "lr must be a finite number, got nan"),
        ({"share": float("inf")}, "share must be a finite number, got inf"),
    ],
)
def test_one_message_shape(changes: dict[str, object], message: str) -> None:
    with pytest.raises(
        ValueError,
        match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]") + "$",
    ):
        Demo(**changes)


def test_ints_become_floats_and_none_means_unset() -> None:
    d = Demo(lr=1, cap=None)
    assert d.lr == 1.0 and isinstance(d.lr, float) and d.cap is None
    assert validate(3, int, Rule(ge=1)) == 3
