"""Retrieval scores for recommendations: precision@k and mAP@k, vectorised over Q queries.

A neighbour is *relevant* to a query when its label equals the query's label (e.g. the same H&M
``product_type_name``). Each function takes

    query_labels      (Q,)     the label of each query item
    neighbour_labels  (Q, >=k) the labels of its retrieved neighbours, nearest first (only the first
                               k columns are used; the query itself should not be among them)

and returns a :class:`Score` ``(per_query, mean)``: a float64 array of Q values and their mean.

Definitions, with rel_i = 1 when the i-th neighbour is relevant, else 0:

    P@k  = (1/k) * sum_{i<=k} rel_i
    Hit@k = 1 if any rel_i else 0                         (the share of queries with a hit: hit rate)
    AP@k = (1/min(k, R)) * sum_{i<=k} P@i * rel_i        mAP@k = mean of AP@k over the queries

R is the number of relevant items in the catalogue, not counting the query (pass ``n_relevant``; see
:func:`count_relevant`). Then AP@k is 1.0 exactly when the first min(k, R) neighbours are all relevant.
Without ``n_relevant``, R is taken as the number of relevant items among the k retrieved (the variant that
only judges the order of the hits; it is 1.0 whenever every hit precedes every miss). A query with R = 0
scores AP@k = 0.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Score(NamedTuple):
    per_query: np.ndarray
    mean: float


def relevance(query_labels, neighbour_labels, k: int) -> np.ndarray:
    """``(Q, k)`` bool matrix: neighbour label == query label, over the first k neighbours."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    query = np.asarray(query_labels)
    neighbours = np.asarray(neighbour_labels)
    if query.ndim != 1:
        raise ValueError(f"query_labels must have shape (Q,), got {query.shape}")
    if neighbours.ndim != 2 or neighbours.shape[0] != query.shape[0]:
        raise ValueError(f"neighbour_labels must have shape (Q={query.shape[0]}, >=k), got {neighbours.shape}")
    if neighbours.shape[1] < k:
        raise ValueError(f"k={k} but neighbour_labels has only {neighbours.shape[1]} neighbours per query")
    if query.shape[0] == 0:
        raise ValueError("no queries: query_labels is empty")
    return neighbours[:, :k] == query[:, None]


def precision_at_k(query_labels, neighbour_labels, k: int) -> Score:
    """P@k per query: the share of the first k neighbours that are relevant."""
    rel = relevance(query_labels, neighbour_labels, k)
    per_query = rel.sum(axis=1) / k
    return Score(per_query, float(per_query.mean()))


def average_precision_at_k(query_labels, neighbour_labels, k: int, n_relevant=None) -> Score:
    """AP@k per query and mAP@k (their mean); see the module docstring for the exact definition.

    Args:
        n_relevant: optional ``(Q,)`` count R of relevant catalogue items for each query, the query
            itself not counted. Must be at least the number of hits among the first k neighbours.
    """
    rel = relevance(query_labels, neighbour_labels, k).astype(np.float64)
    hits_so_far = np.cumsum(rel, axis=1)
    precision_at_i = hits_so_far / np.arange(1, k + 1)
    summed = (precision_at_i * rel).sum(axis=1)
    hits = hits_so_far[:, -1]
    if n_relevant is None:
        denominator = hits
    else:
        r = np.asarray(n_relevant)
        if r.shape != hits.shape:
            raise ValueError(f"n_relevant must have shape ({hits.shape[0]},), got {r.shape}")
        if np.any(r < 0) or np.any(r != np.floor(r)):
            raise ValueError("n_relevant must hold non-negative integers")
        bad = np.flatnonzero(r < hits)
        if bad.size:
            q = int(bad[0])
            raise ValueError(
                f"n_relevant[{q}] = {r[q]} but query {q} already has {int(hits[q])} relevant neighbours in "
                "its top k: count the relevant catalogue items (the query excluded) for n_relevant"
            )
        denominator = np.minimum(k, r).astype(np.float64)
    per_query = np.divide(summed, denominator, out=np.zeros_like(summed), where=denominator > 0)
    return Score(per_query, float(per_query.mean()))


def hit_rate_at_k(query_labels, neighbour_labels, k: int) -> Score:
    """Hit@k per query: 1.0 when at least one of the first k neighbours is relevant, else 0.0.

    fashrec's ``design`` score: the share of queries whose top k hold another article of the same design
    (``product_code``). Average it only over queries that have such an item in the catalogue.
    """
    per_query = relevance(query_labels, neighbour_labels, k).any(axis=1).astype(np.float64)
    return Score(per_query, float(per_query.mean()))


def count_relevant(query_labels, catalogue_labels, *, queries_in_catalogue: bool = True) -> np.ndarray:
    """R per query: catalogue items sharing the query's label, minus the query itself when it is there."""
    query = np.asarray(query_labels)
    catalogue = np.asarray(catalogue_labels)
    values, counts = np.unique(catalogue, return_counts=True)
    lookup = dict(zip(values.tolist(), counts.tolist()))
    r = np.array([lookup.get(label, 0) for label in query.tolist()], dtype=np.int64)
    if queries_in_catalogue:
        if np.any(r == 0):
            missing = query[r == 0][0]
            raise ValueError(f"query label {missing!r} is not in catalogue_labels, yet queries_in_catalogue=True")
        r -= 1
    return r
