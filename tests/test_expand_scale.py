"""The expansion at scale: the neighbour searches (exact, approximate, reference subset), the extension's
precision check, the channels-last feature pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.expand import expand, make_strategy_settings
from corrective.expand.cutoff import Recovery, choose_cutoff
from corrective.expand.knn import approximate, nearest, reference_rows
from corrective.expand.label_noise import EXACT_UP_TO, exact_search
from corrective.models.embedding import embed
from corrective.models.layout import is_channels_last


def brute(unit: torch.Tensor, k: int, refs: torch.Tensor) -> list[set[int]]:
    sims = unit @ unit[refs].T
    out = []
    for i in range(len(unit)):
        row = sims[i].clone()
        row[refs == i] = float("-inf")
        out.append(set(refs[row.topk(k).indices].tolist()))
    return out


def test_nearest_searches_only_the_reference_rows_and_never_returns_itself() -> None:
    g = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=1)
    refs = reference_rows(300, 120, seed=1)
    assert refs is not None and len(refs) == 120 and torch.equal(refs, refs.sort().values)
    got = nearest(unit, 5, chunk=64, references=refs)
    assert got.shape == (300, 5)
    assert torch.isin(got, refs).all()
    assert all(i not in row for i, row in enumerate(got.tolist()))
    assert [set(row) for row in got.tolist()] == brute(unit, 5, refs)
    # every row a reference: the all-pairs search, as without a subset
    assert reference_rows(300, 300, seed=1) is None
    assert [set(r) for r in nearest(unit, 5).tolist()] == brute(unit, 5, torch.arange(300))


def blobs(n: int, dims: int, centres: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    middle = torch.randn(centres, dims, generator=g)
    x = middle[torch.randint(centres, (n,), generator=g)] + 0.3 * torch.randn(n, dims, generator=g)
    return torch.nn.functional.normalize(x, dim=1)


def test_the_approximate_search_finds_most_true_neighbours_and_never_itself() -> None:
    unit = blobs(3000, 16, 40)
    exact = nearest(unit, 10)
    got = approximate(unit, 10, seed=0)
    assert got.shape == (3000, 10)
    assert all(i not in row for i, row in enumerate(got.tolist()))
    assert all(len(set(row)) == 10 for row in got.tolist())  # no neighbour twice
    recall = (got[:, :, None] == exact[:, None, :]).any(1).float().mean()
    assert recall >= 0.95, recall
    assert torch.equal(got, approximate(unit, 10, seed=0))  # deterministic for a seed
    # one cell: every row searches every row, the exact neighbours (as sets: ties may order differently)
    one = approximate(unit, 10, seed=0, cells=1)
    assert [set(r) for r in one.tolist()] == [set(r) for r in exact.tolist()]


def test_the_approximate_search_on_tiny_or_unclustered_data() -> None:
    unit = torch.nn.functional.normalize(torch.randn(7, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    got = approximate(unit, 20, seed=0)  # k larger than the data: every other row, the cells too small
    assert got.shape == (7, 6) and all(set(row) == set(range(7)) - {i} for i, row in enumerate(got.tolist()))
    assert approximate(unit[:1], 5).shape == (1, 0)


def test_label_noise_searches_exactly_up_to_its_threshold() -> None:
    assert exact_search("auto", EXACT_UP_TO) and not exact_search("auto", EXACT_UP_TO + 1)
    assert exact_search("exact", 10**6) and not exact_search("approximate", 10)


def test_the_reference_subset_leaves_small_data_exact() -> None:
    """With `reference` 0 (the default) or above the data's size, label_noise's votes are the exact all-pairs ones."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 1, 4, 4, generator=g) * 255).to(torch.uint8)
    split = Split(x, torch.arange(200) % 4, torch.arange(200))

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    torch.manual_seed(0)
    model, pipe = Flat(), Pipeline(mean=(0.0,), std=(1.0,))
    a = expand(model, split, torch.arange(10), pipe, "label_noise", {"reference": 200})
    b = expand(model, split, torch.arange(10), pipe, "label_noise", {"reference": 10_000})
    d = expand(model, split, torch.arange(10), pipe, "label_noise")
    assert torch.equal(a.ids, b.ids) and torch.equal(a.scores, b.scores)
    assert torch.equal(a.ids, d.ids) and torch.equal(a.scores, d.scores)
    e = expand(model, split, torch.arange(10), pipe, "label_noise", {"search": "exact"})
    assert torch.equal(e.ids, d.ids) and torch.equal(e.scores, d.scores)  # auto is exact at this size
    f = expand(model, split, torch.arange(10), pipe, "label_noise", {"search": "approximate"})
    assert set(torch.arange(10).tolist()) <= set(f.ids.tolist())  # another search, still a valid expansion
    c = expand(model, split, torch.arange(10), pipe, "label_noise", {"reference": 50})
    assert c.details["settings"]["reference"] == 50  # a subset: another search, still a valid expansion
    assert set(torch.arange(10).tolist()) <= set(c.ids.tolist())


def recovery(counts: list[float], n_unflagged: int, settings: object) -> Recovery:
    c = np.asarray(counts, dtype=float)
    return Recovery(
        c, n_unflagged, 5, settings, held_scores=np.ones(len(c)), above_split=np.ones(len(c), bool), separation=0.9
    )


def test_an_imprecise_score_extension_is_refused_with_enough_flags() -> None:
    """Many held-out flags rank in the top ~100 of U; the natural threshold would add 1,000 (precision ~0.2)."""
    settings = make_strategy_settings("label_noise")
    counts = [float(i) for i in range(0, 100, 2)]  # 50 held-out samples, median 49: about 98 manipulated in U
    scores = torch.cat([torch.full((1000,), 0.9), torch.zeros(9000)])  # 1,000 of U reach the natural 0.5
    k, info = choose_cutoff(recovery(counts, 10_000, settings), settings, scores)
    assert info["extension_precision_checked"] and info["rule"] == "rank" and k <= 100, info
    assert info["extensions"]["natural"]["estimated_precision"] < settings.min_precision
    # with fewer held-out samples than `estimate_from` the extension is taken as before (digits at alpha 0.1)
    few = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]  # about 50 manipulated in U; the threshold adds 150 (within the cap)
    scores = torch.cat([torch.full((150,), 0.9), torch.zeros(9850)])
    k, info = choose_cutoff(recovery(few, 10_000, settings), settings, scores)
    assert not info["extension_precision_checked"] and info["rule"] == "natural" and k == 150, info


def test_a_precise_score_extension_still_extends() -> None:
    settings = make_strategy_settings("label_noise")
    counts = [float(i) for i in range(0, 100, 2)]
    scores = torch.cat([torch.full((110,), 0.9), torch.zeros(9890)])  # the threshold adds 110: precise enough
    k, info = choose_cutoff(recovery(counts, 10_000, settings), settings, scores)
    assert info["rule"] == "natural" and k == 110, info


def test_the_feature_pass_runs_channels_last_and_restores_the_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )
    x = (torch.rand(50, 1, 8, 8) * 255).to(torch.uint8)
    split = Split(x, torch.arange(50) % 3, torch.arange(50))
    pipe = Pipeline(mean=(0.0,), std=(1.0,))
    emb = embed(model, split, pipe, batch_size=16)
    assert not is_channels_last(model)  # restored
    with torch.no_grad():
        want = model(x.float() / 255)
    assert torch.allclose(emb.logits, want, atol=1e-5)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    embed(model, split, pipe)
    assert is_channels_last(model)  # a channels-last model stays so


def test_the_feature_pass_in_bf16_is_close_to_fp32_and_a_bad_precision_is_one_line() -> None:
    import pytest

    from corrective.errors import UserError
    from corrective.training import feature_precision, get_preset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3))
    x = (torch.rand(40, 1, 8, 8) * 255).to(torch.uint8)
    split = Split(x, torch.arange(40) % 3, torch.arange(40))
    pipe = Pipeline(mean=(0.0,), std=(1.0,))
    full, half = embed(model, split, pipe), embed(model, split, pipe, precision="bf16")
    assert half.features.dtype == torch.float32 and half.logits.dtype == torch.float32
    assert not torch.equal(full.features, half.features)  # bf16 ran
    assert torch.allclose(full.features, half.features, atol=0.05, rtol=0.02)
    for call in (
        lambda: embed(model, split, pipe, precision="fp16"),
        lambda: expand(model, split, torch.arange(3), pipe, "none", precision="fp16"),
    ):
        with pytest.raises(UserError, match="fp32 or bf16"):
            call()
    cpu = torch.device("cpu")
    assert feature_precision(get_preset("cpu28"), cpu, 28) == "bf16"  # Fashion-MNIST's recipe trains in bf16
    assert feature_precision(get_preset("digits"), cpu, 8) == "fp32"
    assert feature_precision(get_preset("digits"), cpu, 32) == "bf16"  # auto: bf16 from 32 px


def test_a_clear_split_is_checked_against_the_upper_counts() -> None:
    """Held-out counts skewed low (median ~120, 90 % quantile ~420): twice the median says ~240 manipulated samples
    in U, the upper counts ~470. A clear split of U's scores at 480 is taken (the median alone refused it: Fashion-
    MNIST poison seed 2); the same 480 reached by a natural threshold is still checked against the median's 240."""
    counts = [float(c) for c in np.linspace(20, 180, 40)] + [float(c) for c in np.linspace(380, 475, 10)]
    scores = torch.cat([torch.full((480,), 0.9), torch.zeros(9520)])
    neighbours = make_strategy_settings("neighbours")
    rec = recovery(counts, 10_000, neighbours)
    assert 2 * np.median(counts) < 0.8 * 480 <= rec.quantile(0.9) / 0.9
    k, info = choose_cutoff(rec, neighbours, scores)
    assert info["rule"] == "split" and k == 480, info
    assert info["extensions"]["split"]["estimated_precision"] >= neighbours.min_precision
    assert info["split_estimated_positives"] > info["estimated_positives"] == 2 * np.median(counts)
    labels = make_strategy_settings("label_noise")
    unclear = dataclasses.replace(recovery(counts, 10_000, labels), separation=0.5)  # the folds saw no clear split
    k, info = choose_cutoff(unclear, labels, scores)
    assert "split" not in info["extensions"] and info["rule"] == "rank" and k < 480, info
    assert info["extensions"]["natural"]["estimated_precision"] < labels.min_precision
