"""`corrective datasets`: what can be loaded, and which files each loader reads."""

from __future__ import annotations

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
        if info.download:
            extra.append("--download with torchvision")
        typer.echo(f"{name:<14}{info.files}")
        typer.echo(f"{'':<14}{'; '.join(extra)}")
