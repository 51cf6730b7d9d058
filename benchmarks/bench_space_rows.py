"""What the recommend tab's second row ("Other colours of this design") costs a request, in-process.

    .venv/bin/python benchmarks/bench_space_rows.py                    # the embedded sample (space/index)
    .venv/bin/python benchmarks/bench_space_rows.py --index runs/hm-index

Times, as CPU time of the calling thread (the work, without the wait for a core on a busy machine), one
row (``Recommender.recommend_item`` / ``recommend_image``: what the endpoints did before) against both
rows (``answer_item`` / ``answer_image``: what they do now), over random catalogue items and photos, with
one torch thread as the Space runs. Prints p50 / p95 in ms and the load average.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def cpu_ms(fn, args: list) -> tuple[float, float]:
    times = []
    for a in args:
        start = time.thread_time()
        fn(a)
        times.append((time.thread_time() - start) * 1e3)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(REPO_ROOT / "space" / "index"), help="index folder (default space/index)")
    parser.add_argument("--items", type=int, default=200, help="catalogue-item queries (default 200)")
    parser.add_argument("--photos", type=int, default=100, help="photo queries (default 100)")
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()

    import torch

    from space.recommender import Recommender

    torch.set_num_threads(1)
    rec = Recommender.open(args.index)
    rec.warm_up()
    rng = random.Random(0)
    items = [rng.choice(rec.ids) for _ in range(args.items)]
    photos = [rec.images[rng.choice(rec.ids)] for _ in range(args.photos)]
    print(f"{len(rec):,} items, design focus {rec.design_focus!r}, k = {args.k}; CPU ms p50 / p95")
    for name, fn, queries in (("recommend_item (one row)", rec.recommend_item, items),
                              ("answer_item (both rows)", rec.answer_item, items),
                              ("recommend_image (one row)", rec.recommend_image, photos),
                              ("answer_image (both rows)", rec.answer_image, photos)):
        fn(queries[0], k=args.k)  # warm
        p50, p95 = cpu_ms(lambda q: fn(q, k=args.k), queries)
        print(f"  {name:28s} {p50:7.2f} / {p95:7.2f}")
    print(f"load average (1, 5, 15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
