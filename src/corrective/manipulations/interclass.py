"""Interclass confusion (Goel et al.): half the samples from class A get label B, half from B get A."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from corrective.data.base import Dataset, Split
from corrective.data.registry import get_info
from corrective.errors import UserError
from corrective.manipulations.base import (
    Manipulation,
    check_class,
    count,
    generator,
    register_manipulation,
    settings_of,
)
from corrective.settings import Checked, setting


def pair(value: tuple[int, ...]) -> str | None:
    return None if len(value) == 2 and value[0] != value[1] else "a pair of two different classes like [3, 8]"


@dataclass(frozen=True)
class InterclassSettings(Checked):
    classes: tuple[int, ...] = setting(
        (0, 1), "the two confused classes A, B (default: the dataset's pair)", ge=0, check=pair
    )


def defaults(dataset: Dataset) -> dict[str, Any]:
    return {"classes": get_info(dataset.name).interclass or (0, 1)}


def domains(m: Manipulation, test: Split) -> tuple[Split | None, Split]:
    """The test images of classes A and B, and the rest."""
    inside = torch.isin(test.y, torch.tensor(m.classes, device=test.y.device))
    return test.subset(inside.nonzero().squeeze(1)), test.subset((~inside).nonzero().squeeze(1))


@register_manipulation(InterclassSettings, test_domains=domains, defaults=defaults)
def interclass(train: Split, num_classes: int, size: float, seed: int, s: InterclassSettings) -> Manipulation:
    """Interclass confusion: `size/2` samples of each of classes A and B get the other's label."""
    a, b = (check_class(c, num_classes, "interclass class") for c in s.classes)
    k = count(size, len(train), "the training set")
    gen = generator(seed)
    chosen, given = [], []
    for c, other in ((a, b), (b, a)):
        members = (train.y.cpu() == c).nonzero().squeeze(1)
        half = k // 2 if c == a else k - k // 2
        if half > len(members):
            raise UserError(f"--size {size} needs {half} samples of class {c} but it has {len(members)}")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:half]])
        given.append(torch.full((half,), other))
    pos, given_labels = torch.cat(chosen), torch.cat(given)
    order = torch.randperm(len(pos), generator=gen)  # deletion order mixes both classes
    pos, given_labels = pos[order], given_labels[order]
    return Manipulation(
        "interclass",
        train.ids.cpu()[pos],
        train.y.cpu()[pos],
        given_labels,
        seed,
        settings_of(size, s),
        classes=(a, b),
    )
