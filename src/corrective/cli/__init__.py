"""Command line interface."""

from corrective.cli.app import app, main

__all__ = ["app", "main"]
