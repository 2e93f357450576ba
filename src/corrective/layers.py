"""The layers of the package and the one direction of its imports, checked from the source.

A module may import modules of its own layer and of the layers before it, never of a later one.
Every import counts: module-level, inside functions, under `if TYPE_CHECKING`. The report reads
records only: besides itself it imports nothing but `REPORT_MAY_IMPORT` (and so never torch).

    python -m corrective.layers     # prints each layer with what it imports; exit status 1 on an upward edge

`tests/test_layers.py` runs the same check in CI. This module imports nothing of the package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# In import order: each layer builds only on the ones before it (docs/design.md).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "corrective",
            "corrective.errors",
            "corrective.layers",
            "corrective.names",
            "corrective.progress",
            "corrective.registry",
            "corrective.runs",
            "corrective.seeds",
            "corrective.settings",
        ),
    ),
    ("data", ("corrective.data",)),
    ("manipulations", ("corrective.manipulations",)),
    ("models", ("corrective.models",)),
    ("training", ("corrective.training",)),
    ("metrics", ("corrective.metrics",)),
    ("expand", ("corrective.expand",)),
    ("methods", ("corrective.methods",)),
    ("api", ("corrective.api",)),
    ("bench", ("corrective.bench",)),
    ("report", ("corrective.report",)),
    ("cli", ("corrective.cli", "corrective.__main__")),
)
REPORT_MAY_IMPORT = ("corrective", "corrective.errors", "corrective.names")
# The package root re-exports the practitioner's entry point (`corrective.fix`) lazily, inside a PEP 562
# `__getattr__`, so `import corrective` stays light: its one allowed upward edge.
ROOT_EXPORTS = ("corrective.api.practitioner",)

ROOT = Path(__file__).resolve().parent


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every `corrective` module `path` imports, wherever the import statement sits."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from corrective import api` imports the module corrective.api
            found.update(
                f"{target}.{a.name}"
                for a in node.names
                if (root.parent / target.replace(".", "/") / a.name).with_suffix(".py").exists()
                or (root.parent / target.replace(".", "/") / a.name / "__init__.py").exists()
            )
    return {m for m in found if m == "corrective" or m.startswith("corrective.")}


def layer_of(module: str) -> int | None:
    """Index of the layer holding `module` (its longest matching package), None if no layer names it."""
    best: tuple[int, int] | None = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (p != "corrective" and module.startswith(p + "."))  # the root: itself only
            if inside and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (itself left out)."""
    return {module_name(p, root): imports_of(p, root) - {module_name(p, root)} for p in sorted(root.rglob("*.py"))}


def violations(root: Path = ROOT) -> list[str]:
    """One line per import against the layers (or the report's contract), and per module outside every layer."""
    bad = []
    for module, targets in graph(root).items():
        mine = layer_of(module)
        if mine is None:
            bad.append(f"{module} is in no layer: add it to corrective.layers.LAYERS")
            continue
        for t in sorted(targets):
            theirs = layer_of(t)
            if theirs is None:
                bad.append(f"{module} imports {t}, which is in no layer")
            elif theirs > mine and not (module == "corrective" and t in ROOT_EXPORTS):
                bad.append(f"{module} ({LAYERS[mine][0]}) imports {t} ({LAYERS[theirs][0]}): an upward edge")
            elif LAYERS[mine][0] == "report" and layer_of(t) != mine and t not in REPORT_MAY_IMPORT:
                bad.append(f"{module} imports {t}: the report reads records only ({', '.join(REPORT_MAY_IMPORT)})")
    return bad


def describe(root: Path = ROOT) -> str:
    """Each layer, in order, with the layers its modules import."""
    edges: dict[int, set[int]] = {i: set() for i in range(len(LAYERS))}
    present: set[int] = set()
    for module, targets in graph(root).items():
        mine = layer_of(module)
        if mine is None:
            continue
        present.add(mine)
        edges[mine].update(x for t in targets if (x := layer_of(t)) is not None and x != mine)
    lines = []
    for i, (name, _) in enumerate(LAYERS):
        uses = ", ".join(LAYERS[j][0] for j in sorted(edges[i])) or "-"
        lines.append(f"{i:2d} {name:<14} imports {uses}" + ("" if i in present else "  (not in this tree yet)"))
    return "\n".join(lines)


def main() -> int:
    print(describe())
    bad = violations()
    for line in bad:
        print(line)
    print(f"{len(bad)} import(s) against the layers" if bad else "no upward edge")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
