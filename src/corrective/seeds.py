"""Every seeded draw beyond a run's seed, named once: the table of salts and how a seed is derived from them.

A draw that needs a stream of its own takes the seed `derive(seed, salt) = seed * STRIDE + salt` of its run's
seed (a CPU `torch.Generator`, or a model's initialisation). No file writes a salt as a number: it asks
`salt(owner, purpose)`. The rule (`tests/test_seeds.py`): an owner's purposes have salts of their own, and
none takes a salt of the run-wide draws (`"run"`), which meet every owner's draws in one run. Different
owners may share values (SCRUB's batches and REM's repair batches both use 2): their draws never meet.

Changed in issue 21: the false flags' salt was 7_919, the value BadT's incompetent teacher has had since the
methods landed (one value, two purposes, both in a run with false flags); it is 7_927 now, so false flags
drawn since differ from earlier ones. Every other salt kept its value, and so its seeded results.
"""

from __future__ import annotations

STRIDE = 1_000_003  # a prime above every salt: seed * STRIDE + salt never meets another seed's draw

SALTS: dict[str, dict[str, int]] = {
    # methods (`UnlearnTask.generator(salt)`)
    "bad_teacher": {"batches": 1, "incompetent_teacher": 7_919},  # batches over S_tr; the random teacher's init
    "npo": {"batches": 1},  # over S_f
    "rem": {"flush_batches": 1, "repair_batches": 2},  # over S_f; over S_tr
    "scrub": {"batches": 2},  # the alternating passes over S_f and D_r
    "ssd": {"forget_batches": 11, "retain_batches": 12},  # importance_batches="augmented" only
    "finetune": {"resume_batches": 1},  # the batches of a candidate that resumes the previous one (`resume`)
    "transplant": {"stamp": 2, "response": 3, "random_image": 4, "resume_batches": 5},  # who is stamped; the
    # response's samples, its control; a resumed candidate's batches
    "votes": {"reference": 1, "describe": 2, "probe_folds": 3},  # the pixel vote's reference samples (fine-tuning's
    # relabel, the transplant's); those `api.describe_flags` asks; the folds of the confused labels' probe
    # manipulations (`manipulations.base.generator`; salt 0 is the run's seed itself: which samples are taken)
    "manipulation": {"samples": 0},
    "blended": {"samples": 0, "pattern": 1},
    "wanet": {"samples": 0, "field": 1, "noise": 2},
    # run-wide: drawn once per run, seen by every method
    "run": {"false_flags": 7_927, "relearn_probe": 104_729},
}


def salt(owner: str, purpose: str) -> int:
    """The salt of `owner`'s draw `purpose` (a key of SALTS)."""
    return SALTS[owner][purpose]


def derive(seed: int, salt: int) -> int:
    """The seed of the draw with salt `salt` of run seed `seed`."""
    return seed * STRIDE + salt
