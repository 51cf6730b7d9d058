"""Which engine answers a single-focus search: a pruning engine or the flat scan.

The pruning engine that suits the search (few queries, catalogue large and wide enough) is tried; a
query it declines is answered by the flat scan. After 8 declined queries (and 4x more declined than
answered) it is no longer tried on that focus and metric: data it cannot prune. Both routes are exact.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from fashrec.index.distances import FocusVectors
from fashrec.index.engines import PRUNING, Engine, FlatScan

_GIVE_UP = 8  # declined queries after which a pruning engine that answers none is no longer tried


class Planner:
    """Routes the searches of one index; ``record[(focus, metric)]`` is ``(queries the pruning engine
    answered, queries it declined)``."""

    def __init__(self, focuses: Mapping[str, FocusVectors]) -> None:
        self._focuses = focuses
        self._flat: dict[str, FlatScan] = {}
        self._engines: dict[tuple[str, type], Engine] = {}
        self.record: dict[tuple[str, str], tuple[int, int]] = {}

    def flat(self, focus: str) -> FlatScan:
        engine = self._flat.get(focus)
        if engine is None:
            engine = self._flat[focus] = FlatScan(self._focuses[focus])
        return engine

    def engine(self, focus: str, metric: str, n_queries: int = 1) -> Engine | None:
        """The pruning engine for a search of ``n_queries`` queries (made once per focus), or None."""
        vectors = self._focuses[focus]
        for cls in PRUNING:
            if cls.suits(metric, vectors.x.shape, n_queries):
                engine = self._engines.get((focus, cls))
                if engine is None:
                    engine = self._engines[(focus, cls)] = cls(vectors)
                return engine
        return None

    def search(self, q: np.ndarray, k: int, metric: str, focus: str, weight: float, allowed, excluded) -> list:
        """Per-query ``(positions, distances)`` of an exact single-focus search."""
        flat = self.flat(focus)
        engine = self.engine(focus, metric, q.shape[0])
        key = (focus, metric)
        pruned, declined = self.record.get(key, (0, 0))
        if engine is None or (declined >= _GIVE_UP and declined > 4 * pruned):
            return flat.search(q, k, metric, weight, allowed, excluded)
        results = engine.search(q, k, metric, weight, allowed, excluded)
        rest = [r for r, res in enumerate(results) if res is None]
        self.record[key] = (pruned + len(results) - len(rest), declined + len(rest))
        if rest:
            sub_excluded = None if excluded is None else [excluded[r] for r in rest]
            for r, res in zip(rest, flat.search(q[rest], k, metric, weight, allowed, sub_excluded)):
                results[r] = res
        return results
