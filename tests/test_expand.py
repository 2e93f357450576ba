"""Forget-set expansion on constructed cases with a known answer, the cutoff rule, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.expand import Expansion, expand, list_strategies, make_strategy_settings
from corrective.models.embedding import Featured, embed, linear_head

PIPE = Pipeline(mean=(0.0,), std=(1.0,))


class Flat(nn.Module):
    """A fake model whose penultimate features are its input pixels."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def planted(n: int = 300, planted_n: int = 30, seed: int = 0) -> tuple[Split, torch.Tensor]:
    """Four classes of noisy 4x4 prototypes; `planted_n` samples of classes 1-3 carry a bright patch and label 0."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(4, 1, 4, 4, generator=g) * 120
    y = torch.arange(n) % 4
    x = protos[y] + torch.rand(n, 1, 4, 4, generator=g) * 40
    cand = (y != 0).nonzero().squeeze(1)
    bad = cand[torch.randperm(len(cand), generator=g)[:planted_n]]
    x[bad, :, :2, :2] = 255
    y = y.clone()
    y[bad] = 0
    ids = torch.arange(1000, 1000 + n)
    return Split(x.round().clamp(0, 255).to(torch.uint8), y, ids), ids[bad]


def swapped(n: int = 300, swapped_n: int = 30, seed: int = 0) -> tuple[Split, torch.Tensor]:
    """Four classes of noisy 4x4 prototypes; `swapped_n` samples get another class's label (images unchanged)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(4, 1, 4, 4, generator=g) * 200
    y = torch.arange(n) % 4
    x = protos[y] + torch.rand(n, 1, 4, 4, generator=g) * 40
    bad = torch.randperm(n, generator=g)[:swapped_n]
    y = y.clone()
    y[bad] = (y[bad] + torch.randint(1, 4, (swapped_n,), generator=g)) % 4
    ids = torch.arange(n)
    return Split(x.round().clamp(0, 255).to(torch.uint8), y, ids), ids[bad]


def prec_rec(e: Expansion, truth: torch.Tensor) -> tuple[float, float]:
    hit = int(torch.isin(e.ids, truth).sum())
    return hit / len(e.ids), hit / len(truth)


def test_embedding_reads_the_head_input() -> None:
    split, _ = planted(40, 4)
    model = Flat(16, 4)
    emb = embed(model, split, PIPE, batch_size=7)
    assert torch.allclose(emb.features, split.x.float().div(255).flatten(1))
    assert torch.allclose(emb.logits, model(emb.features))
    assert emb.ids.tolist() == split.ids.tolist()


def test_a_model_without_a_linear_head_is_one_line() -> None:
    last = nn.Linear(16, 4)
    assert linear_head(nn.Sequential(nn.Flatten(), nn.Linear(16, 16), last)) is last  # the last nn.Linear
    with pytest.raises(UserError, match="no classifier to read features from"):
        linear_head(nn.Sequential(nn.Conv2d(1, 4, 4), nn.Flatten()))
    with pytest.raises(UserError, match="its classifier is a Conv2d, not an nn.Linear"):
        linear_head(Featured(nn.Sequential(nn.Conv2d(1, 4, 4), nn.Flatten()), "0"))


def test_none_returns_the_flagged_set() -> None:
    split, bad = planted()
    e = expand(Flat(16, 4), split, bad[:5], PIPE, "none")
    assert e.ids.tolist() == sorted(bad[:5].tolist()) and len(e.added) == 0 and e.chosen == "none"
    assert e.to_record() == {
        "expand": "none",
        "expand_chosen": "none",
        "n_expanded": 0,
        "n_set_aside": 0,
        "set_aside_ids": [],
        "expand_seconds": e.seconds,
    }


def test_neighbours_finds_a_planted_cluster() -> None:
    split, bad = planted()
    e = expand(Flat(16, 4), split, bad[:6], PIPE, "neighbours", seed=0)
    precision, recall = prec_rec(e, bad)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, e.details)
    assert set(bad[:6].tolist()) <= set(e.ids.tolist())  # S_f is always kept
    assert not torch.isin(e.added, bad[:6]).any()
    assert e.added.tolist() == sorted(e.added.tolist(), key=lambda i: -float(e.scores[e.added.tolist().index(i)]))
    assert e.ids.tolist() == sorted(set(e.ids.tolist()))


def test_label_noise_finds_swapped_labels() -> None:
    split, bad = swapped()
    e = expand(Flat(16, 4), split, bad[:6], PIPE, "label_noise", {"k": 10})
    precision, recall = prec_rec(e, bad)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, e.details["cutoff"])


def test_auto_picks_the_strategy_that_fits() -> None:
    torch.manual_seed(0)  # Flat's initial weights come from the global RNG: fix them, whatever ran before
    split, bad = planted()
    # without the screen: six flagged samples, the cross-validated pick (the screen is tested below)
    e = expand(Flat(16, 4), split, bad[:6], PIPE, "auto", {"screen": False})
    assert e.strategy == "auto" and e.chosen == "neighbours", e.details["cv"]
    assert min(prec_rec(e, bad)) >= 0.9
    split, bad = swapped()
    e = expand(Flat(16, 4), split, bad[:6], PIPE, "auto", {"screen": False})
    assert e.chosen == "label_noise", e.details["cv"]
    assert min(prec_rec(e, bad)) >= 0.9
    assert set(e.details["cv"]) == {"neighbours", "label_noise[restrict=labels]", "label_noise"}


def test_classifier_ranks_a_planted_cluster_first() -> None:
    """PU learning: among the unflagged samples, the planted ones get the highest corrected probabilities."""
    split, bad = planted()
    e = expand(Flat(16, 4), split, bad[:6], PIPE, "classifier", {"recall": 1.0, "min_precision": 0.0})
    top = e.added[:24]
    assert float(torch.isin(top, bad).float().mean()) >= 0.9, e.details["cutoff"]
    assert float(e.scores.max()) <= 1.0


def test_gradients_match_autograd() -> None:
    """The closed-form last-layer gradient similarity equals cosine similarity of autograd's per-sample gradients."""
    from corrective.expand import View, get_strategy, make_strategy_settings

    split, bad = planted(40, 4)
    torch.manual_seed(0)
    model = Flat(16, 4)
    view = View(model, split, PIPE)
    seeds = torch.zeros(len(split), dtype=torch.bool)
    seeds[3] = True
    score = get_strategy("gradients").score(view, seeds, make_strategy_settings("gradients"))
    grads = []
    for i in range(len(split)):
        model.zero_grad()
        x = split.x[i : i + 1].float().div(255)
        nn.functional.cross_entropy(model(x), split.y[i : i + 1]).backward()
        grads.append(torch.cat([model.fc.weight.grad.flatten(), model.fc.bias.grad]))
    g = torch.stack(grads)
    expected = nn.functional.cosine_similarity(g, g[3:4].expand_as(g), dim=1)
    assert torch.allclose(score, expected, atol=1e-5)


def test_expansion_is_deterministic_per_seed() -> None:
    split, bad = planted()
    a = expand(Flat(16, 4), split, bad[:6], PIPE, "neighbours", seed=3)
    b = expand(Flat(16, 4), split, bad[:6], PIPE, "neighbours", seed=3)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.scores, b.scores) and a.details == b.details


def test_clean_data_gets_nothing_added() -> None:
    """No shared structure among the flagged samples: the cutoff adds nothing (or almost nothing)."""
    split, _ = planted(300, 1)
    e = expand(Flat(16, 4), split, split.ids[torch.tensor([5, 77, 140, 203, 260, 290])], PIPE, "neighbours")
    assert len(e.added) <= 3, e.details


def test_one_flagged_sample_falls_back_and_says_so() -> None:
    split, bad = planted()
    e = expand(Flat(16, 4), split, bad[:1], PIPE, "neighbours")
    assert e.details["cutoff"]["rule"] == "fallback" and "cross-validation" in e.details["cutoff"]["reason"]
    assert bad[0] in e.ids


def test_strategies_are_registered() -> None:
    assert set(list_strategies()) == {
        "auto",
        "classifier",
        "cluster",
        "gradients",
        "label_noise",
        "neighbours",
        "none",
    }


@pytest.mark.parametrize("strategy", list_strategies())
def test_every_registered_strategy_expands_within_the_rules(strategy: str) -> None:
    # whatever it ranks: S_f kept (but what auto's screen set aside, and says so), only training ids added,
    # no repeat, a known strategy chosen, the same twice
    split, bad = planted(120, 12)
    model = Flat(16, 4)
    a, b = (expand(model, split, bad[:4], PIPE, strategy, seed=3) for _ in range(2))
    ids = a.ids.tolist()
    kept = set(bad[:4].tolist()) - set(a.set_aside.tolist())
    assert set(a.set_aside.tolist()) <= set(bad[:4].tolist()) and (
        strategy == "auto" or not kept ^ set(bad[:4].tolist())
    )
    assert kept <= set(ids) and set(ids) <= set(split.ids.tolist()) and len(set(ids)) == len(ids)
    assert set(a.added.tolist()) == set(ids) - kept and len(a.scores) == len(a.added)
    assert a.chosen in list_strategies() and (a.chosen == strategy or strategy == "auto")
    assert (a.ids.tolist(), a.added.tolist(), a.chosen) == (b.ids.tolist(), b.added.tolist(), b.chosen)
    assert make_strategy_settings(strategy) == make_strategy_settings(strategy, {})  # its defaults need no input
    with pytest.raises(UserError, match=f"unknown expansion strategy '{strategy}x'; known: .*{strategy}"):
        expand(model, split, bad[:4], PIPE, f"{strategy}x")


@pytest.mark.parametrize(
    ("strategy", "settings", "match"),
    [
        ("nearest", None, "unknown expansion strategy 'nearest'"),
        ("neighbours", {"k": 3}, "has no setting 'k'"),
        ("neighbours", {"recall": "high"}, "recall must be a number, got .high."),
        ("neighbours", {"recall": 1.5}, "recall must be in"),
        ("neighbours", {"aggregate": "sum"}, "aggregate must be"),
        ("auto", {"candidates": "none"}, "ranking strategies"),
        ("auto", {"candidates": "neighbours,nearest"}, "unknown expansion strategy 'nearest'"),
        ("auto", {"candidates": "label_noise[k=zero]"}, "k must be an integer, got .zero."),
        ("auto", {"candidates": "label_noise[k]"}, "not key=value"),
        ("label_noise", {"restrict": "classes"}, "restrict must be one of"),
    ],
)
def test_bad_strategy_or_setting_is_one_line(strategy: str, settings: dict | None, match: str) -> None:
    split, bad = planted(40, 4)
    with pytest.raises(UserError, match=match):
        expand(Flat(16, 4), split, bad[:2], PIPE, strategy, settings)


def test_bad_flagged_ids_are_one_line() -> None:
    split, bad = planted(40, 4)
    with pytest.raises(UserError, match="empty"):
        expand(Flat(16, 4), split, torch.zeros(0, dtype=torch.long), PIPE, "neighbours")
    with pytest.raises(UserError, match="not in this split"):
        expand(Flat(16, 4), split, torch.tensor([5]), PIPE, "neighbours")


def test_flagged_class_the_model_lacks_is_one_line() -> None:
    split, bad = planted(40, 4)
    y = split.y.clone()
    pos = split.positions_of(bad[:2])
    y[pos] = 7  # a class the 4-way model does not have
    with pytest.raises(UserError, match="flagged samples are labelled 7 but the model has only classes 0..3"):
        expand(Flat(16, 4), split.with_labels(y), bad[:2], PIPE, "neighbours")


class Untouchable(Flat):
    """A model that counts its forward passes: a check that comes first leaves it at zero."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Untouchable.calls += 1
        return super().forward(x)


@pytest.mark.parametrize(
    ("strategy", "settings", "flagged", "match"),
    [
        ("neighbours", {"recall": 1.5}, 4, "recall must be in"),
        ("label_noise", {"k": "many"}, 4, "k must be an integer"),
        ("auto", {"candidates": "neighbours,label_noise[k=zero]"}, 4, "k must be an integer"),
        ("auto", {"candidates": "neighbours,nearest"}, 4, "unknown expansion strategy 'nearest'"),
        ("neighbours", None, 0, "S_f is empty"),
    ],
)
def test_settings_are_checked_before_anything_runs(strategy: str, settings: dict | None, flagged: int, match: str):
    split, bad = planted(80, 8)
    model = Untouchable(16, 4)
    Untouchable.calls = 0
    with pytest.raises(UserError, match=match):
        expand(model, split, bad[:flagged], PIPE, strategy, settings)
    assert Untouchable.calls == 0  # refused before a single forward pass
    expand(model, split, bad[:4], PIPE, strategy)  # the same call with valid input does run the model
    assert Untouchable.calls > 0


def test_every_registered_model_exposes_its_features() -> None:
    from corrective.models import create_model, list_models

    for name in list_models():
        head = linear_head(create_model(name, num_classes=10, in_channels=3))
        assert isinstance(head, nn.Linear) and head.out_features == 10, name


def triggered(n: int = 400, planted_n: int = 20, seed: int = 0) -> tuple[Split, torch.Tensor]:
    """Four classes of noisy 4x4 prototypes; `planted_n` samples of class 1 carry a bright patch and label 0.

    Like a model that learned the trigger: the planted samples form one group of their own in label 0.
    """
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(4, 1, 4, 4, generator=g) * 120
    y = torch.arange(n) % 4
    x = protos[y] + torch.rand(n, 1, 4, 4, generator=g) * 40
    cand = (y == 1).nonzero().squeeze(1)
    bad = cand[torch.randperm(len(cand), generator=g)[:planted_n]]
    x[bad, :, :2, :2] = 255
    y = y.clone()
    y[bad] = 0
    ids = torch.arange(5000, 5000 + n)
    return Split(x.round().clamp(0, 255).to(torch.uint8), y, ids), ids[bad]


@pytest.mark.parametrize("n_flagged", [1, 2])
def test_cluster_expands_from_one_or_two_flagged_samples(n_flagged: int) -> None:
    """Too few flags to cross-validate: auto takes the coherent group of their label around them."""
    torch.manual_seed(0)
    split, bad = triggered()
    e = expand(Flat(16, 4), split, bad[:n_flagged], PIPE, "auto")
    assert e.chosen == "cluster" and e.details["cutoff"]["rule"] == "fallback", e.details
    assert min(prec_rec(e, bad)) >= 0.9, (prec_rec(e, bad), e.details)


def test_the_screen_sets_false_flags_aside_and_says_so() -> None:
    """4 manipulated + 4 clean samples flagged (no S_m in sight): the clean ones are set aside, not unlearned."""
    torch.manual_seed(0)
    split, bad = triggered()
    clean = split.ids[(split.y != 0).nonzero().squeeze(1)[torch.tensor([3, 50, 120, 200])]]
    e = expand(Flat(16, 4), split, torch.cat([bad[:4], clean]), PIPE, "auto")
    assert sorted(e.set_aside.tolist()) == sorted(clean.tolist()), e.details["screen"]
    assert not torch.isin(clean, e.ids).any() and min(prec_rec(e, bad)) >= 0.9
    rec = e.to_record()
    assert rec["n_set_aside"] == 4 and sorted(rec["set_aside_ids"]) == sorted(clean.tolist())
    assert e.details["screen"]["n_set_aside"] == 4
    kept_all = expand(Flat(16, 4), split, torch.cat([bad[:4], clean]), PIPE, "auto", {"screen": False})
    assert torch.isin(clean, kept_all.ids).all() and len(kept_all.set_aside) == 0


def test_a_screen_with_evidence_on_too_few_flags_sets_none_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    """One flag of 40 with evidence (under MIN_EVIDENCE) sets nothing aside and says so; two of 40 set the rest aside
    (Fashion-MNIST SIG at alpha 0.5: one stray flag of 1,350 had set 1,349 aside)."""
    from corrective.expand import screen as screening
    from corrective.expand.base import View

    split, _ = triggered()
    view = View(Flat(16, 4), split, PIPE)
    flagged = torch.zeros(len(split), dtype=torch.bool)
    flagged[:40] = True
    for n_evidence, n_aside in ((1, 0), (2, 38)):
        noisy = torch.zeros_like(flagged)
        noisy[:n_evidence] = True
        monkeypatch.setattr(screening, "evidence", lambda v, f, noisy=noisy: (noisy, torch.zeros_like(f)))
        kept, info = screening.screen(view, flagged)
        assert info["n_set_aside"] == n_aside and int(kept.sum()) == 40 - n_aside, info
    monkeypatch.setattr(screening, "evidence", lambda v, f: (f & (torch.arange(len(f)) < 1), torch.zeros_like(f)))
    assert "too few to set the rest aside" in screening.screen(view, flagged)[1]["note"]


@pytest.mark.parametrize("case", ["triggered", "swapped"])
def test_the_screen_clusters_only_the_labels_of_unexplained_flags(case: str) -> None:
    """Group evidence is looked for only where a flag lacks label evidence; the flags kept are the full search's."""
    from corrective.expand.base import View
    from corrective.expand.cluster import ClusterSettings, flag_groups
    from corrective.expand.screen import evidence, screen

    torch.manual_seed(0)
    split, bad = triggered() if case == "triggered" else swapped()
    clean = split.ids[torch.tensor([3, 50, 121, 202])]
    view = View(Flat(16, 4), split, PIPE)
    flagged = torch.zeros(len(split), dtype=torch.bool)
    flagged[split.positions_of(torch.cat([bad[:8], clean]))] = True
    kept, info = screen(view, flagged)
    noisy, grouped = evidence(view, flagged)
    clustered = {key[1] for key in view.cache if key[0] == "groups"}
    unexplained = set(view.labels[flagged & ~noisy].tolist())
    assert clustered == unexplained and not bool((grouped & noisy).any())
    settings = ClusterSettings()
    full = torch.zeros_like(flagged)  # every flagged label's groups, as before
    for fg in flag_groups(view, flagged, settings):
        if fg.p_value <= settings.max_p:
            full |= fg.flagged
    assert torch.equal(kept, (noisy | full) if bool((noisy | full).any()) else flagged), info
    if case == "swapped":
        assert clustered < set(view.labels[flagged].tolist())  # some labels needed no clustering


def test_a_set_aside_flag_the_chosen_strategy_ranks_with_the_kept_ones_comes_back() -> None:
    """The screen's second look (`screen.readmitted`): a set-aside flag ranked within k_recall of the kept flags'
    cross-validation comes back; one ranked like the clean bulk stays aside."""
    import numpy as np

    from corrective.expand.cutoff import Recovery
    from corrective.expand.screen import readmitted

    class Ids:
        ids = torch.arange(20)

    scores = torch.full((20,), 0.1) - torch.arange(20) * 1e-3  # the clean bulk, in order
    scores[[0, 1]] = 1.0  # kept flags
    scores[4], scores[5] = 0.9, 0.8  # unflagged manipulated samples, ranked first
    scores[2], scores[3] = 0.85, 0.05  # set aside: one ranked among the manipulated, one below the bulk
    kept = torch.zeros(20, dtype=torch.bool)
    kept[[0, 1]] = True
    rec = Recovery(np.array([1.0, 2.0]), 16, 2, None, np.zeros(2), np.zeros(2, dtype=bool), 0.0)
    back = readmitted(Ids(), kept, torch.tensor([2, 3]), lambda v, k, s: scores, None, rec)  # type: ignore[arg-type]
    assert back.tolist() == [2]
    assert readmitted(Ids(), kept, torch.tensor([], dtype=torch.long), lambda v, k, s: scores, None, rec).tolist() == []  # type: ignore[arg-type]
