"""Is a saved index the one its model made, unchanged? Checked before an index is served.

``SimilarityIndex.load(path, model=)`` compares the weights hash. A Space also needs to know that:

- the model **preprocesses** as the index's model did: same weights with another ``pad_value`` (or input
  size) give other embeddings, so ``index.json``'s model class and ``preprocess`` must match the model's;
- ``ids.json`` and the metadata's ``article_id`` column name the same items in the same order (else a
  caption and a photo describe another product than the vector found);
- the files are the ones written: ``integrity.json`` holds the sha256 of each file of the index, written
  by :func:`seal` when the index is made (``fashrec embed``, ``fashrec space build``).

    seal("runs/hm-index")                                  # after index.save(...)
    check_index("runs/hm-index", index, model)              # after SimilarityIndex.load(...): ValueError if not

Kept apart from the index's own save/load code on purpose: it reads the saved files as they are.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

INTEGRITY_FILE = "integrity.json"
# The files of a saved SimilarityIndex (fashrec.index), each sealed when present.
SEALED = ("embeddings.safetensors", "ids.json", "metadata.parquet", "index.json")
_FORMAT = "fashrec.index.integrity"


def seal(folder: str | os.PathLike) -> dict:
    """Write ``integrity.json``: the sha256 of every index file present in ``folder``."""
    from fashrec.atomic import write_json_atomic

    folder = Path(folder)
    record = {"format": _FORMAT, "sha256": {name: _sha256(folder / name) for name in SEALED if (folder / name).is_file()}}
    write_json_atomic(record, folder / INTEGRITY_FILE)
    return record


def check_index(folder: str | os.PathLike, index, model=None, *, require_seal: bool = True) -> None:
    """Refuse (ValueError, one line) an index whose files changed after :func:`seal`, whose ids and metadata
    disagree, or (with ``model``) that was made by a model of another class or preprocessing.

    ``require_seal=False`` lets an index made before sealing existed through the file check.
    """
    folder = Path(folder)
    _check_files(folder, require_seal)
    _check_ids(folder, index)
    if model is not None:
        _check_model(folder, model)


def _check_files(folder: Path, require_seal: bool) -> None:
    path = folder / INTEGRITY_FILE
    if not path.is_file():
        if require_seal:
            raise ValueError(f"{folder}: no {INTEGRITY_FILE}, so its files cannot be checked; rebuild the index "
                             "with 'fashrec embed' (or seal it: fashrec.index.integrity.seal)")
        return
    try:
        sealed = json.loads(path.read_text(encoding="utf-8"))["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path} is not an integrity record") from None
    present = {name for name in SEALED if (folder / name).is_file()}
    changed = sorted(name for name in present | set(sealed)
                     if name not in present or name not in sealed or _sha256(folder / name) != sealed[name])
    if changed:
        raise ValueError(f"{folder}: {', '.join(changed)} changed since the index was made (checksums in "
                         f"{INTEGRITY_FILE}); refusing a tampered or half-copied index: rebuild it with 'fashrec embed'")


def _check_ids(folder: Path, index) -> None:
    meta = index.metadata
    if meta is None or "article_id" not in meta.columns:
        return
    listed = [str(a) for a in meta["article_id"].tolist()]
    if listed != list(index.ids):
        first = next(i for i, (a, b) in enumerate(zip(listed, index.ids)) if a != b)  # the index checked the lengths
        raise ValueError(f"{folder}: ids.json and the metadata's article_id disagree (first at position {first}: "
                         f"{index.ids[first]!r} vs {listed[first]!r})")


def _check_model(folder: Path, model) -> None:
    stored = (json.loads((folder / "index.json").read_text(encoding="utf-8")).get("model") or {})
    if stored.get("class") != type(model).__name__:
        raise ValueError(f"{folder} was made by a {stored.get('class')}, not by this {type(model).__name__}")
    made = (stored.get("config") or {}).get("preprocess")
    mine = model.preprocess_config.to_dict()
    if made != mine:
        differs = sorted(k for k in set(made or {}) | set(mine) if (made or {}).get(k) != mine.get(k))
        raise ValueError(f"{folder} was embedded with other preprocessing ({', '.join(f'{k} {(made or {}).get(k)!r}' for k in differs)}) "
                         f"than this {type(model).__name__} ({', '.join(f'{k} {mine.get(k)!r}' for k in differs)}): "
                         "same weights, other inputs; re-embed the catalogue with this model")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
