"""The scoreboard: hand-computed retrieval scores, the exact random baseline, the JSON contract."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fashrec.eval.evaluation import EMBEDDINGS, LABELS, METRICS, evaluate_tensors, markdown
from fashrec.eval.scores import DESIGN, random_scores
from fashrec.eval.retrieval_metrics import average_precision_at_k
from tests.conftest import REPO_ROOT


class PointModel:
    """A fake model whose embedding is pixel (0, 0, 0:dim) of channel 0: points we can place by hand."""

    def __init__(self, dim=2, focuses=("overall",)):
        self.embedding_dim = dim
        self.focuses = focuses

    def embed(self, x, normalize=False, focus="overall"):
        z = x[:, 0, 0, : self.embedding_dim].clone()
        return z * 2 if focus == "double" else z


def images(points):
    """One 3x8x8 'image' per point, zero except the point's coordinates in row 0 of channel 0."""
    x = torch.zeros(len(points), 3, 8, 8)
    for i, p in enumerate(points):
        x[i, 0, 0, : len(p)] = torch.tensor(p, dtype=torch.float32)
    return x


# train: two A near 0, two B near 10; test: an A at 0.4 and an A at 5.8 (nearer to B's t2 than to A's t1)
TRAIN = [(0.0, 0.0), (1.0, 0.0), (10.0, 0.0), (11.0, 0.0)]
TEST = [(0.4, 0.0), (5.8, 0.0)]
TRAIN_Y = {"product_type_name": ["A", "A", "B", "B"]}
TEST_Y = {"product_type_name": ["A", "A"]}


def run_points(**kw):
    args = dict(model=PointModel(), train_images=images(TRAIN), test_images=images(TEST), train_labels=TRAIN_Y,
                test_labels=TEST_Y, k=2, progress=False, model_name="points")
    args.update(kw)
    return evaluate_tensors(**args)


def rows(result, **match):
    return [r for r in result["retrieval"] if all(r.get(k) == v for k, v in match.items())]


def test_hand_computed_precision_and_map():
    # q0 = 0.4: neighbours t0 (0.4, A), t1 (0.6, A)         -> P@2 = 1,   AP@2 = (1 + 1) / min(2, R=3) = 1
    # q1 = 5.8: neighbours t2 (4.2, B), t1 (4.8, A)         -> P@2 = 1/2, AP@2 = (1/2 * 1) / min(2, R=3) = 1/4
    result = run_points()
    for metric in ("euclidean", "cityblock"):  # on a line the two metrics agree
        (row,) = rows(result, embedding="model", metric=metric)
        assert row["precision_at_k"] == pytest.approx(0.75)
        assert row["map_at_k"] == pytest.approx(0.625)
        # the raw pixels hold nothing but the same two numbers, so they rank the same way
        (raw,) = rows(result, embedding="raw", metric=metric)
        assert (raw["precision_at_k"], raw["map_at_k"]) == pytest.approx((0.75, 0.625))
    assert result["n_queries"] == 2 and result["split"] == "test" and result["k"] == 2
    assert result["reconstruction"]["model_mse"] is None  # the fake model does not reconstruct
    # mean train image: row 0 of channel 0 averages to (5.5, 0); every other value is 0 everywhere
    q = images(TEST).reshape(2, -1).numpy()
    mean = images(TRAIN).reshape(4, -1).numpy().mean(axis=0)
    assert result["reconstruction"]["mean_image_mse"] == pytest.approx(((q - mean) ** 2).mean())


def test_split_all_queries_every_image_against_a_brute_force_reference():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 3)).astype(np.float32)
    labels = rng.choice(["a", "b", "c"], size=30).tolist()
    result = evaluate_tensors(model=PointModel(dim=3), train_images=images(points[:20]), test_images=images(points[20:]),
                              train_labels={"colour_group_name": labels[:20]}, test_labels={"colour_group_name": labels[20:]},
                              split="all", k=4, metrics=["cityblock", "euclidean", "cosine"], embeddings=["model"],
                              progress=False)
    assert result["n_queries"] == 30
    y = np.array(labels)
    for metric in ("cityblock", "euclidean", "cosine"):
        if metric == "cityblock":
            d = np.abs(points[:, None] - points[None]).sum(-1)
        elif metric == "euclidean":
            d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
        else:
            unit = points / np.linalg.norm(points, axis=1, keepdims=True)
            d = 1 - unit @ unit.T
        np.fill_diagonal(d, np.inf)
        nearest = np.argsort(d, axis=1, kind="stable")[:, :4]
        expected_p = (y[nearest] == y[:, None]).mean()
        (row,) = rows(result, embedding="model", metric=metric)
        assert row["precision_at_k"] == pytest.approx(expected_p)


def test_random_baseline_is_the_exact_class_prior():
    rng = np.random.default_rng(1)
    labels = np.array(rng.choice(["a", "b", "c", "d"], p=[0.5, 0.3, 0.15, 0.05], size=60), dtype=object)
    queries = np.arange(40, 60)
    k = 5
    scores = random_scores(labels, queries, k, "product_type_name")
    p, ap = scores["precision_at_k"], scores["map_at_k"]
    counts = {v: (labels == v).sum() for v in set(labels)}
    prior = np.mean([(counts[labels[q]] - 1) / (len(labels) - 1) for q in queries])
    assert p == pytest.approx(prior)
    # E[AP@k] in closed form vs the mean over many seeded random rankings
    draws = []
    for _ in range(2000):
        neighbours = np.array([rng.choice(np.delete(np.arange(60), q), size=k, replace=False) for q in queries])
        r = np.array([counts[labels[q]] - 1 for q in queries])
        draws.append(average_precision_at_k(labels[queries], labels[neighbours], k, n_relevant=r).mean)
    assert ap == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(len(draws)) + 1e-3)
    # and the scoreboard's random rows carry exactly these numbers, equal for every metric
    result = run_points()
    random_rows = rows(result, embedding="random")
    assert len(random_rows) == 3 and len({(r["precision_at_k"], r["map_at_k"]) for r in random_rows}) == 1
    assert random_rows[0]["precision_at_k"] == pytest.approx(3 / 5)  # each test A has 3 other A among 5 others


def test_every_embedding_metric_and_label_has_a_row_and_multi_focus_rows_carry_focus():
    labels = {c: ["x", "y", "x", "y"] for c in LABELS}
    test_labels = {c: ["x", "y"] for c in LABELS}
    result = run_points(model=PointModel(focuses=("overall", "double")), train_labels=labels, test_labels=test_labels)
    keys = {(r["embedding"], r.get("focus"), r["metric"], r["label"]) for r in result["retrieval"]}
    expected = {(e, f, m, c) for e, f in [("model", "overall"), ("model", "double"), ("pca", None), ("raw", None),
                                          ("random", None)] for m in METRICS for c in LABELS}
    assert keys == expected and len(result["retrieval"]) == len(expected)
    text = markdown(result)
    assert "model (double)" in text and "| product_type_name | random |" in text


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        run_points(metrics=["manhattan"])
    with pytest.raises(ValueError, match="unknown split"):
        run_points(split="train")
    with pytest.raises(ValueError, match="k=9 but the catalogue has only 5"):
        run_points(k=9)
    with pytest.raises(ValueError, match="has 1 values for 2 images"):
        run_points(test_labels={"product_type_name": ["A"]})


def _assert_same_result(actual, expected, where="result"):
    """Equal JSON values, floats to 1e-6 (BLAS thread counts may differ between the CLI and this process)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            _assert_same_result(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same_result(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True), where
    else:
        assert actual == expected, where


def _brute_force_scores(vectors, labels, queries, k):
    """Mean P@k and AP@k (AP divided by min(k, R)) by plain Python over float64 cityblock distances."""
    p_sum = ap_sum = 0.0
    for q in queries:
        others = [j for j in range(len(vectors)) if j != q]
        d = np.abs(vectors[others].astype(np.float64) - vectors[q].astype(np.float64)).sum(axis=1)
        ranked = [others[i] for i in np.argsort(d, kind="stable")[:k]]
        rel = [labels[j] == labels[q] for j in ranked]
        r = sum(labels[j] == labels[q] for j in others)
        p_sum += sum(rel) / k
        hits, ap = 0, 0.0
        for i, hit in enumerate(rel, start=1):
            if hit:
                hits += 1
                ap += hits / i
        ap_sum += ap / min(k, r) if min(k, r) else 0.0
    return p_sum / len(queries), ap_sum / len(queries)


def test_cli_json_equals_the_library_result_and_a_brute_force_row(untrained_ae_dir, tmp_path):
    """`fashrec evaluate --json` prints exactly what fashrec.evaluate returns for the same (non-default)
    arguments, and one of its rows equals a brute-force computation from the model's own embeddings."""
    import fashrec
    from fashrec.data.hm_dataset import load_hm
    from fashrec.data.tensor_cache import dataset_tensor

    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "FASHREC_CACHE": str(cache)}
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fashrec.cli", "evaluate", "--data", "sample", "--n", "120", "--model", str(untrained_ae_dir),
         "--k", "5", "--seed", "7", "--json", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is pure JSON: progress went to stderr
    assert json.loads(out.read_text()) == result
    assert (result["k"], result["split"], result["n_queries"], result["embedding_dim"]) == (5, "test", 24, 2048)
    assert result["model"] == str(untrained_ae_dir)
    assert set(result) == {"k", "split", "n_queries", "model", "embedding_dim", "retrieval", "reconstruction", "clustering"}
    keys = {(r["embedding"], r["metric"], r["label"]) for r in result["retrieval"]}
    assert keys == {(e, m, c) for e in EMBEDDINGS for m in METRICS for c in (*LABELS, DESIGN)}
    for r in result["retrieval"]:
        design = {"design_hit_at_k", "n_scored"} if r["label"] == DESIGN else set()
        assert set(r) == {"embedding", "metric", "label", "precision_at_k", "map_at_k"} | design

    data = load_hm("sample", n=120, seed=7, progress=False)
    expected = fashrec.evaluate(data, model=str(untrained_ae_dir), k=5, seed=7, progress=False, cache_dir=cache)
    _assert_same_result(result, expected)

    # one row by brute force: the model's embeddings, cityblock, product type; the test rows query train + test
    model = fashrec.from_pretrained(untrained_ae_dir)
    x = torch.cat([dataset_tensor(data[s], model.preprocess_config, cache_dir=cache, progress=False)
                   for s in ("train", "test")])
    labels = [data[s].features["product_type_name"].int2str(v) for s in ("train", "test")
              for v in data[s]["product_type_name"]]
    vectors = model.embed(x).numpy()
    n_train = len(data["train"])
    p, ap = _brute_force_scores(vectors, labels, range(n_train, len(labels)), 5)
    (row,) = [r for r in result["retrieval"]
              if (r["embedding"], r["metric"], r["label"]) == ("model", "cityblock", "product_type_name")]
    assert (row["precision_at_k"], row["map_at_k"]) == pytest.approx((p, ap), rel=1e-9)
    rec = result["reconstruction"]
    assert rec["model_mse"] == pytest.approx(float(((model.reconstruct(x[n_train:]) - x[n_train:]) ** 2).mean()), rel=1e-5)
