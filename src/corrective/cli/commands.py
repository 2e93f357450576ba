"""Imports every module that adds sub-commands to `app`."""

from corrective.cli import data, train, unlearn  # noqa: F401
