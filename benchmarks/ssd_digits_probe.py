"""Why SSD behaves as it does on digits: importance variants side by side on the poisoned run.

For each seed and alpha, SSD's 50-setting grid with three importance recipes: squared batch gradients on D_r
(the default), true per-sample squared gradients (removes the small-batch variance term that inflates I_f
when |S_f| is tiny), and I_r on the whole training set (original SSD). Reports the selected candidate and the
best candidate that keeps the target class (a diagnosis using the test set, never used for selection).

    PYTHONPATH=src python benchmarks/ssd_digits_probe.py > benchmarks/results/ssd_digits_probe.md
"""

from __future__ import annotations

import time

import torch

VARIANTS = {
    "batch grads, D_r": {},
    "per-sample grads, D_r": {"per_sample": True},
    "batch grads, S_tr": {"retain_set": "train"},
}


def main() -> None:
    torch.set_num_threads(1)
    from corrective import api
    from corrective.methods.ssd import SSDSettings, importance_ratios

    start = time.perf_counter()
    print(
        "| seed | alpha | importances | median I_f/I_r | selected: acc_corr / target_acc / acc_retain (a, λ) "
        "| best keeping class 0: acc_corr / acc_retain (a, λ) |"
    )
    print("|---|---|---|---|---|---|")
    for seed in (0, 1):
        run = api.train_run("digits", manipulation="poison", seed=seed, progress=False)
        for alpha in (0.1, 0.5):
            task = api.make_task(run, run.manipulation.forget_ids(alpha), progress=False)
            for label, extra in VARIANTS.items():
                ratios = torch.cat([r.flatten() for r in importance_ratios(task, SSDSettings(**extra)).values()])
                median = float(ratios[torch.isfinite(ratios)].median())
                res = api.unlearn(run, "ssd", alpha, settings=extra, grid=True, progress=False)
                sel = res.record
                keep = [r for r in res.records if r["target_acc"] >= 0.9]
                best = max(keep, key=lambda r: r["acc_corr"])

                def s(r: dict) -> str:
                    return f"({r['settings']['a']:g}, {r['settings']['lambda_']:g})"

                print(
                    f"| {seed} | {alpha} | {label} | {median:.3g} | {100 * sel['acc_corr']:.1f} / "
                    f"{100 * sel['target_acc']:.1f} / {100 * sel['acc_retain']:.1f} {s(sel)} | "
                    f"{100 * best['acc_corr']:.1f} / {100 * best['acc_retain']:.1f} {s(best)} |"
                )
    print(
        f"\nOriginal model acc_corr: see methods_digits.md. Wall time {time.perf_counter() - start:.0f} s "
        "on 2 shared CPU cores."
    )


if __name__ == "__main__":
    main()
