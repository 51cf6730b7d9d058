"""The flat scan: one float32 pass over every item bounds each float64 distance from below and above;
only the items that can still be in the top k are computed in float64.

With ``|exact - approx| <= abs_tol + rel_tol * approx`` the lower and upper bounds are increasing in
``approx``, so the k-th smallest upper bound comes from the k-th smallest ``approx``, and every item
whose lower bound is at most it is re-ranked: no other item can be in the top k, so the result equals
a float64 brute-force search, ties included. It answers every query (the pruning engines' fallback).
"""
from __future__ import annotations

import time

import numpy as np

from fashrec.index.costs import Chooser
from fashrec.index.distances import U32, U64, FocusVectors, blas_tols, l1_rel_tol, mask, rank_exact, scan32, scan_kernels
from fashrec.index.engines.base import Engine

# Scores held in memory at once (queries x catalogue) during a search: bounds memory for big catalogues.
_BLOCK_ELEMENTS = 1 << 22


class FlatScan(Engine):
    """Every item's float32 distance, then float64 for the candidates; see the module docstring.

    Where several kernels can make the float32 pass (one query's dot products: FAISS's single-threaded
    loop or numpy's threaded BLAS), the one that measures faster here is used
    (:class:`~fashrec.index.costs.Chooser`): a threaded call is faster on an idle machine and waits
    milliseconds for a busy second core.
    """

    def __init__(self, vectors) -> None:
        super().__init__(vectors)
        self._kernels: dict[tuple[str, ...], Chooser] = {}
        self._terms = None

    def scan(self, q, metric):
        """:func:`~fashrec.index.distances.scan32` with the kernel that measures fastest."""
        kernels = scan_kernels(metric, q.shape[0])
        if len(kernels) == 1:
            return scan32(self.vectors, q, metric, kernels[0])
        chooser = self._kernels.get(kernels)
        if chooser is None:
            chooser = self._kernels[kernels] = Chooser(kernels)
        kernel = chooser.pick()
        start = time.perf_counter()
        raw = scan32(self.vectors, q, metric, kernel)
        chooser.record(kernel, time.perf_counter() - start)
        return raw

    def search(self, q, k, metric, weight, allowed, excluded):
        if q.shape[0] == 1:
            one = self._search_one(q, k, metric, weight, allowed, None if excluded is None else excluded[0])
            if one is not None:
                return [one]
        vectors = self.vectors

        def candidates(start, stop):
            approx, abs_tol, rel_tol = approx_scores(vectors, q[start:stop], metric, self.scan(q[start:stop], metric))
            mask(approx, allowed, excluded, start, stop)
            if k >= approx.shape[1]:
                return np.full(stop - start, np.inf), approx
            kth = np.partition(approx, k - 1, axis=1)[:, k - 1]
            upper_k = kth * (1.0 + rel_tol) + abs_tol
            threshold = (upper_k + abs_tol) / (1.0 - rel_tol)
            return threshold + 4 * U64 * np.abs(threshold) + 1e-300, approx

        return blocked_search(len(vectors.x), q.shape[0], candidates,
                              lambda r, cand: rank_exact(vectors, cand, q[r], metric, k, weight))


    def _search_one(self, q, k, metric, weight, allowed, excluded):
        """One query, ranked by float32 scores (no float64 pass over all items), or None for values
        float32 scores cannot hold (norms or products beyond 1e15 / 1e30).

        The score is increasing in the distance, within a proven ``slack`` of an exact affine function
        of it: cityblock the float32 distance (relative error, as :func:`approx_scores`); euclidean
        ``|x|^2 - 2 x.q`` (the squared distance less ``|q|^2``) from float32 ``|x|^2`` and dot
        products; cosine ``-x.q / |x|`` (the cosine distance less 1, times ``|q|``) from float32
        ``-1 / |x|``. Every item whose score is at most the k-th smallest score plus twice the slack
        is re-ranked in float64; the slack also covers the float64 reference's own rounding, the
        float32 products' underflow and the roundings of the extra float32 operations.
        """
        v = self.vectors
        n, d = v.x.shape
        q32 = q[0]
        q64 = q32.astype(np.float64)
        q_sq = float(q64 @ q64)
        q_norm = float(np.sqrt(q_sq))
        big = float(np.sqrt(v.max_sqnorm))
        if metric != "cityblock" and not (big * max(big, q_norm) < 1e30 and q_norm < 1e15):
            return None
        gamma32, gamma64 = blas_tols(d)
        raw = self.scan(q, metric)[0]  # a fresh float32 array: scored in place
        if metric == "cityblock":
            score, rel, slack, scale = raw, l1_rel_tol(d), 0.0, 0.0
        elif metric == "euclidean":
            score = np.multiply(raw, np.float32(-2.0), out=raw)
            score += self._float32_terms()[0]
            rel, scale = 0.0, v.max_sqnorm + q_sq  # scale: the largest squared distance, at most 2x that
            slack = 2.0 * (gamma32 + 2 * U32) * big * q_norm + (4 * U32 + gamma64) * scale + d * 2.0**-140
        else:
            neg_inv, least_norm = self._float32_terms()[1:]
            score = np.multiply(raw, neg_inv, out=raw)
            rel, scale = 0.0, q_norm
            slack = (gamma32 + 4 * U32 + 2 * gamma64) * q_norm + d * 2.0**-140 / least_norm
        if allowed is not None:
            score[~allowed] = np.inf
        if excluded is not None and len(excluded):
            score[excluded] = np.inf
        if k >= n:  # every item (none can be masked: the caller checked that k are left)
            cand = np.arange(n)
        else:
            kth = float(np.partition(score, k - 1)[k - 1])
            limit = (kth * (1.0 + rel) + 2.0 * slack) / (1.0 - rel)
            limit += 4 * U64 * (abs(limit) + scale) + 1e-300
            limit32 = np.float32(limit)
            if float(limit32) < limit:  # rounded down to float32: the next float32 up
                limit32 = np.nextafter(limit32, np.float32(np.inf))
            cand = np.flatnonzero(score <= limit32)
        return rank_exact(v, cand, q32, metric, k, weight)

    def _float32_terms(self):
        """(float32 ``|x|^2``, float32 ``-1 / |x|`` (0 for a zero row), the smallest non-zero norm)."""
        if self._terms is None:
            v = self.vectors
            nonzero = v.norm[v.norm > 0]
            least = float(nonzero.min()) if nonzero.size else 1.0
            self._terms = (v.sqnorm.astype(np.float32), (-v.inv_norm).astype(np.float32), least)
        return self._terms


def blocked_search(n: int, n_queries: int, candidates, rank) -> list:
    """Queries in blocks of at most ``_BLOCK_ELEMENTS // n``: ``candidates(start, stop)`` gives each
    query's threshold and an ``(stop - start, N)`` score whose items at or under the threshold are the
    candidates (ascending positions); ``rank(query, candidates)`` gives the query's result."""
    block = max(1, _BLOCK_ELEMENTS // n)
    out = []
    for start in range(0, n_queries, block):
        stop = min(n_queries, start + block)
        threshold, score = candidates(start, stop)
        for r in range(stop - start):
            out.append(rank(start + r, np.flatnonzero(score[r] <= threshold[r])))
    return out


def approx_scores(vectors: FocusVectors, q: np.ndarray, metric: str, raw: np.ndarray | None = None, rows=None):
    """One float32 pass (``raw``, :func:`scan32`'s output, when already made): ``(approx (Q, N)
    float64, abs_tol (Q,), rel_tol)`` bounding the float64 values: ``|value - approx| <= abs_tol +
    rel_tol * approx``. With ``rows`` (euclidean and cosine), only those catalogue rows (a BLAS
    product of the gathered rows): the bounds hold for any rows, taken at the largest norm.

    ``approx`` is the distance for cityblock and cosine and the SQUARED distance for euclidean.
    The float32 error of a dot product or sum of D terms is at most ``D * 2**-24`` times the sum of
    the magnitudes (any summation order); the bounds double that for safety (:func:`blas_tols`).
    """
    d = vectors.x.shape[1]
    if raw is None:
        raw = scan32(vectors, q, metric) if rows is None else (vectors.x[rows] @ q[0])[None, :]
    raw = raw.astype(np.float64)
    if metric == "cityblock":
        return raw, np.zeros(q.shape[0]), l1_rel_tol(d)
    gamma32, gamma64 = blas_tols(d)
    q64 = q.astype(np.float64)
    q_sq = np.einsum("ij,ij->i", q64, q64)
    q_norm = np.sqrt(q_sq)
    if metric == "euclidean":
        sq = raw
        sq *= -2.0
        sq += (vectors.sqnorm if rows is None else vectors.sqnorm[rows])[None, :]
        sq += q_sq[:, None]
        max_sq = vectors.max_sqnorm
        abs_tol = 2.0 * gamma32 * q_norm * np.sqrt(max_sq) + gamma64 * (max_sq + q_sq)
        return sq, abs_tol, 0.0
    # cosine: 1 - dot / (|q||x|), 1.0 when either is zero
    q_inv = np.zeros_like(q_norm)
    np.divide(1.0, q_norm, out=q_inv, where=q_norm > 0)
    cos = raw
    cos *= (vectors.inv_norm if rows is None else vectors.inv_norm[rows])[None, :]
    cos *= -q_inv[:, None]
    cos += 1.0
    return cos, np.full(q.shape[0], gamma32 + gamma64), 0.0
