"""`corrective bench`: run an experiment grid (a preset or a TOML file), resumably, and print its table."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from corrective import __version__
from corrective.bench.jobs import LOGS
from corrective.bench.spec import EXECUTORS, list_presets
from corrective.cli.app import app
from corrective.cli.common import QuietOpt, names, parse_sets
from corrective.names import RESULTS, SPEC, STAGES, SUMMARY

STAMP = ".records.sha256"  # in OUT/report: the digest of the records the report was drawn from

PresetOpt = Annotated[str | None, typer.Option(help=f"A shipped experiment: {names(list_presets())}.")]
ConfigOpt = Annotated[Path | None, typer.Option(help="An experiment spec as a TOML file (instead of --preset).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a spec field: key=value, dotted when nested (seeds=0,1,2  methods.scrub.grid=false)."
    ),
]
BenchOutOpt = Annotated[Path | None, typer.Option(help="Results folder (default results/PRESET); re-run to resume.")]
ExecutorOpt = Annotated[str | None, typer.Option(help=f"{names(EXECUTORS)} (local: a process pool).")]
WorkersOpt = Annotated[int | None, typer.Option(help="Jobs at once (default: one per core; one per GPU on CUDA).")]
AddressOpt = Annotated[str | None, typer.Option(help="Ray cluster address (auto joins a running one).")]
BenchDeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (default: the spec's).")]


@app.command()
def bench(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: BenchOutOpt = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    device: BenchDeviceOpt = None,
    list_presets: Annotated[bool, typer.Option("--list", help="List the shipped presets and exit.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan and count the jobs, run nothing.")] = False,
    report: Annotated[
        bool, typer.Option(help="Write the report (OUT/report/report.html, .md, figures) at the end.")
    ] = True,
    quiet: QuietOpt = False,
) -> None:
    """Run a benchmark: originals, oracle and every method x alpha; results.jsonl, summary.csv, a table, a report.

    Results are keyed by job id (a hash of everything that determines a result), so re-running a
    command skips finished jobs, and another spec in the same folder adds its own jobs.

    Examples: corrective bench  |  corrective bench --preset smoke --out results/smoke  |
    corrective bench --config my.toml --set seeds=0,1,2 --executor ray --address auto
    """
    from corrective import bench as b

    if list_presets:
        for name in b.list_presets():
            typer.echo(name)
        return
    sets = parse_sets(set_)
    for key, value in (("executor", executor), ("workers", workers), ("address", address), ("device", device)):
        if value is not None:
            sets[key] = value
    spec = b.load_spec(preset, config, sets)
    out = out or Path("results") / (config.stem if config is not None else preset or "default")
    if dry_run:
        from corrective.models import resolve_device

        jobs = b.plan(spec, resolve_device(spec.device).type)
        done = {r.get("job_id") for r in b.read_records(out / RESULTS)}
        stages = {s: n for s in STAGES if (n := sum(j.stage == s for j in jobs))}  # every stage planned
        typer.echo(
            f"{len(jobs)} jobs ({', '.join(f'{n} {s}' for s, n in stages.items())}), "
            f"{sum(j.id in done for j in jobs)} already done in {out}"
        )
        return
    result = b.run_bench(spec, out, progress=False if quiet else None)
    typer.echo(b.format_table(result.summary))
    typer.echo(
        f"\n{len(result.jobs)} jobs: {result.skipped} already done, {result.ran} run, "
        f"{len(result.failed)} failed in {result.seconds:.1f} s"
    )
    typer.echo(f"results: {out / RESULTS}  summary: {out / SUMMARY}  logs: {out / LOGS}")
    if report:
        write_bench_report(out)
    if result.failed:
        for line in result.failed[:10]:
            typer.echo(f"failed: {line}", err=True)
        raise typer.Exit(1)


def records_digest(out: Path) -> str:
    """What the report of `out` is drawn from: its records and spec (and this version of corrective)."""
    digest = hashlib.sha256(__version__.encode())
    for name in (RESULTS, SPEC):
        digest.update(b"\0" + ((out / name).read_bytes() if (out / name).exists() else b""))
    return digest.hexdigest()


def write_bench_report(out: Path) -> None:
    """The report of everything in `out` (failed jobs show as holes); a failure here never costs the results.

    A report already drawn from the same records (a resumed, finished bench) is kept, not drawn again.
    """
    from corrective.errors import UserError
    from corrective.report import write_report

    digest, stamp, page = records_digest(out), out / "report" / STAMP, out / "report" / "report.html"
    if page.exists() and stamp.exists() and stamp.read_text() == digest:
        typer.echo(f"report: {page} (up to date: the records have not changed)")
        return
    try:
        pages = [p for p in write_report(out, out / "report") if p.suffix != ".png"]
        stamp.write_text(digest)
    except UserError as e:
        typer.echo(f"report not written: {e}", err=True)
        return
    except Exception as e:  # a bug or a full disk: still one line, the results and the exit status kept
        typer.echo(
            f"report not written: {type(e).__name__}: {e}; `corrective report {out}` shows the traceback", err=True
        )
        return
    typer.echo(f"report: {pages[0]}")
