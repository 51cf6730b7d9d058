"""How long the H&M photos take to become tensors: cold (empty cache) and cached.

    .venv/bin/python benchmarks/bench_load.py [--data ../shared/data/hm] [--workers 1 2 4]

Prints one line per measurement: load_hm (folder scan + cheap image check), dataset_tensor cold (decode +
preprocess + cache write) for each worker count, then dataset_tensor cached (cache read).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "hm"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import torch

    import fashrec

    torch.set_num_threads(2)
    t = time.perf_counter()
    ds = fashrec.load_hm(args.data, split=False, progress=False)
    print(f"load_hm({args.data}): {len(ds)} rows in {time.perf_counter() - t:.2f} s")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as cache:
            t = time.perf_counter()
            x = fashrec.dataset_tensor(ds, cache_dir=cache, progress=False, workers=workers)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            y = fashrec.dataset_tensor(ds, cache_dir=cache, progress=False, workers=workers)
            warm = time.perf_counter() - t
            size = sum(f.stat().st_size for f in Path(cache).rglob("*.safetensors"))
            assert torch.equal(x, y)
            print(f"dataset_tensor {tuple(x.shape)} workers={workers}: cold {cold:.2f} s, cached {warm:.2f} s "
                  f"({cold / warm:.0f}x), cache file {size / 1e6:.1f} MB")
    t = time.perf_counter()
    dd = fashrec.load_hm(args.data, progress=False)
    with tempfile.TemporaryDirectory() as cache:
        for name in ("train", "test"):
            fashrec.dataset_tensor(dd[name], cache_dir=cache, progress=False)
        mid = time.perf_counter()
        for name in ("train", "test"):
            fashrec.dataset_tensor(dd[name], cache_dir=cache, progress=False)
        end = time.perf_counter()
    print(f"load_hm + dataset_tensor(train) + dataset_tensor(test): cold {mid - t:.2f} s, cached {end - mid:.2f} s")


if __name__ == "__main__":
    main()
