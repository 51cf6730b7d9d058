"""A catalogue of photos as the jobs read it (``fashrec embed``, ``fashrec index add|replace``): the rows,
their labels as strings, each row's photo (a path or encoded bytes, never decoded here) and the photos the
loader already left out, with the reason.

    ds = open_catalogue("../shared/data/hm")
    metadata = catalogue_metadata(ds)          # {column: [str or None]}
    sources = CellSources(ds)                  # sources[i]: the photo of row i
    skipped = loader_skipped(ds)               # [(id, why)]: decompression bombs, truncated JPEGs, ...
"""
from __future__ import annotations

import os

UNREADABLE = "failed the loader's integrity check (unreadable or truncated file)"


def open_catalogue(data: str | os.PathLike, *, n: int | None = None, seed: int = 42):
    """Every image of ``data`` as one ``datasets.Dataset`` (train and test together), ordered by id.

    ``data`` is anything ``fashrec.load_hm`` reads: an H&M folder, a saved or exported dataset, a Hub id,
    ``"sample"``, or a plain folder of images (ids are the file stems, no labels).
    """
    from fashrec.data.hm_dataset import load_hm

    ds = load_hm(data, n=n, seed=seed, split=False, progress=False)
    if len(ds) == 0:
        raise ValueError(f"{data}: the catalogue holds no images")
    return ds


def catalogue_metadata(ds) -> dict[str, list]:
    """Every column but ``image`` as strings (labels by name; a missing label is None), in row order."""
    import datasets

    columns = {}
    table = ds.select_columns([c for c in ds.column_names if c != "image"]).with_format("arrow")[:]
    for name, feature in ds.features.items():
        if name == "image":
            continue
        values = table.column(name).to_pylist()  # one Arrow read a column, not a formatted list
        if isinstance(feature, datasets.ClassLabel):
            names = feature.names
            columns[name] = [names[v] if v is not None and 0 <= v < len(names) else None for v in values]
        else:
            columns[name] = [None if v is None else str(v) for v in values]
    return columns


def loader_skipped(ds) -> list[tuple[str, str]]:
    """``[(id, why)]``: the rows ``load_hm`` left out because their photo failed its integrity check."""
    from fashrec.data.hm_dataset import load_report

    try:
        report = load_report(ds)
    except ValueError:  # not made by load_hm
        return []
    why = report.get("why") or {}
    return [(i, why.get(i) or UNREADABLE) for i in report.get("skipped", {}).get("undecodable", [])]


def undecoded(ds):
    """``ds`` with its image column as encoded cells (``{"bytes", "path"}``), nothing decoded."""
    import datasets

    return ds.cast_column("image", datasets.Image(decode=False))


class CellSources:
    """The photo of each row (encoded bytes or a path), read from the dataset's image column a block of
    rows at a time (one Arrow slice instead of a formatted row per photo; bytes stay bounded)."""

    BLOCK = 1024

    def __init__(self, ds) -> None:
        self.images = undecoded(ds).select_columns(["image"])
        self.block, self.start = [], -1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        i = int(i)
        if not self.start <= i < self.start + len(self.block):
            self.start = i - i % self.BLOCK
            self.block = self.images[self.start:self.start + self.BLOCK]["image"]
        cell = self.block[i - self.start]
        return cell["bytes"] if cell.get("bytes") is not None else cell.get("path")


def provenance(data) -> str:
    """``data`` as the catalogue records where photos came from: a folder as an absolute path."""
    from pathlib import Path

    source = str(data)
    if source != "sample" and Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())
    return source
