"""How fast is ``preprocess`` over the 5,000 H&M JPEGs (360x540)? Prints ms/image and images/s.

    python benchmarks/bench_preprocess.py [--hm-dir ../shared/data/hm] [--limit N] [--draft]

``--draft`` also times PIL's JPEG draft mode (libjpeg downscales while decoding) and reports how far
its pixels differ from the full decode - the reason ``preprocess`` does not use it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fashrec.data.preprocess import RESAMPLE, preprocess_batch

DEFAULT_HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hm-dir", type=Path, default=DEFAULT_HM, help="folder with images/<3 digits>/*.jpg")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--draft", action="store_true", help="also time JPEG draft decoding and its pixel error")
    args = parser.parse_args()
    torch.set_num_threads(1)

    paths = sorted((args.hm_dir / "images").glob("*/*.jpg"))[: args.limit]
    if not paths:
        raise SystemExit(f"no JPEGs under {args.hm_dir / 'images'}")
    start = time.perf_counter()
    batch = preprocess_batch(paths, progress=True)
    took = time.perf_counter() - start
    print(f"preprocess_batch: {len(paths)} images -> {tuple(batch.shape)} in {took:.2f} s = "
          f"{1e3 * took / len(paths):.2f} ms/image, {len(paths) / took:.0f} images/s (1 process)")

    if args.draft:
        sample = paths[:500]

        def decode(path, draft):
            with Image.open(path) as im:
                if draft:
                    im.draft("RGB", (43, 64))
                return np.asarray(im.convert("RGB").resize((43, 64), RESAMPLE, reducing_gap=None), np.int16)

        for draft in (False, True):
            start = time.perf_counter()
            for p in sample:
                decode(p, draft)
            print(f"decode+resize draft={draft}: {1e3 * (time.perf_counter() - start) / len(sample):.2f} ms/image")
        diffs = [np.abs(decode(p, False) - decode(p, True)) for p in sample[:100]]
        print(f"draft vs full decode: max |diff| {max(int(d.max()) for d in diffs)}/255, "
              f"mean {np.mean([d.mean() for d in diffs]):.2f}/255 -> not identical, so preprocess does not use draft")


if __name__ == "__main__":
    main()
