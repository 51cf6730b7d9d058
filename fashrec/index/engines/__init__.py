"""Exact search engines over one focus, sharing :class:`~fashrec.index.engines.base.Engine`.

- :mod:`.flat`: the flat scan, which answers every query (and all searches of many queries);
- :mod:`.projection`: projection pruning for euclidean and cosine;
- :mod:`.cityblock_pivots`: the block-sum and pivot cascade for cityblock.

A new pruning engine is a new module with an ``Engine`` subclass, added to :data:`PRUNING`; the first
one there that suits a search (:meth:`Engine.suits`) is tried, and the planner
(:mod:`fashrec.index.planner`) keeps it only where it measures faster than the flat scan.
"""
from fashrec.index.engines.base import Engine, Result
from fashrec.index.engines.cityblock_pivots import CityblockPivots
from fashrec.index.engines.flat import FlatScan
from fashrec.index.engines.projection import Projection

PRUNING: tuple[type[Engine], ...] = (Projection, CityblockPivots)

__all__ = ["PRUNING", "CityblockPivots", "Engine", "FlatScan", "Projection", "Result"]
