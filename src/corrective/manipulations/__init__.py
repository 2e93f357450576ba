"""Manipulations of the training data: a registry (`base`), one module per manipulation, found by itself.

Adding a manipulation is one new module here that calls `register_manipulation` (see `base`); this package
imports every module in it.
"""

import importlib
import pkgutil

from corrective.manipulations.base import (
    DEFAULT_SIZE,
    REGISTRY,
    Manipulation,
    ManipulationInfo,
    Pattern,
    check_setting,
    draw_on,
    get_manipulation,
    is_list_setting,
    manipulate,
    ordered,
    record_settings,
    register_manipulation,
    setting_fields,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from corrective.manipulations.poison import CORNERS, Trigger  # noqa: E402

MANIPULATIONS: tuple[str, ...] = tuple(ordered())  # every registered name, `none` first
BACKDOORS: tuple[str, ...] = tuple(n for n, info in ordered().items() if info.backdoor)

__all__ = [
    "BACKDOORS",
    "CORNERS",
    "DEFAULT_SIZE",
    "MANIPULATIONS",
    "REGISTRY",
    "Manipulation",
    "ManipulationInfo",
    "Pattern",
    "Trigger",
    "check_setting",
    "draw_on",
    "get_manipulation",
    "is_list_setting",
    "manipulate",
    "ordered",
    "record_settings",
    "register_manipulation",
    "setting_fields",
]
