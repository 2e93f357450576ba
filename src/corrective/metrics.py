"""Every metric of the protocol (`docs/protocol.md`), as fractions in [0, 1].

`score` is REM's `utility x healed` on fractions (REM prints it x100). For a backdoor (poisoning, blended, WaNet, SIG),
the defence view under BackdoorBench's names (`DEFENCE`): `c_acc` (clean accuracy), `asr` (attack success), `r_acc`
(triggered test images of the other classes predicted as their true class) and `der`, the defence
effectiveness rating against the original model (`defence_effectiveness`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from corrective import names
from corrective.data.base import Dataset, Split
from corrective.data.batches import Pipeline, one_pass
from corrective.manipulations import Manipulation
from corrective.models import device_of
from corrective.models.layout import inputs_in_layout

METRICS = (*names.METRICS, *names.PER_CLASS)  # every metric `evaluate` may write
DEFENCE = names.DEFENCE  # BackdoorBench's C-Acc, ASR, R-Acc, DER (backdoors only)


def defence_effectiveness(c_acc_original: float, asr_original: float, c_acc: float, asr: float) -> float:
    """BackdoorBench's DER = [max(0, ΔASR) − max(0, ΔC-Acc) + 1] / 2 with Δ = original − new: 1 when the
    attack success falls from 1 to 0 at no accuracy cost, 0.5 when nothing changes, 0 when accuracy falls
    from 1 to 0 and the attack still succeeds."""
    return (max(0.0, asr_original - asr) - max(0.0, c_acc_original - c_acc) + 1.0) / 2.0


def predict_batch(device: torch.device) -> int:
    """Rows a prediction pass feeds at a time: 256 on a CPU, where larger batches' activations outgrow the caches
    (cnn28 predicts Fashion-MNIST 1.6-1.7x faster at 256 than at 1,024, the same predictions), 1,024 on an
    accelerator."""
    return 256 if device.type == "cpu" else 1024


@torch.no_grad()
def predict(model: nn.Module, split: Split, pipeline: Pipeline, batch_size: int | None = None) -> Tensor:
    """Predicted classes for every sample of `split` (its stamp applied), in eval mode, on the model's device;
    image batches channels-last where the model runs so (`models.layout`: about 2x faster on a CPU), `batch_size`
    rows at a time (default `predict_batch`)."""
    if len(split) == 0:
        return torch.zeros(0, dtype=torch.long)
    was_training = model.training
    model.eval()
    device = device_of(model)
    rows = batch_size or predict_batch(device)
    try:
        with inputs_in_layout(model, one_pass(split.to(device), pipeline, rows)) as inputs:
            out = torch.cat([model(x).argmax(1) for x in inputs])
    finally:
        model.train(was_training)
    return out.cpu()


def share(correct: Tensor) -> float:
    """Share of True in `correct`; NaN when empty."""
    return float(correct.float().mean()) if len(correct) else float("nan")


def per_class(correct: Tensor, y: Tensor, num_classes: int) -> list[float]:
    """Share of True in `correct` among the samples of each class of `y`, NaN for a class `y` lacks."""
    return [float(correct[y == c].float().mean()) if bool((y == c).any()) else float("nan") for c in range(num_classes)]


def predictions_within(part: Split, whole: Split, whole_pred: Tensor, model: nn.Module, pipeline: Pipeline) -> Tensor:
    """Predictions on `part`, read from `whole`'s (`whole_pred`) where `part` is `whole` or unstamped samples of it
    with the same pixels; predicted otherwise."""
    if part is whole:
        return whole_pred
    if part.stamp is None and whole.stamp is None and len(part) and bool(torch.isin(part.ids, whole.ids).all()):
        positions = whole.positions_of(part.ids)
        px, wx = part.x, whole.x  # streamed images (not held) are predicted anew
        if isinstance(px, Tensor) and isinstance(wx, Tensor) and torch.equal(px, wx[positions.to(wx.device)]):
            return whole_pred[positions.cpu()]
    return predict(model, part, pipeline)


def accuracy(model: nn.Module, split: Split, pipeline: Pipeline) -> float:
    """Share of `split` predicted as its labels; NaN for an empty split."""
    if len(split) == 0:
        return float("nan")
    return share(predict(model, split, pipeline) == split.y.cpu())


def per_class_accuracy(model: nn.Module, split: Split, pipeline: Pipeline, num_classes: int) -> list[float]:
    """Accuracy on each class of `split` (its labels), NaN for a class it lacks."""
    y = split.y.cpu()
    return per_class(predict(model, split, pipeline) == y, y, num_classes)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    manipulation: Manipulation,
    *,
    reference: nn.Module | None = None,
    forget_ids: Tensor | None = None,
    original: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """All metrics of `model` on the manipulated training set of `dataset`.

    `forget_changed` needs the original model (`reference`) and `S_f` (`forget_ids`). `der` (a backdoor)
    compares with the original model: its metrics `original` (its `clean_acc` and `attack_success`),
    or else they are measured on `reference`; without either (the original itself) there is no `der`.
    """
    pipe = Pipeline.of(dataset)
    test_y = dataset.test.y.cpu()
    test_pred = predict(model, dataset.test, pipe)  # each split is predicted once (Fashion-MNIST: 10k images)
    correct = test_pred == test_y
    corr, retain = manipulation.test_domains(dataset.test)
    corr_pred = None if corr is None else predict(model, corr, pipe)
    val_correct = predict(model, dataset.val, pipe) == dataset.val.y.cpu()
    m: dict[str, Any] = {
        "acc_corr": float("nan") if corr is None or corr_pred is None else share(corr_pred == corr.y.cpu()),
        "acc_retain": share(predictions_within(retain, dataset.test, test_pred, model, pipe) == retain.y.cpu()),
        "clean_acc": share(correct),
        "val_accuracy": share(val_correct),
        "val_per_class_acc": per_class(val_correct, dataset.val.y.cpu(), dataset.num_classes),
        "per_class_acc": [float(correct[test_y == c].float().mean()) for c in range(dataset.num_classes)],
    }
    m["healed"] = accuracy(model, manipulation.corrupted_split(dataset.train), pipe)  # NaN: nothing manipulated
    if corr is None:
        m["acc_corr"] = m["healed"]  # no test-side domain: the manipulated samples themselves
    m["utility"] = m["acc_retain"]  # the test set outside the domain (all of it where the domain is triggered)
    m["score"] = m["utility"] * m["healed"]
    target = manipulation.target
    if target is not None:  # a backdoor: its domain is the triggered test set
        assert corr is not None, f"backdoor {manipulation.kind!r} has no triggered test domain"
        assert corr_pred is not None
        triggered = corr_pred
        others = test_y != target
        m["attack_success"] = float(triggered[others].eq(target).float().mean())
        m["target_acc"] = m["per_class_acc"][target]
        m["c_acc"], m["asr"] = m["clean_acc"], m["attack_success"]
        m["r_acc"] = float((triggered[others] == test_y[others]).float().mean())
        if (original is None or not {"clean_acc", "attack_success"} <= original.keys()) and reference is not None:
            original = evaluate(reference, dataset, manipulation)
        if original is not None and {"clean_acc", "attack_success"} <= original.keys():
            m["der"] = defence_effectiveness(
                float(original["clean_acc"]), float(original["attack_success"]), m["c_acc"], m["asr"]
            )
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


def expansion_quality(expanded: Tensor, forget_ids: Tensor, manipulated: Tensor) -> dict[str, Any]:
    """How well an expanded forget set matches S_m (benchmark and CLI only: a strategy never sees S_m).

    `expand_precision` and `expand_recall` are of the whole expanded set (S_f included) against S_m;
    `added_precision` and `added_recall` of the added samples alone against S_m \\ S_f.
    """
    expanded, forget_ids, manipulated = (
        torch.as_tensor(t).reshape(-1).cpu().unique() for t in (expanded, forget_ids, manipulated)
    )
    added = expanded[~torch.isin(expanded, forget_ids)]
    rest = manipulated[~torch.isin(manipulated, forget_ids)]
    hit, hit_added = int(torch.isin(expanded, manipulated).sum()), int(torch.isin(added, rest).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "expand_precision": ratio(hit, len(expanded)),
        "expand_recall": ratio(hit, len(manipulated)),
        "added_precision": ratio(hit_added, len(added)),
        "added_recall": ratio(hit_added, len(rest)),
    }
