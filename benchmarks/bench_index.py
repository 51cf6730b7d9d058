"""Single-query latency of fashrec.SimilarityIndex beside FAISS IndexFlat and scikit-learn brute force.

    .venv/bin/python benchmarks/bench_index.py            # full table (~15 min on 2 cores, ~4 GB RAM)
    .venv/bin/python benchmarks/bench_index.py --quick    # smoke run, small sizes (a minute)
    .venv/bin/python benchmarks/bench_index.py --only 5k  # sections: 5k, real, 100k (repeatable)

Every row: one catalogue, one metric; one query at a time, k=10, median latency over the queries (the
first 3 are a warm-up), all libraries limited to --threads threads (default 2). fashrec and FAISS take
turns by blocks of 10 queries (same load for both); scikit-learn runs the first --sklearn-queries.

- FAISS flat: ``IndexFlat`` with ``METRIC_L1`` / ``METRIC_L2`` / ``METRIC_INNER_PRODUCT`` on unit
  vectors for cosine (queries normalised beforehand, untimed): float32 brute force, not exact in
  float64, no ties rule. fashrec returns the float64-exact top k, ties by catalogue position. FAISS is
  timed with --threads OpenMP threads and with 1 (a parallel region for one query waits on a busy
  second core); "fashrec / best FAISS" divides by the faster of the two.
- sklearn: ``NearestNeighbors(algorithm="brute")``.
- "build s": fashrec's first search of that metric (builds the pruning structures), not in the median.

Catalogues: uniform random values in [0, 1) (queries too: nothing to prune), Gaussian blobs (N / 50
centres, spread 0.35; queries fresh from the blobs), and the real embeddings of the 5,000 H&M photos
(/work/shared/data/hm) by both shipped models, ``multitask-cnn`` (229-d, the default model) and
``paper-ae`` (2,048-d): 100 held-out photos are the queries of the other 4,900. The embeddings are
cached in runs/bench/<model>.npy (re-runs skip the embedding).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashrec.index.distances import METRICS  # noqa: E402  (the one list of metrics)
CACHE = ROOT / "runs" / "bench"
HM = "/work/shared/data/hm"
BLOCK = 10  # queries timed in a row for one library before the next takes its turn


def uniform(n: int, d: int, n_queries: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 20_000):
        x[start : start + 20_000] = rng.random((min(20_000, n - start), d), dtype=np.float32)
    return x, rng.random((n_queries, d), dtype=np.float32)


def clustered(n: int, d: int, n_queries: int, seed: int, spread: float = 0.35):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, n // 50), d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 20_000):  # in slices: no float64 copy of the whole matrix
        rows = min(20_000, n - start)
        x[start : start + rows] = centres[rng.integers(0, len(centres), rows)]
        x[start : start + rows] += spread * rng.standard_normal((rows, d), dtype=np.float32)
    q = centres[rng.integers(0, len(centres), n_queries)] + spread * rng.standard_normal((n_queries, d), dtype=np.float32)
    return x, q.astype(np.float32)


def real(model_name: str, n_queries: int):
    """Held-out rows as queries, the rest as the catalogue, of the cached H&M embeddings of a model."""
    import numpy as np

    path = CACHE / f"{model_name}.npy"
    if not path.exists():
        import torch

        import fashrec

        model = fashrec.from_pretrained(str(fashrec.pretrained.path(model_name))).eval()
        ds = fashrec.load_hm(HM, split=False, progress=False)
        images = fashrec.dataset_tensor(ds, model.preprocess_config, progress=False)
        with torch.no_grad():
            z = torch.cat([model.embed(images[i : i + 250]) for i in range(0, len(images), 250)]).numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, z.astype(np.float32))
    z = np.load(path)
    held = np.random.default_rng(0).choice(len(z), size=n_queries, replace=False)
    rest = np.setdiff1d(np.arange(len(z)), held)
    return np.ascontiguousarray(z[rest]), np.ascontiguousarray(z[held])


def timed(fn, arg) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def compare(title: str, x, q, k: int, sklearn_queries: int, threads: int) -> None:
    """One row per metric: fashrec, FAISS flat (``threads`` and 1 OpenMP thread) and scikit-learn,
    median single-query milliseconds; the ratio is against the faster FAISS."""
    import faiss
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    from fashrec.index import SimilarityIndex

    n, d = x.shape
    load = os.getloadavg()[0]
    index = SimilarityIndex(x, [str(i) for i in range(n)])
    for metric in METRICS:
        unit = metric == "cosine"
        xf = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30) if unit else x
        qf = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30) if unit else q
        flat = faiss.IndexFlat(d, {"cityblock": faiss.METRIC_L1, "euclidean": faiss.METRIC_L2,
                                   "cosine": faiss.METRIC_INNER_PRODUCT}[metric])
        flat.add(np.ascontiguousarray(xf, dtype=np.float32))
        del xf
        qf = np.ascontiguousarray(qf, dtype=np.float32)
        build = timed(lambda v: index.search(v, k=k, metric=metric), q[0])
        ours, theirs, theirs_1 = [], [], []
        for start in range(0, len(q), BLOCK):  # blocks in turn: all see the same load, and one's
            block = range(start, min(len(q), start + BLOCK))  # spinning OpenMP threads touch few of another's
            ours += [timed(lambda v: index.search(v, k=k, metric=metric), q[i]) for i in block]
            theirs += [timed(lambda v: flat.search(v, k), qf[i : i + 1]) for i in block]
            faiss.omp_set_num_threads(1)
            theirs_1 += [timed(lambda v: flat.search(v, k), qf[i : i + 1]) for i in block]
            faiss.omp_set_num_threads(threads)
        del flat
        nn = NearestNeighbors(algorithm="brute", metric=metric).fit(x)
        sk = [timed(lambda v: nn.kneighbors(v[None], n_neighbors=k), q[i]) for i in range(min(len(q), sklearn_queries + 1))]
        del nn
        o, f, f1, s = (float(np.median(t[warm:])) * 1e3 for t, warm in ((ours, 3), (theirs, 3), (theirs_1, 3), (sk, 1)))
        print(f"| {title} | {n:,} x {d:,} | {metric} | {o:.3f} | {f:.3f} | {f1:.3f} | **{o / min(f, f1):.2f}x** | "
              f"{s:.2f} | {build:.2f} | {load:.1f} |", flush=True)
    del index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, few queries: a smoke run")
    parser.add_argument("--only", choices=["5k", "real", "100k"], action="append", help="run only these sections")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per row (default 200; 100k rows: 60)")
    parser.add_argument("--sklearn-queries", type=int, default=20, help="queries timed for scikit-learn (default 20; 100k: 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS / FAISS threads (default 2)")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import faiss
    import numpy as np
    import sklearn
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)
    sections = args.only or ["5k", "real", "100k"]
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, faiss {faiss.__version__}, "
        f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs, {args.threads} threads, "
        f"load average {' / '.join(f'{v:.1f}' for v in os.getloadavg())}\n"
    )
    t = args.threads
    print(f"| catalogue | N x D | metric | fashrec ms | FAISS flat ms ({t} thr) | FAISS flat ms (1 thr) | fashrec / "
          "best FAISS | sklearn ms | build s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    k = 10
    if args.quick:
        nq = min(args.queries, 20)
        for make, name in ((uniform, "uniform"), (clustered, "clustered")):
            compare(name, *make(3_000, 256, nq, seed=1), k, 3, t)
        compare("multitask-cnn H&M", *real("multitask-cnn", nq), k, 3, t)
    else:
        for section in sections:
            if section == "5k":
                for d in (229, 2_048):
                    for make, name in ((uniform, "uniform"), (clustered, "clustered")):
                        compare(name, *make(5_000, d, args.queries, seed=d), k, args.sklearn_queries, t)
            elif section == "real":
                for model_name in ("multitask-cnn", "paper-ae"):
                    compare(f"{model_name} H&M", *real(model_name, 100), k, args.sklearn_queries, t)
            else:
                nq, sk = min(args.queries, 60), min(args.sklearn_queries, 5)
                for d in (229, 2_048):
                    for make, name in ((uniform, "uniform"), (clustered, "clustered")):
                        compare(name, *make(100_000, d, nq, seed=d), k, sk, t)
    print(f"\nload average at the end: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
