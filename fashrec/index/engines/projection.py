"""Projection pruning for euclidean and cosine searches with a few queries.

For an orthonormal projection P (r rows), ``||P(x - q)|| <= ||x - q||``: a lower bound on the euclidean
distance from r-dimensional vectors (and on the cosine distance, which is half the squared euclidean
distance of the unit vectors). Exact distances of the items with the smallest bounds give a threshold
t >= the k-th exact distance; only items whose bound is <= t can be in the top k, and only those are
computed exactly. P spans the top principal directions of (a sample of) the catalogue, so on embeddings
with structure few items survive; on isotropic noise too many do and the query is declined.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fashrec.index.distances import U32, U64, rank_exact
from fashrec.index.engines.base import Engine
from fashrec.index.engines.flat import approx_scores

_PRUNE_RANK = 64
_PRUNE_WIDE_RANK = 256  # directions kept for large catalogues of long vectors (see Projection.projection)
_PRUNE_WIDE_MIN_ITEMS = 32768


class _Projection(NamedTuple):
    """A focus's pruning projection: its first rows, and the optional wider rest (see projection())."""

    basis: np.ndarray  # (r, D) float32 (rounded from orthonormal float64 rows): the top directions
    px: np.ndarray  # (N, r) float32: every item projected
    px_sq: np.ndarray  # (N,) float64: |Px|^2
    px_max: float  # max |Px|
    zero_rows: np.ndarray  # items of norm 0 (cosine: distance 1 by definition)
    tail: tuple | None  # (basis (r2, D), px (N, r2), px_sq, max |Px| over all r + r2 rows), or None


class Projection(Engine):
    """Exact euclidean / cosine top-k through the projection bound; see the module docstring."""

    metrics = ("euclidean", "cosine")
    min_items, min_dim, max_queries = 2048, 128, 8

    def __init__(self, vectors) -> None:
        super().__init__(vectors)
        self._projections: dict[str, _Projection | None] = {}

    def prepare(self, metric: str) -> None:
        self.projection(metric)

    def search(self, q, k, metric, weight, allowed, excluded):
        """Large catalogues of long vectors also keep a wider projection (see :meth:`projection`): when
        the first directions prune too little, the rest are added (the bound only tightens: more rows of
        P, larger ``||P v||``) and t is refined from the new best-bounded items. When too many items
        still survive (e.g. isotropic noise), the query is declined (None)."""
        proj = self.projection(metric)
        if proj is None:
            return [None] * q.shape[0]
        x = self.vectors.x
        n, dim = x.shape
        stages = [(proj.basis, proj.px, proj.px_sq, proj.px_max)]
        if proj.tail is not None:
            stages.append(proj.tail)
        out = []
        for r in range(q.shape[0]):
            q32 = q[r]
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
                tol = 4.0 * (r_dim + 4) * U32 * px_max * pq_norm
                # |pq - P q| from the float32 basis, query and product (each row of P has norm <= 1):
                # sqrt(r) * (D + 2) * 2**-24 * |q|, doubled for safety
                q_err = 2.0 * np.sqrt(r_dim) * (dim + 2) * U32 * q_norm
                eps = 4.0 * U32 * (px_max + pq_norm) + q_err + 1e-12
                m = min(max(4 * k, 32), n_ok)
                first = np.argpartition(s, m - 1)[:m] if m < n else np.arange(n)
                if n_ok < n:
                    first = first[s[first] < np.inf]
                # t >= the k-th smallest distance: the k-th smallest float32 upper bound among those m items
                fresh = first[~known[first]]
                if fresh.size:
                    estimate[fresh], abs_tol = approx_rows(self.vectors, fresh, q32, metric)
                    known[fresh] = True
                kth = min(kth, float(np.partition(estimate[first], k - 1)[k - 1]) + abs_tol)
                if metric == "euclidean":
                    t = float(np.sqrt(max(kth, 0.0))) * (1.0 + 8 * U64)
                    limit = t + 1e-12 * t
                else:
                    t = min(max(kth + 8 * U64, 0.0), 2.0)
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
                estimate[fresh] = approx_rows(self.vectors, fresh, q32, metric)[0]
            approx = estimate[cand]
            if cand.size > k:
                upper_k = float(np.partition(approx, k - 1)[k - 1]) + abs_tol
                threshold = upper_k + abs_tol
                threshold += 4 * U64 * abs(threshold) + 1e-300
                cand = cand[approx <= threshold]
            out.append(rank_exact(self.vectors, cand, q32, metric, k, weight))  # cand ascending: stable ties
        return out

    def projection(self, metric: str) -> _Projection | None:
        """The pruning projection (unit rows for cosine), built on first use; None when the catalogue
        has no variance to project on.

        P comes from a randomised SVD of a row sample: any orthonormal P keeps the search exact; a good
        one makes it fast. Its first ``_PRUNE_RANK`` rows (the top directions) bound every query. A
        catalogue of at least ``_PRUNE_WIDE_MIN_ITEMS`` items of at least ``4 * _PRUNE_WIDE_RANK``
        dimensions gets ``_PRUNE_WIDE_RANK`` rows in all: the rest (``tail``) is read only for a query
        the first rows do not prune, where it is far cheaper than the full scan (a quarter of the
        catalogue's size at most, against all of it).
        """
        key = "cosine" if metric == "cosine" else "euclidean"
        if key not in self._projections:
            self._projections[key] = _build_projection(self.vectors, key == "cosine")
        return self._projections[key]


def approx_rows(vectors, rows: np.ndarray, q32: np.ndarray, metric: str) -> tuple[np.ndarray, float]:
    """float32 BLAS estimates for the catalogue rows ``rows`` and one query: ``(approx, abs_tol)`` with
    ``|float64 value - approx| <= abs_tol``; the value is the SQUARED distance for euclidean and the
    cosine distance (before clipping, which only narrows the gap) for cosine (the flat scan's
    :func:`~fashrec.index.engines.flat.approx_scores` on those rows)."""
    approx, abs_tol, _ = approx_scores(vectors, q32[None], metric, rows=rows)
    return approx[0], float(abs_tol[0])


def _orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Orthonormalise the columns of a tall matrix through the eigen-decomposition of its small Gram
    matrix (much faster than LAPACK QR here); near-dependent columns are dropped."""
    a = a.astype(np.float64)
    eigval, eigvec = np.linalg.eigh(a.T @ a)
    keep = eigval > 1e-12 * max(eigval.max(), 1e-300)
    return a @ (eigvec[:, keep] / np.sqrt(eigval[keep]))


def _build_projection(vectors, cosine: bool) -> _Projection | None:
    x = vectors.x
    n, d = x.shape
    rng = np.random.default_rng(0)
    wide = n >= _PRUNE_WIDE_MIN_ITEMS and d >= 4 * _PRUNE_WIDE_RANK
    rows = np.sort(rng.choice(n, size=min(n, 4096 if wide else 2048), replace=False))
    sample = x[rows].astype(np.float64)
    if cosine:
        sample *= vectors.inv_norm[rows][:, None]
    sample -= sample.mean(axis=0)
    sample = sample.astype(np.float32)  # the basis only steers speed: float32 products will do
    rank = min(_PRUNE_WIDE_RANK if wide else _PRUNE_RANK, d, len(rows))
    # randomised range finder (Halko et al.) with one power iteration; only small eigh calls
    y = sample @ rng.standard_normal((d, rank + 8), dtype=np.float32)
    y = _orthonormal_columns(sample @ (sample.T @ _orthonormal_columns(y).astype(np.float32)))
    if y.shape[1] == 0:  # no variance at all: nothing to prune with
        return None
    b = (y.T.astype(np.float32) @ sample).astype(np.float64)  # (l, D): top right singular vectors wanted
    eigval, eigvec = np.linalg.eigh(b @ b.T)
    keep = np.argsort(eigval)[::-1][:rank]
    keep = keep[eigval[keep] > 1e-12 * max(eigval.max(), 1e-300)]
    basis = (eigvec[:, keep] / np.sqrt(eigval[keep])).T @ b  # rows by decreasing singular value
    # Orthonormal rows, in that order (QR = Gram-Schmidt: the first j rows span the top j directions)
    basis = np.linalg.qr(basis.T)[0].T if basis.shape[0] else basis
    if basis.shape[0] == 0:
        return None
    # The bound needs ||P v|| <= ||v||: divide by the largest singular value of P should it exceed 1
    # (then every subset of its rows satisfies it too).
    sigma_max = float(np.sqrt(np.linalg.eigvalsh(basis @ basis.T).max()))
    basis = np.ascontiguousarray(basis / max(1.0, sigma_max * (1 + 1e-12)))
    rank = basis.shape[0]
    px = np.empty((n, rank), dtype=np.float32)
    scale = vectors.inv_norm if cosine else None
    step = 8192
    for start in range(0, n, step):
        chunk = x[start : start + step].astype(np.float64)
        if scale is not None:
            chunk *= scale[start : start + step, None]
        px[start : start + step] = chunk @ basis.T
    head = min(_PRUNE_RANK, rank)
    zero_rows = np.flatnonzero(vectors.norm == 0) if cosine else np.zeros(0, np.int64)
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
    return _Projection(head_basis, head_px, head_sq, head_max, zero_rows, tail)
