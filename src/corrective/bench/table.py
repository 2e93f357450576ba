"""The compact text table printed at the end of a bench: method x alpha, per manipulation."""

from __future__ import annotations

import math
from typing import Any

from corrective.bench.spec import ORACLE
from corrective.manipulations import BACKDOORS, record_settings

WIDTH = 6  # of a number column


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def label(row: dict[str, Any]) -> str:
    """The method, with its expansion (`+auto`) and a guarded selection (`[guarded]`) where they apply."""
    text = str(row["method"])
    if row.get("expand", "none") not in ("none", None) and row["method"] != row["expand"]:
        text += f"+{row['expand']}"
    if row.get("selection", "paper") not in ("paper", None):
        text += f"[{row['selection']}]"
    return text


SHORT = {"trigger_size": "trigger", "false_flags": "ff"}  # column-label names of the setting fields


def _settings(row: dict[str, Any]) -> tuple[str, ...]:
    """A column of the table: the manipulation, its size, its settings and the false-flag share."""
    return tuple(str(row.get(k)) for k in ("manipulation", "size", *record_settings(), "false_flags"))


def _label(g: tuple[str, ...], varying: set[int]) -> str:
    keys = (*record_settings(), "false_flags")
    extra = "".join(f" {SHORT.get(k, k)}={g[2 + i]}" for i, k in enumerate(keys) if 2 + i in varying)
    return f"{g[0]}@{float(g[1]):g}{extra}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """One block per (dataset, model, training): rows method x alpha, columns acc_corr / acc_retain for each
    manipulation@size, with the settings and false-flag shares that vary (and target_acc for a backdoor), in
    percent, mean over seeds. The oracle does not depend on false flags: its values fill every share's column."""
    blocks = []
    for setup in dict.fromkeys((r["dataset"], r["model"], r["training"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["model"], r["training"]) == setup]
        groups = list(dict.fromkeys(_settings(r) for r in mine if r["method"] != ORACLE))
        groups += [g for g in dict.fromkeys(_settings(r) for r in mine) if g[:-1] not in {h[:-1] for h in groups}]
        varying = {
            m: {i for i in range(2, len(g)) if len({h[i] for h in groups if h[0] == m}) > 1}
            for g in groups
            for m in [g[0]]
        }
        labels = {g: _label(g, varying[g[0]]) for g in groups}
        subs = {g: ["corr", "retain"] + (["target"] if g[0] in BACKDOORS else []) for g in groups}
        spans = {g: max(len(labels[g]), len(subs[g]) * (WIDTH + 1) - 1) for g in groups}
        name_w = max(len("method"), *(len(label(r)) for r in mine))
        lead = f"{'method':<{name_w}}  {'alpha':>5}"
        head = [lead + "".join(f"   {labels[g]:<{spans[g]}}" for g in groups)]
        head.append(
            " " * len(lead)
            + "".join("   " + " ".join(f"{s:>{WIDTH}}" for s in subs[g]).rjust(spans[g]) for g in groups)
        )
        cells = {(label(r), r["alpha"], *_settings(r)): r for r in mine}
        flat = {(r["method"], *_settings(r)[:-1]): r for r in mine if r["method"] == ORACLE}
        lines = []
        for method, alpha in dict.fromkeys((label(r), r["alpha"]) for r in mine):
            text = f"{method:<{name_w}}  {'' if method == 'oracle' else f'{alpha:g}':>5}"
            for g in groups:
                r = cells.get((method, alpha, *g)) or flat.get((method, *g[:-1])) or {}
                values = [_pct(r.get(f"acc_{s}_mean" if s != "target" else "target_acc_mean")) for s in subs[g]]
                text += "   " + " ".join(f"{v:>{WIDTH}}" for v in values).rjust(spans[g])
            lines.append(text)
        title = f"{setup[0]} / {setup[1]} / {setup[2]} training  (accuracy %, mean over seeds)"
        blocks.append("\n".join([title, *(line.rstrip() for line in head + lines)]))
    return "\n\n".join(blocks)
