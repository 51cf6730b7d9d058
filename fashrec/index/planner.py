"""Which engine answers a single-focus search: a pruning engine or the flat scan, by measured cost.

Pruning engines (:data:`fashrec.index.engines.PRUNING`) bound distances to rule items out without
reading their full vectors; how much they save depends on the data (clusters, low-rank structure) and
on the catalogue's size against the per-query overhead. So for each (focus, metric) the planner:

1. tries the pruning engine that suits the search (few queries, catalogue large and wide enough) until
   it has answered a query; a query it declines is answered by the flat scan. After 8 declined queries
   (and 4x more declined than answered) it is no longer tried there: data it cannot prune.
2. then times both routes on the next searches (3 each, per query, structures already built) and
   takes the cheaper by the lower tercile of its recent costs (a busy machine adds outliers, never
   takes time away), timing the other again every 50 searches, so the choice follows the machine and
   the queries.

Both routes are exact, so the choice only ever changes the speed, never the result.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Mapping

import numpy as np

from fashrec.index.distances import FocusVectors
from fashrec.index.engines import PRUNING, Engine, FlatScan

_GIVE_UP = 8  # declined queries after which a pruning engine that answers none is no longer tried
_PROBES = 3  # timed searches of each route before the routes are compared
_WINDOW = 9  # recent per-query costs kept per route
_REPROBE = 50  # every this many compared searches, the route not taken is timed again


class _Costs:
    """Recent per-query seconds of the two routes of one (focus, metric)."""

    def __init__(self) -> None:
        self.prune: deque = deque(maxlen=_WINDOW)
        self.flat: deque = deque(maxlen=_WINDOW)
        self.compared = 0


def _typical(values) -> float:
    """The lower tercile of a route's recent costs: a typical query's cost. A busy machine only ever
    adds time (another process takes the core for milliseconds), so the low values are the route's own."""
    ordered = sorted(values)  # a handful of values: cheaper than numpy
    return ordered[len(ordered) // 3]


class Planner:
    """Routes the searches of one index; ``record[(focus, metric)]`` is ``(queries the pruning engine
    answered, queries it declined)``."""

    def __init__(self, focuses: Mapping[str, FocusVectors]) -> None:
        self._focuses = focuses
        self._flat: dict[str, FlatScan] = {}
        self._engines: dict[tuple[str, type], Engine] = {}
        self._costs: dict[tuple[str, str], _Costs] = {}
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

    def route(self, focus: str, metric: str) -> str:
        """``"prune"`` or ``"flat"`` for the next search (see the module docstring)."""
        key = (focus, metric)
        pruned, declined = self.record.get(key, (0, 0))
        if declined >= _GIVE_UP and declined > 4 * pruned:
            return "flat"
        costs = self._costs.setdefault(key, _Costs())
        if pruned == 0 or len(costs.prune) < _PROBES:
            return "prune"
        if len(costs.flat) < _PROBES:
            return "flat"
        costs.compared += 1
        best, other = ("prune", "flat") if _typical(costs.prune) <= _typical(costs.flat) else ("flat", "prune")
        return other if costs.compared % _REPROBE == 0 else best

    def search(self, q: np.ndarray, k: int, metric: str, focus: str, weight: float, allowed, excluded) -> list:
        """Per-query ``(positions, distances)`` of an exact single-focus search."""
        n_queries = q.shape[0]
        flat = self.flat(focus)
        engine = self.engine(focus, metric, n_queries)
        if engine is None:
            return flat.search(q, k, metric, weight, allowed, excluded)
        key = (focus, metric)
        route = self.route(focus, metric)
        costs = self._costs.setdefault(key, _Costs())
        if route == "flat":
            start = time.perf_counter()
            results = flat.search(q, k, metric, weight, allowed, excluded)
            costs.flat.append((time.perf_counter() - start) / n_queries)
            return results
        engine.prepare(metric)  # structures are built once, outside the timing
        start = time.perf_counter()
        results = engine.search(q, k, metric, weight, allowed, excluded)
        rest = [r for r, res in enumerate(results) if res is None]
        pruned, declined = self.record.get(key, (0, 0))
        self.record[key] = (pruned + n_queries - len(rest), declined + len(rest))
        if rest:
            sub_excluded = None if excluded is None else [excluded[r] for r in rest]
            for r, res in zip(rest, flat.search(q[rest], k, metric, weight, allowed, sub_excluded)):
                results[r] = res
        costs.prune.append((time.perf_counter() - start) / n_queries)
        return results
