"""Speed of fashrec.SimilarityIndex next to scikit-learn's brute force, and FAISS HNSW at 1M items.

    .venv/bin/python benchmarks/bench_index.py            # full run (several minutes, ~4 GB RAM)
    .venv/bin/python benchmarks/bench_index.py --quick    # smoke run, small sizes (seconds)
    .venv/bin/python benchmarks/bench_index.py --only 5k  # one section: 5k, 100k, 1m

Figures printed (no assertions: speed is never a test):

- 5k:   single-query latency, one query at a time, median over --queries queries, k=10, on
        5,000 x 2,048 float32, for each metric: fashrec exact vs sklearn NearestNeighbors(brute).
- 100k: the same on 100,000 items at D=256 (the target embedding size) and D=2,048.
- ae:   real embeddings: the paper autoencoder's 2,048-d latents of the 5,000 H&M images (shipped
        checkpoint ``paper-ae``; without it a seeded random-init ``ConvAE``, and the header says so);
        held-out rows (--ae-queries) search the other rows, one query at a time.
- 1m:   1,000,000 x 64 vectors, FAISS HNSW latency and recall@10 against the exact index, for several
        efSearch values, plus the exact index's own latency (--hnsw-metrics, default cosine: each
        HNSW build takes minutes on 2 cores).

Data is synthetic and clustered (Gaussian blobs around random centres), which resembles embeddings
more than uniform noise. Queries are fresh points from the same blobs (not catalogue items).
Threads: torch and BLAS use --threads (default 2, the size of the dev machine).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ("cityblock", "euclidean", "cosine")


def clustered(n: int, d: int, *, n_centres: int, seed: int, spread: float = 0.35):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    step = 200_000
    for start in range(0, n, step):  # in slices: no float64 copy of the whole matrix
        stop = min(n, start + step)
        labels = rng.integers(0, n_centres, stop - start)
        out[start:stop] = centres[labels] + spread * rng.standard_normal((stop - start, d), dtype=np.float32)
    return out, centres


def queries_near(centres, n: int, *, seed: int, spread: float = 0.35):
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    labels = rng.integers(0, centres.shape[0], n)
    return (centres[labels] + spread * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)).astype(np.float32)


def median_ms(fn, queries, warmup: int = 3) -> float:
    import numpy as np

    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def exact_vs_sklearn(n: int, d: int, n_queries: int, k: int, *, sklearn_queries: int | None = None, repeats: int = 3) -> None:
    x, centres = clustered(n, d, n_centres=max(10, n // 50), seed=n + d)
    q = queries_near(centres, n_queries, seed=n + d)
    compare(x, q, k, "synthetic clusters", sklearn_queries=sklearn_queries, repeats=repeats)


def compare(x, q, k: int, title: str, *, sklearn_queries: int | None = None, repeats: int = 3) -> None:
    """Single-query latency of fashrec (pruned path and forced full scan) and sklearn brute, same run.

    Each figure is the median over the queries; the run is repeated ``repeats`` times (interleaved) and
    the median of the repeats is printed with their spread, and the load average before and after.
    """
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    from fashrec.index import SimilarityIndex

    t = time.perf_counter()
    index = SimilarityIndex(x, [str(i) for i in range(len(x))])
    build = time.perf_counter() - t
    print(f"\n{title}, {len(x):,} x {x.shape[1]:,}, k={k}, median of {len(q)} single queries, "
          f"{repeats} repeats (index build {build:.1f} s), load {os.getloadavg()[0]:.1f}")
    print(f"  {'metric':<10} {'fashrec ms':>11} {'full scan ms':>13} {'sklearn ms':>11} {'vs sklearn':>10} {'first search s':>15}")
    sk_q = q[: sklearn_queries or len(q)]
    for metric in METRICS:
        t = time.perf_counter()
        index.search(q[0], k=k, metric=metric)  # builds the pruning structures
        first = time.perf_counter() - t
        nn = NearestNeighbors(algorithm="brute", metric=metric).fit(x)
        ours, full, theirs = [], [], []
        for _ in range(repeats):
            ours.append(median_ms(lambda v: index.search(v, k=k, metric=metric), q))
            full.append(median_ms(lambda v: index._planner.flat("overall").search(v[None], k, metric, 1.0, None, None), q))
            theirs.append(median_ms(lambda v: nn.kneighbors(v[None, :], n_neighbors=k), sk_q, warmup=1))
        o, f, s = (float(np.median(v)) for v in (ours, full, theirs))
        spread = f"({min(ours):.2f}-{max(ours):.2f})"
        print(f"  {metric:<10} {o:>7.3f} {spread:<13} {f:>8.3f} {s:>11.3f} {s / o:>9.1f}x {first:>14.2f}")
        del nn
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    del index


def real_embeddings(n_queries: int, k: int, repeats: int) -> None:
    import numpy as np
    import torch

    import fashrec

    try:
        model = fashrec.from_pretrained(str(fashrec.pretrained.path("paper-ae")))
        which = "paper-ae checkpoint"
    except FileNotFoundError:
        torch.manual_seed(0)
        model = fashrec.ConvAE()
        which = "NO CHECKPOINT: seeded random-init ConvAE"
    model.eval()
    ds = fashrec.load_hm("/work/shared/data/hm", split=False, progress=False)
    images = fashrec.dataset_tensor(ds, progress=False)
    with torch.no_grad():
        z = torch.cat([model.embed(images[i : i + 250]) for i in range(0, len(images), 250)]).numpy()
    rng = np.random.default_rng(0)
    held = rng.choice(len(z), size=n_queries, replace=False)
    rest = np.setdiff1d(np.arange(len(z)), held)
    compare(np.ascontiguousarray(z[rest]), np.ascontiguousarray(z[held]), k, f"H&M latents ({which}); held-out queries", repeats=repeats)


def hnsw_at_scale(n: int, d: int, n_queries: int, k: int, ef_values, metrics=("cosine",)) -> None:
    import numpy as np

    from fashrec.index import SimilarityIndex

    x, centres = clustered(n, d, n_centres=2000, seed=7)
    q = queries_near(centres, n_queries, seed=7)
    ids = [str(i) for i in range(n)]
    exact = SimilarityIndex(x, ids)
    print(f"\n{n:,} x {d} float32 (2,000 clusters), k={k}, median of {n_queries} single queries")
    truth = {}
    for metric in metrics:
        truth[metric] = exact.search(q, k=k, metric=metric)[0]
        ms = median_ms(lambda v: exact.search(v, k=k, metric=metric), q[: min(50, n_queries)])
        print(f"  exact {metric:<10} {ms:8.3f} ms")
    del exact
    hnsw = SimilarityIndex(x, ids, backend="faiss-hnsw", hnsw_m=32, ef_construction=80)
    for metric in metrics:
        t = time.perf_counter()
        hnsw._faiss.build("overall", metric)
        print(f"  HNSW {metric}: M=32, efConstruction=80, built in {time.perf_counter() - t:.1f} s")
        for ef in ef_values:
            hnsw.ef_search = ef
            found = hnsw.search(q, k=k, metric=metric)[0]
            recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth[metric])])
            ms = median_ms(lambda v: hnsw.search(v, k=k, metric=metric), q)
            print(f"    efSearch={ef:<4} {ms:8.3f} ms   recall@{k} {recall:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument("--only", choices=["5k", "ae", "100k", "1m"], action="append", help="run only these sections")
    parser.add_argument("--queries", type=int, default=200, help="single queries timed per figure (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeat each figure, print the median (default 3)")
    parser.add_argument("--ae-queries", type=int, default=100, help="held-out H&M rows used as queries (default 100)")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads (default 2)")
    parser.add_argument(
        "--hnsw-metrics", default="cosine", help="comma-separated metrics for the 1M HNSW section (default cosine)"
    )
    parser.add_argument("--skip-2048", action="store_true", help="skip the 100,000 x 2,048 case (800 MB)")
    parser.add_argument("--only-2048", action="store_true", help="in the 100k section, run only D=2,048")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import sklearn
    import torch

    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    sections = set(args.only or ["5k", "ae", "100k", "1m"])
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    k = 10
    if args.quick:
        n_q = min(args.queries, 20)
        if "5k" in sections:
            exact_vs_sklearn(2_000, 512, n_q, k, repeats=1)
        if "100k" in sections:
            exact_vs_sklearn(20_000, 256, n_q, k, repeats=1)
        if "1m" in sections:
            hnsw_at_scale(50_000, 64, n_q, k, (16, 64), tuple(args.hnsw_metrics.split(",")))
        return 0
    if "5k" in sections:
        exact_vs_sklearn(5_000, 2_048, args.queries, k, repeats=args.repeats)
    if "ae" in sections:
        real_embeddings(args.ae_queries, k, args.repeats)
    if "100k" in sections:
        if not args.only_2048:
            exact_vs_sklearn(100_000, 256, min(args.queries, 100), k, sklearn_queries=20, repeats=args.repeats)
        if not args.skip_2048:
            exact_vs_sklearn(100_000, 2_048, min(args.queries, 30), k, sklearn_queries=5, repeats=1)
    if "1m" in sections:
        hnsw_at_scale(1_000_000, 64, args.queries, k, (16, 32, 64, 128), tuple(args.hnsw_metrics.split(",")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
