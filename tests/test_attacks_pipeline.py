"""The whole pipeline on every registered backdoor, with no special case: the bench's expansion, the guarded
selection, the relearn probe, the records' defence view (C-Acc, ASR, R-Acc, DER) and target_acc, the report."""

from __future__ import annotations

import math
from pathlib import Path

from corrective.bench import run_bench
from corrective.bench.spec import parse_spec
from corrective.bench.store import read_records
from corrective.manipulations import BACKDOORS
from corrective.names import RESULTS
from corrective.report import write_report
from corrective.report.defence import has_defence
from corrective.report.groups import build_groups
from corrective.report.records import read_results


def test_every_backdoor_runs_the_whole_pipeline(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "attacks-smoke",
            "seeds": [0],
            "alphas": [0.5],
            "steps": 40,
            "device": "cpu",
            "workers": 1,
            "relearn": True,
            "oracle": False,
            "expand": ["none", "neighbours"],
            "selection": ["guarded"],
            "manipulations": {k: [0.05] for k in BACKDOORS},
            "methods": {"none": {"grid": False}, "finetune": {"grid": False}},
        }
    )
    result = run_bench(spec, tmp_path, progress=False)
    assert not result.failed
    records = read_records(tmp_path / RESULTS)
    assert {r["manipulation"] for r in records} == set(BACKDOORS)
    for r in records:
        if r["stage"] == "expand":
            assert 0 <= r["expand_precision"] <= 1 and 0 <= r["expand_recall"] <= 1
            continue
        assert all(not math.isnan(r[m]) for m in ("attack_success", "target_acc", "c_acc", "asr", "r_acc"))
        assert "relearn_attack_success" in r and r["setting_names"]
        if r["stage"] == "unlearn":
            assert not math.isnan(r["der"]) and r["selection"] == "guarded"
    groups, _ = build_groups(read_results(tmp_path))
    assert {g.key.manipulation for g in groups} == set(BACKDOORS) and all(g.backdoor and has_defence(g) for g in groups)
    write_report(tmp_path, tmp_path / "report", fmt="md")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "no poisoning setting" not in text
    for kind in BACKDOORS:
        assert kind in text
