"""``catalogue.json`` and ``photos/``: the photo an index folder shows for each item, and the photos.

The folder carries its own photos, as small JPEG thumbnails (:data:`THUMBNAIL_SIDE`), named by their
content (``photos/3f/3fa09c...jpg``), so that what a Space serves is exactly the catalogue, wherever the
photos came from and however the index was updated: never a folder of the machine, never a file that
``catalogue.json`` could point anywhere.

    {"format": "fashrec.catalogue", "format_version": 2,
     "model": "multitask-cnn",                                   # how to load the model that made the vectors
     "photos": {"0108775015": "photos/3f/3fa09c...jpg", ...},    # one per id of ids.json, under photos/
     "sources": [{"job": "embed", "data": "sample", "n": 800}, {"job": "add", "data": "/new", "n": 3}]}

``model`` is a shipped name, a Hub id or a checkpoint folder (a path that starts with ``./`` or ``../`` is
relative to the index folder: a built Space's index names the checkpoint beside it). ``sources`` is
provenance only: where the photos were read from is never read again.

:func:`read_catalogue` refuses a record whose photos are not exactly one plain file under ``photos/`` per id
and a ``photos/`` folder that holds anything else.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from fashrec.index.layout import CATALOGUE_FILE, PHOTOS_DIR

THUMBNAIL_SIDE = 128  # the longer side of a served photo, in pixels (the sample's own 85x128)
_FORMAT = "fashrec.catalogue"
_VERSION = 2  # 1 pointed at the photos where they were found


@dataclass(frozen=True)
class Catalogue:
    """What ``catalogue.json`` says: the model reference, each id's photo (a path relative to the folder),
    and where the photos were read from (provenance)."""

    model: str | None
    photos: dict[str, str]
    sources: tuple[dict, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"format": _FORMAT, "format_version": _VERSION, "model": self.model, "photos": dict(self.photos),
                "sources": [dict(s) for s in self.sources]}


def read_catalogue(folder: str | os.PathLike, ids: list[str]) -> Catalogue:
    """The ``catalogue.json`` of ``folder``, checked against the index's ``ids``: ValueError (naming the file)
    unless every id has exactly one photo, each a plain file under ``photos/``, and ``photos/`` holds
    nothing else."""
    from fashrec.index.persistence import read_json_object

    folder = Path(folder)
    path = folder / CATALOGUE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} is not an index folder made by 'fashrec embed'")
    record = read_json_object(path)
    if record.get("format") != _FORMAT or record.get("format_version") != _VERSION:
        raise ValueError(f"{path} is not a version {_VERSION} catalogue (an index made by an older fashrec points at "
                         "photos outside its folder): rebuild it with 'fashrec embed'")
    photos, model, sources = record.get("photos"), record.get("model"), record.get("sources") or []
    if not isinstance(photos, dict) or not all(isinstance(v, str) for v in photos.values()):
        raise ValueError(f"{path}: 'photos' must map each id to a file")
    if (model is not None and not isinstance(model, str)) or not isinstance(sources, list):
        raise ValueError(f"{path}: 'model' must be a string and 'sources' a list")
    if set(photos) != set(ids):
        odd = sorted(set(photos) ^ set(ids))
        raise ValueError(f"{path} does not list the photos of the index's {len(ids)} ids (first difference: {odd[:3]})")
    for item, file in photos.items():
        if posixpath.normpath(file) != file or not file.startswith(PHOTOS_DIR + "/") or file.count("/") != 2:
            raise ValueError(f"{path}: the photo of {item!r} must be a file under {PHOTOS_DIR}/, not {file!r}")
        if not (folder / file).is_file():
            raise ValueError(f"{path}: the photo of {item!r}, {file}, is not in the folder")
    extra = sorted(set(photo_files(folder)) - set(photos.values()))
    if extra:
        raise ValueError(f"{folder / PHOTOS_DIR} holds {len(extra)} file(s) catalogue.json does not list (first: "
                         f"{extra[0]}): a served folder holds the catalogue's photos only")
    return Catalogue(model=model, photos={i: photos[i] for i in ids}, sources=tuple(sources))


def write_catalogue(folder: str | os.PathLike, catalogue: Catalogue) -> None:
    from fashrec.atomic import write_json_atomic

    write_json_atomic(catalogue.to_json(), Path(folder) / CATALOGUE_FILE)


def photo_files(folder: str | os.PathLike) -> list[str]:
    """The files under ``folder/photos``, relative to ``folder`` (POSIX), sorted."""
    root = Path(folder) / PHOTOS_DIR
    if not root.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in root.rglob("*") if not p.is_dir())


def write_photos(folder: str | os.PathLike, sources: Mapping[str, object], *, workers: int | None = None,
                 progress: bool = True) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Thumbnails of ``{id: photo}`` (a path or encoded bytes) written under ``folder/photos``. Returns
    ``({id: file}, [(id, why)])``: a photo that cannot be used is left out and reported, never fatal."""
    from tqdm.auto import tqdm

    from fashrec.data.image_cells import thumbnail
    from fashrec.data.preprocess import ImageError

    folder = Path(folder)

    def one(source):
        try:
            data = thumbnail(source, THUMBNAIL_SIDE)
        except (ImageError, OSError) as exc:
            return None, str(exc)
        digest = hashlib.sha256(data).hexdigest()
        file = f"{PHOTOS_DIR}/{digest[:2]}/{digest[2:34]}.jpg"
        target = folder / file
        if not target.exists():  # the same photo twice is one file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return file, None

    written, failed = {}, []
    items = list(sources.items())
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(one, [source for _, source in items])
        bar = tqdm(results, total=len(items), desc="photos", unit="img", disable=not progress or len(items) < 500)
        for (item, _), (file, why) in zip(items, bar):
            if file is None:
                failed.append((item, why))
            else:
                written[item] = file
    return written, failed


def carry_photos(source: str | os.PathLike, target: str | os.PathLike, files: list[str]) -> None:
    """The ``files`` (relative paths) of the folder ``source`` into ``target``: hard links where the file
    system allows (nothing is ever written into a photo in place), else copies."""
    for file in sorted(set(files)):
        new = Path(target) / file
        if new.exists():
            continue
        new.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(source) / file, new)
        except OSError:
            shutil.copy2(Path(source) / file, new)
