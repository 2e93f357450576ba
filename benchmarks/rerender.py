"""Re-render every committed benchmark report from its records and compare it with the committed one.

For each `benchmarks/results/*/` holding `results.jsonl.gz`: unpack the records (with `spec.json`) into a
temporary folder, run `corrective report --format md` there, and compare `report.md` (its generation date
and the records' path aside) and every `figures/*.png` byte for byte with the committed files. Prints one
line per report; exit status 1 when anything differs, and when a records folder has no committed
`report.md` (one line says so: such a folder is not covered until its report is committed). A change
that must not alter behaviour keeps this at "identical".

    .venv/bin/python benchmarks/rerender.py [--keep DIR]   # DIR/<name>/report/: the re-rendered reports
"""

from __future__ import annotations

import gzip
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from corrective.report import write_report

RESULTS = Path(__file__).resolve().parent / "results"
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
SOURCE = re.compile(r"^- source: .*$", re.MULTILINE)  # the records' path: a temporary folder here


def undated(text: str) -> str:
    return SOURCE.sub("- source: -", DATE.sub("DATE", text))


def check(folder: Path, keep: Path | None = None) -> list[str]:
    """What differs between the committed report in `folder` and one re-rendered from its records
    (kept in `keep`/<folder name> when given, to diff)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if keep is None else keep / folder.name
        work.mkdir(parents=True, exist_ok=True)
        (work / "results.jsonl").write_bytes(gzip.decompress((folder / "results.jsonl.gz").read_bytes()))
        if (folder / "spec.json").exists():
            shutil.copy(folder / "spec.json", work / "spec.json")
        write_report(work, work / "report", fmt="md")
        diffs = []
        if undated((work / "report" / "report.md").read_text()) != undated((folder / "report.md").read_text()):
            diffs.append("report.md")
        new = {p.name: p.read_bytes() for p in (work / "report" / "figures").glob("*.png")}
        old = {p.name: p.read_bytes() for p in (folder / "figures").glob("*.png")}
        diffs += [
            f"figures/{n}: {'missing' if n not in new else 'new' if n not in old else 'differs'}"
            for n in sorted(set(new) | set(old))
            if new.get(n) != old.get(n)
        ]
        return diffs


def main(argv: list[str]) -> int:
    keep = Path(argv[argv.index("--keep") + 1]) if "--keep" in argv else None
    failed = 0
    for folder in sorted(p.parent for p in RESULTS.glob("*/results.jsonl.gz")):
        if not (folder / "report.md").exists():
            failed += 1
            print(
                f"{folder.name}: DIFFERS: records but no committed report.md; render it with "
                f"`corrective report <its records> --out {folder.relative_to(RESULTS.parent.parent)} --format md` "
                "and commit report.md and figures/"
            )
            continue
        start = time.perf_counter()
        diffs = check(folder, keep)
        failed += bool(diffs)
        n = len(list((folder / "figures").glob("*.png")))
        state = "identical" if not diffs else "DIFFERS: " + "; ".join(diffs)
        print(f"{folder.name}: report.md and {n} figures {state} ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
