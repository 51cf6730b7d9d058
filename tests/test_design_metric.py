"""The design relevance (same product_code, another article) against a brute-force reference."""
import numpy as np
import pytest
import torch

from fashrec.eval.evaluation import evaluate_tensors, markdown
from fashrec.eval.retrieval_metrics import hit_rate_at_k
from fashrec.eval.scores import DESIGN, random_scores


class VectorModel:
    """Embeds an 'image' as the first ``dim`` values of its row 0, channel 0."""

    def __init__(self, dim):
        self.embedding_dim = dim

    def embed(self, x, normalize=False, focus="overall"):
        return x[:, 0, 0, : self.embedding_dim].clone()


def as_images(v):
    x = torch.zeros(len(v), 3, 8, 8)
    x[:, 0, 0, : v.shape[1]] = torch.as_tensor(v, dtype=torch.float32)
    return x


def brute_force(vectors, codes, query_rows, k, subset=None):
    """Cosine top k by float64 argsort (ties by position), the query excluded; plain-Python scores."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits, precisions, aps, n = [], [], [], 0
    for j, q in enumerate(query_rows):
        r = sum(1 for i, c in enumerate(codes) if c == codes[q] and i != q)
        if r == 0 or (subset is not None and not subset[j]):
            continue
        n += 1
        d = 1.0 - unit @ unit[q]
        order = [i for i in np.lexsort((np.arange(len(d)), d)) if i != q][:k]
        rel = [codes[i] == codes[q] for i in order]
        hits.append(float(any(rel)))
        precisions.append(sum(rel) / k)
        seen, total = 0, 0.0
        for rank, is_rel in enumerate(rel, 1):
            if is_rel:
                seen += 1
                total += seen / rank
        aps.append(total / min(k, r))
    return {"design_hit_at_k": np.mean(hits), "precision_at_k": np.mean(precisions), "map_at_k": np.mean(aps),
            "n_scored": n}


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(7)
    n_train, n_test, dim = 60, 25, 4
    codes = [f"d{int(c)}" for c in rng.integers(0, 30, n_train + n_test)]  # many designs, some singletons
    centres = {c: rng.normal(size=dim) for c in set(codes)}
    vectors = np.stack([centres[c] + rng.normal(scale=0.9, size=dim) for c in codes])
    return vectors, codes, n_train


@pytest.mark.parametrize("split", ["test", "test-only", "all"])
def test_design_scores_equal_a_brute_force_reference(catalogue, split):
    vectors, codes, n_train = catalogue
    result = evaluate_tensors(model=VectorModel(vectors.shape[1]), train_images=as_images(vectors[:n_train]),
                              test_images=as_images(vectors[n_train:]), train_labels={DESIGN: codes[:n_train]},
                              test_labels={DESIGN: codes[n_train:]}, split=split, k=5, metrics=["cosine"],
                              embeddings=["model", "random"], progress=False)
    if split == "test-only":
        v, c, queries = vectors[n_train:], codes[n_train:], range(len(codes) - n_train)
    else:
        v, c = vectors, codes
        queries = range(n_train, len(codes)) if split == "test" else range(len(codes))
    expected = brute_force(v, c, list(queries), 5)
    (row,) = [r for r in result["retrieval"] if r["embedding"] == "model"]
    assert row["label"] == DESIGN and row["n_scored"] == expected["n_scored"] > 0
    for key in ("design_hit_at_k", "precision_at_k", "map_at_k"):
        assert row[key] == pytest.approx(expected[key], abs=1e-12), key
    (rand,) = [r for r in result["retrieval"] if r["embedding"] == "random"]
    assert rand["n_scored"] == expected["n_scored"]
    assert "Same design" in markdown(result) and f"{expected['n_scored']} queries" in markdown(result)


def test_unseen_subset_scores_only_designs_missing_from_training(catalogue):
    vectors, codes, n_train = catalogue
    seen = set(codes[:n_train]) | {codes[n_train]}  # one more design "seen" in an extra training source
    result = evaluate_tensors(model=VectorModel(vectors.shape[1]), train_images=as_images(vectors[:n_train]),
                              test_images=as_images(vectors[n_train:]), train_labels={DESIGN: codes[:n_train]},
                              test_labels={DESIGN: codes[n_train:]}, k=5, metrics=["cosine"], embeddings=["model"],
                              progress=False, seen_designs=seen)
    queries = list(range(n_train, len(codes)))
    subset = np.array([codes[q] not in seen for q in queries])
    expected = brute_force(vectors, codes, queries, 5, subset)
    (row,) = [r for r in result["retrieval"] if r.get("subset") == "unseen"]
    assert row["n_scored"] == expected["n_scored"] > 0
    assert row["design_hit_at_k"] == pytest.approx(expected["design_hit_at_k"], abs=1e-12)
    assert row["map_at_k"] == pytest.approx(expected["map_at_k"], abs=1e-12)


def test_random_design_hit_rate_is_the_exact_expectation():
    rng = np.random.default_rng(3)
    codes = np.array([f"d{i}" for i in rng.integers(0, 12, 40)], dtype=object)
    queries, k = np.arange(20, 40), 4
    expected = random_scores(codes, queries, k, DESIGN)
    draws = []
    for _ in range(3000):
        keep = [q for q in queries if (codes == codes[q]).sum() > 1]
        neighbours = np.array([rng.choice(np.delete(np.arange(40), q), size=k, replace=False) for q in keep])
        draws.append(hit_rate_at_k(codes[keep], codes[neighbours], k).mean)
    assert expected["design_hit_at_k"] == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(3000) + 1e-3)


def test_hit_rate_is_one_when_any_of_the_top_k_is_relevant():
    score = hit_rate_at_k(["a", "b", "c"], [["x", "a", "y"], ["x", "y", "b"], ["c", "c", "c"]], 2)
    assert score.per_query.tolist() == [1.0, 0.0, 1.0] and score.mean == pytest.approx(2 / 3)
