"""Adding, removing and replacing the items of a :class:`~fashrec.index.SimilarityIndex`, in place.

    index.add(vectors, ids=["0999999001"], metadata={"prod_name": ["Tee"]})   # appended, in order
    index.remove(["0108775015"])                                              # the rest keep their order
    index.replace(vectors, ids=["0999999001"])                                # same place, new vectors

An index after any sequence of updates *is* the index a fresh build of its items, in its order, makes:
the new rows are assembled here and the index is constructed again from them
(``SimilarityIndex.__init__`` on the same object), so every derived structure (norms, the catalogue's
filters, pruning projections, cityblock pivots, the planner's timings, FAISS indexes) is made anew and
nothing stale can answer. An update costs one copy of the catalogue's vectors. Nothing is written to
disk here: ``fashrec.jobs.index_update`` updates index folders.

Refused with one ValueError, the index left as it was: an id already there (``add``: duplicate ids) or
not there (``remove``, ``replace``), an id twice in one update, vectors of other focuses or sizes,
metadata columns the index does not have, and removing every item.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from fashrec.index.catalogue import as_float32_matrix


def add(index, embeddings, ids: Sequence[str], metadata=None) -> None:
    """Append items after the last one, in the order given."""
    ids = _unique_strings(ids, "add")
    present = [i for i in ids if i in index._catalogue.position]
    if present:
        raise ValueError(f"{len(present)} id(s) are already in the index (first: {present[:5]}): duplicate ids "
                         "are refused; replace() changes an item's vectors")
    rows = _rows(index, embeddings, len(ids))
    vectors = {f: np.concatenate([index.embeddings(f), rows[f]]) for f in index.focuses}
    old = index._catalogue.metadata
    new = _metadata_rows(index, metadata, len(ids))
    columns = None if old is None else {c: np.concatenate([_objects(old[c]), new.get(c, _nones(len(ids)))])
                                        for c in old}
    _rebuild(index, vectors, index.ids + ids, columns)


def remove(index, ids: Sequence[str]) -> None:
    """Drop items; the others keep their order."""
    ids = _unique_strings(ids, "remove")
    positions = _positions(index, ids)
    if len(positions) == len(index):
        raise ValueError(f"removing all {len(index)} items would leave an empty index")
    keep = np.ones(len(index), dtype=bool)
    keep[positions] = False
    old = index._catalogue.metadata
    _rebuild(index, {f: index.embeddings(f)[keep] for f in index.focuses},
             [i for i, k in zip(index.ids, keep) if k], None if old is None else {c: v[keep] for c, v in old.items()})


def replace(index, embeddings, ids: Sequence[str], metadata=None) -> None:
    """New vectors (and, for the columns given, metadata) for items already in the index, in place."""
    ids = _unique_strings(ids, "replace")
    positions = _positions(index, ids)
    rows = _rows(index, embeddings, len(ids))
    vectors = {}
    for f in index.focuses:
        vectors[f] = np.array(index.embeddings(f))
        vectors[f][positions] = rows[f]
    old = index._catalogue.metadata
    columns = None if old is None else {c: _objects(v).copy() for c, v in old.items()}
    for c, values in _metadata_rows(index, metadata, len(ids)).items():
        columns[c][positions] = values
    _rebuild(index, vectors, index.ids, columns)


# --------------------------------------------------------------------------- pieces


def _rebuild(index, vectors: Mapping[str, np.ndarray], ids: list[str], metadata) -> None:
    """Construct ``index`` again from these rows, keeping its backend settings and model record; if the
    construction fails the index is left exactly as it was."""
    saved = dict(index.__dict__)
    options = dict(backend=index.backend, hnsw_m=index.hnsw_m, ef_construction=index.ef_construction,
                   ef_search=index.ef_search)
    try:
        type(index).__init__(index, dict(vectors), ids, metadata, **options)
    except BaseException:
        index.__dict__.clear()
        index.__dict__.update(saved)
        raise
    index.model_record = saved.get("model_record")


def _unique_strings(ids, what: str) -> list[str]:
    if isinstance(ids, str):
        raise ValueError(f"{what}: ids must be a sequence of strings, not one string")
    ids = list(ids)
    if not ids:
        raise ValueError(f"{what}: no ids given")
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise ValueError(f"{what}: ids must be str, got {type(bad[0]).__name__} {bad[0]!r}")
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        seen: set = set()
        twice = [i for i in ids if i in seen or seen.add(i)]
        raise ValueError(f"{what}: ids given twice: {twice[:5]}")
    return ids


def _positions(index, ids: list[str]) -> np.ndarray:
    missing = [i for i in ids if i not in index._catalogue.position]
    if missing:
        raise ValueError(f"{len(missing)} id(s) are not in the index (first: {missing[:5]})")
    return np.array([index._catalogue.position[i] for i in ids], dtype=np.int64)


def _rows(index, embeddings, n: int) -> dict[str, np.ndarray]:
    """The new rows of every focus, checked against the index's focuses and sizes."""
    raw = embeddings if isinstance(embeddings, Mapping) else {index.focuses[0]: embeddings}
    if not isinstance(embeddings, Mapping) and len(index.focuses) > 1:
        raise ValueError(f"this index has the focuses {list(index.focuses)}: give {{focus: vectors}} for each")
    if set(raw) != set(index.focuses):
        raise ValueError(f"embeddings have the focuses {sorted(raw)}, the index {sorted(index.focuses)}")
    rows = {}
    for f, dim in index.dims.items():
        rows[f] = as_float32_matrix(raw[f], what=f"embeddings[{f!r}]")
        if rows[f].shape != (n, dim):
            raise ValueError(f"embeddings[{f!r}] has shape {rows[f].shape}; the index needs ({n}, {dim}) for {n} ids")
    return rows


def _metadata_rows(index, metadata, n: int) -> dict[str, np.ndarray]:
    """The given metadata as object columns of ``n`` rows, each a column of the index."""
    if metadata is None:
        return {}
    known = index._catalogue.metadata
    if hasattr(metadata, "columns") and hasattr(metadata, "to_numpy"):  # pandas DataFrame
        columns = {str(c): metadata[c].to_numpy() for c in metadata.columns}
    elif isinstance(metadata, Mapping):
        columns = {str(c): np.asarray(list(v), dtype=object) for c, v in metadata.items()}
    else:
        raise ValueError(f"metadata must be a pandas DataFrame or a dict of columns, got {type(metadata).__name__}")
    if known is None and columns:
        raise ValueError("this index has no metadata columns: build it with metadata to store any")
    unknown = sorted(set(columns) - set(known or ()))
    if unknown:
        raise ValueError(f"metadata columns {unknown} are not in the index (it has {list(known)})")
    for c, values in columns.items():
        if len(values) != n:
            raise ValueError(f"metadata column {c!r} has {len(values)} rows for {n} ids")
    return {c: _objects(v) for c, v in columns.items()}


def _objects(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _nones(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)
