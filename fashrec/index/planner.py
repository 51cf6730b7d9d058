"""Which engine answers a single-focus search: a pruning engine or the flat scan, by measured cost.

Pruning engines (:data:`fashrec.index.engines.PRUNING`) bound distances to rule items out without
reading their full vectors; how much they save depends on the data (clusters, low-rank structure) and
on the catalogue's size against the per-query overhead. So for each (focus, metric) the planner:

1. tries the pruning engine that suits the search (few queries, catalogue large and wide enough) until
   it has answered a query; a query it declines is answered by the flat scan. After 8 declined queries
   (and 4x more declined than answered) it is no longer tried there: data it cannot prune.
2. then times both routes on the next searches (per query, structures already built) and takes the
   cheaper by its recent costs, timing the other again now and then (:class:`~fashrec.index.costs.Chooser`),
   so the choice follows the machine and the queries.

Both routes are exact, so the choice only ever changes the speed, never the result.
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from fashrec.index.costs import Chooser
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
        self.choosers: dict[tuple[str, str], Chooser] = {}
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
        pruned, declined = self.record.get((focus, metric), (0, 0))
        if declined >= _GIVE_UP and declined > 4 * pruned:
            return "flat"
        if pruned == 0:
            return "prune"
        return self._chooser(focus, metric).pick()

    def _chooser(self, focus: str, metric: str) -> Chooser:
        chooser = self.choosers.get((focus, metric))
        if chooser is None:
            chooser = self.choosers[(focus, metric)] = Chooser(("prune", "flat"))
        return chooser

    def search(self, q: np.ndarray, k: int, metric: str, focus: str, weight: float, allowed, excluded) -> list:
        """Per-query ``(positions, distances)`` of an exact single-focus search."""
        n_queries = q.shape[0]
        flat = self.flat(focus)
        engine = self.engine(focus, metric, n_queries)
        if engine is None:
            return flat.search(q, k, metric, weight, allowed, excluded)
        key = (focus, metric)
        route = self.route(focus, metric)
        if route == "prune":
            engine.prepare(metric)  # structures are built once, outside the timing
        start = time.perf_counter()
        if route == "flat":
            results = flat.search(q, k, metric, weight, allowed, excluded)
        else:
            results = engine.search(q, k, metric, weight, allowed, excluded)
            rest = [r for r, res in enumerate(results) if res is None]
            pruned, declined = self.record.get(key, (0, 0))
            self.record[key] = (pruned + n_queries - len(rest), declined + len(rest))
            if rest:
                sub_excluded = None if excluded is None else [excluded[r] for r in rest]
                for r, res in zip(rest, flat.search(q[rest], k, metric, weight, allowed, sub_excluded)):
                    results[r] = res
        self._chooser(focus, metric).record(route, (time.perf_counter() - start) / n_queries)
        return results
