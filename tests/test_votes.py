"""The pixel vote and the relabelled split the fine-tuning bases train on (`methods/votes.py`), and fine-tuning's
`relabel` (on under `auto`, off for CF)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import corrective.methods.transplant as transplant
from corrective import api
from corrective.data.base import Split
from corrective.manipulations import Manipulation
from corrective.methods import make_settings, run_method
from corrective.methods.auto import AutoSettings, base_settings
from corrective.methods.finetune import with_probe
from corrective.methods.votes import (
    PROBE_COVER,
    PROBE_LABELS,
    PROBE_SHARE,
    SIDE,
    UNDECIDED,
    PixelVote,
    compared,
    confused_labels,
    flagged_vote,
    majority,
    pixel_vote,
    pixels_of,
    probed,
    relabelled,
)
from corrective.metrics import accuracy


def clean_of(man: Manipulation, ids: torch.Tensor) -> torch.Tensor:
    """The clean labels of manipulated `ids` (test-side knowledge: the method never sees them)."""
    where = (man.ids.cpu().unsqueeze(0) == ids.cpu().unsqueeze(1)).int().argmax(1)
    return man.clean_labels.cpu()[where]


def test_relabelled_changes_the_flagged_labels_alone_and_keeps_the_images_as_given() -> None:
    def stamp(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x + 1

    train = Split(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 3, 4, 5]), torch.arange(6), stamp)
    # positions 1 and 4 flagged: 1's neighbours say 7 (relabelled), 4's confirm its label (left out)
    out = relabelled(train, torch.tensor([1, 4]), torch.tensor([7, 4]))
    assert out.y.tolist() == [0, 7, 2, 3, 5] and out.ids.tolist() == [0, 1, 2, 3, 5]
    assert train.y.tolist() == [0, 1, 2, 3, 4, 5]  # the given split is left as it was
    assert out.stamp is not None and torch.equal(
        out.stamp(torch.zeros(5, 1, 2, 2), torch.arange(5)), torch.ones(5, 1, 2, 2)
    )


def test_the_vote_names_the_true_class_of_swapped_samples(interclass_run: api.Run) -> None:
    """From the training data as given and S_f alone: most flagged samples (labels swapped between two classes)
    are voted their clean class; the vote is seeded (the same twice)."""
    man = interclass_run.manipulation
    task = api.make_task(interclass_run, man.forget_ids(0.5), progress=False)
    assert task.known_manipulated is None
    vote = pixel_vote(task, 10, 10_000)
    assert vote is not None
    flagged = task.train.positions_of(task.forget_ids)
    voted, share = vote(pixels_of(task.train, task.pipeline, flagged))
    clean = clean_of(man, task.forget_ids).cpu()
    assert float((voted == clean).float().mean()) >= 0.75
    decided = majority(voted, share)
    sure = decided != UNDECIDED
    assert int(sure.sum()) >= 0.6 * len(sure) and float((decided[sure] == clean[sure]).float().mean()) >= 0.9
    again = pixel_vote(task, 10, 10_000)
    assert again is not None and torch.equal(again(pixels_of(task.train, task.pipeline, flagged))[0], voted)


def test_a_vote_without_a_majority_is_undecided_and_leaves_the_sample_out() -> None:
    labels, share = torch.tensor([2, 3, 4]), torch.tensor([0.5, 0.6, 1.0])
    assert majority(labels, share).tolist() == [UNDECIDED, 3, 4]
    train = Split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 3]), torch.arange(4))
    out = relabelled(train, torch.tensor([0, 1, 2]), torch.tensor([UNDECIDED, 5, 2]))
    assert out.ids.tolist() == [1, 3] and out.y.tolist() == [5, 3]
    kept = relabelled(train, torch.tensor([0, 1, 2]), torch.tensor([UNDECIDED, 5, 2]), keep_confirmed=True)
    assert kept.ids.tolist() == [1, 2, 3] and kept.y.tolist() == [5, 2, 3]  # only the undecided one leaves


def test_keep_confirmed_keeps_a_confirmed_flag_under_its_label_and_reaches_the_bases() -> None:
    train = Split(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 3, 4, 5]), torch.arange(6))
    out = relabelled(train, torch.tensor([1, 4]), torch.tensor([7, 4]), keep_confirmed=True)
    assert out.ids.tolist() == [0, 1, 2, 3, 4, 5] and out.y.tolist() == [0, 7, 2, 3, 4, 5]
    for base in ("finetune", "transplant"):
        assert base_settings(base, AutoSettings(keep_confirmed=True)).keep_confirmed is True
        assert base_settings(base, AutoSettings()).keep_confirmed is False  # off by default (results/transplant.md)


def test_relabel_teaches_the_flagged_samples_their_class(interclass_run: api.Run) -> None:
    """Fine-tuning with `relabel` predicts the flagged (label-swapped) samples' clean class more often than CF,
    which only leaves them out; CF's default stays without it."""
    man = interclass_run.manipulation
    task = api.make_task(interclass_run, man.forget_ids(0.5), progress=False)
    clean = clean_of(man, task.forget_ids)
    flagged = task.train.subset(task.train.positions_of(task.forget_ids)).with_labels(clean.to(task.train.y.device))
    assert make_settings("finetune").relabel is False
    plain, _ = run_method(task, "finetune", make_settings("finetune"))
    taught, _ = run_method(task, "finetune", make_settings("finetune", {"relabel": True}))
    before = accuracy(interclass_run.model, flagged, task.pipeline)
    after_plain, after_taught = accuracy(plain, flagged, task.pipeline), accuracy(taught, flagged, task.pipeline)
    assert after_taught >= 0.85 and after_taught > after_plain, (before, after_plain, after_taught)


def test_relabel_without_unflagged_samples_is_plain_fine_tuning(interclass_run: api.Run) -> None:
    task = api.make_task(interclass_run, interclass_run.manipulation.forget_ids(0.5), progress=False)
    every = dataclasses.replace(task, forget_ids=task.train.ids)
    assert pixel_vote(every, 10, 10_000) is None


def test_auto_hands_relabel_to_both_fine_tuning_bases() -> None:
    for base in ("finetune", "transplant"):
        assert base_settings(base, AutoSettings()).relabel is True
        assert base_settings(base, AutoSettings(relabel=False)).relabel is False
        assert base_settings(base, AutoSettings(relabel_share=0.6)).relabel_share == 0.6
        assert base_settings(base, AutoSettings()).relabel_share == 0.5  # without one of its own: a majority


def test_the_confused_labels_are_the_changes_a_fifth_of_the_changed_votes_show() -> None:
    train = Split(torch.zeros(12, 1, 2, 2, dtype=torch.uint8), torch.tensor([3] * 6 + [8] * 6), torch.arange(12))
    flagged = torch.arange(12)
    # 3 -> 8 four times, 8 -> 3 four times, 3 -> 1 once (a stray: 1 of 9), two confirmed, one undecided
    content = torch.tensor([8, 8, 8, 8, 1, 3, 3, 3, 3, 3, 8, UNDECIDED])
    assert confused_labels(train, flagged, content).tolist() == [3, 8]
    assert confused_labels(train, flagged, train.y).tolist() == []  # every label confirmed: no confusion
    spread = Split(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 3, 4]), torch.arange(5))
    assert len(confused_labels(spread, torch.arange(5), torch.tensor([5, 6, 7, 8, 9]))) > PROBE_LABELS  # random swap


def test_votes_spread_over_many_classes_are_no_confusion() -> None:
    """A dirty-label backdoor's flags all carry its target and their votes name their many source classes: one
    source passing PROBE_SHARE is not a confusion of a few labels unless the changes that pass hold PROBE_COVER."""
    target = Split(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), torch.arange(10))
    sources = torch.tensor([7, 7, 7, 1, 2, 3, 4, 5, 6, 9])  # 7 is 30 % of the changes, every other class 10 %
    assert PROBE_SHARE <= 0.3 < PROBE_COVER
    assert confused_labels(target, torch.arange(10), sources).tolist() == []
    one_way = torch.tensor([7, 7, 7, 7, 7, 7, 7, 7, 1, 2])  # a one-way confusion 0 -> 7 (80 %) and two strays
    assert confused_labels(target, torch.arange(10), one_way).tolist() == [0, 7]
    two_sources = torch.tensor([7, 7, 7, 1, 1, 1, 2, 3, 4, 5])  # 0 -> 7 and 0 -> 1, 30 % each: 60 % together
    assert confused_labels(target, torch.arange(10), two_sources).tolist() == [0, 1, 7]


def test_the_probe_widens_a_confusion_and_relabels_only_where_both_views_agree(interclass_run: api.Run) -> None:
    """From the training data as given and S_f alone (S_m and the clean labels read here only to check): the probe
    adds samples of the confused pair to the flagged set, most of them manipulated, the widened set holds more of
    S_m, and every sample it relabels carries a class the pixel vote named; it is seeded (the same twice)."""
    man = interclass_run.manipulation
    task = api.make_task(interclass_run, man.forget_ids(0.1), progress=False)
    assert task.known_manipulated is None
    flagged = task.train.positions_of(task.forget_ids)
    voted, share = flagged_vote(task, 10, 10_000)
    content = majority(voted, share)
    assert confused_labels(task.train, flagged, content).tolist() == sorted(man.classes)
    wider, labels = probed(task, flagged, content, 10, 10_000)
    assert torch.equal(wider[: len(flagged)], flagged) and len(wider) > 3 * len(flagged)
    ids = task.train.ids[wider].cpu()
    s_m = man.ids.cpu()
    assert float(torch.isin(ids[len(flagged) :], s_m).float().mean()) >= 0.6  # what it adds is mostly manipulated
    assert (
        float(torch.isin(s_m, ids).float().mean()) >= 0.8 > float(torch.isin(s_m, task.forget_ids.cpu()).float().mean())
    )
    given = task.train.y.cpu()[wider.cpu()]
    changed = (labels != UNDECIDED) & (labels != given)
    in_s_m = torch.isin(ids, s_m)
    assert int((changed & in_s_m).sum()) > 0
    right = labels[changed & in_s_m] == clean_of(man, ids[changed & in_s_m])
    assert float(right.float().mean()) >= 0.9  # relabels name the clean class
    assert bool((content[changed[: len(flagged)]] == labels[: len(flagged)][changed[: len(flagged)]]).all())
    again = probed(task, flagged, content, 10, 10_000)
    assert torch.equal(again[0], wider) and torch.equal(again[1], labels)


def test_the_probe_is_kept_per_vote_so_two_bases_on_one_task_get_their_own(interclass_run: api.Run) -> None:
    """Under auto both fine-tuning bases run on one task (one cache): the probe widened from one base's vote is not
    handed to the other, whose vote differs (the transplant votes on the images less its trigger estimate)."""
    man = interclass_run.manipulation
    task = api.make_task(interclass_run, man.forget_ids(0.1), progress=False)
    flagged = task.train.positions_of(task.forget_ids)
    settings = make_settings("finetune", {"relabel": True, "probe": True})
    content = majority(*flagged_vote(task, 10, 10_000))
    wider, labels, _ = with_probe(task, ("votes", 10, 10_000), flagged, content, settings)
    assert len(wider) > len(flagged)  # the interclass votes show a confusion: the probe widened them
    nothing = torch.full_like(content, UNDECIDED)  # another base's vote that names no class: no probe
    other, other_labels, _ = with_probe(task, ("transplant", 10, 3, 10_000), flagged, nothing, settings)
    assert torch.equal(other, flagged) and torch.equal(other_labels, nothing)


def test_auto_hands_the_probe_to_both_fine_tuning_bases_and_cf_goes_without() -> None:
    assert make_settings("finetune").probe is False
    for base in ("finetune", "transplant"):
        assert base_settings(base, AutoSettings()).probe is True
        assert base_settings(base, AutoSettings(probe=False)).probe is False


def test_relabel_share_sets_how_sure_the_vote_must_be() -> None:
    labels, share = torch.tensor([2, 3, 4, 5]), torch.tensor([0.5, 0.7, 0.9, 1.0])
    assert majority(labels, share, 0.8).tolist() == [UNDECIDED, UNDECIDED, 4, 5]
    assert majority(labels, share, 1.0).tolist() == [UNDECIDED] * 4  # 1: never relabel
    with pytest.raises(ValueError, match="relabel_share"):
        make_settings("transplant", {"relabel_share": 0.4})


def test_the_transplant_relabels_only_as_surely_as_asked(poison_run: api.Run) -> None:
    """A share of 1 relabels nothing: the transplant then fine-tunes on the rest alone (as without relabel); its
    default (a majority) relabels some of a dirty-label poison's flagged samples."""
    task = api.make_task(poison_run, poison_run.manipulation.forget_ids(0.5), progress=False)
    seen: list[int] = []
    original = transplant.relabelled

    def spy(train: Split, flagged: torch.Tensor, content: torch.Tensor, keep: bool = False) -> Split:
        out = original(train, flagged, content, keep)
        seen.append(len(out))
        return out

    transplant.relabelled = spy  # type: ignore[assignment]
    try:
        for share in (1.0, None):
            settings = {"budget": 0.02} | ({} if share is None else {"relabel_share": share})
            run_method(task, "transplant", make_settings("transplant", settings))
    finally:
        transplant.relabelled = original  # type: ignore[assignment]
    assert seen[0] == len(task.retain()) and seen[1] > seen[0]


def test_large_images_are_compared_pooled_and_small_ones_as_they_are() -> None:
    small = torch.rand(3, 1, 8, 8)
    assert torch.equal(compared(small), small.flatten(1))
    assert compared(torch.rand(2, 3, 64, 48)).shape == (2, 3 * SIDE * SIDE)
    large = torch.rand(2, 3, 64, 64)
    pooled = compared(large)
    assert pooled.shape == (2, 3 * SIDE * SIDE)
    assert torch.allclose(pooled.view(2, 3, SIDE, SIDE).mean((2, 3)), large.mean((2, 3)), atol=1e-5)
    # the vote still tells classes apart at the pooled size: two classes of 64-pixel images, bright left or right
    images = torch.zeros(40, 1, 64, 64)
    images[:20, :, :, :32], images[20:, :, :, 32:] = 1.0, 1.0
    from sklearn.neighbors import NearestNeighbors

    labels = torch.tensor([0] * 20 + [1] * 20)
    vote = PixelVote(NearestNeighbors(n_neighbors=5).fit(compared(images).numpy()), labels)
    voted, share = vote(images[[0, 39]] + 0.1 * torch.rand(2, 1, 64, 64))
    assert voted.tolist() == [0, 1] and share.tolist() == [1.0, 1.0]
