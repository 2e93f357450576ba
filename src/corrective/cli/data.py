"""`corrective datasets`: what can be loaded, and which files each loader reads."""

from __future__ import annotations

from pathlib import Path

import typer

from corrective.cli.app import app
from corrective.data import DATASETS


@app.command()
def datasets() -> None:
    """List the datasets with the files each expects and its default model."""
    for name, info in sorted(DATASETS.items()):
        extra = [f"model {info.model}"]
        if info.interclass:
            extra.append(f"interclass {info.interclass[0]},{info.interclass[1]}")
        if info.system_roots:
            found = "found" if any(Path(p).is_dir() for p in info.system_roots) else "not installed"
            extra.append(f"also read from {', '.join(info.system_roots)} ({info.system_package}: {found})")
        if info.download:
            extra.append("--download with torchvision")
        typer.echo(f"{name:<14}{info.files}")
        typer.echo(f"{'':<14}{'; '.join(extra)}")
