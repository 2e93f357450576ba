"""Selection rules: which candidate (setting of a method's grid) is kept, per (method, alpha).

- `paper` (Goel et al. §3.2): maximise 0.5 val_accuracy + 0.5 forget_changed.
- `guarded`: the same score, but only among candidates that lose at most `max_class_drop` of
  accuracy on every class of the clean validation split, relative to the original model. A
  candidate that buys `forget_changed` by erasing a class (the paper's rule rewards that: flipping
  every prediction on S_f earns up to 0.5, losing one class of ten costs about 0.05) is not eligible.
  The whole split's accuracy may not fall by more than the limit either (it binds only where the
  one-sample allowance below lets every class lose a little). When no candidate is eligible, the
  least damaging one (smallest worst per-class drop) is taken and the choice says so
  (`guard_fallback`) — unless the caller does no harm (`api.run_candidates(do_no_harm=True)`: `auto`,
  and `api.correct` for every method), which returns the original model then. A class's accuracy
  moves in steps of one validation sample, so a fall of one sample is always allowed: with 13
  samples a class (digits) one sample is 7.7 points, and a 5-point limit alone would refuse every
  candidate that misclassifies one more.
- **Heal** (where the reference names the classes a correction should heal, `Reference.heal`: `auto` where its
  evidence says label noise): a guarded candidate must also keep the validation accuracy of those classes — each
  class's change weighted by its share of the forget set — from falling by more than `HEAL_TOLERANCE` or one
  sample (`unhealed`). Fine-tuning without wrong labels raises clean accuracy on the classes they sat in; a
  candidate that lowers it learned from a forget set that holds their clean samples, and no setting of the same
  forget set repaired that (benchmarks/results/harm_targets.md, "Heal or stop"). Where the split as a whole held,
  the fall is the forget set's doing (`Selection.forget_set_fault`) and a search that stops at the guard ends.

Both read only validation figures (`val_accuracy`, `val_per_class_acc`) and `forget_changed`: never
the test set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corrective.errors import UserError
from corrective.settings import Checked, setting

SELECTIONS = ("paper", "guarded")
MAX_CLASS_DROP = 0.05  # the guarded rule's default: 5 points of a class's validation accuracy
HEAL_TOLERANCE = 0.005  # heal: the forget set's classes may fall by half a point (or one sample) at most
EPS = 1e-6  # accuracies are float32 fractions (13/14 is 0.9285714030...): a drop equal to a limit is within it


@dataclass(frozen=True)
class Selection(Checked):
    """A selection rule and its setting; bad values are one-line `UserError`s."""

    rule: str = setting("paper", "which candidate is kept", choices=SELECTIONS)
    max_class_drop: float = setting(
        MAX_CLASS_DROP, "guarded: largest accuracy loss allowed on any class (0.05 = 5 points)", ge=0, lt=1
    )

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueError as e:
            raise UserError(f"selection: {e}") from None

    def key(self, record: dict[str, Any], reference: Reference | None) -> tuple[float, float]:
        """A candidate's rank under this rule: larger wins, the first of equals is kept.

        `reference` is the original model on the validation split (needed by `guarded`).
        """
        score = selection_score(record)
        if self.rule == "paper":
            return (0.0, score)
        if self.eligible(record, reference):
            return (1.0, score)  # the paper's score decides
        return (0.0, -class_drop(record, reference))  # not eligible: ranked by least damage, for the fallback

    def eligible(self, record: dict[str, Any], reference: Reference | None) -> bool:
        """Guarded: no class falls below the original by more than `max_class_drop` or one of its samples, and
        the whole split by no more than `max_class_drop` or one sample."""
        per_class = record.get("val_per_class_acc")
        if reference is None or per_class is None or len(per_class) != len(reference.accuracy):
            return False
        classes_hold = all(
            r - c <= allowed + EPS
            for r, c, allowed in zip(reference.accuracy, per_class, reference.allowed(self.max_class_drop), strict=True)
            if known(r) and known(c)
        )
        return classes_hold and self.whole_holds(record, reference) and not unhealed(record, reference)

    def whole_holds(self, record: dict[str, Any], reference: Reference) -> bool:
        """The whole split fell by no more than `max_class_drop` or one sample."""
        total = sum(reference.counts or ())
        return whole_drop(record, reference) <= max(self.max_class_drop, 1 / max(total, 1)) + EPS

    def forget_set_fault(self, record: dict[str, Any], reference: Reference | None) -> bool:
        """The heal classes fell (`unhealed`) while the split as a whole held: the forget set's doing, shared by
        every candidate that unlearns it, not a setting's (a harsh one takes the whole split down)."""
        return reference is not None and unhealed(record, reference) and self.whole_holds(record, reference)


@dataclass(frozen=True)
class Reference:
    """The original model on the clean validation split: each class's accuracy and its number of samples.

    Without `counts` (not known) the limit alone decides; with them a class may always lose one sample.
    """

    accuracy: tuple[float, ...]
    counts: tuple[int, ...] | None = None
    heal: tuple[float, ...] | None = None  # each class's share of the forget set, where a candidate must heal them

    def heal_allowed(self) -> float:
        """How far the heal classes' weighted accuracy may fall: `HEAL_TOLERANCE`, or one sample of each class
        weighted by its share where that is more."""
        if self.heal is None or self.counts is None:
            return HEAL_TOLERANCE
        sample = sum(w / n for w, n in zip(self.heal, self.counts, strict=True) if n > 0)
        return max(HEAL_TOLERANCE, sample)

    def allowed(self, max_class_drop: float) -> list[float]:
        """Each class's largest allowed fall: `max_class_drop`, or one sample of the class where that is more."""
        if self.counts is None:
            return [max_class_drop] * len(self.accuracy)
        return [max(max_class_drop, 1 / n) if n > 0 else max_class_drop for n in self.counts]


def known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def selection_score(record: dict[str, Any]) -> float:
    """0.5 * val_accuracy + 0.5 * forget_changed; -inf when either is missing. Never reads the test set."""
    val, changed = record.get("val_accuracy"), record.get("forget_changed")
    if val is None or changed is None or math.isnan(val) or math.isnan(changed):
        return float("-inf")
    return 0.5 * float(val) + 0.5 * float(changed)


def class_drops(record: dict[str, Any], reference: Reference | None) -> dict[int, float] | None:
    """Each class's fall of validation accuracy below the original's, by class index (None when unknown).

    Classes absent from the validation split (NaN in either) are skipped.
    """
    per_class = record.get("val_per_class_acc")
    if reference is None or per_class is None or len(per_class) != len(reference.accuracy):
        return None
    pairs = enumerate(zip(reference.accuracy, per_class, strict=True))
    return {i: r - c for i, (r, c) in pairs if known(r) and known(c)}


def class_drop(record: dict[str, Any], reference: Reference | None) -> float:
    """The largest fall of a class's validation accuracy below the original's (inf when unknown)."""
    drops = class_drops(record, reference)
    return math.inf if drops is None else max(drops.values(), default=0.0)


def heal_change(record: dict[str, Any], reference: Reference | None) -> float | None:
    """The change of the heal classes' validation accuracy from the original's (each class's change weighted by its
    share of the forget set; positive: healed); None where the reference names no heal classes."""
    if reference is None or reference.heal is None:
        return None
    drop = weighted_drop(record, reference, reference.heal)
    return None if drop is None else -drop


def unhealed(record: dict[str, Any], reference: Reference | None) -> bool:
    """Whether a candidate lowered the heal classes' validation accuracy by more than the reference allows."""
    change = heal_change(record, reference)
    return change is not None and reference is not None and -change > reference.heal_allowed() + EPS


def whole_drop(record: dict[str, Any], reference: Reference | None) -> float:
    """How far the whole split's accuracy fell below the original's: the class drops weighted by the classes'
    sample counts (0 without counts: then every class's own limit bounds the whole)."""
    if reference is None or reference.counts is None:
        return 0.0
    drop = weighted_drop(record, reference, reference.counts)
    return 0.0 if drop is None else drop


def weighted_drop(record: dict[str, Any], reference: Reference, weights: Sequence[float]) -> float | None:
    """The classes' falls (`class_drops`) averaged with `weights` over the classes known on both sides that weigh
    something; None when the falls are unknown or nothing weighs."""
    drops = class_drops(record, reference)
    if drops is None:
        return None
    pairs = [(weights[i], d) for i, d in drops.items() if weights[i] > 0]
    total = sum(w for w, _ in pairs)
    return sum(w * d for w, d in pairs) / total if total else None


def select(
    records: Sequence[dict[str, Any]],
    selection: Selection | None = None,
    reference: Reference | None = None,
) -> int:
    """Index of the selected candidate (the first of equals, so grid order breaks ties)."""
    if not records:
        raise ValueError("no candidates to select from")
    rule = selection or Selection()
    keys = [rule.key(r, reference) for r in records]
    return max(range(len(keys)), key=lambda i: (keys[i], -i))


def selection_record(
    records: Sequence[dict[str, Any]], chosen: int, selection: Selection, reference: Reference | None
) -> dict[str, Any]:
    """What a record says about the rule that chose it: the rule, and for `guarded` its guard."""
    out: dict[str, Any] = {"selection": selection.rule}
    if selection.rule == "guarded":
        eligible = [selection.eligible(r, reference) for r in records]
        out |= {
            "max_class_drop": selection.max_class_drop,
            "n_eligible": sum(eligible),
            "guard_fallback": not eligible[chosen],
        }
    return out
