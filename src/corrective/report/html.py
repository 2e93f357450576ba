"""The document as one self-contained HTML page: inline CSS, plots as base64 PNG, no script, no external asset."""

from __future__ import annotations

import base64
from html import escape

from corrective.report.document import Document, Figure, Section, Table

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d1d1f; margin: 0 auto;
       max-width: 1320px; padding: 18px 28px 60px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 20px; margin-top: 36px; border-bottom: 2px solid #ddd; }
h3 { font-size: 16px; margin-top: 32px; border-bottom: 1px solid #e4e4e4; padding-bottom: 3px; }
h4 { font-size: 14px; margin: 20px 0 6px; }
.facts { color: #555; margin: 0 0 10px; padding-left: 18px; } .notes { color: #6a4b00; }
nav { background: #f6f6f8; border: 1px solid #e3e3e8; padding: 8px 14px; border-radius: 6px; font-size: 13px; }
nav a { margin-right: 14px; white-space: nowrap; }
table { border-collapse: collapse; margin: 4px 0 6px; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d9d9de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f4; } .l { text-align: left; } tr.sep td { border-top: 2px solid #b8b8c0; }
tr:nth-child(even) td { background: #fafafb; }
td.bound { font-style: italic; color: #555; } td.hole { color: #a33; background: #fdf1f1 !important; }
td.warn { color: #9a3400; background: #fff1d6 !important; font-weight: 600; }
.tnote { color: #555; font-size: 12px; margin: 0 0 4px; max-width: 1100px; }
.warning { background: #fff4db; border-left: 4px solid #e39b00; padding: 8px 12px; margin: 10px 0;
           max-width: 1100px; }
figure { margin: 10px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; max-width: 1100px; }
.scroll { overflow-x: auto; }
"""


def cell_html(text: str, classes: list[str]) -> str:
    cls = " ".join(c for c in classes if c)
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def table_html(t: Table) -> str:
    head = "".join(
        f'<th class="l">{escape(h)}</th>' if i in t.text_cols else f"<th>{escape(h)}</th>"
        for i, h in enumerate(t.header)
    )
    body = "".join(
        ('<tr class="sep">' if i in t.breaks else "<tr>")
        + "".join(cell_html(c.text, ["l" if j in t.text_cols else "", c.cls]) for j, c in enumerate(row))
        + "</tr>\n"
        for i, row in enumerate(t.rows)
    )
    notes = "".join(f'<p class="tnote">{escape(n)}</p>' for n in t.notes)
    return (
        f'<h4>{escape(t.title)}</h4>\n<div class="scroll"><table><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}</tbody></table></div>\n{notes}\n"
    )


def section_html(s: Section) -> str:
    parts = [f'<h{s.level} id="{s.anchor}">{escape(s.title)}</h{s.level}>']
    parts += [f'<div class="warning">{escape(w)}</div>' for w in s.warnings]
    for item in s.items:
        if isinstance(item, Table):
            parts.append(table_html(item))
        elif isinstance(item, Figure):
            data = base64.b64encode(item.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{escape(item.name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(item.caption)}</figcaption></figure>"
            )
        else:
            parts.append(f"<p>{escape(item)}</p>")
    return "\n".join(parts) + "\n"


def render_html(doc: Document, generated: str) -> str:
    nav = "\n".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in doc.sections)
    facts = "".join(f"<li>{escape(f)}</li>" for f in [f"generated {generated}"] + doc.facts)
    notes = "".join(f'<li class="notes">{escape(n)}</li>' for n in doc.notes)
    body = "".join(section_html(s) for s in doc.sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{escape(doc.title)}</title>\n'
        f"<style>{CSS}</style></head>\n<body>\n<h1>{escape(doc.title)}</h1>\n"
        f'<ul class="facts">{facts}{notes}</ul>\n<nav>{nav}</nav>\n{body}</body></html>\n'
    )
