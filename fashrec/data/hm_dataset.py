"""The H&M product photos as ``datasets`` objects: one loader for every place the data can live.

    dd = fashrec.load_hm("/path/to/hm")          # DatasetDict({"train", "test"}), 80/20, seed 42
    dd = fashrec.load_hm("sample")               # the ~800-image sample of a source checkout
    ds = fashrec.load_hm("org/hm-5k", split=False)

Sources (``source``):

- a folder in the Kaggle layout, ``images/<3 digits>/<article_id>.jpg`` beside ``metadata.csv``
  (with or without a ``file_name`` column), ``articles.csv`` or an ``articles*.parquet`` table;
- a saved dataset: a ``save_to_disk`` folder, a folder of parquet shards (``data/train-*.parquet``,
  ``data/test-*.parquet``, what ``fashrec export-dataset`` writes) or a plain folder of images
  (``article_id`` = file stem, no labels);
- a Hub dataset id (``datasets.load_dataset(repo_id)``);
- ``"sample"``: the embedded sample (``fashrec.data.sample.SAMPLE_DIR``).

Every result has the same columns: ``image`` (``Image()``; folder sources store paths, so nothing is
decoded at load time), ``article_id`` (10-character string), ``product_code``, ``prod_name``,
``detail_desc`` (strings, when the source has them) and the label columns of ``LABEL_COLUMNS`` the source
has, as ``ClassLabel`` features whose names are the sorted distinct values of the loaded rows (a missing
label is ``-1``).

Determinism: rows are ordered by ``article_id`` before anything random happens, so the subset (``n``)
and the split are functions of the set of ids and ``seed`` only: the same seed gives the same ids in
each split, whatever the order of the metadata file or the file system. Sources that already carry
``train`` and ``test`` splits (an export, a Hub dataset) keep them unless ``n`` is given.

Nothing is dropped silently: images without a metadata row, metadata rows without an image, duplicate
ids and images that fail a cheap integrity check (PIL parses the header; a JPEG must end with its
end-of-image marker) are skipped, announced with an ``HMDataWarning`` (count and first ids) and listed
in full in every returned split's ``info.description``; read them back with ``load_report(ds)``.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from fashrec.data.image_cells import image_bytes, image_problem  # noqa: F401  (image_bytes: public here too)

if TYPE_CHECKING:  # heavy imports stay inside functions
    import datasets
    import pandas as pd

LABEL_COLUMNS: tuple[str, ...] = (
    "product_type_name",
    "product_group_name",
    "colour_group_name",
    "perceived_colour_master_name",
    "graphical_appearance_name",
    "index_group_name",
    "garment_group_name",
    "section_name",
    "department_name",
)
TEXT_COLUMNS: tuple[str, ...] = ("article_id", "product_code", "prod_name", "detail_desc")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
METADATA_FILES = ("metadata.csv", "articles.csv")  # in order of preference, then articles*.parquet
SKIP_REASONS = {
    "no_metadata": "images without a metadata row",
    "no_image": "metadata rows without an image",
    "duplicate_id": "duplicate article_ids (first row kept)",
    "undecodable": "images that cannot be decoded",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HMDataWarning(UserWarning):
    """Rows were skipped while loading H&M data (the full list is in ``load_report(ds)``)."""


@dataclass
class _Table:
    """Candidate rows of one source split: string metadata plus a parallel ``image`` column."""

    meta: "pd.DataFrame"  # string / None cells, RangeIndex
    images: list  # {"bytes": ..., "path": ...} per row, same length as meta
    split: str | None = None  # predefined split name, if the source has one


@dataclass
class _Report:
    source: str
    skipped: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in SKIP_REASONS})
    why: dict[str, str] = field(default_factory=dict)  # id -> what is wrong with its photo (undecodable ones)

    def add(self, reason: str, ids: Iterable[str]) -> None:
        self.skipped[reason].extend(str(i) for i in ids)

    def to_description(self) -> str:
        return json.dumps({"fashrec.load_hm": {"source": self.source, "skipped": self.skipped, "why": self.why}},
                          indent=1)

    def warn(self) -> None:
        parts = []
        for reason, ids in self.skipped.items():
            if ids:
                head = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
                parts.append(f"{SKIP_REASONS[reason]}: {len(ids)} ({head})")
        if parts:
            warnings.warn(
                f"load_hm({self.source}): skipped " + "; ".join(parts) + ". Full list: fashrec.data.hm_dataset.load_report(ds).",
                HMDataWarning,
                stacklevel=3,
            )


def load_report(ds) -> dict:
    """The ``{"source", "skipped": {reason: [ids]}, "why": {id: problem}}`` record ``load_hm`` stored in
    ``ds.info.description`` (``why``: what is wrong with each undecodable photo)."""
    try:
        return json.loads(ds.info.description or "")["fashrec.load_hm"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("this dataset was not made by fashrec.load_hm (no report in info.description)") from None


def load_hm(
    source: str | os.PathLike = "sample",
    *,
    n: int | None = None,
    seed: int = 42,
    test_size: float | int = 0.2,
    split: bool = True,
    label_columns: Sequence[str] | None = None,
    progress: bool = True,
):
    """Load H&M product photos with their labels as ``DatasetDict({"train", "test"})`` (or one ``Dataset``).

    ``n`` keeps a seeded random subset of ``n`` valid images (the paper uses 5,000); ``test_size`` is a
    fraction or a count; ``label_columns`` defaults to the ``LABEL_COLUMNS`` the source has (asking for
    one it lacks is an error). See the module docstring for sources, columns and what gets skipped.
    """
    import numpy as np

    from fashrec.extras import require

    datasets = require("datasets", "fashrec.load_hm")

    if n is not None and n < 1:
        raise ValueError(f"load_hm: n must be a positive number of images, got {n}")
    tables, report = _read_source(source)
    if not tables:
        raise ValueError(f"load_hm: {source} holds no rows")
    keep_splits = split and n is None and sorted(t.split for t in tables) == ["test", "train"]
    if not keep_splits:
        tables = [_concat(tables)]

    available = set.intersection(*(set(t.meta.columns) for t in tables))
    if label_columns is None:
        labels = [c for c in LABEL_COLUMNS if c in available]
    else:
        labels = list(label_columns)
        missing = [c for c in labels if c not in available]
        if missing:
            raise ValueError(f"load_hm: {source} has no column(s) {missing}; it has {sorted(available)}")
    texts = [c for c in TEXT_COLUMNS if c in available]

    # Order by id first, so that the subset and the split depend only on the ids and the seed.
    seen: set[str] = set()
    for t in tables:
        order = t.meta["article_id"].argsort(kind="stable").to_numpy()
        t.meta, t.images = t.meta.iloc[order].reset_index(drop=True), [t.images[i] for i in order]
        dup = t.meta["article_id"].duplicated() | t.meta["article_id"].isin(seen)
        report.add("duplicate_id", t.meta["article_id"][dup])
        seen.update(t.meta["article_id"])
        t.meta, t.images = t.meta[~dup].reset_index(drop=True), [im for im, d in zip(t.images, dup) if not d]

    for t in tables:
        walk = np.random.default_rng(seed).permutation(len(t.meta)) if n is not None else range(len(t.meta))
        kept, bad = [], []
        bar = _progress(walk, total=min(n or len(t.meta), len(t.meta)), desc="checking images", enabled=progress)
        for i in walk:
            if n is not None and len(kept) >= n:
                break
            problem = image_problem(t.images[i])
            if problem:
                bad.append(i)
                report.why[str(t.meta["article_id"].iloc[i])] = problem
            else:
                kept.append(i)
                bar.update(1)
        bar.close()
        report.add("undecodable", t.meta["article_id"].iloc[sorted(bad)])
        kept.sort()
        t.meta, t.images = t.meta.iloc[kept].reset_index(drop=True), [t.images[i] for i in kept]
    if n is not None and len(tables[0].meta) < n:
        raise ValueError(f"load_hm: asked for n={n} images but {source} has only {len(tables[0].meta)} valid ones")

    features = datasets.Features({"image": datasets.Image()})
    features.update({c: datasets.Value("string") for c in texts})
    for c in labels:
        names = sorted({v for t in tables for v in t.meta[c] if v is not None})
        features[c] = datasets.ClassLabel(names=names)

    info = datasets.DatasetInfo(description=report.to_description(), features=features)
    out = {}
    for t in tables:
        columns = {"image": t.images}
        columns.update({c: t.meta[c].tolist() for c in texts})
        for c in labels:
            index = {name: k for k, name in enumerate(features[c].names)}
            columns[c] = [index[v] if v is not None else -1 for v in t.meta[c]]
        out[t.split or "all"] = datasets.Dataset.from_dict(columns, features=features, info=info)
    report.warn()

    if keep_splits:
        return datasets.DatasetDict({"train": out["train"], "test": out["test"]})
    (ds,) = out.values()
    if not split:
        return ds
    if len(ds) < 2:
        raise ValueError(f"load_hm: cannot split {len(ds)} row(s) into train and test; pass split=False")
    return ds.train_test_split(test_size=test_size, seed=seed)


# --------------------------------------------------------------------------- sources


def _read_source(source) -> tuple[list[_Table], _Report]:
    if isinstance(source, str) and source == "sample":
        from fashrec.data.sample import sample_path

        source = sample_path()
    path = Path(source).expanduser()
    report = _Report(source=str(source))
    if path.is_dir():
        return _read_folder(path, report), report
    if path.is_file() and path.suffix == ".parquet":
        return [_table_from_dataset(_dataset_from_parquet([path]), None)], report
    if isinstance(source, str) and _HUB_ID.match(source) and not path.exists():
        import datasets

        return _tables_from_datasets(datasets.load_dataset(source)), report
    raise FileNotFoundError(
        f"load_hm: {source} is neither a folder, a parquet file nor a Hub dataset id ('owner/name')"
    )


def _read_folder(path: Path, report: _Report) -> list[_Table]:
    import datasets

    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return _tables_from_datasets(datasets.load_from_disk(str(path)))
    for name in METADATA_FILES:
        if (path / name).exists():
            return [_read_kaggle(path, path / name, report)]
    shards = sorted((path / "data").glob("*.parquet")) or sorted(
        p for p in path.glob("*.parquet") if not p.name.startswith("articles")
    )
    if shards:
        by_split: dict[str, list[Path]] = {}
        for p in shards:
            by_split.setdefault(re.split(r"[-_.]", p.name)[0], []).append(p)
        return _tables_from_datasets({s: _dataset_from_parquet(files) for s, files in by_split.items()})
    articles = sorted(path.glob("articles*.parquet"))
    if articles:
        return [_read_kaggle(path, articles[0], report)]
    return [_read_image_folder(path)]


def _read_kaggle(folder: Path, metadata_file: Path, report: _Report) -> _Table:
    """The Kaggle layout: a metadata table plus ``images/<3 digits>/<article_id>.jpg``."""
    import pandas as pd

    try:
        if metadata_file.suffix == ".parquet":
            meta = pd.read_parquet(metadata_file)
        else:
            meta = pd.read_csv(metadata_file, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad-input error naming the file
        raise ValueError(f"load_hm: cannot read {metadata_file}: {exc}") from exc
    if "article_id" not in meta.columns:
        raise ValueError(f"load_hm: {metadata_file} has no article_id column (columns: {list(meta.columns)})")
    meta = _clean_meta(meta)
    root = os.path.abspath(folder)
    if "file_name" in meta.columns and meta["file_name"].notna().all():
        paths = [os.path.normpath(os.path.join(root, f)) for f in meta["file_name"]]
    else:  # articles.csv: derive the path the Kaggle layout gives each id
        paths = [os.path.join(root, "images", a[:3], f"{a}.jpg") for a in meta["article_id"]]
    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    on_disk = {os.path.abspath(p) for p in _image_files(images_dir)}
    has_image = [p in on_disk for p in paths]
    report.add("no_image", meta["article_id"][[not h for h in has_image]])
    orphan = sorted(on_disk - set(paths))
    report.add("no_metadata", (_id_from_path(Path(p)) for p in orphan))
    keep = [i for i, h in enumerate(has_image) if h]
    return _Table(
        meta=meta.iloc[keep].reset_index(drop=True),
        images=[{"bytes": None, "path": paths[i]} for i in keep],
    )


def _read_image_folder(folder: Path) -> _Table:
    """A folder of images and nothing else: ids are the file stems, there are no labels."""
    import pandas as pd

    files = sorted(os.path.abspath(p) for p in _image_files(folder))
    if not files:
        raise ValueError(f"load_hm: {folder} holds no metadata table, no dataset and no images")
    meta = pd.DataFrame({"article_id": [_id_from_path(Path(p)) for p in files]})
    return _Table(meta=meta, images=[{"bytes": None, "path": p} for p in files])


def _tables_from_datasets(obj) -> list[_Table]:
    """A ``Dataset`` or a mapping of split name -> ``Dataset`` (``DatasetDict``) as tables."""
    if hasattr(obj, "features"):
        return [_table_from_dataset(obj, None)]
    return [_table_from_dataset(ds, name) for name, ds in obj.items()]


def _table_from_dataset(ds, split: str | None) -> _Table:
    import datasets

    if "image" not in ds.column_names:
        raise ValueError(f"load_hm: dataset has no 'image' column (columns: {ds.column_names})")
    ds = ds.cast_column("image", datasets.Image(decode=False))
    meta = ds.remove_columns("image").to_pandas()
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):
            meta[name] = [feature.int2str(int(v)) if v is not None and v >= 0 else None for v in meta[name]]
    images = ds.select_columns(["image"]).with_format("arrow")[:].column("image").to_pylist()
    if "article_id" not in meta.columns:
        meta["article_id"] = [_id_from_path(Path(im.get("path") or f"row{i}")) for i, im in enumerate(images)]
    return _Table(meta=_clean_meta(meta), images=list(images), split=split)


def _dataset_from_parquet(files: Sequence[Path]):
    """Parquet shards as one in-memory ``Dataset`` (features come from the files' schema metadata)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"load_hm: cannot read parquet shards {[str(f) for f in files]}: {exc}") from exc
    return datasets.Dataset(table)


def _concat(tables: list[_Table]) -> _Table:
    import pandas as pd

    if len(tables) == 1:
        return _Table(meta=tables[0].meta, images=tables[0].images)
    return _Table(
        meta=pd.concat([t.meta for t in tables], ignore_index=True),
        images=[im for t in tables for im in t.images],
    )


def _clean_meta(meta: "pd.DataFrame") -> "pd.DataFrame":
    """Every cell a ``str`` or ``None``; ids as Kaggle's 10-character zero-padded strings."""
    meta = meta.copy()
    for c in meta.columns:
        missing = meta[c].isna().to_numpy()
        meta[c] = [None if m else str(v).strip() for v, m in zip(meta[c].tolist(), missing)]
    meta["article_id"] = [_pad_id(a) for a in meta["article_id"]]
    return meta.reset_index(drop=True)


def _pad_id(a) -> str:
    a = str(a)
    return a.zfill(10) if a.isdigit() else a  # articles.csv stores ids as integers (leading 0 lost)


def _id_from_path(p: Path) -> str:
    return _pad_id(Path(p).stem)


def _image_files(folder: Path) -> list[str]:
    out = []
    for root, _dirs, names in os.walk(folder):
        out.extend(os.path.join(root, n) for n in names
                   if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES and not n.startswith("."))
    return out


# --------------------------------------------------------------------------- images


class _NoBar:
    def update(self, k=1):
        pass

    def close(self):
        pass


def _progress(it, *, total: int, desc: str, enabled: bool):
    if not enabled or total < 500:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")
