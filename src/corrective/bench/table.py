"""The compact text table printed at the end of a bench: method x alpha, per manipulation."""

from __future__ import annotations

import math
from typing import Any

WIDTH = 6  # of a number column


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def label(row: dict[str, Any]) -> str:
    """The method, with its expansion (`+auto`) and a guarded selection (`[guarded]`) where they apply."""
    text = row["method"]
    if row.get("expand", "none") not in ("none", None) and row["method"] != row["expand"]:
        text += f"+{row['expand']}"
    if row.get("selection", "paper") not in ("paper", None):
        text += f"[{row['selection']}]"
    return text


def format_table(rows: list[dict[str, Any]]) -> str:
    """One block per (dataset, model, training): rows method x alpha, columns acc_corr / acc_retain for each
    manipulation@size (and target_acc for poison), in percent, mean over seeds."""
    blocks = []
    for setup in dict.fromkeys((r["dataset"], r["model"], r["training"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["model"], r["training"]) == setup]
        groups = list(dict.fromkeys((r["manipulation"], r["size"]) for r in mine))
        subs = {g: ["corr", "retain"] + (["target"] if g[0] == "poison" else []) for g in groups}
        spans = {g: max(len(f"{g[0]}@{g[1]:g}"), len(subs[g]) * (WIDTH + 1) - 1) for g in groups}
        name_w = max(len("method"), *(len(label(r)) for r in mine))
        lead = f"{'method':<{name_w}}  {'alpha':>5}"
        head = [lead + "".join(f"   {f'{g[0]}@{g[1]:g}':<{spans[g]}}" for g in groups)]
        head.append(" " * len(lead) + "".join("   " + " ".join(f"{s:>{WIDTH}}" for s in subs[g]).rjust(spans[g])
                                              for g in groups))
        cells = {(label(r), r["alpha"], r["manipulation"], r["size"]): r for r in mine}
        lines = []
        for method, alpha in dict.fromkeys((label(r), r["alpha"]) for r in mine):
            text = f"{method:<{name_w}}  {'' if method == 'oracle' else f'{alpha:g}':>5}"
            for g in groups:
                r = cells.get((method, alpha, *g), {})
                values = [_pct(r.get(f"acc_{s}_mean" if s != "target" else "target_acc_mean")) for s in subs[g]]
                text += "   " + " ".join(f"{v:>{WIDTH}}" for v in values).rjust(spans[g])
            lines.append(text)
        title = f"{setup[0]} / {setup[1]} / {setup[2]} training  (accuracy %, mean over seeds)"
        blocks.append("\n".join([title, *(line.rstrip() for line in head + lines)]))
    return "\n\n".join(blocks)
