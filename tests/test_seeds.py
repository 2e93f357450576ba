"""The table of seed salts: one per purpose, and the run-wide draws apart from every owner's."""

from __future__ import annotations

import ast
from pathlib import Path

from corrective import seeds

SRC = Path(__file__).resolve().parents[1] / "src" / "corrective"


def test_each_owner_has_a_salt_per_purpose_apart_from_the_run_wide_draws() -> None:
    run_wide = set(seeds.SALTS["run"].values())
    assert len(run_wide) == len(seeds.SALTS["run"])
    for owner, salts in seeds.SALTS.items():
        assert len(set(salts.values())) == len(salts), f"{owner}: two purposes share a salt"
        if owner != "run":
            assert not run_wide & set(salts.values()), f"{owner} shares a salt with a run-wide draw"
    assert max(v for salts in seeds.SALTS.values() for v in salts.values()) < seeds.STRIDE


def test_no_source_file_writes_the_stride_or_a_salt_constant_of_its_own() -> None:
    """Seeds are derived in one place: no `* 1_000_003` and no `*_SALT = n` outside seeds.py."""
    for path in SRC.rglob("*.py"):
        if path.name == "seeds.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == seeds.STRIDE:
                raise AssertionError(f"{path}: writes the seed stride; use corrective.seeds.derive")
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                assert not any(n.endswith("SALT") for n in names), f"{path}: {names} (name it in corrective.seeds)"


def test_derive_keeps_the_seeds_results_had() -> None:
    assert seeds.derive(3, seeds.salt("scrub", "batches")) == 3 * 1_000_003 + 2
    assert seeds.salt("bad_teacher", "incompetent_teacher") == 7_919  # BadT's results unchanged
