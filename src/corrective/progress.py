"""Progress of a long loop: a bar on a terminal, a plain line every few seconds into a log file.

`progress=None` decides by stderr (a terminal gets the bar, anything else the lines), True forces the
bar, False shows nothing. A loop shorter than `every` seconds prints no line at all.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

EVERY = 5.0  # seconds between two progress lines when stderr is not a terminal


class Progress:
    """`update()` per step; `close()` at the end. Lines read `desc: n/total unit, extra, elapsed`."""

    def __init__(
        self,
        total: int,
        desc: str,
        progress: bool | None,
        *,
        unit: str = "step",
        initial: int = 0,
        every: float | None = None,
        **bar: Any,
    ) -> None:
        tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            desc=desc,
            initial=initial,
            unit=unit,
            disable=not (tty if progress is None else progress),
            **bar,
        )
        self.lines = progress is None and not tty
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every = EVERY if every is None else every
        self.start = self.last = time.monotonic()
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)
        self.tick()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        self.bar.set_postfix(refresh=False, **values)

    def write(self, line: str) -> None:
        self.bar.write(line)

    def tick(self) -> None:
        """Print a line if `every` seconds passed since the last one (only when lines are on)."""
        now = time.monotonic()
        if self.lines and now - self.last >= self.every:
            self.last = now
            extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
            print(
                f"{self.desc}: {self.n}/{self.total} {self.unit}s{extra}, {now - self.start:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self.bar.close()
