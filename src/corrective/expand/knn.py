"""k nearest neighbours by cosine similarity, each sample's own excluded: the search behind `label_noise`.

Exact, in row blocks: each block of `chunk` queries is compared with every reference row (one matrix
product) and keeps its k best, so memory is `chunk x references` floats, never N x N. The references
are all N samples, or a seeded random subset (`label_noise`'s `reference` setting): then the search
is linear in N (N x references similarities) instead of quadratic.
benchmarks/results/expand_scale.md compares it with scikit-learn's searches and the subset.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_rows(n: int, reference: int | None, seed: int) -> Tensor | None:
    """Positions of the reference subset (sorted), or None when every row is a reference."""
    if reference is None or reference >= n:
        return None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.sort(perm[:reference]).values


def nearest(unit: Tensor, k: int, chunk: int = 512, references: Tensor | None = None) -> Tensor:
    """(N, min(k, R-1)) indices (into `unit`) of each row's most similar other reference rows of `unit`.

    Rows are unit-normalised; `references` (sorted positions) are the rows searched, all rows when None.
    """
    n = len(unit)
    ref = torch.arange(n) if references is None else references
    k = min(k, len(ref) - 1)
    out = torch.empty(n, max(k, 0), dtype=torch.long)
    if k <= 0:
        return out
    ref_unit = unit if references is None else unit[ref]
    # where each row sits among the references (-1: not a reference), to exclude itself
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[ref] = torch.arange(len(ref))
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        sims = unit[rows] @ ref_unit.T
        own = slot[rows]
        hit = own >= 0
        sims[(rows - start)[hit], own[hit]] = float("-inf")
        out[rows] = ref[sims.topk(k, dim=1).indices]
    return out
