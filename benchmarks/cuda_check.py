"""The project's CUDA paths on a real GPU: every method on the device, determinism, precision, the paper's budget.

    python benchmarks/cuda_check.py --stage digits      # digits on CUDA: train, every method, determinism
    python benchmarks/cuda_check.py --stage cifar       # CIFAR-10-shaped data, ResNet-9: fp32 vs bf16, methods

CIFAR-10's files cannot be downloaded on the development machines, so `cifar` writes a synthetic
CIFAR-10 in the official format (pickled batches, 50,000 + 10,000 uint8 images, learnable: each class
is a fixed random low-resolution pattern plus noise) and reads it through the real loader. Its
accuracies say the pipeline learns on the GPU, not what CIFAR-10 gives; its seconds are the paper's
recipe (4000 steps of batch 512) on this GPU. Prints markdown; `--json` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corrective import api
from corrective.data import load_dataset
from corrective.data.batches import Pipeline
from corrective.methods import get_method, list_methods
from corrective.models import create_model
from corrective.training import PRESETS, train


def env() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def on_device(run: api.Run, device: str) -> bool:
    """The model and every data tensor live on `device`."""
    tensors = [p for p in run.model.parameters()] + [run.dataset.train.x, run.dataset.test.x]
    return all(t.device.type == torch.device(device).type for t in tensors)


def methods_at(run: api.Run, alpha: float, device: str) -> list[dict[str, Any]]:
    """Every registered method with its default settings at `alpha` (the oracle bounds get S_m)."""
    rows = []
    for name in list_methods():
        result = api.unlearn(run, name, alpha, progress=False)
        r = result.record
        rows.append(
            {
                "method": name,
                "is_method": get_method(name).is_method,
                "on_device": next(result.model.parameters()).device.type == torch.device(device).type,
                **{k: r.get(k) for k in ("acc_corr", "acc_retain", "target_acc", "unlearn_seconds")},
            }
        )
        print(f"{rows[-1]}", flush=True)
    return rows


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def digits_stage(device: str) -> dict[str, Any]:
    start = time.perf_counter()
    run = api.train_run("digits", manipulation="poison", seed=0, device=device, progress=False)
    first = time.perf_counter() - start
    again = api.train_run("digits", manipulation="poison", seed=0, device=device, progress=False)
    same = all(
        torch.equal(a, b)
        for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values(), strict=True)
    )
    return {
        "train_seconds_first": first,
        "train_seconds": again.train_seconds,
        "on_device": on_device(run, device),
        "metrics": {k: run.metrics[k] for k in ("clean_acc", "attack_success", "target_acc")},
        "metrics_again": {k: again.metrics[k] for k in ("clean_acc", "attack_success", "target_acc")},
        "bitwise_same_weights": same,
        "methods": methods_at(run, 0.5, device),
    }


def synthetic_cifar10(root: Path, per_file: int = 10_000, seed: int = 0) -> Path:
    """CIFAR-10's official layout and pickle format with learnable images (class pattern + noise)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patterns = rng.integers(40, 216, (10, 3, 8, 8)).repeat(4, axis=2).repeat(4, axis=3).astype(np.int16)

    def batch(n: int) -> dict[bytes, Any]:
        labels = rng.integers(0, 10, n)
        images = patterns[labels] + rng.normal(0, 40, (n, 3, 32, 32)).astype(np.int16)
        return {b"data": images.clip(0, 255).astype(np.uint8).reshape(n, 3072), b"labels": labels.tolist()}

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch(per_file)))
    return root


def cifar_stage(root: Path, steps: int, device: str, short: int = 300, per_file: int = 10_000) -> dict[str, Any]:
    synthetic_cifar10(root, per_file)
    out: dict[str, Any] = {"steps": steps, "batch_size": PRESETS["paper"].batch_size, "precision": {}}
    data = load_dataset("cifar10", root).to(device)
    for precision in ("fp32", "bf16"):  # `short` steps each, side by side: images/s of the whole training loop
        torch.manual_seed(0)
        model = create_model("resnet9", num_classes=10).to(device)
        cfg = replace(PRESETS["paper"], steps=short, precision=precision)
        sync(device)
        start = time.perf_counter()
        train(model, data.train, Pipeline.of(data), cfg, progress=False)
        sync(device)
        seconds = time.perf_counter() - start
        images = short * cfg.batch_size
        out["precision"][precision] = {"steps": short, "seconds": seconds, "images_per_s": images / seconds}
        print(f"{precision}: {images / seconds:.0f} images/s", flush=True)
    start = time.perf_counter()
    run = api.train_run(
        "cifar10", root=root, manipulation="poison", seed=0, device=device, steps=steps, progress=False, preset="paper"
    )
    out["original"] = {
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": run.train_seconds,
        "on_device": on_device(run, device),
        **{k: run.metrics[k] for k in ("clean_acc", "attack_success", "target_acc")},
    }
    print(f"original: {out['original']}", flush=True)
    out["methods"] = methods_at(run, 0.5, device)
    return out


def markdown(stage: str, res: dict[str, Any]) -> str:
    lines = [f"## {stage} on {res['env']['gpu']} (torch {res['env']['torch']})", ""]
    if stage == "digits":
        lines += [
            f"- data and model on the device: {res['on_device']}; "
            f"first run {res['train_seconds_first']:.1f} s (CUDA start-up included), "
            f"second {res['train_seconds']:.2f} s",
            f"- metrics {res['metrics']}; again {res['metrics_again']}; "
            f"bitwise-equal weights on a second run: {res['bitwise_same_weights']}",
        ]
    else:
        p = res["precision"]
        lines += [
            f"- ResNet-9 training loop, {p['fp32']['steps']} steps of batch {res['batch_size']}: fp32 "
            f"{p['fp32']['images_per_s']:.0f} images/s, bf16 + channels_last {p['bf16']['images_per_s']:.0f} "
            f"images/s ({p['bf16']['images_per_s'] / p['fp32']['images_per_s']:.2f}×)",
            f"- the paper's budget ({res['steps']} steps): {res['original']['train_seconds']:.1f} s of training "
            f"({res['original']['wall_seconds']:.1f} s with loading and evaluation); on the device: "
            f"{res['original']['on_device']}; clean_acc {res['original']['clean_acc']:.3f}, attack_success "
            f"{res['original']['attack_success']:.3f}, target_acc {res['original']['target_acc']:.3f}",
        ]
    lines += [
        "",
        "| method | on the device | acc_corr | acc_retain | target_acc | seconds |",
        "|:--|:--|--:|--:|--:|--:|",
    ]
    for m in res["methods"]:
        label = m["method"] if m["is_method"] else f"{m['method']} (bound)"
        lines.append(
            f"| {label} | {m['on_device']} | {m['acc_corr']:.3f} | {m['acc_retain']:.3f} | "
            f"{m['target_acc']:.3f} | {m['unlearn_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("digits", "cifar"), required=True)
    parser.add_argument("--root", type=Path, default=Path("/tmp/corrective-cifar"))
    parser.add_argument("--steps", type=int, default=PRESETS["paper"].steps)
    parser.add_argument("--short", type=int, default=300, help="steps of the fp32 vs bf16 comparison")
    parser.add_argument("--per-file", type=int, default=10_000, help="images per synthetic CIFAR file (6 files)")
    parser.add_argument("--device", default="cuda", help="cuda (the point), or cpu to try the script")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark checks the GPU paths (--device cpu only tries the script)")
    res = (
        digits_stage(args.device)
        if args.stage == "digits"
        else cifar_stage(args.root, args.steps, args.device, args.short, args.per_file)
    )
    res["env"] = env()
    print(markdown(args.stage, res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
