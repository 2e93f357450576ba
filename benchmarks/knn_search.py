"""The k-nearest-neighbour search behind `label_noise` at Fashion-MNIST size: seconds and recall, side by side.

On one run's penultimate features (54,000 x 128 for cnn28; cosine, k = 20, each sample's own excluded), in
one process, one thread: the exact search `label_noise` uses up to 20,000 samples (`expand.knn.nearest`),
the approximate inverted-file search it uses above (`expand.knn.approximate`) at several probes,
scikit-learn's brute search, and faiss's exact, IVF and HNSW indexes where faiss can be imported (it is not
a dependency: `pip install --target DIR faiss-cpu`, then `--faiss-path DIR`). Recall = share of the exact
search's neighbours found; "vote same" = share of samples whose label_noise vote (share of neighbours with
their own label) is unchanged, "mean |dv|" its mean absolute change.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/knn_search.py RUN [--faiss-path DIR]
    PYTHONPATH=src python benchmarks/knn_search.py --report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
NAME = "knn_search"


def features(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from corrective import api
    from corrective.data.batches import Pipeline
    from corrective.models.embedding import embed

    run = api.load_run(folder)
    emb = embed(run.model, run.train_split, Pipeline.of(run.dataset))
    return torch.nn.functional.normalize(emb.features, dim=1), emb.labels


def compare(unit: torch.Tensor, labels: torch.Tensor, k: int, faiss_path: str | None) -> list[dict[str, Any]]:
    from corrective.expand.knn import approximate, nearest

    def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start

    exact, t_exact = timed(lambda: nearest(unit, k))
    own = (labels[exact] == labels[:, None]).float().mean(1)
    rows: list[dict[str, Any]] = []

    def add(name: str, ids: torch.Tensor, seconds: float) -> None:
        vote = (labels[ids] == labels[:, None]).float().mean(1)
        rows.append(
            {
                "search": name,
                "seconds": seconds,
                "vs_exact": seconds / t_exact,
                "recall": float((ids[:, :, None] == exact[:, None, :]).any(1).float().mean()),
                "vote_same": float((vote == own).float().mean()),
                "vote_mean_abs_change": float((vote - own).abs().mean()),
                "load1": os.getloadavg()[0],
            }
        )
        r = rows[-1]
        print(f"{name}: {seconds:.2f} s ({r['vs_exact']:.3f} x exact), recall {r['recall']:.4f}", flush=True)

    add("exact, blocks of 512 into one buffer (label_noise up to 20,000 samples)", exact, t_exact)
    for probe in (4, 6, 8):
        ids, t = timed(lambda probe=probe: approximate(unit, k, seed=0, probe=probe))
        default = " (label_noise above 20,000 samples)" if probe == 6 else ""
        add(f"approximate (IVF in torch), 2 sqrt(N) cells, probe {probe}{default}", ids, t)

    from sklearn.neighbors import NearestNeighbors

    x = unit.numpy()

    def drop_self(idx: Any) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.long)
        keep = idx != torch.arange(len(idx))[:, None]
        first = keep & (keep.long().cumsum(1) <= k)
        return idx[first].view(len(idx), k)

    start = time.perf_counter()
    found = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(x).kneighbors(x)[1]
    add("scikit-learn NearestNeighbors brute (cosine)", drop_self(found), time.perf_counter() - start)
    if faiss_path:
        sys.path.insert(0, faiss_path)
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        print("faiss not importable: skipped", flush=True)
        return rows
    faiss.omp_set_num_threads(1)
    d = x.shape[1]

    def search(make: Callable[[], Any], train: bool = False) -> torch.Tensor:
        index = make()
        if train:
            index.train(x)
        index.add(x)
        return drop_self(index.search(x, k + 1)[1])

    ids, t = timed(lambda: search(lambda: faiss.IndexFlatIP(d)))
    add(f"faiss {faiss.__version__} IndexFlatIP (exact)", ids, t)
    for nlist, nprobe in ((256, 8), (256, 16)):

        def ivf(nlist: int = nlist, nprobe: int = nprobe) -> Any:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = nprobe
            return index

        ids, t = timed(lambda ivf=ivf: search(ivf, train=True))
        add(f"faiss IndexIVFFlat nlist {nlist} nprobe {nprobe}", ids, t)
    for m, ef in ((16, 64), (32, 64)):

        def hnsw(m: int = m, ef: int = ef) -> Any:
            index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction, index.hnsw.efSearch = 40, ef
            return index

        ids, t = timed(lambda hnsw=hnsw: search(hnsw))
        add(f"faiss IndexHNSWFlat M {m} efSearch {ef} (build + search)", ids, t)
    return rows


def report(data: dict[str, Any]) -> str:
    lines = [
        "# The neighbour search behind `label_noise` at Fashion-MNIST size",
        "",
        "Written by `benchmarks/knn_search.py` (its docstring says how); raw records in `knn_search.json`. "
        "One process, one thread, all rows side by side on the same features; **x exact** = seconds / the "
        "exact search's in the same process (only the ratios carry over: the machine is shared).",
        "",
        *[f"- {b}" for b in data["batches"]],
        "",
        "| search | seconds | x exact | recall of the exact neighbours | vote same | mean abs vote change | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["records"]:
        lines.append(
            f"| {r['search']} | {r['seconds']:.2f} | {r['vs_exact']:.3f} | {r['recall']:.4f} | {r['vote_same']:.4f} | "
            f"{r['vote_mean_abs_change']:.4f} | {r['load1']:.1f} |"
        )
    lines += ["", *data.get("notes", []), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--faiss-path", default=None)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    out_json, out_md = RESULTS / f"{NAME}.json", RESULTS / f"{NAME}.md"
    if not args.report:
        torch.set_num_threads(1)
        unit, labels = features(args.run)
        batch = (
            f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}: run {args.run.name}, "
            f"{len(unit):,} x {unit.shape[1]} features, k {args.k}, 1 thread, load before "
            f"`{os.popen('uptime').read().strip()}`; `OMP_NUM_THREADS=1 python benchmarks/knn_search.py "
            f"{args.run}{' --faiss-path DIR' if args.faiss_path else ''}`"
        )
        rows = compare(unit, labels, args.k, args.faiss_path)
        old = json.loads(out_json.read_text()) if out_json.exists() else {}
        data = {"batches": [batch], "notes": old.get("notes", []), "records": rows}
        out_json.write_text(json.dumps(data, indent=1) + "\n")
    out_md.write_text(report(json.loads(out_json.read_text())))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
