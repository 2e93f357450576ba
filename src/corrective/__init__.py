"""Corrective machine unlearning for PyTorch image classifiers.

`corrective.fix(model, train=..., flagged=..., held_out=...)` corrects any classifier (`corrective.api.practitioner`);
it and `Recipe` are imported on first use, so `import corrective` alone loads neither torch nor the package.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["FixResult", "Recipe", "fix"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import corrective.api.practitioner as practitioner  # lazy: the root's one import (layers.ROOT_EXPORTS)

        return getattr(practitioner, name)
    raise AttributeError(f"module 'corrective' has no attribute {name!r}")
