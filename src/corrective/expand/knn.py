"""k nearest neighbours by cosine similarity, each sample's own excluded: the search behind `label_noise`.

Two searches, both in blocks so that memory stays `block x candidates` floats, never N x N:
- `nearest`, exact: each block of `chunk` queries is compared with every reference row (one matrix
  product into a reused buffer) and keeps its k best. Quadratic in N: at Fashion-MNIST size (54,000
  samples, 128 features) it is most of `auto`'s cost.
- `approximate`, an inverted-file search (IVF, as faiss's `IndexIVFFlat`, written here in torch):
  seeded spherical k-means splits the rows into `cells` (2 sqrt(N) by default); each row probes the
  `probe` cells whose centres are most similar to it. Rows are searched in groups of the same best
  cell, each group against the union of the cells its rows probe (a superset of each row's own
  probes: never fewer true neighbours than the per-row search). The work is the share of all pairs
  that the unions cover (~6 % at 54,000 samples with the defaults), so it grows like N^1.5, not N^2.
  benchmarks/results/expand_scale.md measures its recall of the exact neighbours (0.99 at 54,000)
  and time against the exact search, scikit-learn's and faiss's.
The references of `nearest` are all N samples, or a seeded random subset (`label_noise`'s `reference`
setting): then the search is linear in N instead of quadratic.
"""

from __future__ import annotations

import math

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
    ref_t = (unit if references is None else unit[ref]).T.contiguous()
    # where each row sits among the references (-1: not a reference), to exclude itself
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[ref] = torch.arange(len(ref))
    buffer = torch.empty(min(chunk, n), len(ref), dtype=unit.dtype)  # reused: no fresh pages per block
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        sims = torch.mm(unit[rows], ref_t, out=buffer[: len(rows)])
        own = slot[rows]
        hit = own >= 0
        sims[(rows - start)[hit], own[hit]] = float("-inf")
        out[rows] = ref[sims.topk(k, dim=1).indices]
    return out


def best_cells(unit: Tensor, centres: Tensor, m: int, block: int = 4096) -> Tensor:
    """(N, m) indices of each row's m most similar centres, best first; in blocks of rows, so that memory stays
    `block x cells` floats (the whole N x cells product is 118 MB at 60,000 rows and grows like N^1.5)."""
    out = torch.empty(len(unit), m, dtype=torch.long)
    for start in range(0, len(unit), block):
        out[start : start + block] = (unit[start : start + block] @ centres.T).topk(m, dim=1).indices
    return out


def spherical_kmeans(unit: Tensor, cells: int, seed: int, iters: int = 10, sample: int = 32) -> Tensor:
    """(cells, D) unit centres: k-means by cosine on a seeded sample of at most `sample * cells` rows."""
    g = torch.Generator().manual_seed(seed)
    rows = unit[torch.randperm(len(unit), generator=g)[: sample * cells]]
    centres = rows[torch.randperm(len(rows), generator=g)[:cells]].clone()
    for _ in range(iters):
        assign = best_cells(rows, centres, 1)[:, 0]
        sums = torch.zeros_like(centres).index_add_(0, assign, rows)
        filled = torch.bincount(assign, minlength=len(centres))[:, None] > 0
        centres = torch.where(filled, torch.nn.functional.normalize(sums, dim=1), centres)
    return centres


def approximate(unit: Tensor, k: int, seed: int = 0, cells: int | None = None, probe: int = 6) -> Tensor:
    """(N, min(k, N-1)) indices of each row's (approximately) most similar other rows: the IVF search above.

    Rows are unit-normalised; `cells` defaults to round(2 sqrt(N)); deterministic for a given `seed`.
    """
    n = len(unit)
    k = min(k, n - 1)
    out = torch.empty(n, max(k, 0), dtype=torch.long)
    if k <= 0:
        return out
    cells = max(1, min(cells or round(2 * math.sqrt(n)), n))
    centres = spherical_kmeans(unit, cells, seed)
    probes = best_cells(unit, centres, min(probe, len(centres)))  # column 0: the row's own cell
    own = probes[:, 0]
    order = torch.argsort(own, stable=True)
    bounds = torch.searchsorted(own[order], torch.arange(len(centres) + 1)).tolist()
    members = [order[bounds[c] : bounds[c + 1]] for c in range(len(centres))]
    by_cell = unit[order]  # rows sorted by cell: a cell's rows are one slice (no gathers in the loop)
    for c, group in enumerate(members):
        if len(group) == 0:
            continue
        cells_probed = torch.unique(probes[group]).tolist()  # sorted, holds c
        candidates = torch.cat([members[j] for j in cells_probed])
        offset = sum(len(members[j]) for j in cells_probed if j < c)  # where the group sits among them
        if len(candidates) <= k:  # too few to choose from: every row
            candidates, offset, cand = torch.arange(n), -1, unit
        else:
            cand = torch.cat([by_cell[bounds[j] : bounds[j + 1]] for j in cells_probed])
        rows_all = by_cell[bounds[c] : bounds[c + 1]]
        for start in range(0, len(group), 512):
            rows = group[start : start + 512]
            sims = rows_all[start : start + 512] @ cand.T
            local = torch.arange(len(rows))
            sims[local, rows if offset < 0 else offset + start + local] = float("-inf")
            out[rows] = candidates[sims.topk(k, dim=1).indices]
    return out
