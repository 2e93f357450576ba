"""Imports every module that adds sub-commands to `app`."""

from corrective.cli import bench, data, train  # noqa: F401
