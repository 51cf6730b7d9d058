"""The interface of an exact engine: a new engine is a new module with one :class:`Engine` subclass,
listed in :data:`fashrec.index.engines.PRUNING`.

An engine answers k-NN queries over ONE focus exactly: the k items of smallest float64 reference
distance (:func:`fashrec.index.distances.exact_distances`, times the focus weight), ties by catalogue
position. A pruning engine may decline a query (None) when its bounds rule out too little; the flat
scan then answers it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Optional, Sequence, Tuple

import numpy as np

from fashrec.index.distances import METRICS, FocusVectors

Result = Tuple[np.ndarray, np.ndarray]  # (positions (k,) int64, distances (k,) float64), nearest first


class Engine(ABC):
    """Exact search over one focus's :class:`~fashrec.index.distances.FocusVectors`.

    Class attributes say where an engine is worth trying (the flat scan has no limits): ``metrics``,
    and catalogues of at least ``min_items`` items of at least ``min_dim`` dimensions, searched with at
    most ``max_queries`` queries at a time.
    """

    metrics: ClassVar[tuple[str, ...]] = METRICS
    min_items: ClassVar[int] = 0
    min_dim: ClassVar[int] = 0
    max_queries: ClassVar[int] = 1 << 62

    def __init__(self, vectors: FocusVectors) -> None:
        self.vectors = vectors

    @classmethod
    def suits(cls, metric: str, shape: tuple[int, int], n_queries: int) -> bool:
        n, d = shape
        return metric in cls.metrics and n >= cls.min_items and d >= cls.min_dim and n_queries <= cls.max_queries

    def prepare(self, metric: str) -> None:
        """Build what searches with ``metric`` need (on first use), so that timing a search leaves it out."""

    @abstractmethod
    def search(
        self,
        q: np.ndarray,
        k: int,
        metric: str,
        weight: float,
        allowed: np.ndarray | None,
        excluded: Sequence[np.ndarray] | None,
    ) -> list[Optional[Result]]:
        """One result per row of ``q`` (float32 ``(Q, D)``), or None for a query the engine declines.

        ``allowed``: None or an ``(N,)`` bool mask of the items that may be returned; ``excluded``: None
        or one sorted array of positions per query never to return. Callers guarantee k items are left.
        """
