"""FAISS behind :meth:`fashrec.index.SimilarityIndex.search` (``backend="faiss-flat"`` / ``"faiss-hnsw"``).

    index = SimilarityIndex(vectors, ids, backend="faiss-hnsw", ef_search=128)   # pip install 'fashrec[faiss]'

- ``faiss-flat``: brute force in FAISS (``IndexFlat`` with ``METRIC_L2`` / ``METRIC_L1``, and
  ``METRIC_INNER_PRODUCT`` on unit-normalised vectors for cosine). Exact up to float32 rounding.
- ``faiss-hnsw``: approximate graph search (``IndexHNSWFlat``; ``hnsw_m`` links per node,
  ``ef_construction``; ``ef_search`` trades speed for recall and can be changed on the index at any time).

One FAISS index is built per (focus, metric) on the first search that needs it (HNSW over 1M vectors
takes minutes). The distances returned are recomputed in float64 with the paper's formulas for the ids
FAISS found, and those ids are ordered by (distance, catalogue position), as in the exact backend.

Fallbacks to the exact engine: a ``where`` filter, and a ``focus`` that weighs several focuses.
``exclude`` is honoured by asking FAISS for ``k + len(exclude)`` neighbours and dropping the excluded.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from fashrec.index.distances import FocusVectors, rank_exact

_FAISS_HINT = "backend='faiss-flat' / 'faiss-hnsw' needs faiss: pip install 'fashrec[faiss]' (faiss-cpu)"


def import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(f"{_FAISS_HINT} ({err})") from None
    return faiss


class FaissBackend:
    """FAISS indexes over the focuses of one index.

    Args:
        focuses: ``{focus name: FocusVectors}`` (the index's matrices and norms).
        kind: ``"flat"`` or ``"hnsw"``.
        settings: an object whose ``hnsw_m``, ``ef_construction`` and ``ef_search`` attributes are read
            when an index is built or searched (the :class:`~fashrec.index.SimilarityIndex` itself, so
            that ``index.ef_search`` can be changed between searches).
    """

    def __init__(self, focuses: Mapping[str, FocusVectors], *, kind: str, settings) -> None:
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"unknown FAISS index kind {kind!r}; choose 'flat' or 'hnsw'")
        self._faiss = import_faiss()
        self._focuses = focuses
        self._settings = settings
        self.kind = kind
        self._indexes: dict[tuple[str, str], object] = {}

    def build(self, focus: str, metric: str):
        """The FAISS index for ``(focus, metric)``, built on first use."""
        key = (focus, metric)
        index = self._indexes.get(key)
        if index is not None:
            return index
        faiss = self._faiss
        vectors = self._focuses[focus]
        x = vectors.x
        faiss_metric = {
            "euclidean": faiss.METRIC_L2,
            "cityblock": faiss.METRIC_L1,
            "cosine": faiss.METRIC_INNER_PRODUCT,
        }[metric]
        if metric == "cosine":
            x = (x * vectors.inv_norm[:, None]).astype(np.float32)
        d = x.shape[1]
        if self.kind == "flat":
            index = faiss.IndexFlat(d, faiss_metric)
        else:
            index = faiss.IndexHNSWFlat(d, self._settings.hnsw_m, faiss_metric)
            index.hnsw.efConstruction = self._settings.ef_construction
        index.add(np.ascontiguousarray(x, dtype=np.float32))
        self._indexes[key] = index
        return index

    def search(self, q, k, metric, weights, allowed, excluded):
        """``(positions, distances)`` or None when the exact engine must answer (see module docstring)."""
        if allowed is not None or len(weights) != 1:
            return None
        ((focus, weight),) = weights.items()
        queries = q[focus]
        index = self.build(focus, metric)
        if self.kind == "hnsw":
            index.hnsw.efSearch = max(int(self._settings.ef_search), k)
        if metric == "cosine":
            norms = np.linalg.norm(queries.astype(np.float64), axis=1)
            inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            queries = (queries * inv[:, None]).astype(np.float32)
        extra = max((len(e) for e in excluded), default=0) if excluded is not None else 0
        vectors = self._focuses[focus]
        fetch = min(k + extra, len(vectors.x))
        _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), fetch)

        n_queries = queries.shape[0]
        out_pos = np.empty((n_queries, k), dtype=np.int64)
        out_dist = np.empty((n_queries, k), dtype=np.float64)
        for r in range(n_queries):
            row = found[r][found[r] >= 0]
            if excluded is not None and len(excluded[r]):
                row = row[~np.isin(row, excluded[r])]
            if len(row) < k:  # HNSW could not reach k items: let the exact engine answer
                return None
            out_pos[r], out_dist[r] = rank_exact(vectors, np.sort(row), q[focus][r], metric, k, weight)
        return out_pos, out_dist
