"""``fashrec make-sample``: rebuild the embedded H&M sample (``fashrec/data/hm_sample``) from the full data."""
from __future__ import annotations

HELP = "rebuild the small embedded H&M sample from a full copy of the data"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Draw a seeded random subset of an H&M source (any source fashrec.load_hm reads), shrink every photo so
its longer side is at most --max-side pixels (JPEG quality --quality) and write it in the Kaggle layout
(images/<3 digits>/<article_id>.jpg + metadata.csv + README.md). The same arguments give the same files.

This is how fashrec/data/hm_sample was made:

    fashrec make-sample --src ../shared/data/hm --out fashrec/data/hm_sample --n 800 --seed 42 --max-side 128
"""

DEFAULTS = {"n": 800, "seed": 42, "max_side": 128, "quality": 90}

README = """\
# H&M sample shipped with fashrec

{n} product photos with their article metadata, for tests, docs and demos that must run without the
full data: `fashrec.load_hm("sample")`.

## Source
Kaggle competition "H&M Personalized Fashion Recommendations" (data by H&M Group), as committed to
public GitHub repositories (images and `articles.csv` rows: `hungle45/PSE-Recommendor-System`,
commit `a8979e102022ad3f0a164c745e03aa89c9c6ec29`). Drawn from the 5,000-image subset described in
`shared/data/hm/SOURCE.md`.

## Terms
Competition data of H&M Group, under the Kaggle competition rules: non-commercial research and
education use only; do not redistribute it outside this project. The source repositories carry no
licence of their own. fashrec's MIT licence does not cover these files.

## How it was made
    fashrec make-sample --src {src_name} --out fashrec/data/hm_sample --n {n} --seed {seed} --max-side {max_side} --quality {quality}

A seeded random subset (`fashrec.load_hm(src, n={n}, seed={seed}, split=False)`: rows ordered by
article_id, then a permutation by numpy's `default_rng({seed})`), each photo shrunk with Lanczos so its
longer side is {max_side} px (360x540 becomes {example_size}) and saved as JPEG quality {quality}.

## Contents
- `images/<first 3 digits>/<article_id>.jpg`: {n} photos, {total_kb} KB in total.
- `metadata.csv`: `file_name`, `article_id`, `product_code`, `prod_name`, `detail_desc` and the label
  columns {label_list}.

Label counts in this sample: {label_counts}.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--src", required=True, help="the full H&M data (a folder in the Kaggle layout, an export, a Hub id)")
    parser.add_argument("--out", required=True, help="folder to write (e.g. fashrec/data/hm_sample)")
    parser.add_argument("--n", type=int, default=DEFAULTS["n"], help="number of photos (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the subset (default %(default)s)")
    parser.add_argument("--max-side", type=int, default=DEFAULTS["max_side"], help="longer side in pixels (default %(default)s)")
    parser.add_argument("--quality", type=int, default=DEFAULTS["quality"], help="JPEG quality (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the images and metadata already in --out")


def run(args) -> int:
    import shutil
    from pathlib import Path

    import pandas as pd

    from fashrec.atomic import write_text_atomic
    from fashrec.data.hm_dataset import LABEL_COLUMNS, image_bytes, load_hm

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise ValueError(f"{out} is not empty; pass --overwrite to replace its images and metadata")
        shutil.rmtree(out / "images", ignore_errors=True)
    ds = load_hm(args.src, n=args.n, seed=args.seed, split=False)
    raw = ds.cast_column("image", type(ds.features["image"])(decode=False))
    labels = [c for c in LABEL_COLUMNS if c in ds.column_names]
    rows, total = [], 0
    from tqdm.auto import tqdm

    for row in tqdm(raw, total=len(raw), desc="shrinking photos", unit="img"):
        aid = row["article_id"]
        rel = f"images/{aid[:3]}/{aid}.jpg"
        data = image_bytes(row["image"], max_side=args.max_side, quality=args.quality)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        total += len(data)
        record = {"file_name": rel}
        for c in ("article_id", "product_code", "prod_name", "detail_desc"):
            if c in ds.column_names:
                record[c] = row[c]
        for c in labels:
            record[c] = ds.features[c].int2str(row[c]) if row[c] >= 0 else ""
        rows.append(record)
    write_text_atomic(pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"), out / "metadata.csv")

    from PIL import Image

    with Image.open(out / rows[0]["file_name"]) as im:
        example = f"{im.width}x{im.height}"
    counts = ", ".join(f"{c} {len(set(r[c] for r in rows))}" for c in labels)
    write_text_atomic(
        README.format(
            n=len(rows),
            src_name=args.src,
            seed=args.seed,
            max_side=args.max_side,
            quality=args.quality,
            example_size=example,
            total_kb=round(total / 1024),
            label_list=", ".join(f"`{c}`" for c in labels),
            label_counts=counts,
        ),
        out / "README.md",
    )
    print(f"wrote {len(rows)} photos ({total / 1e6:.1f} MB) and metadata.csv to {out}")
    return 0
