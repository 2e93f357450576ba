"""Shared fixtures: one thread per test process, small digits runs trained once per session."""

from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.data import Dataset, load_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def poison_run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    """A poisoned digits model trained briefly and saved (enough to learn the trigger)."""
    out = tmp_path_factory.mktemp("runs") / "poison"
    return api.train_run("digits", manipulation="poison", seed=0, steps=150, out=out, progress=False)


@pytest.fixture(scope="session")
def interclass_run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    out = tmp_path_factory.mktemp("runs") / "interclass"
    return api.train_run("digits", manipulation="interclass", seed=0, steps=150, out=out, progress=False)


@pytest.fixture(scope="session")
def clean_run() -> api.Run:
    """A digits model trained briefly on clean data: what a trigger does to a model without its backdoor."""
    return api.train_run("digits", manipulation="none", seed=0, steps=150, progress=False)
