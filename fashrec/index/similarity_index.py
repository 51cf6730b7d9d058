"""Exact k-nearest-neighbour search over a catalogue of embeddings (paper section 3.5), plus save/load.

    index = SimilarityIndex(vectors, ids=article_ids, metadata=labels_df)
    ids, dist = index.search(query_vectors, k=10, metric="cosine", where={"index_group_name": "Ladieswear"})
    ids, dist = index.search_ids(["0108775015"], k=5)             # the item itself is left out
    index.save("runs/index"); SimilarityIndex.load("runs/index", model=model)

Metrics are exactly the paper's (see :mod:`fashrec.index.distances`); several named embeddings of the
same items are steerable focuses (:mod:`fashrec.index.focus`).

Exactness. Embeddings are stored as float32 (queries are cast to float32 too), and the distances that
rank and that are returned are computed in float64 from those float32 values. Speed comes from float32
passes that bound every float64 distance from below and above with a proven error bound; only items
whose lower bound is at most the k-th smallest upper bound are re-ranked in float64, so the result
equals a float64 brute-force search, ties included. Ties: equal distances are ordered by catalogue
position (the order of ``ids``), i.e. a stable sort.

Engines (:mod:`fashrec.index.engines`): the flat scan reads every item; for a few queries on a large,
wide catalogue, projection pruning (euclidean, cosine) and a block-sum / pivot cascade (cityblock) rule
most items out without reading their vectors. The planner (:mod:`fashrec.index.planner`) keeps a
pruning engine only where it measures faster than the flat scan.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fashrec.index import persistence, updates
from fashrec.index.catalogue import Catalogue, as_float32_matrix, check_k
from fashrec.index.distances import METRICS, FocusVectors
from fashrec.index.focus import DEFAULT_FOCUS, check_focus_name, focus_queries, focus_weights, weighted_search
from fashrec.index.planner import Planner

BACKENDS = ("exact", "faiss-flat", "faiss-hnsw")


class SimilarityIndex:
    """Exact k-NN over named embeddings of a catalogue, with metadata filters; see the module docstring.

    Args:
        embeddings: ``(N, D)`` torch tensor or numpy array, or ``{focus_name: (N, D_f)}``.
            A plain matrix is the ``"overall"`` focus. Copied and stored as float32.
        ids: N unique strings (catalogue ids, e.g. H&M ``article_id`` with its leading zero).
        metadata: optional pandas DataFrame or ``{column: sequence}`` with N rows in the order of ``ids``;
            ``where=`` filters on its columns.
        backend: ``"exact"`` (default), ``"faiss-flat"`` or ``"faiss-hnsw"`` (needs ``fashrec[faiss]``;
            see :mod:`fashrec.index.faiss_backend`).
        hnsw_m, ef_construction, ef_search: HNSW parameters (``backend="faiss-hnsw"`` only).
    """

    def __init__(
        self,
        embeddings,
        ids: Sequence[str],
        metadata=None,
        *,
        backend: str = "exact",
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        self.backend = backend
        self._focuses: dict[str, FocusVectors] = {}
        raw = embeddings if isinstance(embeddings, Mapping) else {DEFAULT_FOCUS: embeddings}
        if not raw:
            raise ValueError("embeddings is an empty dict: give at least one focus, e.g. {'overall': matrix}")
        n = None
        for name, matrix in raw.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"focus names must be non-empty strings, got {name!r}")
            array = as_float32_matrix(matrix, what=f"embeddings[{name!r}]", copy=True)
            if n is None:
                n = array.shape[0]
            elif array.shape[0] != n:
                raise ValueError(
                    f"embeddings[{name!r}] has {array.shape[0]} rows but the first focus has {n}: "
                    "every focus must describe the same items"
                )
            array.flags.writeable = False
            self._focuses[name] = FocusVectors(array)
        if n == 0:
            raise ValueError("embeddings have 0 rows: an index needs at least one item")
        self._catalogue = Catalogue(ids, metadata, n)
        self._planner = Planner(self._focuses)

        # The ``model`` entry of ``index.json`` (class, config, weights_hash) for a loaded index, else None.
        self.model_record: dict | None = None
        self.hnsw_m, self.ef_construction, self.ef_search = int(hnsw_m), int(ef_construction), int(ef_search)
        self._faiss = None
        if backend != "exact":
            from fashrec.index.faiss_backend import FaissBackend

            self._faiss = FaissBackend(self._focuses, kind=backend.split("-", 1)[1], settings=self)

    # ------------------------------------------------------------------ description

    def __len__(self) -> int:
        return len(self._catalogue)

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"SimilarityIndex(n={len(self)}, focuses: {dims}, backend={self.backend!r})"

    @property
    def ids(self) -> list[str]:
        """Catalogue ids in catalogue order (a copy)."""
        return list(self._catalogue.ids)

    @property
    def focuses(self) -> tuple[str, ...]:
        return tuple(self._focuses)

    @property
    def dims(self) -> dict[str, int]:
        """Embedding size per focus."""
        return {k: v.x.shape[1] for k, v in self._focuses.items()}

    @property
    def metadata(self):
        """The metadata as a pandas DataFrame (rows in catalogue order), or None."""
        if self._catalogue.metadata is None:
            return None
        import pandas as pd

        return pd.DataFrame(dict(self._catalogue.metadata))

    @property
    def metadata_columns(self) -> tuple[str, ...]:
        return tuple(self._catalogue.metadata or ())

    def embeddings(self, focus: str = DEFAULT_FOCUS) -> np.ndarray:
        """The stored (read-only, float32) embedding matrix of one focus."""
        check_focus_name(focus, self._focuses)
        return self._focuses[focus].x

    def position(self, item_id: str) -> int:
        """Catalogue position of an id; ValueError naming the id when it is not in the index."""
        try:
            return self._catalogue.position[item_id]
        except (KeyError, TypeError):
            raise ValueError(f"id {item_id!r} is not in this index ({len(self)} items)") from None

    # ------------------------------------------------------------------ search

    def search(
        self,
        queries,
        k: int = 10,
        metric: str = "cosine",
        exclude=None,
        where: Mapping[str, Any] | None = None,
        focus: str | Mapping[str, float] = DEFAULT_FOCUS,
    ) -> tuple[list[list[str]], np.ndarray]:
        """The k nearest catalogue items of each query.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` (one query) matrix; with a weighted ``focus`` over several
                focuses, a dict ``{focus_name: (Q, D_f)}`` holding every focus with a non-zero weight.
            k: neighbours per query; ValueError when more than the items left after ``where``/``exclude``.
            metric: ``"cityblock"``, ``"euclidean"`` or ``"cosine"`` (see the module docstring).
            exclude: ids never returned: one collection for all queries, or a list of Q collections
                (one per query). Ids not in the index are ignored.
            where: ``{column: value or list of values}`` on the metadata, applied before ranking (results
                are exact within the filtered set).
            focus: a focus name, or ``{name: weight}`` with non-negative weights: distance is
                ``sum_f weight_f * distance_f``.

        Returns:
            ``(ids, distances)``: Q lists of k ids, nearest first, and a float64 ``(Q, k)`` array.
            Equal distances are ordered by catalogue position.
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
        k = check_k(k)
        weights = focus_weights(focus, self._focuses)
        q = focus_queries(queries, weights, self._focuses)
        n_queries = next(iter(q.values())).shape[0]
        catalogue = self._catalogue
        allowed = catalogue.where_mask(where)
        excluded = catalogue.excluded_positions(exclude, n_queries)
        catalogue.check_enough(k, allowed, excluded, where)

        if self._faiss is not None:
            result = self._faiss.search(q, k, metric, weights, allowed, excluded)
            if result is not None:
                positions, distances = result
                return catalogue.ids_of(positions), distances
        if len(weights) == 1:
            ((name, weight),) = weights.items()
            results = self._planner.search(q[name], k, metric, name, weight, allowed, excluded)
        else:
            results = weighted_search(self._focuses, q, k, metric, weights, allowed, excluded)
        if len(results) == 1:
            positions, distances = results[0][0][None], results[0][1][None]
        else:
            positions, distances = np.stack([p for p, _ in results]), np.stack([d for _, d in results])
        return catalogue.ids_of(positions), distances

    def search_ids(
        self,
        item_ids: Sequence[str] | str,
        k: int = 10,
        metric: str = "cosine",
        exclude=None,
        where: Mapping[str, Any] | None = None,
        focus: str | Mapping[str, float] = DEFAULT_FOCUS,
        *,
        exclude_self: bool = True,
    ) -> tuple[list[list[str]], np.ndarray]:
        """:meth:`search` with catalogue items as the queries; each item is left out of its own results."""
        if isinstance(item_ids, str):
            item_ids = [item_ids]
        positions = np.array([self.position(i) for i in item_ids], dtype=np.int64)
        if positions.size == 0:
            raise ValueError("search_ids needs at least one id")
        queries = {name: v.x[positions] for name, v in self._focuses.items()}
        per_query = self._catalogue.exclude_lists(exclude, len(positions))
        if exclude_self:
            per_query = [list(extra) + [item] for extra, item in zip(per_query, item_ids)]
        return self.search(queries, k=k, metric=metric, exclude=per_query, where=where, focus=focus)

    # ------------------------------------------------------------------ updates (fashrec.index.updates)

    def add(self, embeddings, ids: Sequence[str], metadata=None) -> "SimilarityIndex":
        """Append items (``embeddings`` as in the constructor, new unique ``ids``, optional metadata rows
        of the index's columns) and return the index: it then answers as a fresh build of its items does."""
        updates.add(self, embeddings, ids, metadata)
        return self

    def remove(self, ids: Sequence[str]) -> "SimilarityIndex":
        """Drop the items ``ids`` (all must be in the index); the others keep their order."""
        updates.remove(self, ids)
        return self

    def replace(self, embeddings, ids: Sequence[str], metadata=None) -> "SimilarityIndex":
        """New vectors (and metadata, for the columns given) for items already in the index, in place."""
        updates.replace(self, embeddings, ids, metadata)
        return self

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike, *, model=None, record: dict | None = None) -> Path:
        """Write the index to the folder ``path`` (replaced as a whole, atomically).

        The folder holds ``embeddings.safetensors`` (one float32 tensor per focus), ``ids.json``,
        ``metadata.parquet`` (when there is metadata; needs pyarrow) and ``index.json`` (format version,
        N, D per focus, and with ``model`` its class, ``config_dict()`` and ``weights_hash``, which
        :meth:`load` checks). The new folder is built beside the target and renamed over it, so a crash
        leaves either the old index or the new one. ``record``: more entries for ``index.json`` (an index
        folder's skipped photos, or the ``"model"`` record to keep when ``model`` is not given).
        """
        vectors = {name: v.x for name, v in self._focuses.items()}
        return persistence.save_index(path, vectors, self._catalogue.ids, self._catalogue.metadata, model=model,
                                      record=record)

    @classmethod
    def load(cls, path: str | os.PathLike, *, model=None, backend: str = "exact", **backend_options) -> "SimilarityIndex":
        """Read an index written by :meth:`save`.

        With ``model``, refuses (ValueError) when the index was built with other weights: the stored
        ``weights_hash`` must equal ``fashrec.models.hub_model.weights_hash(model)``.
        """
        embeddings, ids, metadata, model_record = persistence.read_index(path, model=model)
        index = cls(embeddings, ids, metadata, backend=backend, **backend_options)
        index.model_record = model_record
        return index
