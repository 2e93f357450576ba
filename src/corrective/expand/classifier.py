"""`classifier`: positive-unlabelled learning, S_f positive and every other sample unlabelled.

A logistic regression (scikit-learn, L2, balanced class weights) separates the flagged samples from
the rest on what the model says about each sample: its label-centred penultimate features, its
given label (one-hot), and its loss and logit margin under the original model, all standardised.
Under the Elkan–Noto assumption (the flagged samples are a random part of the manipulated ones), the
classifier's probability g(x) of "flagged" is proportional to the probability of "manipulated":
p(x) = g(x) / c with c = E[g | manipulated], estimated (Elkan–Noto's e1) by the mean of g over the
flagged samples; the score is p(x) clipped to [0, 1]. The correction rescales and does not reorder:
how many to add comes from the common cross-validated cutoff, which estimates on held-out flagged
samples what Elkan–Noto's c estimates from them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from corrective.expand.base import Cutoff, View, register_strategy
from corrective.settings import setting


@dataclass(frozen=True)
class ClassifierSettings(Cutoff):
    c: float = setting(0.1, "inverse L2 strength of the logistic regression (scikit-learn's C)", gt=0)
    natural: float | None = setting(0.5, "corrected probability 0.5: a score cutoff the cross-validation may accept")
    fallback: float = setting(0.5, "with a single flagged sample: add those with corrected probability >= this")


def design(view: View) -> np.ndarray:
    """Standardised [label-centred features, one-hot given label, loss, margin]; cached on the view."""
    if "pu_design" not in view.cache:
        onehot = torch.nn.functional.one_hot(view.labels, int(view.labels.max()) + 1).float()
        x = torch.cat([view.centred, onehot, view.loss[:, None], view.margin[:, None]], 1).double()
        x = (x - x.mean(0)) / x.std(0).clamp(min=1e-8)
        view.cache["pu_design"] = x.numpy()
    design: np.ndarray = view.cache["pu_design"]
    return design


@register_strategy(ClassifierSettings)
def classifier(view: View, seeds: Tensor, settings: ClassifierSettings) -> Tensor:
    """Positive-unlabelled logistic regression on features, loss and margin (Elkan–Noto corrected)."""
    from sklearn.linear_model import LogisticRegression

    x = design(view)
    y = seeds.numpy().astype(int)
    model = LogisticRegression(C=settings.c, class_weight="balanced", max_iter=200, random_state=view.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on separable data: the ranking is what counts
        model.fit(x, y)
    g = torch.from_numpy(model.predict_proba(x)[:, 1]).float()
    c = float(g[seeds].mean())
    return (g / max(c, 1e-12)).clamp(max=1.0)
