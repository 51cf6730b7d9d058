"""precision@k and mAP@k: a hand-computed example and seeded random data vs a plain-Python reference."""
import numpy as np
import pytest

from fashrec.eval.retrieval_metrics import average_precision_at_k, count_relevant, precision_at_k


def test_hand_computed_example():
    # query 0 ("dress"): neighbours dress, shirt, dress, dress  -> rel = 1 0 1 1
    # query 1 ("shirt"): neighbours dress, dress, dress, shirt  -> rel = 0 0 0 1
    # query 2 ("shoe"):  neighbours dress, shirt, dress, dress  -> rel = 0 0 0 0
    query = ["dress", "shirt", "shoe"]
    neighbours = [
        ["dress", "shirt", "dress", "dress", "shoe"],  # the 5th column is ignored at k=4
        ["dress", "dress", "dress", "shirt", "shirt"],
        ["dress", "shirt", "dress", "dress", "shoe"],
    ]
    # P@4 = 3/4, 1/4, 0
    p = precision_at_k(query, neighbours, k=4)
    np.testing.assert_allclose(p.per_query, [0.75, 0.25, 0.0])
    assert p.mean == pytest.approx(1 / 3)
    # P@2 = 1/2, 0, 0
    np.testing.assert_allclose(precision_at_k(query, neighbours, k=2).per_query, [0.5, 0.0, 0.0])

    # Without n_relevant, R = hits in the top k:
    #   q0: P@1*1 + P@3*1 + P@4*1 = 1 + 2/3 + 3/4 = 29/12, / 3 hits = 29/36
    #   q1: P@4*1 = 1/4, / 1 hit = 1/4
    #   q2: no hits -> 0
    ap = average_precision_at_k(query, neighbours, k=4)
    np.testing.assert_allclose(ap.per_query, [29 / 36, 1 / 4, 0.0])
    assert ap.mean == pytest.approx((29 / 36 + 1 / 4) / 3)

    # With R = relevant catalogue items (query excluded) = 5, 1, 2:
    #   q0: 29/12 / min(4, 5) = 29/48;  q1: 1/4 / min(4, 1) = 1/4;  q2: 0 / 2 = 0
    ap = average_precision_at_k(query, neighbours, k=4, n_relevant=[5, 1, 2])
    np.testing.assert_allclose(ap.per_query, [29 / 48, 1 / 4, 0.0])


def test_perfect_ranking_scores_one():
    ap = average_precision_at_k(["a", "b"], [["a", "a", "x"], ["b", "x", "x"]], k=3, n_relevant=[2, 1])
    np.testing.assert_allclose(ap.per_query, [1.0, 1.0])
    # with more relevant items than k, the top k must all be hits
    ap = average_precision_at_k(["a"], [["a", "a", "x"]], k=3, n_relevant=[10])
    np.testing.assert_allclose(ap.per_query, [(1 + 1) / 3])


def reference_precision(query, neighbours, k):
    return [sum(1 for n in row[:k] if n == q) / k for q, row in zip(query, neighbours)]


def reference_ap(query, neighbours, k, n_relevant=None):
    out = []
    for r, (q, row) in enumerate(zip(query, neighbours)):
        hits, total = 0, 0.0
        for i, label in enumerate(row[:k], start=1):
            if label == q:
                hits += 1
                total += hits / i
        denominator = hits if n_relevant is None else min(k, n_relevant[r])
        out.append(total / denominator if denominator else 0.0)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_plain_python_reference(seed):
    rng = np.random.default_rng(seed)
    catalogue = rng.integers(0, 6, size=300)
    query_positions = rng.choice(300, size=40, replace=False)
    query = catalogue[query_positions]
    neighbours = np.stack(
        [rng.choice(np.delete(catalogue, p), size=15, replace=False) for p in query_positions]
    )
    n_relevant = count_relevant(query, catalogue)
    assert n_relevant.tolist() == [int((catalogue == q).sum()) - 1 for q in query]
    for k in (1, 5, 10, 15):
        p = precision_at_k(query, neighbours, k)
        np.testing.assert_allclose(p.per_query, reference_precision(query.tolist(), neighbours.tolist(), k))
        assert p.mean == pytest.approx(np.mean(p.per_query))
        ap = average_precision_at_k(query, neighbours, k)
        np.testing.assert_allclose(ap.per_query, reference_ap(query.tolist(), neighbours.tolist(), k))
        ap_r = average_precision_at_k(query, neighbours, k, n_relevant=n_relevant)
        np.testing.assert_allclose(
            ap_r.per_query, reference_ap(query.tolist(), neighbours.tolist(), k, n_relevant.tolist())
        )
        assert np.all((0 <= ap_r.per_query) & (ap_r.per_query <= 1))


def test_count_relevant_without_the_queries():
    assert count_relevant(["a", "z"], ["a", "a", "b"], queries_in_catalogue=False).tolist() == [2, 0]
    with pytest.raises(ValueError, match="'z'"):
        count_relevant(["z"], ["a", "b"])


def test_bad_input():
    with pytest.raises(ValueError, match="only 2 neighbours"):
        precision_at_k(["a"], [["a", "b"]], k=3)
    with pytest.raises(ValueError, match="shape"):
        precision_at_k(["a", "b"], [["a", "b"]], k=1)
    with pytest.raises(ValueError, match="positive integer"):
        precision_at_k(["a"], [["a"]], k=0)
    with pytest.raises(ValueError, match=r"n_relevant\[0\] = 1 but query 0 already has 2 relevant neighbours in its top k: count the relevant"):
        average_precision_at_k(["a"], [["a", "a"]], k=2, n_relevant=[1])
    for k in (True, 2.0, "2"):  # a bool is an int to Python, a float or a string is not a count
        with pytest.raises(ValueError, match=f"k must be a positive integer, got {k!r}"):
            precision_at_k(["a"], [["a", "a"]], k=k)
    with pytest.raises(ValueError, match=r"query_labels must have shape \(Q,\), got \(1, 1\)"):
        precision_at_k([["a"]], [["a"]], k=1)
    with pytest.raises(ValueError, match=r"neighbour_labels must have shape \(Q=2, >=k\), got \(1, 2\)"):
        precision_at_k(["a", "b"], [["a", "b"]], k=1)
    with pytest.raises(ValueError, match="^no queries: query_labels is empty$"):
        precision_at_k(np.array([], dtype=str), np.empty((0, 3), dtype=str), k=1)
    with pytest.raises(ValueError, match=r"n_relevant must have shape \(1,\), got \(2,\)"):
        average_precision_at_k(["a"], [["a", "b"]], k=2, n_relevant=[1, 1])
    for bad in ([-1], [1.5]):  # negative (which would also fail the hits check) and fractional counts
        with pytest.raises(ValueError, match="^n_relevant must hold non-negative integers$"):
            average_precision_at_k(["a"], [["b", "b"]], k=2, n_relevant=bad)
