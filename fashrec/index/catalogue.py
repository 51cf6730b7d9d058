"""The catalogue side of an index: ids and their positions, metadata columns, ``where`` filters,
``exclude`` lists and the argument checks that name what is wrong."""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np


def as_float32_matrix(value, *, what: str, allow_vector: bool = False, copy: bool = False) -> np.ndarray:
    """A finite, C-contiguous float32 ``(rows, D)`` matrix from a numpy array, torch tensor or nested
    sequence (``(D,)`` becomes one row with ``allow_vector``); ValueError naming ``what`` otherwise."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, without importing torch
        value = value.detach().cpu().float().numpy()
    try:
        array = np.array(value, dtype=np.float32, copy=copy) if copy else np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a numeric matrix: {err}") from None
    if allow_vector and array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        shape = "(Q, D) or (D,)" if allow_vector else "(N, D)"
        raise ValueError(f"{what} must have shape {shape}, got {tuple(array.shape)}")
    if array.shape[1] == 0:
        raise ValueError(f"{what} has dimension 0")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise ValueError(f"{what} has NaN or infinite values in rows {bad[:10].tolist()}")
    return np.ascontiguousarray(array)


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


class Catalogue:
    """N items: unique string ids in catalogue order, their positions, and optional metadata columns.

    Args:
        ids: N unique strings (catalogue ids, e.g. H&M ``article_id`` with its leading zero).
        metadata: None, a pandas DataFrame or ``{column: sequence}`` with N rows in the order of ``ids``.
    """

    def __init__(self, ids, metadata, n: int) -> None:
        self.ids = _check_ids(ids, n)
        self.position = {item: i for i, item in enumerate(self.ids)}
        self.metadata = _metadata_columns(metadata, n)
        self._factor_cache: dict[str, tuple[dict, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def where_mask(self, where) -> np.ndarray | None:
        """The items a ``{column: value or list of values}`` filter keeps (None: no filter)."""
        if not where:
            return None
        if not isinstance(where, Mapping):
            raise ValueError(f"where must be a dict {{column: value or list of values}}, got {type(where).__name__}")
        if self.metadata is None:
            raise ValueError(f"where={dict(where)!r} needs metadata, but this index was built without any")
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in where.items():
            if column not in self.metadata:
                raise ValueError(f"unknown metadata column {column!r} in where; columns: {list(self.metadata)}")
            if isinstance(wanted, (list, tuple, set, frozenset, np.ndarray)):
                wanted_values = list(wanted)
            else:
                wanted_values = [wanted]
            codes_of, codes = self._factorized(column)
            wanted_codes = [codes_of[v] for v in wanted_values if _hashable(v) and v in codes_of]
            mask &= np.isin(codes, np.array(wanted_codes, dtype=np.int64))
        return mask

    def _factorized(self, column: str) -> tuple[dict, np.ndarray]:
        """``({value: code}, codes (N,))`` for a metadata column, made on first use: filters are then
        one vectorised ``np.isin`` over integer codes, whatever the column's type."""
        cached = self._factor_cache.get(column)
        if cached is None:
            codes_of: dict = {}
            try:
                codes = np.fromiter(
                    (codes_of.setdefault(v, len(codes_of)) for v in self.metadata[column].tolist()),
                    dtype=np.int64,
                    count=len(self),
                )
            except TypeError as err:
                raise ValueError(f"metadata column {column!r} holds unhashable values ({err}): it cannot be filtered") from None
            cached = self._factor_cache[column] = (codes_of, codes)
        return cached

    def exclude_lists(self, exclude, n_queries: int) -> list[list[str]]:
        """``exclude`` as one list of ids per query (one collection for all, or one per query)."""
        if exclude is None:
            return [[] for _ in range(n_queries)]
        if isinstance(exclude, str):
            return [[exclude] for _ in range(n_queries)]
        items = list(exclude)
        per_query = len(items) == n_queries and all(
            not isinstance(e, str) and isinstance(e, Iterable) for e in items
        ) and len(items) > 0
        if per_query:
            return [[e] if isinstance(e, str) else list(e) for e in items]
        if any(not isinstance(e, str) for e in items):
            raise ValueError(
                "exclude must be a collection of ids (applied to every query) or a list of "
                f"{n_queries} collections (one per query)"
            )
        return [items for _ in range(n_queries)]

    def excluded_positions(self, exclude, n_queries: int) -> list[np.ndarray] | None:
        """Sorted positions to leave out, per query; ids not in the catalogue are ignored."""
        if exclude is None:
            return None
        lists = self.exclude_lists(exclude, n_queries)
        pos = self.position
        return [np.array(sorted({pos[i] for i in ids if i in pos}), dtype=np.int64) for ids in lists]

    def check_enough(self, k, allowed, excluded, where) -> None:
        """ValueError when ``where`` and ``exclude`` leave fewer than k items for a query."""
        n_allowed = len(self) if allowed is None else int(allowed.sum())
        if n_allowed == 0:
            raise ValueError(f"the filter where={dict(where)!r} leaves no items in the index")
        if k > n_allowed:
            what = f"the filter where={dict(where)!r} leaves" if where else "the index has"
            raise ValueError(f"k={k} but {what} only {n_allowed} items")
        if excluded is None:
            return
        for r, ex in enumerate(excluded):
            left = n_allowed - (int(allowed[ex].sum()) if allowed is not None else len(ex))
            if k > left:
                filt = f" and where={dict(where)!r}" if where else ""
                raise ValueError(f"k={k} but only {left} items are left for query {r} after exclude{filt}")

    def ids_of(self, positions: np.ndarray) -> list[list[str]]:
        ids = self.ids
        return [[ids[p] for p in row] for row in positions.tolist()]


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_ids(ids, n: int) -> list[str]:
    if isinstance(ids, str):
        raise ValueError("ids must be a sequence of strings, not one string")
    ids = list(ids)
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} embedding rows")
    for i, item in enumerate(ids):
        if not isinstance(item, str):
            raise ValueError(
                f"ids must be str, got {type(item).__name__} {item!r} at position {i} "
                "(catalogue ids such as article_id keep their leading zeros only as strings)"
            )
    ids = [str(i) for i in ids]  # numpy str_ -> str
    if len(set(ids)) != n:
        seen, dups = set(), []
        for item in ids:
            if item in seen and item not in dups:
                dups.append(item)
            seen.add(item)
        raise ValueError(f"ids must be unique; duplicated: {dups[:10]}")
    return ids


def _metadata_columns(metadata, n: int) -> dict[str, np.ndarray] | None:
    if metadata is None:
        return None
    if hasattr(metadata, "columns") and hasattr(metadata, "to_numpy"):  # pandas DataFrame
        columns = {str(c): metadata[c].to_numpy() for c in metadata.columns}
    elif isinstance(metadata, Mapping):
        columns = {str(c): np.asarray(list(v) if not hasattr(v, "__array__") else v) for c, v in metadata.items()}
    else:
        raise ValueError(f"metadata must be a pandas DataFrame or a dict of columns, got {type(metadata).__name__}")
    for name, values in columns.items():
        if values.ndim != 1 or len(values) != n:
            raise ValueError(f"metadata column {name!r} has {len(values)} rows, the index has {n} items")
    return columns
