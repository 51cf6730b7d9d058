"""Which FAISS index should a 1M-10M catalogue use? Build time, memory, latency and recall@10 at 1M.

    nice -n 15 .venv/bin/python benchmarks/bench_faiss_scale.py              # 1,000,000 x 64 (minutes)
    nice -n 15 .venv/bin/python benchmarks/bench_faiss_scale.py --n 100000   # a smaller, quicker run

Data: synthetic clustered float32 vectors (``bench_index.clustered``: Gaussian blobs around 2,000 random
centres), unit-normalised, searched by inner product (= cosine, the metric the Space ranks by). Queries
are fresh points from the same blobs. Ground truth: FAISS ``IndexFlatIP`` (exact up to float32).

Indexes (raw FAISS, as docs/scale.md recommends for catalogues beyond what the exact index serves):

- ``HNSW32``: ``IndexHNSWFlat(d, 32)``, efConstruction 80, several efSearch.
- ``IVF-PQ``: ``IndexIVFPQ`` (nlist coarse cells, ``m`` sub-quantisers of 8 bits: ``m`` bytes a vector),
  trained on a sample, several nprobe; and the same with an exact re-rank of a shortlist
  (``IndexRefineFlat``, k_factor 4), which keeps the raw vectors.

Printed per index: build seconds, memory (the serialised index, ~ what it holds in RAM), median
single-query latency (one query a call on one thread, --queries of them) and recall@10 over the same queries.
No assertions: speed is never a test. Threads: --threads (default 2, the dev machine).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import clustered, median_ms, queries_near  # noqa: E402


def recall_at(found, truth, k: int) -> float:
    import numpy as np

    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(found, truth)]))


def size_mb(index) -> float:
    import faiss

    return faiss.serialize_index(index).nbytes / 2**20


def report(index, q, truth, k: int, knob: str, values, set_knob, threads: int) -> None:
    import faiss

    for value in values:
        set_knob(value)
        _, found = index.search(q, k)
        faiss.omp_set_num_threads(1)  # one query a request, one thread: requests run side by side
        ms = median_ms(lambda v: index.search(v[None, :], k), q)
        faiss.omp_set_num_threads(threads)
        print(f"    {knob}={value:<4} {ms:8.3f} ms/query   recall@{k} {recall_at(found, truth, k):.3f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="catalogue size (default %(default)s)")
    parser.add_argument("--d", type=int, default=64, help="dimension (default %(default)s)")
    parser.add_argument("--queries", type=int, default=300, help="single queries timed (default %(default)s)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=2048, help="IVF coarse cells (default %(default)s)")
    parser.add_argument("--pq-m", type=int, nargs="+", default=[16, 32], help="PQ sub-quantisers = bytes a vector (default %(default)s)")
    parser.add_argument("--k-factor", type=int, nargs="+", default=[4, 16], help="re-ranked shortlist, x k (default %(default)s)")
    parser.add_argument("--train", type=int, default=100_000, help="IVF-PQ training sample (default %(default)s)")
    parser.add_argument("--skip-hnsw", action="store_true", help="skip the HNSW build (the slow one)")
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads (default %(default)s)")
    args = parser.parse_args(argv)

    import faiss
    import numpy as np

    faiss.omp_set_num_threads(args.threads)
    load = "load average %.2f %.2f %.2f" % os.getloadavg()
    print(f"{args.n:,} x {args.d} float32 (2,000 clusters), cosine (inner product on unit vectors), k={args.k}, "
          f"{args.threads} threads, faiss {faiss.__version__}; {load}", flush=True)
    x, centres = clustered(args.n, args.d, n_centres=2000, seed=7)
    q = queries_near(centres, args.queries, seed=7)
    faiss.normalize_L2(x)
    faiss.normalize_L2(q)
    print(f"  raw vectors: {x.nbytes / 2**20:.0f} MB", flush=True)

    t = time.perf_counter()
    flat = faiss.IndexFlatIP(args.d)
    flat.add(x)
    _, truth = flat.search(q, args.k)
    faiss.omp_set_num_threads(1)
    ms = median_ms(lambda v: flat.search(v[None, :], args.k), q[:50])
    faiss.omp_set_num_threads(args.threads)
    print(f"  Flat (exact): built {time.perf_counter() - t:.1f} s, {size_mb(flat):.0f} MB, {ms:.3f} ms/query", flush=True)
    del flat

    if not args.skip_hnsw:
        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(args.d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        hnsw.add(x)
        print(f"  HNSW32 efConstruction 80: built {time.perf_counter() - t:.1f} s, {size_mb(hnsw):.0f} MB "
              f"({os.getloadavg()[0]:.1f} load)", flush=True)
        report(hnsw, q, truth, args.k, "efSearch", (16, 32, 64, 128),
               lambda v: setattr(hnsw.hnsw, "efSearch", v), args.threads)
        del hnsw

    rng = np.random.default_rng(0)
    sample = x[rng.choice(args.n, min(args.train, args.n), replace=False)]
    for m in args.pq_m:
        t = time.perf_counter()
        ivfpq = faiss.IndexIVFPQ(faiss.IndexFlatIP(args.d), args.d, args.nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        ivfpq.train(sample)
        trained = time.perf_counter() - t
        ivfpq.add(x)
        print(f"  IVF{args.nlist},PQ{m}: trained on {len(sample):,} in {trained:.1f} s, built "
              f"{time.perf_counter() - t:.1f} s, {size_mb(ivfpq):.0f} MB ({os.getloadavg()[0]:.1f} load)", flush=True)
        report(ivfpq, q, truth, args.k, "nprobe", (8, 32), lambda v: setattr(ivfpq, "nprobe", v), args.threads)
        refine = faiss.IndexRefineFlat(ivfpq, faiss.swig_ptr(x))  # keeps the raw vectors for the exact re-rank
        for k_factor in args.k_factor:
            refine.k_factor = k_factor
            print(f"  IVF{args.nlist},PQ{m} + exact re-rank of the best {k_factor}k: {size_mb(refine):.0f} MB", flush=True)
            report(refine, q, truth, args.k, "nprobe", (8, 32), lambda v: setattr(ivfpq, "nprobe", v), args.threads)
        del refine, ivfpq
    print(f"done; {'load average %.2f %.2f %.2f' % os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
