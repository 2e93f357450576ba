"""What a flagged sample's pixels say its class is, and the training split that teaches it: shared by the fine-tuning
bases (`finetune` and `transplant` with `relabel`).

A flagged sample's class by its pixels is the majority label of its `k` nearest unflagged samples (Euclidean, in
pixel space as the learner sees the data, before normalisation; among at most `reference` of them, drawn seeded).
Pixels, not the model's features: the model was trained on the manipulated labels, and its features put a
mislabelled sample beside the class it was taught. A label the vote contradicts with a majority (more than half of
the neighbours for one other class; more than `relabel_share` of them where a base is asked for more) is taken
for a wrong label (a dirty-label backdoor, a swapped or confused label); the sample is then taught the voted class
(`relabelled`). Images larger than SIDE pixels a side are
compared average-pooled to SIDE (a reference of 10,000 224-pixel RGB images would hold 6 GB; an image's class
survives the pooling). A label the vote confirms (a clean-label trigger such as SIG, a false flag, a clean sample
the expansion took in), or a vote without a majority, leaves the sample out of the fine-tuning set, as plain
fine-tuning does: kept under its label a SIG sample would teach the trigger again, and a plurality of a few
neighbours names a third class too often (digits interclass, pixel neighbours: 5 of 29 plurality relabels wrong at
alpha 0.5, 2 of 26 majority ones). `keep_confirmed` (off by default) keeps the confirmed ones in under their label
instead: it spares a class whose clean samples a wide expansion took in (Fashion-MNIST WaNet seed 1: the guard kept
instead of the original returned) but cost elsewhere (digits attacks 2.7 -> 4.1 % attack success, Fashion-MNIST
blended seed 0 returned the original; benchmarks/results/transplant.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from corrective import seeds
from corrective.data.base import Split
from corrective.data.batches import Pipeline
from corrective.methods.base import UnlearnTask

READ_CHUNK = 1024  # images read at a time
MAJORITY = 0.5  # by default a flagged sample is relabelled only where more than this share of its neighbours agree
UNDECIDED = -1  # the vote of a sample whose neighbours have no majority
SIDE = 32  # images are compared at most this many pixels a side (larger ones average-pooled down to it)


def pixel_chunks(split: Split, pipeline: Pipeline, positions: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """(positions, pixels on the CPU) of `positions` in chunks of READ_CHUNK, read as every pass reads a split
    (`Split.image_batches`: a streamed split one chunk at a time, by its worker processes where it has them)."""
    chunks = list(positions.to(split.y.device).split(READ_CHUNK))
    for pos, images in zip(chunks, split.image_batches(chunks), strict=True):
        yield pos, pipeline.pixels(split, pos, images=images).cpu()


def pixels_of(split: Split, pipeline: Pipeline, positions: Tensor) -> Tensor:
    return torch.cat([x for _, x in pixel_chunks(split, pipeline, positions)])


def compared(pixels: Tensor) -> Tensor:
    """(n, features) of (n, C, H, W) images as the vote compares them: flattened, pooled to SIDE a side where
    larger (an image smaller than that is compared as it is)."""
    if max(pixels.shape[-2:]) > SIDE:
        pixels = torch.nn.functional.adaptive_avg_pool2d(
            pixels.float(), (min(SIDE, pixels.shape[-2]), min(SIDE, pixels.shape[-1]))
        )
    return pixels.flatten(1)


def compared_of(split: Split, pipeline: Pipeline, positions: Tensor) -> Tensor:
    """`compared` pixels of `positions`, chunk by chunk (a large image is pooled before the next chunk is read)."""
    return torch.cat([compared(x) for _, x in pixel_chunks(split, pipeline, positions)])


@dataclass
class PixelVote:
    """The nearest-neighbour search over a seeded reference of unflagged samples, and their labels."""

    search: Any  # sklearn.neighbors.NearestNeighbors, fitted
    labels: Tensor  # the reference samples' given labels (CPU)

    def __call__(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """The most frequent label among each image's nearest reference samples ((n, C, H, W) pixels, CPU), and
        the share of the neighbours that hold it."""
        near = self.labels[torch.from_numpy(self.search.kneighbors(compared(pixels).numpy(), return_distance=False))]
        top = near.mode(1).values
        return top, (near == top.unsqueeze(1)).float().mean(1)

    def on(self, split: Split, pipeline: Pipeline, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The vote (labels, shares) on the samples of `split` at `positions`, read and voted chunk by chunk."""
        labels, shares = zip(*(self(x) for _, x in pixel_chunks(split, pipeline, positions)), strict=True)
        return torch.cat(labels), torch.cat(shares)


def majority(labels: Tensor, share: Tensor, at: float = MAJORITY) -> Tensor:
    """The voted labels where more than `at` of the neighbours hold them (a majority by default), UNDECIDED
    elsewhere."""
    return torch.where(share > at, labels, torch.full_like(labels, UNDECIDED))


def unflagged_positions(task: UnlearnTask) -> Tensor:
    rest = torch.ones(len(task.train), dtype=torch.bool, device=task.train.y.device)
    rest[task.train.positions_of(task.forget_ids)] = False
    return rest.nonzero().squeeze(1)


def vote_among(
    train: Split, pipeline: Pipeline, others: Tensor, k: int, reference: int, gen: torch.Generator
) -> PixelVote | None:
    """The vote over at most `reference` of the samples at positions `others`, drawn by `gen` (None where there is
    none)."""
    from sklearn.neighbors import NearestNeighbors

    if len(others) == 0:
        return None
    ref = others[torch.randperm(len(others), generator=gen)[:reference].to(others.device)]
    search = NearestNeighbors(n_neighbors=min(k, len(ref)))
    search.fit(compared_of(train, pipeline, ref).numpy())
    return PixelVote(search, train.y[ref].cpu())


def pixel_vote(task: UnlearnTask, k: int, reference: int) -> PixelVote | None:
    """The vote over at most `reference` unflagged samples (None where every sample is flagged)."""
    gen = task.generator(seeds.salt("votes", "reference"))
    return vote_among(task.train, task.pipeline, unflagged_positions(task), k, reference, gen)


def contradicted(
    train: Split, pipeline: Pipeline, ids: Tensor, k: int = 10, reference: int = 10_000, seed: int = 0
) -> Tensor:
    """For each sample of `ids` (in the order they hold in `train`): do its pixel neighbours among the other samples
    name another class by a majority? A label the pixels contradict (a dirty-label backdoor, a swapped label);
    ordinary samples of a class (and a clean-label backdoor's) have theirs confirmed."""
    mine = torch.isin(train.ids.cpu(), ids.cpu()).to(train.y.device)
    gen = torch.Generator().manual_seed(seeds.derive(seed, seeds.salt("votes", "describe")))
    vote = vote_among(train, pipeline, (~mine).nonzero().squeeze(1), k, reference, gen)
    positions = mine.nonzero().squeeze(1)
    if vote is None:
        return torch.zeros(len(positions), dtype=torch.bool)
    voted = majority(*vote.on(train, pipeline, positions))
    return (voted != UNDECIDED) & (voted != train.y[positions].cpu())


def flagged_vote(task: UnlearnTask, k: int, reference: int) -> tuple[Tensor, Tensor]:
    """Each flagged sample's most frequent label among its pixel neighbours and the share of them that hold it
    (`majority` decides); its given label, held by all, where every sample is flagged (no neighbour to ask:
    `relabelled` then leaves every flagged sample out)."""
    flagged = task.train.positions_of(task.forget_ids)
    vote = pixel_vote(task, k, reference)
    if vote is None:
        return task.train.y[flagged].cpu(), torch.ones(len(flagged))
    return vote.on(task.train, task.pipeline, flagged)


PROBE_LABELS = 4  # the probe runs where the flags' votes confuse at most this many labels (a confusion of a few
# classes; random label noise spreads over all of them, and the probe over every sample would cost a training's share)
PROBE_SHARE = 0.2  # a label change counts where at least this share of the changed votes show it (digits interclass
# 3 <-> 8: each ~40 %; the pixel vote's strays, 3 or 8 -> 1, 5, 7, 9: 2-10 % each)
PROBE_COVER = 0.35  # and the changes that count must hold at least this share of the changed votes together: two
# changes (a pair confused both ways, a target confused with two sources) or one that a third of the votes show, not
# one source among many just past PROBE_SHARE. A dirty-label backdoor's flags name their many source classes: digits
# blended 5 % 0.20-0.30 (one source), where a probe over the target and that source took clean samples of both into
# the forget set (seed 2, alpha 0.5: every transplant candidate lost two validation samples of a class, and
# fine-tuning's fallback left 59 % attack success); WaNet 0.45-0.54 and 1 % 0.50 (two sources; the probe lowered
# its attack success there); interclass 3 <-> 8 0.85-0.97; Fashion-MNIST T-shirt/Shirt 0.42-0.47
# (benchmarks/results/attacks.md, harm_targets.md "The probe's cover")
PROBE_FOLDS = 5


def confused_labels(train: Split, flagged: Tensor, content: Tensor) -> Tensor:
    """The labels the flags' votes (`content`, from `majority`) show confused: both labels of every change (given
    label -> the class the neighbours name) that at least PROBE_SHARE of the changed votes show, where those changes
    hold at least PROBE_COVER of the changed votes together (sorted; empty where no vote names another class, or
    the changes spread over many classes)."""
    given = train.y[flagged].cpu()
    changed = (content != UNDECIDED) & (content != given)
    pairs, counts = torch.stack([given[changed], content[changed]], 1).unique(dim=0, return_counts=True)
    n_changed = int(changed.sum())
    kept = counts >= PROBE_SHARE * n_changed
    if int(counts[kept].sum()) < PROBE_COVER * n_changed:
        return torch.zeros(0, dtype=torch.long)
    labels: Tensor = pairs[kept].flatten().unique()
    return labels


@contextmanager
def solver_quiet() -> Iterator[None]:
    """The probe's solver stopping short of its tolerance says nothing to the user: a boundary near convergence
    still sorts the samples."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@dataclass(frozen=True)
class LabelPixels:
    """The `compared` pixels (numpy, read once) of every training sample given one of `labels`, at `positions`."""

    labels: Tensor
    positions: Tensor  # (n,) CPU, ascending
    pixels: Any  # (n, D) numpy
    row: Tensor  # position in the training split -> row of `pixels` (-1: another label)

    @classmethod
    def of(cls, task: UnlearnTask, labels: Tensor) -> LabelPixels:
        y = task.train.y.cpu()
        positions = torch.isin(y, labels.cpu()).nonzero().squeeze(1)
        pixels = compared_of(task.train, task.pipeline, positions.to(task.train.y.device)).numpy()
        row = torch.full((len(y),), -1, dtype=torch.long)
        row[positions] = torch.arange(len(positions))
        return cls(labels.cpu(), positions, pixels, row)

    def at(self, positions: Tensor) -> Any:
        """The pixels of `positions` (all of them given one of the labels)."""
        return self.pixels[self.row[positions.cpu()].numpy()]


def pixel_probe(given: Tensor) -> Any:
    """A linear probe (an unfitted logistic regression) for samples with the `given` labels, or None where a label
    has fewer than PROBE_FOLDS of them."""
    from sklearn.linear_model import LogisticRegression

    if len(given.unique()) < 2 or int(given.unique(return_counts=True)[1].min()) < PROBE_FOLDS:
        return None
    return LogisticRegression(max_iter=1000)


def probe_contradicted(task: UnlearnTask, pool: LabelPixels, exclude: Tensor) -> Tensor:
    """Positions of the training samples labelled one of `pool.labels` (but those at positions `exclude`) that a
    linear probe on their pixels (`pixel_probe`), fitted on the others of those samples (PROBE_FOLDS folds, seeded),
    assigns to another of the labels: samples of a confusion the flags show that the flagged set missed. Out of fold,
    a linear model cannot memorise the sample it is asked about (the trained model did: its features sit a relabelled
    sample beside the class it was taught). Empty where a label has fewer than PROBE_FOLDS such samples."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    positions = pool.positions[~torch.isin(pool.positions, exclude.cpu())]
    given = task.train.y.cpu()[positions]
    probe = pixel_probe(given)
    if probe is None:
        return torch.zeros(0, dtype=torch.long)
    folds = StratifiedKFold(
        PROBE_FOLDS, shuffle=True, random_state=seeds.derive(task.seed, seeds.salt("votes", "probe_folds"))
    )
    with solver_quiet():
        predicted = cross_val_predict(probe, pool.at(positions), given.numpy(), cv=folds)
    return positions[torch.from_numpy(predicted != given.numpy())]


def probed(
    task: UnlearnTask, flagged: Tensor, content: Tensor, k: int, reference: int, at: float = MAJORITY
) -> tuple[Tensor, Tensor]:
    """The flagged positions and their votes (`content`, from `majority`), widened and checked by a linear probe on
    pixels where the votes show a confusion of 2 to PROBE_LABELS labels (`confused_labels`; otherwise as given):

    1. the samples of those labels that the probe assigns out of fold to another of them (`probe_contradicted`) join
       the flagged ones, with their own votes among the samples neither flagged nor found (more than `at`);
    2. a sample of those labels keeps a vote for another class only where the probe, fitted on the samples of those
       labels neither flagged nor found, names the same class; otherwise it is left out (UNDECIDED).

    Two views must agree on a relabel: the pixel neighbours (local) and the probe (one linear boundary). On digits
    interclass (3 <-> 8, 10 seeds, alpha 0.1, 610 manipulated samples) the neighbours alone, on the widened set,
    taught 498 manipulated samples their class and 65 samples a wrong one; with the probe's agreement 495 and 3
    (benchmarks/results/harm_targets.md). The labels' pixels are read once for both probes."""
    labels = confused_labels(task.train, flagged, content)
    if not 2 <= len(labels) <= PROBE_LABELS:
        return flagged, content
    pool = LabelPixels.of(task, labels)
    found = probe_contradicted(task, pool, flagged).to(flagged.device)
    rest = torch.ones(len(task.train), dtype=torch.bool, device=flagged.device)
    rest[torch.cat([flagged, found])] = False
    if len(found):
        gen = task.generator(seeds.salt("votes", "reference"))
        vote = vote_among(task.train, task.pipeline, rest.nonzero().squeeze(1), k, reference, gen)
        voted = (
            majority(*vote.on(task.train, task.pipeline, found), at)
            if vote is not None
            else torch.full((len(found),), UNDECIDED)
        )
        flagged, content = torch.cat([flagged, found]), torch.cat([content, voted])
    y = task.train.y.cpu()
    fit = pool.positions[rest.cpu()[pool.positions]]
    probe = pixel_probe(y[fit])
    if probe is None:
        return flagged, content
    with solver_quiet():
        probe.fit(pool.at(fit), y[fit].numpy())
    inside = torch.isin(y[flagged.cpu()], labels)
    named = content.clone()
    named[inside] = torch.from_numpy(probe.predict(pool.at(flagged.cpu()[inside]))).to(named.dtype)
    return flagged, torch.where(inside & (content != named), torch.full_like(content, UNDECIDED), content)


def confirmed(train: Split, flagged: Tensor, content: Tensor) -> Tensor:
    """Which flagged samples (positions `flagged`) their neighbours vote (`content`) for their given label: a bool
    mask over `flagged`, on its device."""
    return (content == train.y[flagged].cpu()).to(flagged.device)


def relabelled(train: Split, flagged: Tensor, content: Tensor, keep_confirmed: bool = False) -> Split:
    """The training split without the flagged samples, except those whose neighbours vote (`content`, from
    `majority`) for another class than their given label, which stay under the voted class (their images as
    given, their own trigger included), and with `keep_confirmed` those whose neighbours vote for their given label,
    which stay under it. Only the undecided ones leave then."""
    changed = ((content != UNDECIDED) & (content != train.y[flagged].cpu())).to(flagged.device)
    stays = (changed | confirmed(train, flagged, content)) if keep_confirmed else changed
    y = train.y.clone()
    y[flagged[changed]] = content.to(y.device)[changed.to(y.device)]
    return train.with_labels(y).without(train.ids[flagged[~stays]])
