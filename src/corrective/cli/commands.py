"""Imports every module that adds sub-commands to `app`."""

from corrective.cli import data, train  # noqa: F401
from corrective.cli import unlearn  # noqa: F401
