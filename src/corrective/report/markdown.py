"""The document as Markdown: pipe tables, and plots as PNG files beside it (Markdown cannot embed them portably)."""

from __future__ import annotations

from corrective.report.document import Document, Figure, Section, Table


def cell_md(text: str, cls: str) -> str:
    text = text.replace("|", "\\|")
    return f"**{text}**" if cls == "warn" and text else text


def table_md(t: Table) -> str:
    lines = [
        "| " + " | ".join(t.header) + " |",
        "|" + "|".join(":---" if i in t.text_cols else "---:" for i in range(len(t.header))) + "|",
    ]
    lines += ["| " + " | ".join(cell_md(c.text, c.cls) for c in row) + " |" for row in t.rows]
    return "\n\n".join([f"**{t.title}**", "\n".join(lines)] + [f"_{n}_" for n in t.notes])


def section_md(s: Section, figure_dir: str) -> str:
    parts = ["#" * s.level + " " + s.title]
    parts += [f"> **{w}**" for w in s.warnings]
    for item in s.items:
        if isinstance(item, Table):
            parts.append(table_md(item))
        elif isinstance(item, Figure):
            parts.append(f"![{item.name}]({figure_dir}/{item.name}.png)\n\n_{item.caption}_")
        else:
            parts.append(item)
    return "\n\n".join(parts)


def render_md(doc: Document, generated: str, figure_dir: str = "figures") -> str:
    head = [f"# {doc.title}", "\n".join(f"- {f}" for f in [f"generated {generated}"] + doc.facts + doc.notes)]
    return "\n\n".join(head + [section_md(s, figure_dir) for s in doc.sections]) + "\n"
