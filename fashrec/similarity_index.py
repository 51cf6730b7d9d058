"""Exact k-nearest-neighbour search over a catalogue of embeddings (paper section 3.5), plus save/load.

    index = SimilarityIndex(vectors, ids=article_ids, metadata=labels_df)
    ids, dist = index.search(query_vectors, k=10, metric="cosine", where={"index_group_name": "Ladieswear"})
    ids, dist = index.search_ids(["0108775015"], k=5)             # the item itself is left out
    index.save("runs/index"); SimilarityIndex.load("runs/index", model=model)

Metrics are exactly the paper's, for vectors u, v:

    cityblock  ||u - v||_1
    euclidean  ||u - v||_2
    cosine     1 - u.v / (||u|| ||v||)    (1.0 when either vector is zero; clipped to [0, 2])

Steerable similarity: an index may hold several named embeddings of the same items (``{"overall": ...,
"shape": ..., "colour": ...}``). ``focus="shape"`` ranks by one of them; ``focus={"shape": 2, "colour": 1}``
ranks by the weighted sum ``sum_f w_f * d_f`` where each ``d_f`` is the chosen metric in its own space.

Exactness. Embeddings are stored as float32 (queries are cast to float32 too), and the distances that
rank and that are returned are computed in float64 from those float32 values. Speed comes from a float32
pass (one BLAS matrix product for euclidean/cosine with precomputed norms, ``torch.cdist(p=1)`` for
cityblock) that yields, for every item, a lower and an upper bound on its float64 distance (the float32
rounding error is bounded by ``D * 2**-24 * |u||v|``, doubled for safety). Every item whose lower bound
is at most the k-th smallest upper bound is re-ranked in float64; no other item can be in the top k, so
the result equals a float64 brute-force search, ties included.

A search with at most 8 queries on a catalogue of >= 2,048 items and >= 128 dimensions (the app's case:
one product at a time) first tries projection pruning: an orthonormal projection P onto the top 64
principal directions gives ``||P(u - v)|| <= ||u - v||``, a lower bound that rules most items out
without reading their full vectors; the survivors are computed exactly. Still exact; the projection is
built on the first such search (about a second), and queries it cannot prune take the full scan.

Cityblock searches of the same size take a cascade of proven lower bounds instead (block sums at three
resolutions, ``sum_b |S_b(u) - S_b(v)| <= ||u - v||_1``, and the triangle inequality through k-means++
pivots); only the survivors are computed, in float32 then float64: see ``_l1_pruned_search``.

Ties: equal distances are ordered by catalogue position (the order of ``ids``), i.e. a stable sort.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

METRICS = ("cityblock", "euclidean", "cosine")
BACKENDS = ("exact", "faiss-flat", "faiss-hnsw")
DEFAULT_FOCUS = "overall"
FORMAT_NAME = "fashrec.SimilarityIndex"
FORMAT_VERSION = 1
EMBEDDINGS_FILE = "embeddings.safetensors"
IDS_FILE = "ids.json"
METADATA_FILE = "metadata.parquet"
INDEX_FILE = "index.json"
MAX_FOCUS_WEIGHT = 1e6  # see _weights: beyond this a weighted distance can overflow

_U32 = 2.0**-24  # unit round-off of float32
_U64 = 2.0**-53
# Scores held in memory at once (queries x catalogue) during a search: bounds memory for big catalogues.
_BLOCK_ELEMENTS = 1 << 22
# Few-query searches on big, wide catalogues first try projection pruning (see _pruned_search).
_PRUNE_MIN_ITEMS = 2048
_PRUNE_MIN_DIM = 128
_PRUNE_MAX_QUERIES = 8
_PRUNE_RANK = 64
_PRUNE_WIDE_RANK = 256  # directions kept for large catalogues of long vectors (see _projection)
_PRUNE_WIDE_MIN_ITEMS = 32768
# Cityblock pruning (see _l1_pruned_search): block sizes of the block-sum levels, and pivots.
_L1_BLOCK_SIZES = (32, 8, 4)
_L1_MIN_BLOCKS = 8
_L1_PIVOTS = 128
_L1_NEAR_PIVOTS = 4
_L1_FIRST_FACTOR, _L1_FIRST_MIN = 4, 32  # float32 distances of max(4k, 32) best-bounded items give t
_L1_THREADED_ELEMENTS = 1 << 24  # catalogues of more values than this (16.7M) search cityblock with all threads


class SimilarityIndex:
    """Exact k-NN over named embeddings of a catalogue, with metadata filters; see the module docstring.

    Args:
        embeddings: ``(N, D)`` torch tensor or numpy array, or ``{focus_name: (N, D_f)}``.
            A plain matrix is the ``"overall"`` focus. Copied and stored as float32.
        ids: N unique strings (catalogue ids, e.g. H&M ``article_id`` with its leading zero).
        metadata: optional pandas DataFrame or ``{column: sequence}`` with N rows in the order of ``ids``;
            ``where=`` filters on its columns.
        backend: ``"exact"`` (default), ``"faiss-flat"`` or ``"faiss-hnsw"`` (needs ``fashrec[faiss]``;
            see :mod:`fashrec.faiss_backend`).
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
        self._vectors: dict[str, np.ndarray] = {}
        raw = embeddings if isinstance(embeddings, Mapping) else {DEFAULT_FOCUS: embeddings}
        if not raw:
            raise ValueError("embeddings is an empty dict: give at least one focus, e.g. {'overall': matrix}")
        n = None
        for name, matrix in raw.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"focus names must be non-empty strings, got {name!r}")
            array = _as_float32_matrix(matrix, what=f"embeddings[{name!r}]", copy=True)
            if n is None:
                n = array.shape[0]
            elif array.shape[0] != n:
                raise ValueError(
                    f"embeddings[{name!r}] has {array.shape[0]} rows but the first focus has {n}: "
                    "every focus must describe the same items"
                )
            array.flags.writeable = False
            self._vectors[name] = array
        if n == 0:
            raise ValueError("embeddings have 0 rows: an index needs at least one item")

        self._ids = _check_ids(ids, n)
        self._position = {item: i for i, item in enumerate(self._ids)}
        self._metadata = _metadata_columns(metadata, n)
        self._factor_cache: dict[str, tuple[dict, np.ndarray]] = {}

        # What the metrics need, once: squared norms (euclidean), norms and their inverse (cosine).
        self._sqnorm: dict[str, np.ndarray] = {}
        self._norm: dict[str, np.ndarray] = {}
        self._inv_norm: dict[str, np.ndarray] = {}
        self._max_sqnorm: dict[str, float] = {}
        for name, x in self._vectors.items():
            sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
            norm = np.sqrt(sq)
            inv = np.zeros_like(norm)
            np.divide(1.0, norm, out=inv, where=norm > 0)
            self._sqnorm[name], self._norm[name], self._inv_norm[name] = sq, norm, inv
            self._max_sqnorm[name] = float(sq.max())
        self._torch_vectors: dict[str, Any] = {}  # torch views for cityblock, made on first use
        self._projections: dict[tuple[str, str], tuple] = {}  # pruning projections, made on first use
        self._l1_bounds: dict[str, tuple] = {}  # cityblock block sums and pivots, made on first use
        self._l1_pivot_sums: dict[str, np.ndarray] = {}  # pivots' coarsest block sums (choosing near ones)
        self._prune_record: dict[tuple[str, str], tuple[int, int]] = {}  # (queries pruned, queries not)

        # The ``model`` entry of ``index.json`` (class, config, weights_hash) for a loaded index, else None.
        self.model_record: dict | None = None
        self.hnsw_m, self.ef_construction, self.ef_search = int(hnsw_m), int(ef_construction), int(ef_search)
        self._faiss = None
        if backend != "exact":
            from fashrec.faiss_backend import FaissBackend

            self._faiss = FaissBackend(self, kind=backend.split("-", 1)[1])

    # ------------------------------------------------------------------ description

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v.shape[1]}" for k, v in self._vectors.items())
        return f"SimilarityIndex(n={len(self)}, focuses: {dims}, backend={self.backend!r})"

    @property
    def ids(self) -> list[str]:
        """Catalogue ids in catalogue order (a copy)."""
        return list(self._ids)

    @property
    def focuses(self) -> tuple[str, ...]:
        return tuple(self._vectors)

    @property
    def dims(self) -> dict[str, int]:
        """Embedding size per focus."""
        return {k: v.shape[1] for k, v in self._vectors.items()}

    @property
    def metadata(self):
        """The metadata as a pandas DataFrame (rows in catalogue order), or None."""
        if self._metadata is None:
            return None
        import pandas as pd

        return pd.DataFrame(dict(self._metadata))

    @property
    def metadata_columns(self) -> tuple[str, ...]:
        return tuple(self._metadata or ())

    def embeddings(self, focus: str = DEFAULT_FOCUS) -> np.ndarray:
        """The stored (read-only, float32) embedding matrix of one focus."""
        self._check_focus_name(focus)
        return self._vectors[focus]

    def position(self, item_id: str) -> int:
        """Catalogue position of an id; ValueError naming the id when it is not in the index."""
        try:
            return self._position[item_id]
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
        k = _check_k(k)
        weights = self._weights(focus)
        q = self._queries(queries, weights)
        n_queries = next(iter(q.values())).shape[0]
        allowed = self._where_mask(where)
        excluded = self._excluded_positions(exclude, n_queries)
        self._check_enough(k, allowed, excluded, where, n_queries)

        if self._faiss is not None:
            result = self._faiss.search(q, k, metric, weights, allowed, excluded)
            if result is not None:
                positions, distances = result
                return self._ids_of(positions), distances
        positions, distances = self._exact_search(q, k, metric, weights, allowed, excluded)
        return self._ids_of(positions), distances

    def _ids_of(self, positions: np.ndarray) -> list[list[str]]:
        ids = self._ids
        return [[ids[p] for p in row] for row in positions.tolist()]

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
        queries = {name: x[positions] for name, x in self._vectors.items()}
        per_query = self._exclude_lists(exclude, len(positions))
        if exclude_self:
            per_query = [list(extra) + [item] for extra, item in zip(per_query, item_ids)]
        return self.search(queries, k=k, metric=metric, exclude=per_query, where=where, focus=focus)

    # ------------------------------------------------------------------ exact engine

    def _exact_search(self, q, k, metric, weights, allowed, excluded, *, prune: bool = True):
        n = len(self)
        n_queries = next(iter(q.values())).shape[0]
        if (
            prune
            and len(weights) == 1
            and n >= _PRUNE_MIN_ITEMS
            and n_queries <= _PRUNE_MAX_QUERIES
        ):
            ((name, weight),) = weights.items()
            key = (name, "euclidean" if metric == "euclidean" else metric)
            pruned, wasted = self._prune_record.get(key, (0, 0))
            # After a run of queries the bound could not prune (data without low-rank structure),
            # stop paying for it on this focus and metric.
            if self._vectors[name].shape[1] >= _PRUNE_MIN_DIM and not (wasted >= 8 and wasted > 4 * pruned):
                search = self._l1_pruned_search if metric == "cityblock" else self._pruned_search
                results = search(q, k, metric, name, weight, allowed, excluded)
                rest = [r for r, res in enumerate(results) if res is None]
                self._prune_record[key] = (pruned + len(results) - len(rest), wasted + len(rest))
                if rest:
                    sub_q = {f: m[rest] for f, m in q.items()}
                    sub_ex = None if excluded is None else [excluded[r] for r in rest]
                    pos, dist = self._exact_search(sub_q, k, metric, weights, allowed, sub_ex, prune=False)
                    for j, r in enumerate(rest):
                        results[r] = (pos[j], dist[j])
                if len(results) == 1:
                    return results[0][0][None], results[0][1][None]
                return np.stack([p for p, _ in results]), np.stack([d for _, d in results])
        block = max(1, _BLOCK_ELEMENTS // n)
        out_pos = np.empty((n_queries, k), dtype=np.int64)
        out_dist = np.empty((n_queries, k), dtype=np.float64)
        for start in range(0, n_queries, block):
            stop = min(n_queries, start + block)
            if len(weights) == 1:
                threshold, score = self._single_focus_candidates(q, start, stop, k, metric, weights, allowed, excluded)
            else:
                threshold, score = self._weighted_candidates(q, start, stop, k, metric, weights, allowed, excluded)
            for r in range(stop - start):
                cand = np.flatnonzero(score[r] <= threshold[r])
                d = None
                for name, w in weights.items():
                    part = _exact_distances(self._vectors[name][cand], q[name][start + r], metric, self._norm[name][cand])
                    d = part * w if d is None else d + part * w
                order = np.argsort(d, kind="stable")[:k]  # cand is ascending: ties keep catalogue order
                out_pos[start + r] = cand[order]
                out_dist[start + r] = d[order]
        return out_pos, out_dist

    def _single_focus_candidates(self, q, start, stop, k, metric, weights, allowed, excluded):
        """One focus: an approximate score (monotone in the distance) and its error bound.

        With ``|exact - approx| <= abs_tol + rel_tol * approx``, the lower and upper bounds are increasing
        in ``approx``, so the k-th smallest upper bound comes from the k-th smallest ``approx`` and only
        one ``(Q, N)`` array is needed.
        """
        ((name, _),) = weights.items()
        approx, abs_tol, rel_tol = self._approx(name, q[name][start:stop], metric)
        _mask(approx, allowed, excluded, start, stop)
        if k >= approx.shape[1]:
            return np.full(stop - start, np.inf), approx
        kth = np.partition(approx, k - 1, axis=1)[:, k - 1]
        upper_k = kth * (1.0 + rel_tol) + abs_tol
        threshold = (upper_k + abs_tol) / (1.0 - rel_tol)
        return threshold + 4 * _U64 * np.abs(threshold) + 1e-300, approx

    def _weighted_candidates(self, q, start, stop, k, metric, weights, allowed, excluded):
        """Several focuses: sum the weighted lower and upper bounds of each focus distance."""
        lo = hi = None
        for name, w in weights.items():
            approx, abs_tol, rel_tol = self._approx(name, q[name][start:stop], metric)
            err = abs_tol[:, None] + rel_tol * np.abs(approx)
            f_lo, f_hi = approx - err, approx + err
            if metric == "euclidean":  # bounds on the squared distance -> on the distance
                f_lo, f_hi = np.sqrt(np.maximum(f_lo, 0.0)), np.sqrt(np.maximum(f_hi, 0.0))
            lo = f_lo * w if lo is None else lo + f_lo * w
            hi = f_hi * w if hi is None else hi + f_hi * w
        _mask(lo, allowed, excluded, start, stop)
        _mask(hi, allowed, excluded, start, stop)
        if k >= lo.shape[1]:
            return np.full(stop - start, np.inf), lo
        upper_k = np.partition(hi, k - 1, axis=1)[:, k - 1]
        return upper_k + 4 * _U64 * np.abs(upper_k) + 1e-300, lo

    def _approx(self, name: str, q: np.ndarray, metric: str):
        """One float32 pass: ``(approx (Q, N) float64, abs_tol (Q,), rel_tol)`` bounding the float64 values.

        ``approx`` is the distance for cityblock and cosine and the SQUARED distance for euclidean.
        The float32 error of a dot product or sum of D terms is at most ``D * 2**-24`` times the sum of
        the magnitudes (any summation order); the bounds below double that for safety.
        """
        x = self._vectors[name]
        d = x.shape[1]
        gamma32 = 2.0 * (d + 4) * _U32
        gamma64 = 4.0 * (d + 4) * _U64
        if metric == "cityblock":
            import torch

            xt = self._torch_vectors.get(name)
            if xt is None:
                with warnings.catch_warnings():  # a view of the read-only matrix; cdist never writes to it
                    warnings.simplefilter("ignore", UserWarning)
                    xt = self._torch_vectors[name] = torch.from_numpy(x)
            approx = torch.cdist(torch.from_numpy(np.ascontiguousarray(q)), xt, p=1).numpy().astype(np.float64)
            return approx, np.zeros(q.shape[0]), 2.0 * (gamma32 + gamma64)
        # (Q, N) float32 BLAS, widened. x @ q.T (gemv for one query) is the fast layout for numpy.
        dots = (x @ q[0])[None, :] if q.shape[0] == 1 else (x @ q.T).T
        dots = dots.astype(np.float64)
        q64 = q.astype(np.float64)
        q_sq = np.einsum("ij,ij->i", q64, q64)
        q_norm = np.sqrt(q_sq)
        if metric == "euclidean":
            sq = dots
            sq *= -2.0
            sq += self._sqnorm[name][None, :]
            sq += q_sq[:, None]
            max_sq = self._max_sqnorm[name]
            abs_tol = 2.0 * gamma32 * q_norm * np.sqrt(max_sq) + gamma64 * (max_sq + q_sq)
            return sq, abs_tol, 0.0
        # cosine: 1 - dot / (|q||x|), 1.0 when either is zero
        q_inv = np.zeros_like(q_norm)
        np.divide(1.0, q_norm, out=q_inv, where=q_norm > 0)
        cos = dots
        cos *= self._inv_norm[name][None, :]
        cos *= -q_inv[:, None]
        cos += 1.0
        return cos, np.full(q.shape[0], gamma32 + gamma64), 0.0

    # ------------------------------------------------------------------ projection pruning (few queries)

    def _pruned_search(self, q, k, metric, name, weight, allowed, excluded):
        """Exact top-k for a few queries without scanning the whole float32 matrix.

        For an orthonormal projection P (r rows), ``||P(x - q)|| <= ||x - q||``: a lower bound on the
        euclidean distance from r-dimensional vectors (and on the cosine distance, which is half the
        squared euclidean distance of the unit vectors). Exact distances of the items with the smallest
        bounds give a threshold t >= the k-th exact distance; only items whose bound is <= t can be in
        the top k, and only those are computed exactly. P spans the top principal directions of (a
        sample of) the catalogue, so on embeddings with structure few items survive. Large catalogues of
        long vectors also keep a wider projection (see :meth:`_projection`): when the first directions
        prune too little, the rest are added (the bound only tightens: more rows of P, larger
        ``||P v||``) and t is refined from the new best-bounded items. When too many items still
        survive (e.g. isotropic noise), the query goes through the full scan instead. Returns per-query
        results, or None for a query that must take the full scan.
        """
        proj = self._projection(name, metric)
        if proj is None:
            return [None] * q[name].shape[0]
        x = self._vectors[name]
        n, dim = x.shape
        stages = [(proj.basis, proj.px, proj.px_sq, proj.px_max)]
        if proj.tail is not None:
            stages.append(proj.tail)
        out = []
        for r in range(q[name].shape[0]):
            q32 = q[name][r]
            query = q32.astype(np.float64)
            q_norm = float(np.sqrt(query @ query))
            if metric == "cosine":
                if q_norm == 0.0:
                    out.append(None)
                    continue
                query = query / q_norm
                q_norm = 1.0
            query32 = query.astype(np.float32)  # projected in float32: the error is in q_err below
            s = None
            r_dim, pq_sq, kth = 0, 0.0, np.inf
            known = np.zeros(n, dtype=bool)  # float32 estimates computed so far (each item at most once)
            estimate = np.empty(n)
            for basis, px, px_sq, px_max in stages:
                # s = |Px|^2 - 2 Px.Pq, so |P(x - q)|^2 = s + |Pq|^2 (each stage adds its rows' share).
                # The lower bound on the distance is sqrt(max(s + |Pq|^2 - tol, 0)) * (1 - 1e-6) - eps,
                # with tol and eps taken at the largest |Px| over all rows used so far (a looser, still
                # valid bound): increasing in s, so the m smallest s are the m smallest bounds and
                # "bound <= L" is "s <= a threshold" (below), without a per-item sqrt.
                pq = basis @ query32
                pq64 = pq.astype(np.float64)
                pq_sq += float(pq64 @ pq64)
                part = (px @ pq).astype(np.float64)
                part *= -2.0
                part += px_sq
                if s is None:
                    s = part
                    if metric == "cosine":
                        s[proj.zero_rows] = -np.inf  # distance 1.0 by definition: always a candidate
                    n_ok = n
                    if allowed is not None or (excluded is not None and len(excluded[r])):
                        if allowed is not None:
                            s[~allowed] = np.inf
                        if excluded is not None and len(excluded[r]):
                            s[excluded[r]] = np.inf
                        n_ok = int((s < np.inf).sum())
                else:
                    s += part  # +-inf stay (the masked and the zero rows)
                r_dim += basis.shape[0]
                pq_norm = float(np.sqrt(pq_sq))
                tol = 4.0 * (r_dim + 4) * _U32 * px_max * pq_norm
                # |pq - P q| from the float32 basis, query and product (each row of P has norm <= 1):
                # sqrt(r) * (D + 2) * 2**-24 * |q|, doubled for safety
                q_err = 2.0 * np.sqrt(r_dim) * (dim + 2) * _U32 * q_norm
                eps = 4.0 * _U32 * (px_max + pq_norm) + q_err + 1e-12
                m = min(max(4 * k, 32), n_ok)
                first = np.argpartition(s, m - 1)[:m] if m < n else np.arange(n)
                if n_ok < n:
                    first = first[s[first] < np.inf]
                # t >= the k-th smallest distance: the k-th smallest float32 upper bound among those m items
                fresh = first[~known[first]]
                if fresh.size:
                    estimate[fresh], abs_tol = self._approx_rows(name, fresh, q32, metric)
                    known[fresh] = True
                kth = min(kth, float(np.partition(estimate[first], k - 1)[k - 1]) + abs_tol)
                if metric == "euclidean":
                    t = float(np.sqrt(max(kth, 0.0))) * (1.0 + 8 * _U64)
                    limit = t + 1e-12 * t
                else:
                    t = min(max(kth + 8 * _U64, 0.0), 2.0)
                    limit = float(np.sqrt(2.0 * (t + 1e-12 * t)))  # 0.5 * max(lb, 0)^2 <= t
                reach = (limit + eps) / (1.0 - 1e-6)
                s_max = reach * reach - pq_sq + tol
                s_max += 1e-9 * (reach * reach + pq_sq + tol + px_max * px_max + 2.0 * px_max * pq_norm) + 1e-300
                cand = np.flatnonzero(s <= s_max)
                if cand.size <= max(n // 8, 4 * m):
                    break
            else:
                out.append(None)  # the bound prunes too little here: a full scan is cheaper
                continue
            # float32 bounds on the candidates (some are known), then float64 for those that can still
            # be in the top k
            fresh = cand[~known[cand]]
            if fresh.size:
                estimate[fresh] = self._approx_rows(name, fresh, q32, metric)[0]
            approx = estimate[cand]
            if cand.size > k:
                upper_k = float(np.partition(approx, k - 1)[k - 1]) + abs_tol
                threshold = upper_k + abs_tol
                threshold += 4 * _U64 * abs(threshold) + 1e-300
                cand = cand[approx <= threshold]
            d = _exact_distances(x[cand], q32, metric, self._norm[name][cand]) * weight
            order = np.argsort(d, kind="stable")[:k]  # cand is ascending: ties keep catalogue order
            out.append((cand[order], d[order]))
        return out

    def _approx_rows(self, name: str, rows: np.ndarray, q32: np.ndarray, metric: str) -> tuple[np.ndarray, float]:
        """float32 BLAS estimates for the catalogue rows ``rows`` and one query: ``(approx, abs_tol)``
        with ``|float64 value - approx| <= abs_tol``; the value is the SQUARED distance for euclidean and
        the cosine distance (before clipping, which only narrows the gap) for cosine. The bounds are
        those of :meth:`_approx` (taken at the largest norm of the catalogue, so valid for any rows)."""
        d = q32.shape[0]
        gamma32 = 2.0 * (d + 4) * _U32
        gamma64 = 4.0 * (d + 4) * _U64
        dots = (self._vectors[name][rows] @ q32).astype(np.float64)
        q64 = q32.astype(np.float64)
        q_sq = float(q64 @ q64)
        if metric == "euclidean":
            dots *= -2.0
            dots += self._sqnorm[name][rows]
            dots += q_sq
            max_sq = self._max_sqnorm[name]
            return dots, 2.0 * gamma32 * float(np.sqrt(q_sq)) * float(np.sqrt(max_sq)) + gamma64 * (max_sq + q_sq)
        q_norm = float(np.sqrt(q_sq))  # > 0: checked by the caller
        dots *= self._inv_norm[name][rows]
        dots *= -1.0 / q_norm
        dots += 1.0
        return dots, gamma32 + gamma64

    def _projection(self, name: str, metric: str) -> "_Projection | None":
        """The pruning projection of a focus (unit rows for cosine), built on first use; None when the
        catalogue has no variance to project on.

        P comes from a randomised SVD of a row sample: any orthonormal P keeps the search exact; a good
        one makes it fast. Its first ``_PRUNE_RANK`` rows (the top directions) bound every query. A
        catalogue of at least ``_PRUNE_WIDE_MIN_ITEMS`` items of at least ``4 * _PRUNE_WIDE_RANK``
        dimensions gets ``_PRUNE_WIDE_RANK`` rows in all: the rest (``tail``) is read only for a query
        the first rows do not prune, where it is far cheaper than the full scan (a quarter of the
        catalogue's size at most, against all of it).
        """
        key = (name, "cosine" if metric == "cosine" else "euclidean")
        if key in self._projections:
            return self._projections[key]
        x = self._vectors[name]
        n, d = x.shape
        rng = np.random.default_rng(0)
        wide = n >= _PRUNE_WIDE_MIN_ITEMS and d >= 4 * _PRUNE_WIDE_RANK
        rows = np.sort(rng.choice(n, size=min(n, 4096 if wide else 2048), replace=False))
        sample = x[rows].astype(np.float64)
        if key[1] == "cosine":
            sample *= self._inv_norm[name][rows][:, None]
        sample -= sample.mean(axis=0)
        sample = sample.astype(np.float32)  # the basis only steers speed: float32 products will do
        rank = min(_PRUNE_WIDE_RANK if wide else _PRUNE_RANK, d, len(rows))
        # randomised range finder (Halko et al.) with one power iteration; only small eigh calls
        y = sample @ rng.standard_normal((d, rank + 8), dtype=np.float32)
        y = _orthonormal_columns(sample @ (sample.T @ _orthonormal_columns(y).astype(np.float32)))
        if y.shape[1] == 0:  # no variance at all: nothing to prune with
            self._projections[key] = None
            return None
        b = (y.T.astype(np.float32) @ sample).astype(np.float64)  # (l, D): top right singular vectors wanted
        eigval, eigvec = np.linalg.eigh(b @ b.T)
        keep = np.argsort(eigval)[::-1][:rank]
        keep = keep[eigval[keep] > 1e-12 * max(eigval.max(), 1e-300)]
        basis = (eigvec[:, keep] / np.sqrt(eigval[keep])).T @ b  # rows by decreasing singular value
        # Orthonormal rows, in that order (QR = Gram-Schmidt: the first j rows span the top j directions)
        basis = np.linalg.qr(basis.T)[0].T if basis.shape[0] else basis
        if basis.shape[0] == 0:
            self._projections[key] = None
            return None
        # The bound needs ||P v|| <= ||v||: divide by the largest singular value of P should it exceed 1
        # (then every subset of its rows satisfies it too).
        sigma_max = float(np.sqrt(np.linalg.eigvalsh(basis @ basis.T).max()))
        basis = np.ascontiguousarray(basis / max(1.0, sigma_max * (1 + 1e-12)))
        rank = basis.shape[0]
        px = np.empty((n, rank), dtype=np.float32)
        scale = self._inv_norm[name] if key[1] == "cosine" else None
        step = 8192
        for start in range(0, n, step):
            chunk = x[start : start + step].astype(np.float64)
            if scale is not None:
                chunk *= scale[start : start + step, None]
            px[start : start + step] = chunk @ basis.T
        head = min(_PRUNE_RANK, rank)
        zero_rows = np.flatnonzero(self._norm[name] == 0) if key[1] == "cosine" else np.zeros(0, np.int64)
        parts = []
        for cols in (slice(0, head), slice(head, rank)):
            part = np.ascontiguousarray(px[:, cols])
            part64 = part.astype(np.float64)
            # the rows of P as float32 for the query's projection (its error is bounded where it is used)
            parts.append((np.ascontiguousarray(basis[cols], dtype=np.float32), part,
                          np.einsum("ij,ij->i", part64, part64)))
        del px
        (head_basis, head_px, head_sq), (tail_basis, tail_px, tail_sq) = parts
        tail = None
        if tail_basis.shape[0]:
            full_max = float(np.sqrt((head_sq + tail_sq).max())) if n else 0.0
            tail = (tail_basis, tail_px, tail_sq, full_max)
        head_max = float(np.sqrt(head_sq.max())) if n else 0.0
        cached = self._projections[key] = _Projection(head_basis, head_px, head_sq, head_max, zero_rows, tail)
        return cached

    # ------------------------------------------------------------------ cityblock pruning (few queries)

    def _l1_pruned_search(self, q, k, metric, name, weight, allowed, excluded):
        """Exact cityblock top-k for a few queries through a cascade of lower bounds.

        Two kinds of lower bound on ``||x - q||_1``, both proven, never estimates:

        - block sums: for any partition of the D dimensions into blocks, ``sum_b |S_b(x) - S_b(q)|``
          (S_b = the sum over block b) is at most ``||x - q||_1`` (triangle inequality). Contiguous
          blocks of 32, 8 and 4 dimensions (levels); for conv latents flattened as C x H x W a block is
          a spatial neighbourhood within a channel, whose values move together, so the bound is tight.
        - pivots: ``||x - q||_1 >= | ||q - p||_1 - ||x - p||_1 |`` for a stored item p. 128 pivots
          (k-means++ seeding, far apart) with their distances to every item are kept; 4 near the
          query give the bound (see _l1_near_pivots). Tight on clustered data, where block sums are not.

        The pivots bound every item (4 values per item instead of D; without pivots the coarsest level
        does); the float32 distances of the items with the smallest bounds give t, an upper bound on
        the k-th distance; only items whose bound is <= t stay, the block-sum levels prune those
        further (coarse to fine, on the survivors only), and the
        float32 distances of the survivors, then float64 for the few that can still be in the top k,
        give the result. Returns per-query results, or None for a query whose bound prunes too little
        (it takes the full scan).
        """
        import torch

        levels, l1norm, pivots, table = self._l1_structures(name)
        x = self._vectors[name]
        n, d = x.shape
        rel = _l1_rel_tol(d)
        out = []
        # Small catalogues: one thread avoids waiting on a busy second core; large ones have passes over
        # all items (tens of MB) that the caller's threads share well.
        with _torch_threads(1 if n * d < _L1_THREADED_ELEMENTS else torch.get_num_threads()):
            for r in range(q[name].shape[0]):
                query = q[name][r]
                qt = torch.from_numpy(query[None])
                q_l1 = float(np.abs(query.astype(np.float64)).sum())
                if pivots is not None:
                    # |p - q| summed by torch in float32 (any summation order: covered by rel), about twice
                    # as fast as cdist(p=1) for one query
                    near, dq = self._l1_near_pivots(name, pivots, levels[0][0], query, qt)
                    tab, dqn = table[near], dq[:, None]
                    # float32 arithmetic: its rounding is covered by the 4 * 2**-24 added to the slack
                    gap = tab - dqn
                    np.abs(gap, out=gap)
                    slack = tab + dqn
                    slack *= 3.0 * rel + 4.0 * _U32
                    gap -= slack
                    lb = gap.max(axis=0).astype(np.float64)
                    first_level = -1  # the pivots prune first; the block sums bound only their survivors
                else:
                    lb = _block_bound(levels[0], query, q_l1, l1norm, None)
                    first_level = 0
                masked = allowed is not None or (excluded is not None and len(excluded[r]) > 0)
                if allowed is not None:
                    lb[~allowed] = np.inf
                if excluded is not None and len(excluded[r]):
                    lb[excluded[r]] = np.inf
                if masked:
                    cand = np.flatnonzero(lb < np.inf)
                    lb = lb[cand]
                else:  # every item is a candidate (the bounds are finite): no scan for them
                    cand = np.arange(n)
                m = min(max(_L1_FIRST_FACTOR * k, _L1_FIRST_MIN), cand.size)
                t = np.inf
                # float32 distances computed so far (each item at most once)
                known = np.zeros(n, dtype=bool)
                estimate = np.empty(n)
                for level in range(first_level, len(levels)):
                    if level > first_level:
                        if cand.size <= 4 * m:
                            break
                        finer = _block_bound(levels[level], query, q_l1, l1norm, cand)
                        np.maximum(lb, finer, out=lb)
                    # the float32 distances of the m items with the smallest bounds: t >= the k-th distance
                    first = cand[np.argpartition(lb, m - 1)[:m]] if m < cand.size else cand
                    fresh = first[~known[first]]
                    if fresh.size:
                        estimate[fresh] = _l1_float32(x, fresh, qt)
                        known[fresh] = True
                    t = min(t, float(np.partition(estimate[first], k - 1)[k - 1]) * (1.0 + rel))
                    keep = lb <= t
                    cand, lb = cand[keep], lb[keep]
                if cand.size > n // 2:
                    out.append(None)  # the bounds prune too little here: a full scan is cheaper
                    continue
                fresh = cand[~known[cand]]
                if fresh.size:
                    estimate[fresh] = _l1_float32(x, fresh, qt)
                approx = estimate[cand]
                upper_k = min(float(np.partition(approx, k - 1)[k - 1]) * (1.0 + rel), t)
                threshold = upper_k / (1.0 - rel) * (1.0 + 4 * _U64) + 1e-300
                final = cand[approx <= threshold]
                dist = _exact_distances(x[final], query, "cityblock", None) * weight
                order = np.argsort(dist, kind="stable")[:k]  # final is ascending: ties keep catalogue order
                out.append((final[order], dist[order]))
        return out

    def _l1_near_pivots(self, name: str, pivots, starts: np.ndarray, query: np.ndarray, qt) -> tuple[np.ndarray, np.ndarray]:
        """The pivots to bound with, and their float32 cityblock distances to the query.

        Any pivots keep the bound valid; near ones make it tight. The 2 x 4 pivots nearest by the
        cityblock distance of their coarsest block sums (D / 32 values each: a guide, not a bound; 64
        values per pivot cost less to read than the matrix-vector product over all D that guided before)
        get their cityblock distance, and the 4 nearest of them by that distance are used; far cheaper
        than the cityblock distance to all 128 pivots.
        """
        import torch

        guide_sums = self._l1_pivot_sums.get(name)  # ``starts``: the coarsest block-sum level's blocks
        if guide_sums is None:
            guide_sums = self._l1_pivot_sums[name] = np.add.reduceat(
                pivots.numpy().astype(np.float64), starts, axis=1).astype(np.float32)
        n_pivots = guide_sums.shape[0]
        if n_pivots > 2 * _L1_NEAR_PIVOTS:
            q_sums = np.add.reduceat(query, starts).astype(np.float32)
            guide = np.abs(guide_sums - q_sums).sum(axis=1)
            chosen = np.sort(np.argpartition(guide, 2 * _L1_NEAR_PIVOTS - 1)[: 2 * _L1_NEAR_PIVOTS])
        else:
            chosen = np.arange(n_pivots)
        # |p - q| summed by torch in float32 (any summation order: covered by the caller's rel)
        dq = torch.from_numpy(pivots.numpy()[chosen]).sub_(qt).abs_().sum(1).numpy()
        order = np.argsort(dq, kind="stable")[:_L1_NEAR_PIVOTS]
        return chosen[order], dq[order]

    def _l1_structures(self, name: str):
        """(levels, |x|_1 per item, pivots (P, D) tensor, pivot distances (P, N) float32), built once.

        A level is ``(block starts, block sums (N, B) float32, their torch view)``.
        """
        cached = self._l1_bounds.get(name)
        if cached is not None:
            return cached
        import torch

        x = self._vectors[name]
        n, d = x.shape
        sizes = [bs for bs in _L1_BLOCK_SIZES if d // bs >= _L1_MIN_BLOCKS] or [max(1, d // _L1_MIN_BLOCKS)]
        step = 8192
        levels = []
        for bs in sizes:
            starts = np.arange(0, d, bs)
            sums = np.empty((n, len(starts)), dtype=np.float32)
            for start in range(0, n, step):
                sums[start : start + step] = np.add.reduceat(x[start : start + step].astype(np.float64), starts, axis=1)
            levels.append((starts, sums, torch.from_numpy(sums)))
        l1norm = np.concatenate([np.abs(x[s : s + step]).sum(axis=1, dtype=np.float64) for s in range(0, n, step)])
        # Pivots far apart: k-means++ seeding on a row sample. Any pivots keep the search exact.
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(n, size=min(n, 4096), replace=False))
        sample = torch.from_numpy(np.ascontiguousarray(x[rows]))
        chosen = [int(rng.integers(len(rows)))]
        nearest = torch.cdist(sample[chosen[0]][None], sample, p=1).numpy()[0].astype(np.float64)
        while len(chosen) < min(_L1_PIVOTS, len(rows)):
            weights = np.square(nearest)
            total = weights.sum()
            if not total > 0:
                break  # every sampled row is a pivot already (duplicates)
            pick = int(rng.choice(len(rows), p=weights / total))
            chosen.append(pick)
            np.minimum(nearest, torch.cdist(sample[pick][None], sample, p=1).numpy()[0], out=nearest)
        pivots = torch.from_numpy(np.ascontiguousarray(x[rows[chosen]]))
        table = np.empty((len(chosen), n), dtype=np.float32)
        with warnings.catch_warnings():  # views of the read-only matrix; cdist never writes to them
            warnings.simplefilter("ignore", UserWarning)
            for start in range(0, n, step):
                table[:, start : start + step] = torch.cdist(pivots, torch.from_numpy(x[start : start + step]), p=1).numpy()
        cached = self._l1_bounds[name] = (levels, l1norm, pivots, table)
        return cached

    # ------------------------------------------------------------------ argument checks

    def _check_focus_name(self, name) -> None:
        if name not in self._vectors:
            raise ValueError(f"unknown focus {name!r}; this index has {list(self._vectors)}")

    def _weights(self, focus) -> dict[str, float]:
        if isinstance(focus, str):
            self._check_focus_name(focus)
            return {focus: 1.0}
        if not isinstance(focus, Mapping) or not focus:
            raise ValueError(f"focus must be a focus name or a non-empty {{name: weight}} dict, got {focus!r}")
        weights = {}
        for name, w in focus.items():
            self._check_focus_name(name)
            w = float(w)
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"focus weight for {name!r} must be finite and >= 0, got {w}")
            if w > MAX_FOCUS_WEIGHT:  # weights are relative; a huge one overflows the weighted sum to inf, and
                # inf distances tie with the masked (excluded / filtered-out) items, which could then be returned
                raise ValueError(f"focus weight for {name!r} is {w:g}: weights are relative, keep each at most "
                                 f"{MAX_FOCUS_WEIGHT:g}")
            if w > 0:
                weights[name] = w
        if not weights:
            raise ValueError(f"focus weights {dict(focus)} are all zero: give at least one positive weight")
        return weights

    def _queries(self, queries, weights: Mapping[str, float]) -> dict[str, np.ndarray]:
        if isinstance(queries, Mapping):
            for name in queries:
                self._check_focus_name(name)
            missing = [name for name in weights if name not in queries]
            if missing:
                raise ValueError(f"queries has no matrix for focus {missing}; it has {list(queries)}")
            q = {name: _as_float32_matrix(queries[name], what=f"queries[{name!r}]", allow_vector=True) for name in weights}
        else:
            if len(weights) > 1:
                raise ValueError(
                    f"focus {dict(weights)} weighs several focuses: pass queries as a dict {{focus: matrix}}"
                )
            (name,) = weights
            q = {name: _as_float32_matrix(queries, what="queries", allow_vector=True)}
        n_queries = None
        for name, matrix in q.items():
            want = self._vectors[name].shape[1]
            if matrix.shape[1] != want:
                raise ValueError(f"queries for focus {name!r} have dimension {matrix.shape[1]}, the index has {want}")
            if n_queries is None:
                n_queries = matrix.shape[0]
            elif matrix.shape[0] != n_queries:
                raise ValueError(f"query matrices have different row counts: { {n: m.shape[0] for n, m in q.items()} }")
        if n_queries == 0:
            raise ValueError("queries has 0 rows")
        return q

    def _where_mask(self, where) -> np.ndarray | None:
        if not where:
            return None
        if not isinstance(where, Mapping):
            raise ValueError(f"where must be a dict {{column: value or list of values}}, got {type(where).__name__}")
        if self._metadata is None:
            raise ValueError(f"where={dict(where)!r} needs metadata, but this index was built without any")
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in where.items():
            if column not in self._metadata:
                raise ValueError(f"unknown metadata column {column!r} in where; columns: {list(self._metadata)}")
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
                    (codes_of.setdefault(v, len(codes_of)) for v in self._metadata[column].tolist()),
                    dtype=np.int64,
                    count=len(self),
                )
            except TypeError as err:
                raise ValueError(f"metadata column {column!r} holds unhashable values ({err}): it cannot be filtered") from None
            cached = self._factor_cache[column] = (codes_of, codes)
        return cached

    def _exclude_lists(self, exclude, n_queries: int) -> list[list[str]]:
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

    def _excluded_positions(self, exclude, n_queries: int) -> list[np.ndarray] | None:
        if exclude is None:
            return None
        lists = self._exclude_lists(exclude, n_queries)
        pos = self._position
        return [np.array(sorted({pos[i] for i in ids if i in pos}), dtype=np.int64) for ids in lists]

    def _check_enough(self, k, allowed, excluded, where, n_queries) -> None:
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

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike, *, model=None) -> Path:
        """Write the index to the folder ``path`` (replaced as a whole, atomically).

        The folder holds ``embeddings.safetensors`` (one float32 tensor per focus), ``ids.json``,
        ``metadata.parquet`` (when there is metadata; needs pyarrow) and ``index.json`` (format version,
        N, D per focus, and with ``model`` its class, ``config_dict()`` and ``weights_hash``, which
        :meth:`load` checks). The new folder is built beside the target and renamed over it, so a crash
        leaves either the old index or the new one.
        """
        import torch

        from fashrec import __version__
        from fashrec.atomic import replace_dir, save_safetensors_atomic, write_json_atomic

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not (target / INDEX_FILE).exists() and any(target.iterdir()):
            raise ValueError(f"{target} exists and is not a SimilarityIndex folder: refusing to replace it")
        record = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "fashrec_version": __version__,
            "n_items": len(self),
            "focuses": {name: int(x.shape[1]) for name, x in self._vectors.items()},
            "focus_order": list(self._vectors),  # JSON objects are written with sorted keys
            "metadata_columns": list(self.metadata_columns),
            "model": _model_record(model) if model is not None else None,
        }
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            save_safetensors_atomic(
                {name: torch.from_numpy(np.array(x)) for name, x in self._vectors.items()},
                staging / EMBEDDINGS_FILE,
                metadata={"format": FORMAT_NAME},
            )
            write_json_atomic(self._ids, staging / IDS_FILE)
            if self._metadata is not None:
                _write_metadata(self._metadata, staging / METADATA_FILE)
            write_json_atomic(record, staging / INDEX_FILE)
            replace_dir(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike, *, model=None, backend: str = "exact", **backend_options) -> "SimilarityIndex":
        """Read an index written by :meth:`save`.

        With ``model``, refuses (ValueError) when the index was built with other weights: the stored
        ``weights_hash`` must equal ``fashrec.hub_model.weights_hash(model)``.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(path)
        index_file = folder / INDEX_FILE
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file} not found: {folder} is not a saved SimilarityIndex")
        try:
            record = json.loads(index_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{index_file} is not valid JSON: {err}") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
            raise ValueError(f"{index_file} does not describe a {FORMAT_NAME}")
        if record.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{index_file} has format_version {record.get('format_version')!r}; "
                f"this fashrec reads version {FORMAT_VERSION}"
            )
        if model is not None:
            _check_model(record.get("model"), model, index_file)
        try:
            tensors = load_file(str(folder / EMBEDDINGS_FILE))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"cannot read {folder / EMBEDDINGS_FILE}: {err}") from None
        focuses = record.get("focuses", {})
        if set(tensors) != set(focuses):
            raise ValueError(f"{folder / EMBEDDINGS_FILE} holds focuses {sorted(tensors)}, {index_file} lists {sorted(focuses)}")
        n = record.get("n_items")
        for name, dim in focuses.items():
            if tensors[name].shape != (n, dim):
                raise ValueError(
                    f"{folder / EMBEDDINGS_FILE}: focus {name!r} has shape {tensors[name].shape}, "
                    f"{index_file} says ({n}, {dim})"
                )
        ids_file = folder / IDS_FILE
        try:
            ids = json.loads(ids_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read {ids_file}: {err}") from None
        if not isinstance(ids, list) or len(ids) != n:
            raise ValueError(f"{ids_file} must hold a list of {n} ids")
        metadata = None
        if record.get("metadata_columns"):
            metadata = _read_metadata(folder / METADATA_FILE)
        order = record.get("focus_order", list(focuses))
        if sorted(order) != sorted(focuses):
            raise ValueError(f"{index_file}: focus_order {order} does not match focuses {sorted(focuses)}")
        embeddings = {name: tensors[name] for name in order}
        index = cls(embeddings, ids, metadata, backend=backend, **backend_options)
        index.model_record = record.get("model")
        return index


# ---------------------------------------------------------------------- helpers


class _Projection(NamedTuple):
    """A focus's pruning projection: its first rows, and the optional wider rest (see _projection)."""

    basis: np.ndarray  # (r, D) float32 (rounded from orthonormal float64 rows): the top directions
    px: np.ndarray  # (N, r) float32: every item projected
    px_sq: np.ndarray  # (N,) float64: |Px|^2
    px_max: float  # max |Px|
    zero_rows: np.ndarray  # items of norm 0 (cosine: distance 1 by definition)
    tail: tuple | None  # (basis (r2, D), px (N, r2), px_sq, max |Px| over all r + r2 rows), or None


def _orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Orthonormalise the columns of a tall matrix through the eigen-decomposition of its small Gram
    matrix (much faster than LAPACK QR here); near-dependent columns are dropped."""
    a = a.astype(np.float64)
    eigval, eigvec = np.linalg.eigh(a.T @ a)
    keep = eigval > 1e-12 * max(eigval.max(), 1e-300)
    return a @ (eigvec[:, keep] / np.sqrt(eigval[keep]))


class _torch_threads:
    """Context manager: torch runs with ``n`` threads inside, as before outside."""

    def __init__(self, n: int) -> None:
        self.n, self.old = n, None

    def __enter__(self):
        import torch

        self.old = torch.get_num_threads()
        if self.old != self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.old != self.n:
            torch.set_num_threads(self.old)


def _l1_rel_tol(d: int) -> float:
    """Relative bound on the gap between a float32 ``torch.cdist(p=1)`` value over d dimensions and the
    float64 reference (sums of non-negative terms: ``(d + 4) * 2**-24``, and the same in float64, doubled)."""
    return 2.0 * (2.0 * (d + 4) * _U32 + 4.0 * (d + 4) * _U64)


def _l1_float32(x: np.ndarray, rows: np.ndarray, qt) -> np.ndarray:
    """float32 cityblock distances (widened to float64) from the rows ``rows`` of ``x`` to one query."""
    import torch

    # |x - q| in float32 and a float32 sum in any order, as torch.cdist(p=1) but about twice as fast for
    # one query; the error bound is _l1_rel_tol either way
    return torch.from_numpy(x[rows]).sub_(qt).abs_().sum(1).numpy().astype(np.float64)


def _block_bound(level, query: np.ndarray, q_l1: float, l1norm: np.ndarray, rows) -> np.ndarray:
    """A lower bound on the float64 cityblock distance from each item (or the items ``rows``) to
    ``query``: ``sum_b |S_b(x) - S_b(q)|`` over the blocks of ``level``, less its rounding error.

    The float32 block sums are within ``2**-24 |x|_1`` of the real ones; the float32 sum of B terms is
    within a relative ``rel(B)``; the float64 reference within ``(D + 4) * 2**-53 (|x|_1 + |q|_1)``.
    """
    import torch

    starts, _, sums_t = level
    q_sums = np.add.reduceat(query.astype(np.float64), starts).astype(np.float32)
    norms = l1norm if rows is None else l1norm[rows]
    if rows is None or 2 * len(rows) > sums_t.shape[0]:  # many rows: one pass over all, no gather
        raw = torch.cdist(torch.from_numpy(q_sums[None]), sums_t, p=1).numpy()[0].astype(np.float64)
        if rows is not None:
            raw = raw[rows]
    else:  # |S(x) - S(q)| on a gathered copy: as cdist(p=1) in float32, faster for a subset
        raw = _l1_float32(sums_t.numpy(), rows, torch.from_numpy(q_sums[None]))
    slack = (8.0 * _U32 + 8.0 * (query.shape[0] + 4) * _U64) * (norms + q_l1)
    return raw * (1.0 - 2.0 * _l1_rel_tol(len(starts))) - slack


def _mask(scores: np.ndarray, allowed, excluded, start: int, stop: int) -> None:
    """Set the scores of filtered-out and excluded items to +inf, in place."""
    if allowed is not None:
        scores[:, ~allowed] = np.inf
    if excluded is not None:
        for r in range(start, stop):
            if len(excluded[r]):
                scores[r - start, excluded[r]] = np.inf


def _exact_distances(x32: np.ndarray, q32: np.ndarray, metric: str, x_norm: np.ndarray) -> np.ndarray:
    """float64 distances from rows ``x32`` to one query (the reference values that rank)."""
    x = x32.astype(np.float64)
    q = q32.astype(np.float64)
    if metric == "cityblock":
        x -= q
        return np.abs(x, out=x).sum(axis=1)
    if metric == "euclidean":
        x -= q
        return np.sqrt(np.einsum("ij,ij->i", x, x))
    q_norm = np.sqrt(q @ q)
    denom = x_norm * q_norm
    dots = np.einsum("ij,j->i", x, q)
    if q_norm > 0 and denom.all():  # no zero vector: the common case, without the masked divide
        dots /= denom
        np.subtract(1.0, dots, out=dots)
        return np.clip(dots, 0.0, 2.0, out=dots)
    cos = np.ones_like(dots)
    np.subtract(1.0, dots / np.where(denom > 0, denom, 1.0), out=cos, where=denom > 0)
    return np.clip(cos, 0.0, 2.0)


def _as_float32_matrix(value, *, what: str, allow_vector: bool = False, copy: bool = False) -> np.ndarray:
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


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


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


def _model_record(model) -> dict:
    from fashrec.hub_model import weights_hash

    config = model.config_dict() if hasattr(model, "config_dict") else None
    return {"class": type(model).__name__, "config": config, "weights_hash": weights_hash(model)}


def _check_model(stored: dict | None, model, index_file: Path) -> None:
    from fashrec.hub_model import weights_hash

    actual = weights_hash(model)
    if not stored:
        raise ValueError(
            f"{index_file} records no model (it was saved without model=), so it cannot be checked against "
            f"{type(model).__name__} (weights_hash {actual}); load it without model= or re-save it with model="
        )
    if stored.get("weights_hash") != actual:
        raise ValueError(
            f"{index_file} was built with {stored.get('class')} (weights_hash {stored.get('weights_hash')}), "
            f"not with this {type(model).__name__} (weights_hash {actual}): re-embed the catalogue with this "
            "model or load the model the index was built with"
        )


def _write_metadata(columns: Mapping[str, np.ndarray], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("saving index metadata needs pyarrow: pip install 'fashrec[data]'") from None
    from fashrec.atomic import atomic_path

    try:
        table = pa.table({name: pa.array(values.tolist() if values.dtype == object else values) for name, values in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"metadata cannot be stored as parquet ({path}): {err}") from None
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _read_metadata(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading index metadata {path} needs pyarrow: pip install 'fashrec[data]'") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
