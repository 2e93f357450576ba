"""The compact text table printed at the end of a bench: method x alpha, per manipulation."""

from __future__ import annotations

import math
from typing import Any


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _cell(i: int, text: str, width: int) -> str:
    return text.rjust(width) if i > 1 else text.ljust(width)


def format_table(rows: list[dict[str, Any]]) -> str:
    """One block per (dataset, model, training): rows method x alpha, columns acc_corr/acc_retain for each
    manipulation@size (and target_acc for poison), in percent, mean over seeds."""
    blocks = []
    for setup in dict.fromkeys((r["dataset"], r["model"], r["training"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["model"], r["training"]) == setup]
        columns = list(dict.fromkeys((r["manipulation"], r["size"]) for r in mine))
        header, sub = ["method", "alpha"], ["", ""]
        for kind, size in columns:
            names = ["corr", "retain"] + (["target"] if kind == "poison" else [])
            header += [f"{kind}@{size:g}"] + [""] * (len(names) - 1)
            sub += names
        lines = [header, sub]
        cells = {(r["method"], r["alpha"], r["manipulation"], r["size"]): r for r in mine}
        for method, alpha in dict.fromkeys((r["method"], r["alpha"]) for r in mine):
            line = [method, "" if method == "oracle" else f"{alpha:g}"]
            for kind, size in columns:
                r = cells.get((method, alpha, kind, size), {})
                line += [_pct(r.get("acc_corr_mean")), _pct(r.get("acc_retain_mean"))]
                if kind == "poison":
                    line.append(_pct(r.get("target_acc_mean")))
            lines.append(line)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        title = f"{setup[0]} / {setup[1]} / {setup[2]} training  (accuracy %, mean over seeds)"
        body = ["  ".join(_cell(i, c, w) for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                for line in lines]
        blocks.append("\n".join([title, *body]))
    return "\n\n".join(blocks)
