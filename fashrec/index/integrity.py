"""The seal of an index folder (``integrity.json``): the sha256 of every file in it, checked as one.

Whatever a reader of the folder trusts is a file of the folder: the vectors, the ids, the labels,
``index.json`` (the model and its options), ``catalogue.json`` (each id's photo) and the photos the Space
serves. :func:`seal` hashes them all; :func:`check_seal` refuses, naming the file, a folder where any one
of them changed, went missing or was added since, and a folder that holds a link or anything that is not
a plain file (a link could make a served photo stand for any file of the machine).

    seal("runs/hm-index")          # what the folder writer does last, and 'fashrec index seal' on purpose
    check_seal("runs/hm-index")    # what fashrec.open_index does first: ValueError naming the file

Besides the seal, the cross-checks every opener makes (:func:`check_ids`, :func:`check_model`): the ids and
the metadata name the same items, and a model preprocesses as the one that made the vectors did.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from fashrec.index.layout import INTEGRITY_FILE

_FORMAT = "fashrec.index.integrity"
_VERSION = 2  # 1 sealed the four SimilarityIndex files only
_SHOWN = 5  # files named in one message


def folder_files(folder: str | os.PathLike) -> list[str]:
    """Every file of ``folder`` but the seal itself, as sorted POSIX paths relative to it; ValueError
    naming a link or anything else that is not a plain file or folder."""
    folder = Path(folder)
    found = []
    for root, dirs, names in os.walk(folder):
        for name in sorted(dirs) + sorted(names):
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            relative = path.relative_to(folder).as_posix()
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ValueError(f"{folder}: {relative} is a link or a special file, not a plain file: an index "
                                 "folder holds its own files only")
            if stat.S_ISREG(mode) and relative != INTEGRITY_FILE:
                found.append(relative)
    return sorted(found)


def seal(folder: str | os.PathLike) -> dict[str, str]:
    """Write ``integrity.json``: the sha256 of every file of ``folder`` as it is now. Returns them."""
    from fashrec.atomic import write_json_atomic

    folder = Path(folder)
    hashes = {name: file_sha256(folder / name) for name in folder_files(folder)}
    write_json_atomic({"format": _FORMAT, "format_version": _VERSION, "sha256": hashes}, folder / INTEGRITY_FILE)
    return hashes


def check_seal(folder: str | os.PathLike) -> dict[str, str]:
    """Refuse (ValueError, one line naming the files) a folder that is not exactly what was sealed. Returns
    the sealed hashes."""
    folder = Path(folder)
    path = folder / INTEGRITY_FILE
    vouch = f"if you vouch for the folder as it is, seal it: fashrec index seal {folder}"
    if not path.is_file():
        raise ValueError(f"{folder}: no {INTEGRITY_FILE}, so its files cannot be checked; rebuild it with "
                         f"'fashrec embed', or {vouch}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        sealed = record["sha256"]
        version = record.get("format_version", 1)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is not an integrity record; rebuild the index, or {vouch}") from None
    if not isinstance(sealed, dict) or version != _VERSION:
        raise ValueError(f"{path} is a seal of an older fashrec (version {version!r}): its folder does not carry "
                         "the photos it shows; rebuild the index with 'fashrec embed'")
    present = folder_files(folder)
    problems = [f"{name} is missing" for name in sorted(set(sealed) - set(present))]
    problems += [f"{name} was added" for name in present if name not in sealed]
    problems += [f"{name} changed" for name in present if name in sealed and file_sha256(folder / name) != sealed[name]]
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise ValueError(f"{folder}: {', '.join(problems[:_SHOWN])}{more} since the folder was sealed "
                         f"({INTEGRITY_FILE}); refusing a tampered or half-copied index: rebuild it with "
                         f"'fashrec embed', or {vouch}")
    return dict(sealed)


def check_ids(folder: str | os.PathLike, index) -> None:
    """ValueError unless ``ids.json`` and the metadata's ``article_id`` name the same items in the same order
    (else a caption and a photo would describe another product than the vector found)."""
    meta = index.metadata
    if meta is None or "article_id" not in meta.columns:
        return
    listed = [str(a) for a in meta["article_id"].tolist()]
    if listed != list(index.ids):
        first = next(i for i, (a, b) in enumerate(zip(listed, index.ids)) if a != b)  # the index checked the lengths
        raise ValueError(f"{folder}: ids.json and the metadata's article_id disagree (first at position {first}: "
                         f"{index.ids[first]!r} vs {listed[first]!r})")


def check_model(folder: str | os.PathLike, stored: dict | None, model) -> None:
    """ValueError unless ``model`` is of the class and preprocessing the ``index.json`` model entry
    ``stored`` records: same weights with another ``pad_value`` (or input size) make other vectors."""
    stored = stored or {}
    if stored.get("class") != type(model).__name__:
        raise ValueError(f"{folder} was made by a {stored.get('class')}, not by this {type(model).__name__}")
    made = (stored.get("config") or {}).get("preprocess") or {}
    mine = model.preprocess_config.to_dict()
    if made != mine:
        differs = sorted(k for k in set(made) | set(mine) if made.get(k) != mine.get(k))
        raise ValueError(f"{folder} was embedded with other preprocessing ({', '.join(f'{k} {made.get(k)!r}' for k in differs)}) "
                         f"than this {type(model).__name__} ({', '.join(f'{k} {mine.get(k)!r}' for k in differs)}): "
                         "same weights, other inputs; re-embed the catalogue with this model")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
