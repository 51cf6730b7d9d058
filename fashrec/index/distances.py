"""Low-level distance helpers shared by the exact engines and the FAISS backend (no index imports).

Metrics are exactly the paper's, for vectors u, v:

    cityblock  ||u - v||_1
    euclidean  ||u - v||_2
    cosine     1 - u.v / (||u|| ||v||)    (1.0 when either vector is zero; clipped to [0, 2])

:func:`exact_distances` computes them in float64 from float32 values: the reference that ranks and
that is returned. The float32 helpers come with proven error bounds (see each docstring).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

METRICS = ("cityblock", "euclidean", "cosine")
U32 = 2.0**-24  # unit round-off of float32
U64 = 2.0**-53


class FocusVectors:
    """One focus's embeddings: the float32 ``(N, D)`` matrix (read-only) and what the metrics need,
    computed once: squared norms (euclidean), norms and their inverse (cosine), in float64."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.sqnorm = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        self.norm = np.sqrt(self.sqnorm)
        self.inv_norm = np.zeros_like(self.norm)
        np.divide(1.0, self.norm, out=self.inv_norm, where=self.norm > 0)
        self.max_sqnorm = float(self.sqnorm.max())
        self._torch: Any = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    @property
    def torch(self):
        """A torch view of the matrix (made on first use; no copy)."""
        if self._torch is None:
            import torch

            with warnings.catch_warnings():  # a view of the read-only matrix; readers never write to it
                warnings.simplefilter("ignore", UserWarning)
                self._torch = torch.from_numpy(self.x)
        return self._torch


def exact_distances(x32: np.ndarray, q32: np.ndarray, metric: str, x_norm: np.ndarray | None) -> np.ndarray:
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


def rank_exact(vectors: FocusVectors, rows: np.ndarray, q32: np.ndarray, metric: str, k: int, weight: float = 1.0):
    """The k nearest of the ascending catalogue rows ``rows`` by the float64 reference distance (times
    ``weight``): ``(positions, distances)``; ties keep catalogue order (a stable sort)."""
    d = exact_distances(vectors.x[rows], q32, metric, None if metric == "cityblock" else vectors.norm[rows])
    if weight != 1.0:
        d *= weight
    order = np.argsort(d, kind="stable")[:k]
    return rows[order], d[order]


def blas_tols(d: int) -> tuple[float, float]:
    """``(gamma32, gamma64)``: the float32 and float64 error of a dot product or sum of d terms is at
    most ``d * 2**-24`` (``d * 2**-53``) times the sum of the magnitudes, in any summation order; these
    double (quadruple) that for safety."""
    return 2.0 * (d + 4) * U32, 4.0 * (d + 4) * U64


def l1_rel_tol(d: int) -> float:
    """Relative bound on the gap between a float32 cityblock distance over d dimensions (any summation
    order: ``torch.cdist(p=1)``, torch ``sub/abs/sum``, FAISS ``METRIC_L1``) and the float64 reference
    (sums of non-negative terms: ``(d + 4) * 2**-24``, and the same in float64, doubled)."""
    gamma32, gamma64 = blas_tols(d)
    return 2.0 * (gamma32 + gamma64)


def l1_float32(x: np.ndarray, rows: np.ndarray, qt) -> np.ndarray:
    """float32 cityblock distances (widened to float64) from the rows ``rows`` of ``x`` to one query
    (``qt``: a ``(1, D)`` torch tensor); within :func:`l1_rel_tol` of the float64 reference."""
    import torch

    # |x - q| in float32 and a float32 sum in any order, as torch.cdist(p=1) but about twice as fast for
    # one query
    return torch.from_numpy(x[rows]).sub_(qt).abs_().sum(1).numpy().astype(np.float64)


def mask(scores: np.ndarray, allowed, excluded, start: int, stop: int) -> None:
    """Set the scores (one row per query ``start..stop-1``) of filtered-out and excluded items to +inf."""
    if allowed is not None:
        scores[:, ~allowed] = np.inf
    if excluded is not None:
        for r in range(start, stop):
            if len(excluded[r]):
                scores[r - start, excluded[r]] = np.inf


def optional_faiss():
    """The faiss module, or None when ``fashrec[faiss]`` is not installed (imported once)."""
    global _FAISS
    if _FAISS is False:
        try:
            import faiss
        except ImportError:
            faiss = None
        _FAISS = faiss
    return _FAISS


_FAISS: Any = False
_L1_CHUNK_VALUES = 1 << 16  # one-query torch cityblock scans go through the rows in chunks of this many values


def scan32(vectors: FocusVectors, q: np.ndarray, metric: str, kernel: str | None = None) -> np.ndarray:
    """One float32 pass over the whole matrix: ``(Q, N)`` float32 cityblock distances for cityblock,
    dot products ``q . x`` otherwise. Any summation order: the callers' error bounds hold for all.

    ``kernel`` (see :func:`scan_kernels`): ``"faiss"``, FAISS's single-threaded SIMD loops
    (``pairwise_extra_distances`` with ``METRIC_L1``; ``fvec_inner_products_ny`` for one query), which
    never wait on a second, busy core; ``"blas"``, numpy's (threaded) BLAS product; ``"torch"``,
    ``torch.cdist(p=1)`` or, for one query, a chunked torch pass. None: the first of
    :func:`scan_kernels`.
    """
    x = vectors.x
    n, d = x.shape
    n_queries = q.shape[0]
    kernel = kernel or scan_kernels(metric, n_queries)[0]
    if kernel == "faiss":
        faiss = optional_faiss()
        out = np.empty((n_queries, n), dtype=np.float32)
        q = np.ascontiguousarray(q, dtype=np.float32)
        if metric == "cityblock":
            faiss.pairwise_extra_distances(d, n_queries, faiss.swig_ptr(q), n, faiss.swig_ptr(x),
                                           faiss.METRIC_L1, 0.0, faiss.swig_ptr(out))
        else:
            faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(x), d, n)
        return out
    if kernel == "blas":
        return (x @ q[0])[None, :] if n_queries == 1 else (x @ q.T).T  # x @ q.T: numpy's fast layout
    import torch

    qt = torch.from_numpy(np.ascontiguousarray(q))
    if n_queries > 1:
        return torch.cdist(qt, vectors.torch, p=1).numpy()
    out = torch.empty(n)
    step = max(1, _L1_CHUNK_VALUES // d)
    buf = torch.empty((min(step, n), d))
    for start in range(0, n, step):  # |x - q| of a cache-sized chunk at a time, then its row sums
        chunk = vectors.torch[start : start + step]
        part = buf[: chunk.shape[0]]
        torch.sub(chunk, qt, out=part)
        torch.sum(part.abs_(), 1, out=out[start : start + step])
    return out.numpy()[None, :]


def scan_kernels(metric: str, n_queries: int) -> tuple[str, ...]:
    """The kernels :func:`scan32` can use for such a scan, the default first."""
    has_faiss = optional_faiss() is not None
    if metric == "cityblock":
        return ("faiss",) if has_faiss else ("torch",)
    return ("faiss", "blas") if has_faiss and n_queries == 1 else ("blas",)
