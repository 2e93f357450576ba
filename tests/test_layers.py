"""The layers contract: imports flow one way (corrective.layers), checked from the source on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from corrective import layers


def test_no_import_goes_up_a_layer() -> None:
    bad = layers.violations()
    assert not bad, "\n".join(bad)


def test_every_module_is_in_a_layer_and_the_graph_is_read() -> None:
    g = layers.graph()
    assert all(layers.layer_of(m) is not None for m in g)
    assert "corrective.api" in g["corrective.bench.jobs"]  # `from corrective import api` is an edge to a module
    assert "corrective.report" in g["corrective.cli.bench"]  # an import inside a function counts


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "corrective" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "corrective"


def test_an_upward_import_inside_a_function_is_caught(tmp_path: Path) -> None:
    pkg = write(
        tmp_path,
        {
            "__init__.py": "",
            "training.py": "def f():\n    from corrective.methods import base\n",
            "methods/__init__.py": "",
            "methods/base.py": "from corrective import training\nfrom . import other\n",
            "methods/other.py": "",
            "report/__init__.py": "from corrective.runs import dumps\n",
            "runs.py": "",
            "stray.py": "",
        },
    )
    bad = layers.violations(pkg)
    assert any("corrective.training (training) imports corrective.methods.base (methods)" in b for b in bad)
    assert any("corrective.report imports corrective.runs: the report reads records only" in b for b in bad)
    assert any("corrective.stray is in no layer" in b for b in bad)
    # methods -> training and the relative import inside methods are fine
    assert {b.split()[0] for b in bad} == {"corrective.training", "corrective.report", "corrective.stray"}, bad


def test_the_command_prints_every_layer_in_order() -> None:
    r = subprocess.run([sys.executable, "-m", "corrective.layers"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    names = [line.split()[1] for line in r.stdout.splitlines()[: len(layers.LAYERS)]]
    assert names == [name for name, _ in layers.LAYERS]
    assert r.stdout.strip().endswith("no upward edge")


def test_the_report_loads_without_torch() -> None:
    code = (  # every module of the report package, each view among them
        "import importlib, pkgutil, sys, corrective.report as r; "
        "mods = [importlib.import_module(f'corrective.report.{m.name}') for m in pkgutil.iter_modules(r.__path__)]; "
        "assert len(mods) >= 10, mods; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]; assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
