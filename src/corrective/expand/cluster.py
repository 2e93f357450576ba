"""`cluster`: the group of training samples the model treats alike with the flagged ones (seeded activation clustering).

Samples manipulated the same way (a trigger, a confused class) form a group of their own among the
samples of their given label in the model's penultimate features: activation clustering (Chen et
al. 2019) splits each class's features into groups and calls the small one poisoned; Poison
Forensics (Shan et al. 2022) traces a misclassification back to the training samples by clustering
them and keeping the cluster that carries the effect. Here the flagged samples say which group:
for each given label occurring in S_f, the features of that label's samples are reduced to their
first `dims` principal components and split by k-means into k = 2..`max_k` groups, k chosen by the
silhouette (how well the samples fall into groups; no held-out flags needed). A group holding a
flagged sample is *coherent* when it is a minority of its label (at most `max_group` of it) and the
split is clear (silhouette >= `min_silhouette`). Its flagged count is scored against chance: the
binomial probability that at least that many of |S_f| samples drawn at random from the training
split fall into a group of its size. The members of the most significant coherent group, and of any
other with that probability <= `max_p`, score 2 + their similarity; every other sample of a flagged
label scores its cosine similarity (label-centred features, as `neighbours`) to the nearest flagged
sample, in [-1, 1]. (A flagged outlier alone in a larger group does not pull that group in when
other flagged samples share a smaller one.) The cutoff is the group boundary (`fallback` = 1): the
score distribution's own gap, so it needs no cross-validation and works from one flagged sample.
A flagged sample in the bulk of its label (a clean sample flagged by mistake) adds nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from corrective.expand.base import Cutoff, View, register_strategy
from corrective.settings import setting

SILHOUETTE_SAMPLE = 2000  # the silhouette reads at most this many samples of a label (it is quadratic in them)


@dataclass(frozen=True)
class ClusterSettings(Cutoff):
    dims: int = setting(2, "principal components of each label's features that the clustering reads", ge=1)
    max_k: int = setting(4, "k-means tries 2..max_k groups per given label; the best silhouette wins", ge=2)
    max_group: float = setting(
        0.5, "a group holding more than this share of its label is the bulk, not a manipulation", gt=0, le=1
    )
    min_silhouette: float = setting(0.3, "a split with a lower silhouette is no clear group structure", ge=-1, le=1)
    max_p: float = setting(
        0.05, "besides the most significant group, groups whose flagged count has p-value <= this", ge=0, le=1
    )
    natural: float | None = setting(1.0, "members of a coherent flagged group score >= 1: the group boundary")
    fallback: float = setting(
        1.0, "with one flagged sample (few, under auto): add the coherent groups' members (score >= 1)"
    )


@dataclass(frozen=True)
class Groups:
    """One given label's split: its positions in the training split, each one's group, the silhouette."""

    positions: Tensor  # (n_label,) positions in the training split
    assignment: np.ndarray  # (n_label,) group index
    sizes: np.ndarray  # (k,) members per group
    silhouette: float


def label_groups(view: View, label: int, dims: int, max_k: int) -> Groups:
    """k-means of one label's features (first `dims` principal components), k by silhouette; cached on the view."""
    key = ("groups", label, dims, max_k)
    if key not in view.cache:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        positions = (view.labels == label).nonzero().squeeze(1)
        x = view.features[positions].double().numpy()
        n = len(x)
        best: Groups | None = None
        if n >= 4:
            x = x - x.mean(0)
            # principal components: the eigenvectors of x^T x, largest first (deterministic; numpy's LAPACK) — the
            # SVD's directions, ~15x faster at Fashion-MNIST's 5,400 x 128 per label
            _, vecs = np.linalg.eigh(x.T @ x)
            z = x @ vecs[:, ::-1][:, : min(dims, *x.shape)]  # as many as the SVD has: min(n, D)
            for k in range(2, min(max_k, n - 1) + 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # duplicate points on tiny inputs
                    assignment = KMeans(k, n_init=10, random_state=view.seed).fit_predict(z)
                if len(np.unique(assignment)) < 2:
                    continue
                sil = float(
                    silhouette_score(z, assignment, sample_size=min(n, SILHOUETTE_SAMPLE), random_state=view.seed)
                )
                if best is None or sil > best.silhouette:
                    best = Groups(positions, assignment, np.bincount(assignment, minlength=k), sil)
        if best is None:  # too few samples to split: one group
            best = Groups(positions, np.zeros(n, dtype=np.int64), np.array([n]), -1.0)
        view.cache[key] = best
    groups: Groups = view.cache[key]
    return groups


@dataclass(frozen=True)
class FlagGroup:
    """A coherent group holding flagged samples: its members, how many flagged ones, how unlikely by chance."""

    members: Tensor  # bool mask over the training split
    flagged: Tensor  # bool mask: the flagged members
    p_value: float  # P(at least this many of the flagged samples fall in a group this size at random)


def flag_groups(view: View, seeds: Tensor, settings: ClusterSettings, labels: Tensor | None = None) -> list[FlagGroup]:
    """Coherent groups (a minority of their label, clearly split off) holding flagged samples, least likely first.

    The p-value is a binomial tail: were the |S_f| flagged samples drawn at random from the training
    split (as clean samples flagged by mistake are), the chance that at least the observed number fall
    into a group of this size. `labels`, when given, limits the search to the groups of those given
    labels (each label's groups and p-values are the same as without it).
    """
    from scipy.stats import binom

    n_flagged, n_total = int(seeds.sum()), len(view)
    out: list[FlagGroup] = []
    flagged_labels = view.labels[seeds].unique()
    if labels is not None:
        flagged_labels = flagged_labels[torch.isin(flagged_labels, labels)]
    for label in flagged_labels.tolist():
        g = label_groups(view, int(label), settings.dims, settings.max_k)
        if g.silhouette < settings.min_silhouette:
            continue
        in_seeds = seeds[g.positions].numpy()
        for j in np.unique(g.assignment[in_seeds]):
            if g.sizes[j] > settings.max_group * len(g.positions):
                continue
            where = torch.from_numpy(g.assignment == j)
            members = torch.zeros(n_total, dtype=torch.bool)
            members[g.positions[where]] = True
            hits = int((members & seeds).sum())
            p = float(binom.sf(hits - 1, n_flagged, int(g.sizes[j]) / n_total))
            out.append(FlagGroup(members, members & seeds, p))
    return sorted(out, key=lambda fg: fg.p_value)


def coherent_members(view: View, seeds: Tensor, settings: ClusterSettings) -> Tensor:
    """Members of the most significant coherent flagged group and of every other with p-value <= `max_p`."""
    members = torch.zeros(len(view), dtype=torch.bool)
    for i, fg in enumerate(flag_groups(view, seeds, settings)):
        if i == 0 or fg.p_value <= settings.max_p:
            members |= fg.members
    return members


@register_strategy(ClusterSettings)
def cluster(view: View, seeds: Tensor, settings: ClusterSettings) -> Tensor:
    """Members of the minority feature-space groups of their label that hold flagged samples (seeded clustering)."""
    unit = torch.nn.functional.normalize(view.centred, dim=1)
    sims = (unit @ unit[seeds].T).max(1).values
    members = coherent_members(view, seeds, settings)
    score = torch.where(members, 2.0 + sims, sims)
    candidate = torch.isin(view.labels, view.labels[seeds].unique())
    return torch.where(candidate, score, torch.tensor(float("-inf")))
