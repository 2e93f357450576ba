"""The paper's selection rule (§3.2): per (method, alpha), maximise 0.5 val_accuracy + 0.5 forget_changed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def selection_score(record: dict[str, Any]) -> float:
    """0.5 * val_accuracy + 0.5 * forget_changed; -inf when either is missing. Never reads the test set."""
    val, changed = record.get("val_accuracy"), record.get("forget_changed")
    if val is None or changed is None or math.isnan(val) or math.isnan(changed):
        return float("-inf")
    return 0.5 * val + 0.5 * changed


def select(records: Sequence[dict[str, Any]]) -> int:
    """Index of the selected candidate (the first of equals, so grid order breaks ties)."""
    if not records:
        raise ValueError("no candidates to select from")
    scores = [selection_score(r) for r in records]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
