"""``fashrec export-dataset``: write H&M data as a Hub-ready dataset (parquet shards + card), optionally push it."""
from __future__ import annotations

from pathlib import Path

from fashrec.commands.push import add_visibility_arguments, say_visibility
from fashrec.data.terms import DATA_LICENSE_NAME, RULES, TERMS

HELP = "write H&M photos + labels as Hub-ready parquet shards with a dataset card (and push them)"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Load an H&M source with fashrec.load_hm (a Kaggle-layout folder, a saved dataset, a Hub id or 'sample'),
optionally draw a seeded subset of --n photos and shrink them (--max-side), and write

    OUT/data/train-00000-of-0000K.parquet    images embedded as bytes, labels as ClassLabel
    OUT/data/test-00000-of-0000K.parquet
    OUT/README.md                            dataset card: source, terms, counts, label columns, YAML header

which `datasets.load_dataset(OUT)` and `fashrec.load_hm(OUT)` read back (same ids, labels and images).
--push-to-hub REPO_ID uploads the folder as a dataset repo with huggingface_hub (token from HF_TOKEN or
`hf auth login`; it is never printed); the card's snippet then loads REPO_ID (without it, ".": the folder).

The H&M photos are Kaggle competition data of H&M Group: research use only, not to be redistributed. A new
repo is therefore created PRIVATE; --public makes it public, only where the competition rules allow it.

Example (the paper's 5,000 photos, 80/20 split):

    fashrec export-dataset --data ../shared/data/hm --out runs/hm-5k --seed 42
"""

SHARD_BYTES = 200_000_000  # Hub-friendly parquet shards (the viewer reads shards up to ~300 MB)
SOURCE = """\
Kaggle competition ["H&M Personalized Fashion Recommendations"](https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations)
(data by H&M Group): product photos and rows of `articles.csv`, as committed to public GitHub
repositories: images and per-image metadata from `hungle45/PSE-Recommendor-System` (commit
`a8979e102022ad3f0a164c745e03aa89c9c6ec29`), the full `articles` table from `Tisha1503/HM-Fashion-Recommender`
(commit `f22ecf0818c68e0d382a468309aac859d3824dfb`). Photos are 360 x 540 JPEGs unless shrunk (see below)."""


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="H&M source: folder, saved dataset, Hub dataset id or 'sample'")
    parser.add_argument("--out", required=True, help="folder to write (data/*.parquet + README.md)")
    parser.add_argument("--n", type=int, default=None, help="keep a seeded random subset of N photos (default: all)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the subset and of the split (default %(default)s)")
    parser.add_argument("--test-size", type=float, default=0.2, help="test fraction (default %(default)s)")
    parser.add_argument("--max-side", type=int, default=None, metavar="PX",
                        help="shrink photos so the longer side is at most PX pixels (re-encoded as JPEG); "
                             "default: keep the original bytes")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of shrunk photos (default %(default)s)")
    parser.add_argument("--pretty-name", default=None, help="title of the dataset card")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                        help="upload the folder to this dataset repo (created private unless --public)")
    add_visibility_arguments(parser)


def run(args) -> int:
    out = Path(args.out)
    _prepare(out, overwrite=args.overwrite)
    dd = _export(args, out)
    counts = ", ".join(f"{name} {len(ds):,}" for name, ds in dd.items())
    print(f"wrote {counts} photos to {out / 'data'} and the card {out / 'README.md'}")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        from fashrec.hub.push import hub_errors, resolve_token
        from fashrec.hub.visibility import choose_private, refuse_public_repo

        photos = [p.relative_to(out).as_posix() for p in sorted((out / "data").glob("*.parquet"))]
        say_visibility(args.private, photos)
        api = HfApi(token=resolve_token())
        with hub_errors(args.push_to_hub, "dataset", api):
            refuse_public_repo(api, args.push_to_hub, "dataset", photos, private=args.private)
            url = api.create_repo(args.push_to_hub, repo_type="dataset", private=choose_private(args.private, photos),
                                  exist_ok=True)
            api.upload_folder(
                repo_id=args.push_to_hub, repo_type="dataset", folder_path=str(out),
                allow_patterns=["README.md", "data/*.parquet"], delete_patterns=["data/*.parquet"],
                commit_message=f"fashrec export-dataset: {counts}",
            )
        print(f"pushed to {url}")
    return 0


def _prepare(out, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out} is not empty; pass --overwrite to replace an earlier export")
        for old in (out / "data").glob("*.parquet"):
            old.unlink()


def _export(args, out):
    import math

    import datasets
    from tqdm.auto import tqdm

    from fashrec.atomic import atomic_path, write_text_atomic
    from fashrec.data.hm_dataset import LABEL_COLUMNS, image_bytes, load_hm, load_report

    dd = load_hm(args.data, n=args.n, seed=args.seed, test_size=args.test_size)
    exported = {}
    for name, ds in dd.items():
        raw = ds.select_columns(["image", "article_id"]).cast_column("image", datasets.Image(decode=False))
        raw = raw.with_format("arrow")[:].to_pydict()  # row order (indices mapping applied), nothing decoded
        cells = []
        for cell, aid in tqdm(zip(raw["image"], raw["article_id"]), total=len(ds), desc=f"embedding {name}", unit="img"):
            data = image_bytes(cell, max_side=args.max_side, quality=args.quality)
            suffix = ".jpg" if args.max_side or not cell.get("path") else Path(cell["path"]).suffix
            cells.append({"bytes": data, "path": f"{aid}{suffix}"})
        columns = ds.remove_columns("image").to_dict()
        columns = {"image": cells, **columns}
        full = datasets.Dataset.from_dict(columns, features=ds.features)
        nbytes = sum(len(c["bytes"]) for c in cells)
        shards = max(1, math.ceil(nbytes / SHARD_BYTES))
        for i in range(shards):
            with atomic_path(out / "data" / f"{name}-{i:05d}-of-{shards:05d}.parquet") as tmp:
                full.shard(shards, i, contiguous=True).to_parquet(str(tmp))
        exported[name] = (full, nbytes)

    from fashrec.hub_card import THIS_FOLDER, render_dataset_card

    features = next(iter(exported.values()))[0].features
    labels = [c for c in LABEL_COLUMNS if c in features]
    total = sum(len(d) for d, _ in exported.values())
    skipped = load_report(dd["train"])["skipped"]
    skipped_lines = [f"- {len(ids)} {reason.replace('_', ' ')}: {', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''}"
                     for reason, ids in skipped.items() if ids]
    command = " ".join(
        ["fashrec export-dataset", f"--data {_public_source(args.data)}", f"--out {Path(args.out).name}"]
        + ([f"--n {args.n}"] if args.n else [])
        + [f"--seed {args.seed}", f"--test-size {args.test_size}"]
        + ([f"--max-side {args.max_side} --quality {args.quality}"] if args.max_side else [])
    )
    card = render_dataset_card(
        pretty_name=args.pretty_name or f"H&M fashion product photos ({total:,})",
        license="other",
        license_name=DATA_LICENSE_NAME,
        license_link=RULES,
        task_categories=["image-feature-extraction", "image-classification"],
        size_categories=[_size_category(total)],
        tags=["h-and-m", "kaggle", "product-images", "similar-products"],
        configs=[{"config_name": "default", "data_files": [
            {"split": name, "path": f"data/{name}-*"} for name in exported]}],
        dataset_info={
            "features": features._to_yaml_list(),
            "splits": [{"name": name, "num_bytes": nbytes, "num_examples": len(d)} for name, (d, nbytes) in exported.items()],
            "download_size": sum(nbytes for _, nbytes in exported.values()),
        },
        summary=(f"{total:,} H&M product photos with their article metadata and {len(labels)} label columns, "
                 "for visual \"similar products\" recommendation and retrieval evaluation "
                 "([fashrec](https://github.com/fashrec/fashrec), after the paper's section 3.1)."),
        load_id=args.push_to_hub or THIS_FOLDER,
        split_counts=", ".join(f"{name} {len(d):,}" for name, (d, _) in exported.items()),
        split_table="\n".join(f"| {name} | {len(d):,} |" for name, (d, _) in exported.items()),
        split_rule=(f"{1 - args.test_size:.0%} / {args.test_size:.0%} cut fixed by seed {args.seed} "
                    "(`fashrec.load_hm`: rows ordered by `article_id`, then `Dataset.train_test_split(seed=...)`)"),
        image_note=(f"JPEG shrunk so its longer side is {args.max_side} px" if args.max_side
                    else "the original JPEG bytes"),
        label_table="\n".join(f"| `{c}` | {features[c].num_classes} |" for c in labels),
        source=SOURCE,
        terms=TERMS,
        command=command,
        skipped=("Rows left out while loading (see `fashrec.data.hm_dataset.load_report`):\n\n" + "\n".join(skipped_lines))
        if skipped_lines else "No row of the source was left out.",
    )
    write_text_atomic(card, out / "README.md")
    return {name: d for name, (d, _) in exported.items()}


def _public_source(data) -> str:
    """How the card names the source: 'sample' or a Hub id as given, a local folder as HM_DATA (a card is
    public: no path of this machine goes on it)."""
    data = str(data)
    return "HM_DATA" if data != "sample" and Path(data).expanduser().exists() else data


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"

