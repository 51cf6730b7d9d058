"""precision@k, AP@k, hit@k and count_relevant, property-based, against a plain-Python reference in exact fractions.

Catalogues of random labels (strings or integers, few or many classes); each query is a catalogue item
whose neighbours are other catalogue items, so R (relevant items besides the query) is always valid.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashrec.eval.retrieval_metrics import (average_precision_at_k, count_relevant, hit_rate_at_k, precision_at_k,
                                           relevance)


def reference_precision(query, neighbours, k) -> list[Fraction]:
    return [Fraction(sum(n == q for n in row[:k]), k) for q, row in zip(query, neighbours)]


def reference_ap(query, neighbours, k, n_relevant=None) -> list[Fraction]:
    """(1/min(k, R)) * sum_{i<=k} P@i * rel_i; R = hits in the top k when n_relevant is not given."""
    out = []
    for r, (q, row) in enumerate(zip(query, neighbours)):
        hits, total = 0, Fraction(0)
        for i, label in enumerate(row[:k], start=1):
            if label == q:
                hits += 1
                total += Fraction(hits, i)
        denominator = hits if n_relevant is None else min(k, n_relevant[r])
        out.append(total / denominator if denominator else Fraction(0))
    return out


@st.composite
def retrieval_cases(draw):
    n_classes = draw(st.integers(1, 6))
    n = draw(st.integers(2, 60))
    as_strings = draw(st.booleans())
    labels = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    catalogue = [f"class-{v}" for v in labels] if as_strings else labels
    width = draw(st.integers(1, n - 1))  # neighbours retrieved per query (the query itself never among them)
    n_queries = draw(st.integers(1, min(n, 12)))
    queries = draw(st.lists(st.integers(0, n - 1), min_size=n_queries, max_size=n_queries, unique=True))
    neighbours = []
    for q in queries:
        others = [j for j in range(n) if j != q]
        order = draw(st.permutations(others))
        neighbours.append([catalogue[j] for j in order[:width]])
    k = draw(st.integers(1, width))
    return [catalogue[q] for q in queries], neighbours, catalogue, k


@settings(max_examples=200, deadline=None)
@given(case=retrieval_cases())
def test_scores_equal_the_plain_python_reference(case):
    query, neighbours, catalogue, k = case
    r = count_relevant(query, catalogue)
    assert r.tolist() == [sum(c == q for c in catalogue) - 1 for q in query]
    assert count_relevant(query, catalogue, queries_in_catalogue=False).tolist() == (r + 1).tolist()

    p = precision_at_k(query, neighbours, k)
    expected_p = reference_precision(query, neighbours, k)
    assert p.per_query.dtype == np.float64 and p.per_query.tolist() == pytest.approx([float(v) for v in expected_p])
    assert p.mean == pytest.approx(float(sum(expected_p) / len(expected_p)))

    hit = hit_rate_at_k(query, neighbours, k)
    expected_hit = [float(any(n == q for n in row[:k])) for q, row in zip(query, neighbours)]
    assert hit.per_query.dtype == np.float64 and hit.per_query.tolist() == expected_hit
    assert hit.mean == pytest.approx(sum(expected_hit) / len(expected_hit))

    for n_relevant in (None, r):
        ap = average_precision_at_k(query, neighbours, k, n_relevant=n_relevant)
        expected = reference_ap(query, neighbours, k, None if n_relevant is None else n_relevant.tolist())
        assert ap.per_query.tolist() == pytest.approx([float(v) for v in expected], rel=1e-12, abs=1e-15)
        assert ap.mean == pytest.approx(float(sum(expected) / len(expected)), rel=1e-12, abs=1e-15)
        assert np.all((ap.per_query >= 0) & (ap.per_query <= 1))
    # AP@k with R is 1.0 exactly when the first min(k, R) neighbours are all relevant (R > 0)
    ap = average_precision_at_k(query, neighbours, k, n_relevant=r).per_query
    for i, (q, row) in enumerate(zip(query, neighbours)):
        perfect = r[i] > 0 and all(label == q for label in row[: min(k, r[i])])
        assert (ap[i] == pytest.approx(1.0)) == perfect


@settings(max_examples=60, deadline=None)
@given(case=retrieval_cases(), extra=st.integers(1, 3))
def test_only_the_first_k_neighbours_count_and_too_small_r_is_refused(case, extra):
    query, neighbours, catalogue, k = case
    rel = relevance(query, neighbours, k)
    assert rel.shape == (len(query), k)
    # columns after k change nothing
    padded = [row + [object()] * extra for row in neighbours]
    assert precision_at_k(query, padded, k).per_query.tolist() == precision_at_k(query, neighbours, k).per_query.tolist()
    with pytest.raises(ValueError, match=f"k={len(neighbours[0]) + 1} but neighbour_labels has only"):
        precision_at_k(query, neighbours, len(neighbours[0]) + 1)
    hits = rel.sum(axis=1)
    if hits.max() > 0:
        too_small = np.maximum(hits - 1, 0)
        q = int(np.flatnonzero(too_small < hits)[0])
        with pytest.raises(ValueError, match=rf"n_relevant\[{q}\] = {too_small[q]} but query {q}"):
            average_precision_at_k(query, neighbours, k, n_relevant=too_small)
