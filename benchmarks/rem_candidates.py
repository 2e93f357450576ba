"""Every REM candidate of a bench's records side by side: per cell (manipulation, training, seed, alpha, expansion)
and REM setting, the test figures and seconds — for specs whose REM grid compares budgets (e.g.
`benchmarks/fashion_rem_epochs.toml`), where the selected record alone would hide one of them.

    python benchmarks/rem_candidates.py DIR/results.jsonl     (or a results.jsonl.gz)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from corrective.bench.store import read_records

SHOWN = ("repair_epochs", "budget", "drop_share")  # the settings that name a candidate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path)
    records = read_records(ap.parse_args().records)
    rems = [r for r in records if r.get("method") in ("rem", "rem_ideal") and r.get("stage") == "unlearn"]
    print(
        "| manipulation | training | seed | alpha | expansion | setting | acc_corr | attack success | target_acc "
        "| clean_acc | lowest class | seconds |"
    )
    print("|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    key = ("manipulation", "training", "seed", "alpha", "expand")
    for r in sorted(rems, key=lambda r: tuple(str(r.get(k)) for k in key)):
        for c in r["candidates"]:
            shown = [k for k in SHOWN if c["settings"].get(k) is not None]
            if "repair_epochs" in shown:  # it replaces the budget
                shown.remove("budget")
            setting = ", ".join(f"{k} {c['settings'][k]}" for k in shown)
            poison = c.get("attack_success") is not None
            cells = [
                str(r["manipulation"]),
                str(r["training"]),
                str(r["seed"]),
                f"{r['alpha']:g}",
                str(r.get("expand", "none")),
                setting,
                f"{100 * c['acc_corr']:.1f}",
                f"{100 * c['attack_success']:.1f}" if poison else "",
                f"{100 * c['target_acc']:.1f}" if poison and c.get("target_acc") is not None else "",
                f"{100 * c['clean_acc']:.1f}",
                f"{100 * min(c['per_class_acc']):.1f}",
                f"{c['unlearn_seconds']:.0f}",
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
