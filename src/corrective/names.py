"""Names shared by the library and the report, which reads records without importing torch: defined once here.

`SETTINGS`: the settings each manipulation takes besides its size (the bench spec's axes);
`RECORD_SETTINGS`: all of them, the record fields that hold them (None where a manipulation takes no such setting).
"""

from __future__ import annotations

SETTINGS: dict[str, tuple[str, ...]] = {
    "poison": ("target", "trigger_size", "corner", "value"),
    "interclass": ("classes",),
    "random_swap": (),
}
RECORD_SETTINGS: tuple[str, ...] = tuple(dict.fromkeys(k for keys in SETTINGS.values() for k in keys))

# The relearn probe (bench.relearn) records these metrics of the probed model under `relearn_<name>`.
RELEARN_OF: tuple[str, ...] = ("acc_corr", "acc_retain", "healed", "attack_success", "target_acc")
RELEARN_METRICS: tuple[str, ...] = tuple(f"relearn_{m}" for m in RELEARN_OF)
