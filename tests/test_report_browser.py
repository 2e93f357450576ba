"""report.html in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) via Playwright.

Every embedded figure loads and is the PNG written beside the page, every navigation link has its target,
the console stays clean, and a full-page screenshot is saved. Without Chromium this test fails on CI
(`CI` set) and is skipped with its reason elsewhere (pytest prints it: `-rs` is in addopts).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from corrective.report import write_report
from report_records import full_bench, write

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The Chromium binary ($CHROMIUM, or one on PATH); fail on CI, skip elsewhere when there is none."""
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        why = "no Chromium on PATH: install Debian's `chromium` (as .ci/run does) or set CHROMIUM=/path/to/chrome"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    return found


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    *pngs, page_path = write_report(write(tmp_path / "results", full_bench()), tmp_path / "report", "html")
    sizes = sorted(png_size(p.read_bytes()) for p in pngs)
    assert page_path.name == "report.html" and len(pngs) >= 10
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
        page.goto(page_path.as_uri(), wait_until="load")
        images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        broken_links = page.evaluate(
            "[...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))"
            ".filter(h => !document.getElementById(h.slice(1)))"
        )
        title = page.title()
        shot = tmp_path / "report-screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert all(done for done, _, _ in images), "an image did not finish loading"
    assert sorted((w, h) for _, w, h in images) == sizes  # each embedded image decodes to a PNG written beside it
    assert broken_links == [] and title == "Corrective unlearning benchmark report"
    width, height = png_size(shot.read_bytes())
    assert width == 1400 and height > 5000  # the whole page, figures and tables included
