"""Expansion on every backdoor: train each on digits and expand S_f with each strategy; precision/recall of S_m.

One JSON line per (attack, seed): the original's attack success and clean accuracy, then for each alpha and
strategy (precision, recall, the strategy `auto` chose) of the whole expanded set against S_m. S_m is known
here only because this is a benchmark; no strategy sees it.

    .venv/bin/python benchmarks/attacks_expand.py SEED [ATTACK ...]   # digits, default training (400 steps)
"""

from __future__ import annotations

import json
import sys

import torch

from corrective import api
from corrective.metrics import expansion_quality

# 8x8 digits: WaNet's s = 0.5 moves pixels by a quarter of one and SIG's 20/255 sinusoid is too faint to
# install a backdoor (10 % and 0 % attack success); these settings do (docs/protocol.md).
SETTINGS: dict[str, dict[str, float]] = {
    "poison": {},
    "blended": {},
    "wanet": {"strength": 2.0},
    "sig": {"delta": 0.4, "test_delta": 0.6},
}
STRATEGIES = ("neighbours", "label_noise", "classifier", "gradients", "auto")


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    seed = int(argv[0])
    for kind in argv[1:] or list(SETTINGS):
        run = api.train_run(
            "digits", manipulation=kind, seed=seed, progress=False, manipulation_settings=SETTINGS[kind]
        )
        row: dict[str, object] = {"kind": kind, "seed": seed, "asr": run.metrics["attack_success"]}
        row["clean"] = run.metrics["clean_acc"]
        for alpha in (0.1, 0.5):
            for strategy in STRATEGIES:
                exp = api.expand_run(run, alpha, strategy, progress=False)
                q = expansion_quality(exp.ids, run.manipulation.forget_ids(alpha), run.manipulation.ids)
                row[f"{strategy}@{alpha}"] = (round(q["expand_precision"], 2), round(q["expand_recall"], 2), exp.chosen)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
