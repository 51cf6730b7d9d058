"""SimilarityIndex, property-based: every search equals a float64 brute force over random catalogues.

Only the public API is used (``fashrec.SimilarityIndex``: the constructor with metadata, ``search`` and
``search_ids``), so these properties hold whatever engine answers. The semantics checked are the ones the
index documents:

- distances are the paper's metrics computed in float64 from the float32-stored vectors (cosine is 1.0
  when either vector is zero, clipped to [0, 2]); a weighted focus ranks by ``sum_f w_f * d_f``;
- the result is the k smallest, nearest first; equal distances are ordered by catalogue position;
- ``where`` keeps the items whose metadata value is one of the wanted values (before ranking);
- ``exclude`` (one collection for all queries, or one per query) is never returned; unknown ids are
  ignored; ``search_ids`` also leaves each query item out of its own results;
- asking for more neighbours than are left is a ValueError.

Catalogues are drawn with duplicated rows (exact ties), zero rows, small-integer values (many exact
ties) and near-duplicates below float32 resolution (where only the float64 re-ranking is right).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fashrec import SimilarityIndex

METRICS = ("cityblock", "euclidean", "cosine")
KINDS = ("normal", "integers", "near_duplicates", "scaled")
GROUPS = ("a", "b", "c")
# Returned distances are float64 computations of the same values; only the order of float operations may
# differ from this reference, far below any gap the data below makes (float32 steps are ~1e-7 relative).
RTOL = 1e-11


def _reference_distances(x32: np.ndarray, q32: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances from every row of ``x32`` to ``q32``, by the module docstring's definitions."""
    x = x32.astype(np.float64)
    q = q32.astype(np.float64)
    if metric == "cityblock":
        return np.abs(x - q).sum(axis=1)
    if metric == "euclidean":
        return np.sqrt(((x - q) ** 2).sum(axis=1))
    denom = np.linalg.norm(x, axis=1) * np.linalg.norm(q)
    cos = np.ones(len(x))
    nz = denom > 0
    cos[nz] = 1.0 - (x[nz] @ q) / denom[nz]
    return np.clip(cos, 0.0, 2.0)


def _catalogue(rng: np.random.Generator, n: int, dim: int, kind: str, n_duplicates: int, n_zero: int) -> np.ndarray:
    if kind == "integers":
        x = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)
    elif kind == "scaled":  # rows of very different norms
        x = rng.standard_normal((n, dim)) * 10.0 ** rng.integers(-3, 4, size=(n, 1))
    else:
        x = rng.standard_normal((n, dim))
    x = np.asarray(x, dtype=np.float32)
    if kind == "near_duplicates" and n > 1:  # rows one float32 step away from row 0
        m = max(1, n // 3)
        x[1:1 + m] = x[0]
        for r in range(1, 1 + m):
            j = rng.integers(0, dim)
            x[r, j] = np.nextafter(x[0, j], np.float32(np.inf) if rng.random() < 0.5 else np.float32(-np.inf))
    for _ in range(n_duplicates):  # an exact copy of an earlier or later row: an exact tie in every metric
        src, dst = rng.integers(0, n, size=2)
        x[dst] = x[src]
    for r in rng.choice(n, size=min(n_zero, n), replace=False):
        x[r] = 0.0
    return x


@st.composite
def catalogues(draw, *, max_n=40, max_dim=12, max_focuses=3):
    n = draw(st.integers(1, max_n))
    n_focuses = draw(st.integers(1, max_focuses))
    dims = [draw(st.integers(1, max_dim)) for _ in range(n_focuses)]
    kind = draw(st.sampled_from(KINDS))
    seed = draw(st.integers(0, 2**32 - 1))
    n_duplicates = draw(st.integers(0, n))
    n_zero = draw(st.integers(0, 2))
    rng = np.random.default_rng(seed)
    names = ["overall", "shape", "colour"][:n_focuses]
    vectors = {}
    dup_pairs = rng.integers(0, n, size=(n_duplicates, 2))
    for name, dim in zip(names, dims):
        x = _catalogue(rng, n, dim, kind, 0, n_zero)
        for src, dst in dup_pairs:  # the same items are duplicates in every focus
            x[dst] = x[src]
        vectors[name] = x
    metadata = {"group": rng.choice(GROUPS, size=n).tolist(), "size": rng.integers(0, 3, size=n).tolist()}
    hot = np.unique(np.concatenate([dup_pairs[:, 1], [0]]))  # rows with twins: queries there meet ties
    return vectors, metadata, rng, hot


@st.composite
def search_cases(draw, catalogue_strategy):
    vectors, metadata, rng, hot = draw(catalogue_strategy)
    names = list(vectors)
    n = len(next(iter(vectors.values())))
    metric = draw(st.sampled_from(METRICS))
    if len(names) == 1 or draw(st.booleans()):
        focus = draw(st.sampled_from(names))
    else:
        weights = [draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.7])) for _ in names]
        if not any(weights):
            weights[0] = 1.0
        focus = dict(zip(names, weights))
    by_id = draw(st.booleans())
    n_queries = draw(st.integers(1, min(4, n) if by_id else 4))
    # half the catalogue-row queries sit on a row that has twins, where ties are decided
    rows = np.where(rng.random(n_queries) < 0.5, rng.choice(hot, size=n_queries), rng.integers(0, n, size=n_queries))
    if by_id:
        query_rows = np.unique(rows)
        n_queries = len(query_rows)
        queries = None
    else:
        query_rows = None
        queries = {}
        pick = rng.random(n_queries) < 0.6  # else a fresh random vector
        for name, x in vectors.items():
            fresh = _catalogue(rng, n_queries, x.shape[1], "normal", 0, 0) * np.abs(x).max(initial=1.0)
            queries[name] = np.where(pick[:, None], x[rows], fresh).astype(np.float32)
    where = None
    if draw(st.booleans()):
        column = draw(st.sampled_from(["group", "size"]))
        values = list(GROUPS) + ["zzz"] if column == "group" else [0, 1, 2, 7]
        wanted = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))
        where = {column: wanted[0] if len(wanted) == 1 and draw(st.booleans()) else wanted}
    exclude = None
    mode = draw(st.sampled_from(["none", "flat", "per_query"]))
    ids = [f"item-{i:03d}" for i in range(n)]
    if mode == "flat":
        exclude = [ids[i] for i in rng.choice(n, size=rng.integers(0, n // 2 + 1), replace=False)] + ["not-an-id"]
    elif mode == "per_query":
        exclude = [[ids[i] for i in rng.choice(n, size=rng.integers(0, n // 2 + 1), replace=False)]
                   for _ in range(n_queries)]
    k = draw(st.integers(1, max(1, n // 3)) | st.integers(1, n))  # mostly a few, sometimes more than are left
    return dict(plain_matrix=draw(st.booleans()), vectors=vectors, metadata=metadata, ids=ids, metric=metric, focus=focus, queries=queries,
                query_rows=query_rows, where=where, exclude=exclude, k=k)


def _expected_candidates(case, r: int) -> np.ndarray:
    """Bool mask of the items query r may return: the where filter, minus exclude (and itself by id)."""
    n = len(case["ids"])
    keep = np.ones(n, dtype=bool)
    where = case["where"]
    if where:
        for column, wanted in where.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            keep &= np.isin(np.array(case["metadata"][column], dtype=object), np.array(wanted, dtype=object))
    exclude = case["exclude"]
    position = {item: i for i, item in enumerate(case["ids"])}
    if exclude is not None:
        per_query = exclude[r] if exclude and isinstance(exclude[0], list) else exclude
        keep[[position[i] for i in per_query if i in position]] = False
    if case["query_rows"] is not None:
        keep[case["query_rows"][r]] = False
    return keep


def _weights(case) -> dict[str, float]:
    focus = case["focus"]
    return {focus: 1.0} if isinstance(focus, str) else {f: w for f, w in focus.items() if w > 0}


def _query_vectors(case) -> dict[str, np.ndarray]:
    if case["queries"] is not None:
        return case["queries"]
    return {name: x[case["query_rows"]] for name, x in case["vectors"].items()}


def _reference(case, r: int) -> np.ndarray:
    """float64 distance of every item to query r under the case's metric and focus (inf where not allowed)."""
    q = _query_vectors(case)
    d = np.zeros(len(case["ids"]))
    for name, w in _weights(case).items():
        d += w * _reference_distances(case["vectors"][name], q[name][r], case["metric"])
    return np.where(_expected_candidates(case, r), d, np.inf)


def _identical_rows(case) -> list[list[int]]:
    """For each item, the items whose vectors equal its own in every focus that ranks."""
    groups: dict[tuple, list[int]] = {}
    names = list(_weights(case))
    for i in range(len(case["ids"])):
        groups.setdefault(tuple(case["vectors"][f][i].tobytes() for f in names), []).append(i)
    return [groups[tuple(case["vectors"][f][i].tobytes() for f in names)] for i in range(len(case["ids"]))]


def _run(index: SimilarityIndex, case):
    kw = dict(k=case["k"], metric=case["metric"], exclude=case["exclude"], where=case["where"], focus=case["focus"])
    if case["query_rows"] is not None:
        return index.search_ids([case["ids"][i] for i in case["query_rows"]], **kw)
    q = case["queries"]
    if isinstance(case["focus"], str):
        q = q[case["focus"]]
        if len(q) == 1 and case["exclude"] is None:
            q = q[0]  # a (D,) vector is one query
    return index.search(q, **kw)


def _check_case(index: SimilarityIndex, case) -> None:
    n_queries = len(case["query_rows"]) if case["query_rows"] is not None else len(next(iter(case["queries"].values())))
    refs = [_reference(case, r) for r in range(n_queries)]
    if case["k"] > min(int(np.isfinite(d).sum()) for d in refs):
        filtered = _expected_candidates({**case, "exclude": None, "query_rows": None}, 0)
        message = "leaves no items" if not filtered.any() else f"k={case['k']} but"
        with pytest.raises(ValueError, match=message):
            _run(index, case)
        event("k is more than the items left: ValueError")
        return
    event("compared with the reference")
    ids, dist = _run(index, case)
    assert isinstance(dist, np.ndarray) and dist.dtype == np.float64 and dist.shape == (n_queries, case["k"])
    assert len(ids) == n_queries
    position = {item: i for i, item in enumerate(case["ids"])}
    for r, (row_ids, row_d, ref) in enumerate(zip(ids, dist, refs)):
        got = np.array([position[i] for i in row_ids])
        assert len(set(got.tolist())) == len(got), "an item is returned twice"
        assert np.all(np.isfinite(ref[got])), "a filtered-out or excluded item was returned"
        # each returned distance is that item's float64 distance ...
        np.testing.assert_allclose(row_d, ref[got], rtol=RTOL, atol=RTOL)
        # ... and they are the k smallest, nearest first
        order = np.argsort(ref, kind="stable")[: case["k"]]
        np.testing.assert_allclose(row_d, ref[order], rtol=RTOL, atol=RTOL)
        assert np.all(np.diff(row_d) >= 0), "not nearest first"
        # nothing clearly nearer than the k-th was left out
        kth = ref[order[-1]]
        must = np.flatnonzero(ref < kth - RTOL * max(1.0, abs(kth)))
        assert set(must.tolist()) <= set(got.tolist()), "a nearer item is missing"
        # ties: equal distances by catalogue position; an identical earlier row always comes first
        for j in range(len(got) - 1):
            if row_d[j] == row_d[j + 1]:
                assert got[j] < got[j + 1], f"equal distances out of catalogue order: {got[j]} before {got[j + 1]}"
        twins = _identical_rows(case)
        for j, b in enumerate(got):
            for a in twins[b]:
                if a < b and np.isfinite(ref[a]):
                    assert a in got[:j], f"item {a} is identical to returned item {b} and earlier: it must come first"
        # where the arithmetic is exact (small integers, one focus, no square roots), ids equal the reference
        exact = case["metric"] == "cityblock" or (case["metric"] == "euclidean" and len(_weights(case)) == 1)
        if exact and all(np.array_equal(x, np.round(x)) for x in case["vectors"].values()) and \
                all(np.array_equal(q, np.round(q)) for q in _query_vectors(case).values()):
            assert got.tolist() == order.tolist()


def _index(case) -> SimilarityIndex:
    vectors = case["vectors"]
    plain = list(vectors) == ["overall"] and case["plain_matrix"]  # a plain matrix is the "overall" focus
    return SimilarityIndex(vectors["overall"] if plain else vectors, case["ids"], metadata=case["metadata"])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=search_cases(catalogues()))
def test_small_catalogues_equal_a_float64_brute_force(case):
    _check_case(_index(case), case)


@st.composite
def wide_catalogues(draw):
    """Catalogues big and wide enough for the pruned engines (>= 2,048 items, >= 128 dims, few queries):
    clustered, so the bounds do prune, with duplicated rows and near-duplicates."""
    n = draw(st.integers(2048, 2300))
    dim = draw(st.integers(128, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    integers = draw(st.booleans())
    rng = np.random.default_rng(seed)
    n_centres = draw(st.integers(4, 40))
    centres = rng.standard_normal((n_centres, dim)) * 3
    x = centres[rng.integers(0, n_centres, size=n)] + 0.3 * rng.standard_normal((n, dim))
    x = np.round(x) if integers else x
    x = x.astype(np.float32)
    # twins: 30 rows with 6 exact copies each, and as many with 6 near-copies one float32 step away
    bases = rng.choice(n, size=60, replace=False)
    targets = rng.choice(np.setdiff1d(np.arange(n), bases), size=(60, 6), replace=False)
    for i, (base, copies) in enumerate(zip(bases, targets)):
        x[copies] = x[base]
        if i % 2 and not integers:
            cols = rng.integers(0, dim, size=len(copies))
            x[copies, cols] = np.nextafter(x[base, cols], np.float32(np.inf))
    metadata = {"group": rng.choice(GROUPS, size=n).tolist(), "size": rng.integers(0, 3, size=n).tolist()}
    return {"overall": x}, metadata, rng, np.concatenate([bases, targets.ravel()])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=search_cases(wide_catalogues()))
def test_wide_catalogues_through_the_pruned_engines_equal_a_float64_brute_force(case):
    case["k"] = 1 + case["k"] % 40  # a recommender's k, not thousands
    _check_case(_index(case), case)
