"""Settings dataclasses filled from user overrides (methods' and expansion strategies'): checked keys and types."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any, get_type_hints

from corrective.errors import UserError


def build_settings(cls: type, overrides: dict[str, Any] | None, owner: str) -> Any:
    """`cls` (a frozen dataclass with defaults) with `overrides` applied; `owner` names it in errors."""
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in known:
            hint = f" (did you mean {key}_?)" if f"{key}_" in known else ""
            raise UserError(f"{owner} has no setting {key!r}{hint}; its settings: {', '.join(known) or 'none'}")
        values[key] = coerce(owner, key, value, hints[key])
    try:
        return cls(**values)
    except ValueError as e:
        raise UserError(f"{owner}: {e}") from None


def coerce(owner: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as the setting's declared type (int, float, bool or str), or a clear error."""
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if type(None) in args and len(args) == 2:  # `X | None`
        hint = next(a for a in args if a is not type(None))
    target = hint if hint in (int, float, bool, str) else None
    if target is None:
        return value
    if target is bool and isinstance(value, bool):
        return value
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if target is str and isinstance(value, str):
        return value
    raise UserError(f"{owner}: setting {key}={value!r} must be {target.__name__}")
