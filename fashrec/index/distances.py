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



def scan32(vectors: FocusVectors, q: np.ndarray, metric: str) -> np.ndarray:
    """One float32 pass over the whole matrix: ``(Q, N)`` float32 cityblock distances for cityblock
    (``torch.cdist(p=1)``), BLAS dot products ``q . x`` otherwise. Any summation order: the callers'
    error bounds hold for all."""
    if metric != "cityblock":
        x = vectors.x
        return (x @ q[0])[None, :] if q.shape[0] == 1 else (x @ q.T).T  # x @ q.T: numpy's fast layout
    import torch

    return torch.cdist(torch.from_numpy(np.ascontiguousarray(q)), vectors.torch, p=1).numpy()
