"""`corrective bench`: experiment specs and presets, the planner, the results store, executors."""

from corrective.bench.plan import Job, plan
from corrective.bench.runner import BenchOutcome, run_bench
from corrective.bench.spec import BenchSpec, list_presets, load_spec
from corrective.bench.store import ResultStore, keep_records, read_records, summarize
from corrective.bench.table import format_table

__all__ = [
    "BenchOutcome",
    "BenchSpec",
    "Job",
    "ResultStore",
    "format_table",
    "keep_records",
    "list_presets",
    "load_spec",
    "plan",
    "read_records",
    "run_bench",
    "summarize",
]
