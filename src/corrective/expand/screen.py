"""Screening S_f before expanding: keep the flagged samples that look manipulated, set the stragglers aside.

A practitioner's flagged set holds mistakes: clean samples flagged by accident. Expanding from them
adds their clean look-alikes, and unlearning them removes clean knowledge. A flagged sample *looks
manipulated* when the model shows either of the two kinds of evidence the strategies rank by:
- its given label disagrees with its feature-space neighbours (`label_noise`'s score reaches its
  majority threshold: a changed label, interclass or random swap), or
- it sits in a coherent group of its given label (`cluster`: a minority group of the label's
  features, clearly split off — a shared trigger or a confused class) that holds more flagged
  samples than chance would put there (binomial p-value <= `max_p`, 0.05).
A clean sample flagged by mistake sits in the bulk of its class among neighbours of its own label:
it shows neither and is set aside — not expanded from and not in the result (a dropped flag is not
unlearned). A single flagged sample is not screened (nothing to compare it with); if no flagged
sample looks manipulated, or fewer than `MIN_EVIDENCE` (5 %) of them, every one is kept (the evidence is
absent or too thin to judge the rest by) and the details say so.

The screen can be wrong the other way: a manipulated sample that shows neither kind of evidence on its own (on
Fashion-MNIST WaNet half of the flagged poison was set aside, and the cutoff, estimating the manipulated samples
from the easy half, stopped at half of them). So once the strategy is chosen from the kept flags, a set-aside
flag comes back (`readmitted`) where that strategy ranks it within the depth it must go to recover the `recall`
share of the kept flags held out (`k_recall` of the cross-validation): it looks manipulated like them. A clean
sample flagged by mistake ranks like the clean bulk and stays aside.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from corrective.expand.base import Score, View
from corrective.expand.cluster import ClusterSettings, flag_groups
from corrective.expand.cutoff import Recovery, cross_validate
from corrective.expand.label_noise import LabelNoiseSettings, label_noise


def evidence(view: View, flagged: Tensor) -> tuple[Tensor, Tensor]:
    """(label-noise evidence, coherent-group evidence) of each flagged sample, bool masks over the split.

    Groups are looked for only among the given labels of flagged samples without label-noise evidence
    (the screen keeps a flag with either; clustering a label costs a k-means per k): the group
    evidence of a flag that has label evidence is not computed and reads False.
    """
    noise_settings = LabelNoiseSettings()
    noise = label_noise(view, flagged, noise_settings)
    assert noise_settings.natural is not None
    noisy = flagged & (noise >= noise_settings.natural)
    settings = ClusterSettings()
    grouped = torch.zeros_like(flagged)
    unexplained = flagged & ~noisy
    if bool(unexplained.any()):
        for fg in flag_groups(view, flagged, settings, labels=view.labels[unexplained].unique()):
            if fg.p_value <= settings.max_p:
                grouped |= fg.flagged & ~noisy
    return noisy, grouped


# Fewer flags than this share showing evidence set none aside: on Fashion-MNIST SIG at alpha 0.5 one of 1,350 flags
# showed label evidence and the other 1,349 (a clean-label trigger on half of one class: no coherent minority group)
# were set aside; in 333 earlier screens no share with evidence fell between 0 and 5 % (benchmarks/results/
# attacks_fashion_bench.md).
MIN_EVIDENCE = 0.05


def screen(view: View, flagged: Tensor) -> tuple[Tensor, dict[str, Any]]:
    """The flagged samples kept (bool mask) and what was set aside, JSON-able."""
    n_flagged = int(flagged.sum())
    if n_flagged < 2:
        return flagged.clone(), {"n_set_aside": 0, "set_aside_ids": [], "note": "one flagged sample: not screened"}
    noisy, grouped = evidence(view, flagged)
    kept = noisy | grouped
    aside = flagged & ~kept
    info: dict[str, Any] = {
        "n_label_evidence": int(noisy.sum()),
        "n_group_evidence": int(grouped.sum()),  # among the flags without label evidence
    }
    n_kept = int(kept.sum())
    if n_kept < MIN_EVIDENCE * n_flagged:
        note = (
            "no flagged sample looks manipulated (no label disagreement, no coherent group): all kept"
            if n_kept == 0
            else f"only {n_kept} of {n_flagged} flagged samples look manipulated (under {MIN_EVIDENCE:.0%}): "
            "too few to set the rest aside, all kept"
        )
        info |= {"n_set_aside": 0, "set_aside_ids": [], "note": note}
        return flagged.clone(), info
    ids = torch.sort(view.ids[aside]).values
    info |= {"n_set_aside": len(ids), "set_aside_ids": ids.tolist()}
    return kept, info


def readmitted(view: View, kept: Tensor, set_aside: Tensor, score: Score, settings: Any, rec: Recovery) -> Tensor:
    """The ids of set-aside flags that `score` (the strategy chosen from the `kept` flags, a mask) ranks within
    `k_recall` of its cross-validation `rec`: no more unflagged samples above them than above the `recall` share of
    the kept flags held out."""
    if len(set_aside) == 0:
        return set_aside
    aside = torch.isin(view.ids, set_aside.to(view.ids.device))
    s = score(view, kept, settings)
    u = torch.sort(s[~kept & ~aside], descending=True).values
    depth = torch.searchsorted(-u, -s[aside], right=True).double()
    back = (depth <= rec.quantile(getattr(settings, "recall", 0.9))) & torch.isfinite(s[aside])
    return torch.sort(view.ids[aside][back]).values


def second_look(
    view: View, kept: Tensor, set_aside: Tensor, score: Score, settings: Any, rec: Recovery, seed: int
) -> tuple[Tensor, Tensor, Recovery, Tensor]:
    """Readmit set-aside flags until none comes back, the cross-validation redone each time (the kept flags reach
    deeper with the readmitted ones): (kept mask, still set aside, the last cross-validation, readmitted ids)."""
    kept, back_all = kept.clone(), [set_aside[:0]]
    while len(back := readmitted(view, kept, set_aside, score, settings, rec)):
        kept |= torch.isin(view.ids, back)
        set_aside = set_aside[~torch.isin(set_aside, back)]
        rec = cross_validate(view, kept, score, settings, seed)
        back_all.append(back)
    return kept, set_aside, rec, torch.sort(torch.cat(back_all)).values
