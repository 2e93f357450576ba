"""Imports every module that adds sub-commands to `app`."""

from corrective.cli import bench, data, expand, fix, report, train, unlearn  # noqa: F401
