"""The text table `corrective bench` prints: method x alpha, per manipulation, in percent."""

from __future__ import annotations

import math
from typing import Any

from corrective.bench import format_table


def row(
    method: str, alpha: float | None, manipulation: str, corr: float, retain: float, target: float = math.nan
) -> dict[str, Any]:
    return {
        "dataset": "digits",
        "model": "cnn_small",
        "training": "standard",
        "manipulation": manipulation,
        "size": 0.05,
        "method": method,
        "alpha": alpha,
        "acc_corr_mean": corr,
        "acc_retain_mean": retain,
        "target_acc_mean": target,
    }


def test_one_block_per_setup_with_target_acc_beside_poison() -> None:
    rows = [
        row("oracle", 1.0, "poison", 0.95, 0.97, 0.96),
        row("ssd", 0.1, "poison", 0.881, 0.85, 0.02),
        row("oracle", 1.0, "interclass", 0.9, 0.96),
        row("ssd", 0.1, "interclass", math.nan, 0.5),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0] == "digits / cnn_small / standard training  (accuracy %, mean over seeds)"
    assert "poison@0.05" in lines[1] and "interclass@0.05" in lines[1]
    assert lines[2].split() == ["corr", "retain", "target", "corr", "retain"]  # target only for poison
    assert lines[3].split() == ["oracle", "95.0", "97.0", "96.0", "90.0", "96.0"]  # the oracle has no alpha
    assert lines[4].split() == ["ssd", "0.1", "88.1", "85.0", "2.0", "-", "50.0"]  # NaN shows as -
    assert len(lines) == 5


def test_setups_are_separate_blocks_and_missing_cells_are_dashes() -> None:
    other = {**row("ssd", 0.5, "poison", 0.5, 0.5, 0.5), "training": "capacity"}
    text = format_table([row("ssd", 0.5, "poison", 0.4, 0.9, 0.8), row("npo", 0.5, "random_swap", 0.3, 0.7), other])
    blocks = text.split("\n\n")
    assert [b.splitlines()[0].split(" training")[0] for b in blocks] == [
        "digits / cnn_small / standard",
        "digits / cnn_small / capacity",
    ]
    first = blocks[0].splitlines()
    assert first[3].split() == ["ssd", "0.5", "40.0", "90.0", "80.0", "-", "-"]
    assert first[4].split() == ["npo", "0.5", "-", "-", "-", "30.0", "70.0"]
