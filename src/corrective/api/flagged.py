"""Flagged ids: read them from a file, check them against the training data, say what they look like."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from corrective.data import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import View
from corrective.methods.votes import contradicted
from corrective.metrics import predict


def sample_id(value: Any) -> int:
    """An id as written by hand or a spreadsheet: `12`, `12.0` or 12.0 are 12; `12.5`, `x` and true are refused."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(value, int):
        return value
    raise ValueError(value)


def read_flagged(path: str | Path, keep_repeats: bool = False) -> torch.Tensor:
    """Flagged sample ids from a file: whitespace/comma separated integers, a JSON list, a .npy array, or the
    tab-separated table `corrective expand` writes (header `id`, the ids in the first column).

    A byte-order mark is skipped and integral floats (`12.0`, as spreadsheets export ids) are ids;
    anything else that is not a whole number is refused, naming it. The ids come sorted, each once; with
    `keep_repeats` an id the file repeats comes as often as written (for `describe_flags` to say so).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"flagged-ids file {path} does not exist; write one sample id per line")
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False).reshape(-1).tolist()
        elif path.suffix == ".json":
            values = json.loads(path.read_text(encoding="utf-8-sig"))
        else:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            if lines and lines[0].split("\t")[0].strip() == "id":  # a table of `corrective expand`: ids first
                values = [line.split("\t")[0] for line in lines[1:] if line.strip()]
            else:
                values = " ".join(lines).replace(",", " ").split()
        if not isinstance(values, list):
            raise TypeError(values)
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} must hold integer sample ids (one per line, a JSON list or a .npy array)") from None
    ids = []
    for v in values:
        try:
            ids.append(sample_id(v))
        except (ValueError, OverflowError):
            raise UserError(
                f"{path}: {v!r} is not a sample id; ids are whole numbers (one per line, a JSON list or a .npy array)"
            ) from None
    if not ids:
        raise UserError(f"{path} flags no sample; the identified set S_f must hold at least one id")
    return torch.tensor(sorted(ids if keep_repeats else set(ids)), dtype=torch.long)


def check_flagged(train: Split, flagged: torch.Tensor) -> torch.Tensor:
    """Flagged ids as a LongTensor of ids present in `train`; a clear error naming the first stray ones."""
    flagged = torch.as_tensor(flagged, dtype=torch.long).reshape(-1).cpu().unique()
    if len(flagged) == 0:
        raise UserError("no sample is flagged; the identified set S_f must hold at least one id")
    known = torch.isin(flagged, train.ids.cpu())
    if not bool(known.all()):
        stray = flagged[~known][:5].tolist()
        lo, hi = int(train.ids.min()), int(train.ids.max())
        raise UserError(f"flagged ids {stray} are not in the training data (ids {lo}..{hi}); flag training sample ids")
    return flagged


WHOLE_CLASS_PURITY = 0.95  # an expanded set (nearly) all of one given label, which the model predicts on it, ...
WHOLE_CLASS_GAP = 1.5  # ... whose samples sit no farther from the rest of that label than from each other (median
# ratio below this; a backdoor's samples stand apart: 1.9 on digits, clean samples of a class 1.0-1.3) ...
WHOLE_CLASS_CONTRADICTED = 0.5  # ... and whose labels their pixel neighbours contradict for fewer than this share
# (a dirty-label backdoor's: 0.57-0.91 on digits, blended's gap 1.45-1.87 included; clean samples of a class 0-0.35)
# looks like ordinary samples of that class rather than a manipulation


def describe_flags(
    model: nn.Module,
    train: Split,
    pipeline: Pipeline,
    flagged: torch.Tensor,
    acted_on: torch.Tensor,
    expanded: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """What the flagged ids (as given, repeats included) and the set a method acts on look like, from what a
    method may see: the ids, their given labels, the model's predictions and features (never S_m).

    `flag_notes` holds one line for each thing worth saying: repeated ids; an expanded set that looks like
    ordinary samples of one class rather than a manipulation — (nearly) all one given label, which the model
    predicts on them, not standing apart from the rest of that label in the model's feature space (the
    median over the set of: distance to the nearest other sample of the label / distance to the nearest
    other sample of the set, below `WHOLE_CLASS_GAP`), and labels their pixels confirm (fewer than
    `WHOLE_CLASS_CONTRADICTED` of them have pixel neighbours naming another class by a majority, `votes.contradicted`:
    a dirty-label backdoor whose trigger the features do not set apart, such as a faint blend, is not called a
    class). Flags used as given (no expansion) are not judged so: the unflagged rest of a manipulation sits as
    close to them as a class's own samples do. The other fields are the figures behind the notes (`flags_gap`,
    `flags_contradicted` None where not computed; `seed` draws the vote's reference samples).
    """
    flagged = torch.as_tensor(flagged).reshape(-1).cpu()
    unique, counts = flagged.unique(return_counts=True)
    repeated = unique[counts > 1]
    n_repeated = int((counts - 1).sum())
    acted = train.subset(train.positions_of(acted_on.cpu().unique()))
    labels = acted.y.cpu()
    per_label = torch.bincount(labels, minlength=int(train.y.max()) + 1)
    label = int(per_label.argmax())
    purity = float(per_label[label]) / max(len(labels), 1)
    cover = float(per_label[label]) / max(int((train.y.cpu() == label).sum()), 1)
    agree = float((predict(model, acted, pipeline) == labels).float().mean()) if len(labels) else 0.0
    gap: float | None = None
    against: float | None = None
    if expanded and purity >= WHOLE_CLASS_PURITY and agree >= WHOLE_CLASS_PURITY and len(labels) >= 2:
        gap = class_gap(model, train, pipeline, acted.ids.cpu(), label)
        if gap < WHOLE_CLASS_GAP:
            against = float(contradicted(train, pipeline, acted.ids, seed=seed).float().mean())
    notes = []
    if n_repeated:
        shown = ", ".join(str(i) for i in repeated[:5].tolist())
        notes.append(
            f"the flagged ids hold {n_repeated} repeat(s) of {len(repeated)} id(s) ({shown}"
            f"{', ...' if len(repeated) > 5 else ''}): each sample is unlearned once; check how the file was made"
        )
    if gap is not None and against is not None and against < WHOLE_CLASS_CONTRADICTED:
        notes.append(
            f"the {len(labels)} ids to unlearn ({cover:.0%} of the training samples labelled {label}) all carry "
            f"label {label}, which the model predicts on them and their pixels confirm ({against:.0%} contradicted), "
            f"and do not stand apart from the rest of that label (gap {gap:.2f}): they look like ordinary samples of "
            f"class {label} (clean samples flagged by mistake, or a clean-label backdoor) — unlearning ordinary "
            "samples costs their class (the guard returns the original model where it costs more than it allows)"
        )
    return {
        "n_repeated_ids": n_repeated,
        "flags_label": label,
        "flags_label_share": purity,
        "flags_class_cover": cover,
        "flags_model_agrees": agree,
        "flags_gap": gap,
        "flags_contradicted": against,
        "flag_notes": notes,
    }


def class_gap(model: nn.Module, train: Split, pipeline: Pipeline, ids: torch.Tensor, label: int) -> float:
    """Median over the samples `ids` (all labelled `label`) of: distance to the nearest other training sample
    labelled `label` / distance to the nearest other sample of `ids`, in the model's normalised features.
    Inf when no other sample carries the label. Features are computed for those samples and the label's alone (a
    tenth of Fashion-MNIST's training split instead of all of it)."""
    mine = (train.y.cpu() == label) | torch.isin(train.ids.cpu(), ids)
    view = View(model, train.subset(mine.nonzero().squeeze(1)), pipeline)  # subset puts positions on the data's device
    feats = torch.nn.functional.normalize(view.features, dim=1)
    inside = torch.isin(view.ids, ids)
    rest = feats[(view.labels == label) & ~inside]
    if len(rest) == 0:
        return math.inf
    own = feats[inside]
    within = torch.cdist(own, own)
    within.fill_diagonal_(math.inf)
    ratio = torch.cdist(own, rest).min(1).values / within.min(1).values.clamp(min=1e-12)
    return float(ratio.median())
