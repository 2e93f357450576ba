"""Every metric of the protocol (`shared/docs/protocol.md`), as fractions in [0, 1].

`score` is REM's `utility x healed` on fractions (REM prints it x100).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from corrective.data.base import Dataset, Split
from corrective.data.batches import Pipeline, one_pass
from corrective.manipulations import Manipulation
from corrective.training import device_of

METRICS = (
    "acc_corr",
    "acc_retain",
    "healed",
    "utility",
    "score",
    "clean_acc",
    "val_accuracy",
    "forget_changed",
    "attack_success",
    "target_acc",
    "per_class_acc",
    "val_per_class_acc",
)


@torch.no_grad()
def predict(model: nn.Module, split: Split, pipeline: Pipeline, batch_size: int = 1024) -> Tensor:
    """Predicted classes for every sample of `split` (its stamp applied), in eval mode, on the model's device."""
    if len(split) == 0:
        return torch.zeros(0, dtype=torch.long)
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = torch.cat([model(b.x).argmax(1) for b in one_pass(split.to(device), pipeline, batch_size)])
    model.train(was_training)
    return out.cpu()


def accuracy(model: nn.Module, split: Split, pipeline: Pipeline) -> float:
    """Share of `split` predicted as its labels; NaN for an empty split."""
    if len(split) == 0:
        return float("nan")
    return float((predict(model, split, pipeline) == split.y.cpu()).float().mean())


def per_class_accuracy(model: nn.Module, split: Split, pipeline: Pipeline, num_classes: int) -> list[float]:
    """Accuracy on each class of `split` (its labels), NaN for a class it lacks."""
    y = split.y.cpu()
    correct = predict(model, split, pipeline) == y
    return [float(correct[y == c].float().mean()) if bool((y == c).any()) else float("nan")
            for c in range(num_classes)]


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    manipulation: Manipulation,
    *,
    reference: nn.Module | None = None,
    forget_ids: Tensor | None = None,
) -> dict[str, Any]:
    """All metrics of `model` on the manipulated training set of `dataset`.

    `forget_changed` needs the original model (`reference`) and `S_f` (`forget_ids`).
    """
    pipe = Pipeline.of(dataset)
    test_y = dataset.test.y.cpu()
    test_pred = predict(model, dataset.test, pipe)
    correct = test_pred == test_y
    corr, retain = manipulation.test_domains(dataset.test)
    m: dict[str, Any] = {
        "acc_corr": accuracy(model, corr, pipe),
        "acc_retain": accuracy(model, retain, pipe),
        "clean_acc": float(correct.float().mean()),
        "val_accuracy": accuracy(model, dataset.val, pipe),
        "val_per_class_acc": per_class_accuracy(model, dataset.val, pipe, dataset.num_classes),
        "per_class_acc": [float(correct[test_y == c].float().mean()) for c in range(dataset.num_classes)],
    }
    if manipulation.kind == "none":
        m["healed"] = float("nan")
    else:
        m["healed"] = accuracy(model, manipulation.corrupted_split(dataset.train), pipe)
    if manipulation.kind == "random_swap":
        m["acc_corr"] = m["healed"]  # no test-side domain: the swapped samples themselves
    m["utility"] = m["acc_retain"] if manipulation.kind == "interclass" else m["clean_acc"]
    m["score"] = m["utility"] * m["healed"]
    if manipulation.kind == "poison":
        target = manipulation.target
        triggered = predict(model, corr, pipe)
        others = test_y != target
        m["attack_success"] = float((triggered[others] == target).float().mean())
        m["target_acc"] = m["per_class_acc"][target]
    if reference is not None and forget_ids is not None:
        m["forget_changed"] = forget_changed(model, reference, dataset, manipulation, forget_ids)
    return m


def forget_changed(
    model: nn.Module, reference: nn.Module, dataset: Dataset, manipulation: Manipulation, forget_ids: Tensor
) -> float:
    """Share of `S_f` (as seen in training: given labels, trigger on) whose prediction differs from the reference's."""
    train = manipulation.apply(dataset.train)
    forget = train.subset(train.positions_of(forget_ids))
    if len(forget) == 0:
        return float("nan")
    pipe = Pipeline.of(dataset)
    return float((predict(model, forget, pipe) != predict(reference, forget, pipe)).float().mean())


def precision_recall(found: Tensor, manipulated: Tensor) -> tuple[float, float]:
    """Precision and recall of a set of ids `found` (an expanded forget set) against the manipulated ids S_m."""
    found, manipulated = found.cpu().unique(), manipulated.cpu().unique()
    hits = int(torch.isin(found, manipulated).sum())
    precision = hits / len(found) if len(found) else float("nan")
    recall = hits / len(manipulated) if len(manipulated) else float("nan")
    return precision, recall
