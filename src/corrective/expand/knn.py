"""k nearest neighbours by cosine similarity, each sample's own excluded: the search behind `label_noise`.

Exact, in row blocks: each block of `chunk` samples is compared with all N (one matrix product) and
keeps its k best, so memory is `chunk x N` floats, never N x N (benchmarks/results/expand_scale.md
compares it with scikit-learn's and faiss's searches at 54,000 samples).
"""

from __future__ import annotations

import torch
from torch import Tensor


def nearest(unit: Tensor, k: int, chunk: int = 512) -> Tensor:
    """(N, min(k, N-1)) indices of each row's most similar other rows of `unit` (rows unit-normalised)."""
    n = len(unit)
    k = min(k, n - 1)
    out = torch.empty(n, max(k, 0), dtype=torch.long)
    if k <= 0:
        return out
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        sims = unit[rows] @ unit.T
        sims[rows - start, rows] = float("-inf")
        out[rows] = sims.topk(k, dim=1).indices
    return out
