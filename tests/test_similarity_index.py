"""SimilarityIndex: exact k-NN equal to brute force (scikit-learn and a numpy reference), ties by
catalogue position, filters, steerable focuses, save/load with the model check, FAISS backends."""
import json
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

import fashrec.index as fi
from fashrec.index import SimilarityIndex, distances
from fashrec.index.engines import cityblock_pivots, flat, projection

METRICS = ["cityblock", "euclidean", "cosine"]


def make_ids(n):
    return [f"{i:010d}" for i in range(n)]


def reference(queries, catalogue, metric, k, allowed=None, exclude=None):
    """Brute force in float64: scipy distances, ties by catalogue position (np.lexsort)."""
    d = cdist(np.asarray(queries, np.float64), np.asarray(catalogue, np.float64), metric=metric)
    if metric == "cosine":
        norms = np.linalg.norm(catalogue, axis=1)
        d[:, norms == 0] = 1.0
        d[np.linalg.norm(queries, axis=1) == 0, :] = 1.0
        d = np.clip(d, 0.0, 2.0)
    positions = np.arange(catalogue.shape[0])
    out_pos, out_d = [], []
    for r in range(d.shape[0]):
        keep = np.ones(catalogue.shape[0], bool) if allowed is None else allowed.copy()
        if exclude is not None:
            keep[exclude[r]] = False
        order = np.lexsort((positions[keep], d[r, keep]))[:k]
        out_pos.append(positions[keep][order])
        out_d.append(d[r, keep][order])
    return np.array(out_pos), np.array(out_d)


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((400, 24)).astype(np.float32), rng.standard_normal((25, 24)).astype(np.float32)


@pytest.fixture(scope="module")
def tied_data():
    """Integer vectors with duplicated rows and rows scaled by 2 (same cosine): many exact ties."""
    rng = np.random.default_rng(1)
    base = rng.integers(-2, 3, size=(150, 5)).astype(np.float32)
    catalogue = np.vstack([base, base[:40], 2 * base[40:70], np.zeros((3, 5), np.float32)])
    queries = np.vstack([rng.integers(-2, 3, size=(30, 5)), base[:5]]).astype(np.float32)
    return catalogue, queries


@pytest.mark.parametrize("metric", METRICS)
def test_matches_sklearn_brute_force(random_data, metric):
    x, q = random_data
    ids = make_ids(len(x))
    got_ids, got_d = SimilarityIndex(x, ids).search(q, k=9, metric=metric)
    nn = NearestNeighbors(algorithm="brute", metric=metric).fit(x.astype(np.float64))
    ref_d, ref_pos = nn.kneighbors(q.astype(np.float64), n_neighbors=9)
    assert got_ids == [[ids[p] for p in row] for row in ref_pos]
    np.testing.assert_allclose(got_d, ref_d, rtol=1e-12, atol=1e-12)
    assert got_d.dtype == np.float64 and got_d.shape == (len(q), 9)


@pytest.mark.parametrize("metric", METRICS)
def test_ties_follow_catalogue_position(tied_data, metric):
    x, q = tied_data
    ids = make_ids(len(x))
    got_ids, got_d = SimilarityIndex(x, ids).search(q, k=25, metric=metric)
    ref_pos, ref_d = reference(q, x, metric, 25)
    assert got_ids == [[ids[p] for p in row] for row in ref_pos]
    np.testing.assert_array_equal(got_d, ref_d)  # integer data: the float64 distances are exact
    # scikit-learn agrees on the distances (its order among ties may differ)
    sk_d, _ = NearestNeighbors(algorithm="brute", metric=metric).fit(x.astype(np.float64)).kneighbors(
        q.astype(np.float64), n_neighbors=25
    )
    np.testing.assert_allclose(got_d, sk_d, atol=1e-12)
    assert any(len(set(row)) < len(row) for row in got_d.tolist()), "the data must contain ties"


@pytest.mark.parametrize("metric", METRICS)
def test_near_ties_below_float32_resolution(metric):
    """Distances that differ only beyond float32 precision: the float64 re-rank must order them."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal(64).astype(np.float32)
    x = np.repeat(base[None], 300, axis=0)
    rows, cols = np.arange(300), rng.integers(0, 64, 300)
    x[rows, cols] = np.nextafter(x[rows, cols], np.float32(np.inf) * rng.choice([-1, 1], 300).astype(np.float32))
    x = np.vstack([x, rng.standard_normal((100, 64)).astype(np.float32)])
    q = (base + 0.5 * rng.standard_normal((4, 64))).astype(np.float32)
    ids = make_ids(len(x))
    got, d = SimilarityIndex(x, ids).search(q, k=20, metric=metric)
    ref_pos, ref_d = reference(q, x, metric, 20)
    np.testing.assert_allclose(d, ref_d, rtol=1e-14)
    assert got == [[ids[p] for p in row] for row in ref_pos]


def test_tie_rule_by_hand():
    x = np.array([[5, 5], [1, 0], [0, 1], [1, 0], [-1, 0]], np.float32)
    index = SimilarityIndex(x, ["a", "b", "c", "d", "e"])
    ids, d = index.search([0, 0], k=4, metric="euclidean")
    assert ids == [["b", "c", "d", "e"]]  # four items at distance 1, in catalogue order
    np.testing.assert_array_equal(d, [[1.0, 1.0, 1.0, 1.0]])
    ids, d = index.search([2, 0], k=2, metric="cosine")
    assert ids == [["b", "d"]] and d.tolist() == [[0.0, 0.0]]


def test_cosine_zero_vectors_have_distance_one():
    x = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], np.float32)
    index = SimilarityIndex(x, ["zero", "x", "y"])
    ids, d = index.search([3, 0, 0], k=3, metric="cosine")
    assert ids == [["x", "zero", "y"]] and d.tolist() == [[0.0, 1.0, 1.0]]
    ids, d = index.search([0, 0, 0], k=3, metric="cosine")  # a zero query: everything at 1, by position
    assert ids == [["zero", "x", "y"]] and d.tolist() == [[1.0, 1.0, 1.0]]


def test_paper_metric_values_by_hand():
    index = SimilarityIndex(np.array([[3, 4]], np.float32), ["v"])
    assert index.search([0, 0], k=1, metric="cityblock")[1][0, 0] == 7.0
    assert index.search([0, 0], k=1, metric="euclidean")[1][0, 0] == 5.0
    assert index.search([4, 3], k=1, metric="cosine")[1][0, 0] == pytest.approx(1 - 24 / 25, abs=1e-15)


def test_torch_input_single_query_and_chunking(random_data, monkeypatch):
    x, q = random_data
    ids = make_ids(len(x))
    from_numpy = SimilarityIndex(x, ids)
    from_torch = SimilarityIndex(torch.from_numpy(x), ids)
    expected = from_numpy.search(q, k=5, metric="euclidean")
    assert from_torch.search(torch.from_numpy(q), k=5, metric="euclidean")[0] == expected[0]
    one_ids, one_d = from_numpy.search(q[3], k=5, metric="euclidean")  # (D,) is one query
    assert one_ids == [expected[0][3]] and one_d.shape == (1, 5)
    monkeypatch.setattr(flat, "_BLOCK_ELEMENTS", 3 * len(x))  # three queries per block
    for metric in METRICS:
        chunked = from_numpy.search(q, k=5, metric=metric)
        ref_pos, ref_d = reference(q, x, metric, 5)
        assert chunked[0] == [[ids[p] for p in row] for row in ref_pos]
        np.testing.assert_allclose(chunked[1], ref_d, rtol=1e-12, atol=1e-12)


def test_embeddings_are_copied():
    x = np.ones((3, 2), np.float32)
    index = SimilarityIndex(x, ["a", "b", "c"])
    x[0] = 100.0
    assert index.embeddings()[0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        index.embeddings()[0, 0] = 5.0  # read-only


def test_k_equal_to_catalogue_size_returns_everything(random_data):
    x, q = random_data
    ids, d = SimilarityIndex(x[:10], make_ids(10)).search(q[:2], k=10, metric="cityblock")
    ref_pos, ref_d = reference(q[:2], x[:10], "cityblock", 10)
    assert ids == [[make_ids(10)[p] for p in row] for row in ref_pos]


# ----------------------------------------------------------------------------- exclude / where


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((120, 8)).astype(np.float32)
    colours = np.array(["red", "blue", "green"])[rng.integers(0, 3, 120)]
    groups = rng.integers(0, 4, 120)
    return x, make_ids(120), {"colour": colours, "group": groups}


def test_exclude_flat_and_per_query(labelled):
    x, ids, meta = labelled
    index = SimilarityIndex(x, ids)
    q = x[:3] + 0.01
    flat = ["0000000000", "0000000001", "not-an-id"]
    got, _ = index.search(q, k=4, metric="cosine", exclude=flat)
    ref_pos, _ = reference(q, x, "cosine", 4, exclude=[[0, 1]] * 3)
    assert got == [[ids[p] for p in row] for row in ref_pos]
    per_query = [["0000000000"], [], ["0000000002", "0000000005"]]
    got, _ = index.search(q, k=4, metric="cosine", exclude=per_query)
    ref_pos, _ = reference(q, x, "cosine", 4, exclude=[[0], [], [2, 5]])
    assert got == [[ids[p] for p in row] for row in ref_pos]


def test_search_ids_excludes_the_item_itself(labelled):
    x, ids, meta = labelled
    index = SimilarityIndex(x, ids)
    got, d = index.search_ids([ids[7], ids[9]], k=5, metric="euclidean")
    ref_pos, ref_d = reference(x[[7, 9]], x, "euclidean", 5, exclude=[[7], [9]])
    assert got == [[ids[p] for p in row] for row in ref_pos]
    np.testing.assert_allclose(d, ref_d, rtol=1e-12)
    with_self, d_self = index.search_ids(ids[7], k=1, metric="euclidean", exclude_self=False)
    assert with_self == [[ids[7]]] and d_self[0, 0] == 0.0
    with pytest.raises(ValueError, match="nope"):
        index.search_ids(["nope"], k=1)


@pytest.mark.parametrize("metric", METRICS)
def test_where_filters_before_ranking(labelled, metric):
    x, ids, meta = labelled
    index = SimilarityIndex(x, ids, metadata=meta)
    q = x[:4] * 1.5
    allowed = (meta["colour"] == "red") & np.isin(meta["group"], [1, 3])
    got, d = index.search(q, k=6, metric=metric, where={"colour": "red", "group": [1, 3]})
    ref_pos, ref_d = reference(q, x, metric, 6, allowed=allowed)
    assert got == [[ids[p] for p in row] for row in ref_pos]
    np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=1e-12)


def test_where_with_a_dataframe(labelled):
    pd = pytest.importorskip("pandas")
    x, ids, meta = labelled
    index = SimilarityIndex(x, ids, metadata=pd.DataFrame(meta))
    got, _ = index.search(x[0], k=3, where={"colour": "blue"})
    assert all(meta["colour"][ids.index(i)] == "blue" for i in got[0])
    assert list(index.metadata.columns) == ["colour", "group"]


def test_errors_name_the_problem(labelled):
    x, ids, meta = labelled
    index = SimilarityIndex(x, ids, metadata=meta)
    n_red = int((meta["colour"] == "red").sum())
    with pytest.raises(ValueError, match="manhattan"):
        index.search(x[0], metric="manhattan")
    with pytest.raises(ValueError, match="'size'"):
        index.search(x[0], where={"size": "M"})
    with pytest.raises(ValueError, match="purple"):
        index.search(x[0], where={"colour": "purple"})
    with pytest.raises(ValueError, match=f"k={n_red + 1}.*colour.*only {n_red}"):
        index.search(x[0], k=n_red + 1, where={"colour": "red"})
    with pytest.raises(ValueError, match="k=121"):
        index.search(x[0], k=121)
    with pytest.raises(ValueError, match="only 119 items are left for query 0"):
        index.search(x[0], k=120, exclude=[ids[0]])
    with pytest.raises(ValueError, match="dimension 7"):
        index.search(x[0, :7])
    with pytest.raises(ValueError, match="'shape'"):
        index.search(x[0], focus="shape")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(x[0], k=0)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(8, np.nan))


def test_bad_construction_arguments():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="unique.*'a'"):
        SimilarityIndex(x, ["a", "b", "a"])
    with pytest.raises(ValueError, match="must be str.*int"):
        SimilarityIndex(x, [1, 2, 3])
    with pytest.raises(ValueError, match="got 2 ids for 3"):
        SimilarityIndex(x, ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        SimilarityIndex(np.zeros(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="'colour' has 2 rows"):
        SimilarityIndex(x, ["a", "b", "c"], metadata={"colour": ["r", "g"]})
    with pytest.raises(ValueError, match=r"\['shape'\] has 2 rows"):
        SimilarityIndex({"overall": x, "shape": np.zeros((2, 4))}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown backend"):
        SimilarityIndex(x, ["a", "b", "c"], backend="annoy")


# ----------------------------------------------------------------------------- steerable similarity


@pytest.fixture(scope="module")
def focused():
    rng = np.random.default_rng(3)
    n = 150
    emb = {
        "overall": rng.standard_normal((n, 12)).astype(np.float32),
        "shape": rng.standard_normal((n, 6)).astype(np.float32),
        "colour": rng.standard_normal((n, 3)).astype(np.float32),
    }
    queries = {name: rng.standard_normal((7, m.shape[1])).astype(np.float32) for name, m in emb.items()}
    return emb, queries, make_ids(n)


@pytest.mark.parametrize("metric", METRICS)
def test_weighted_focus_is_the_weighted_sum_of_distances(focused, metric):
    emb, queries, ids = focused
    index = SimilarityIndex(emb, ids)
    weights = {"shape": 2.0, "colour": 0.5, "overall": 0.0}
    got, d = index.search(queries, k=8, metric=metric, focus=weights)
    total = sum(w * cdist(queries[f].astype(float), emb[f].astype(float), metric=metric) for f, w in weights.items())
    for r in range(len(got)):
        order = np.lexsort((np.arange(len(ids)), total[r]))[:8]
        assert got[r] == [ids[p] for p in order]
        np.testing.assert_allclose(d[r], total[r, order], rtol=1e-12, atol=1e-12)


def test_single_focus_by_name(focused):
    emb, queries, ids = focused
    index = SimilarityIndex(emb, ids)
    assert index.focuses == ("overall", "shape", "colour")
    assert index.dims == {"overall": 12, "shape": 6, "colour": 3}
    by_dict = index.search(queries, k=4, metric="euclidean", focus="colour")
    by_matrix = index.search(queries["colour"], k=4, metric="euclidean", focus="colour")
    ref_pos, _ = reference(queries["colour"], emb["colour"], "euclidean", 4)
    assert by_dict[0] == by_matrix[0] == [[ids[p] for p in row] for row in ref_pos]
    # search_ids uses every focus of the stored item
    got, _ = index.search_ids([ids[3]], k=3, metric="cosine", focus={"shape": 1, "colour": 1})
    assert ids[3] not in got[0] and len(got[0]) == 3


def test_focus_errors(focused):
    emb, queries, ids = focused
    index = SimilarityIndex(emb, ids)
    with pytest.raises(ValueError, match="dict"):
        index.search(queries["shape"], focus={"shape": 1, "colour": 1})
    with pytest.raises(ValueError, match=">= 0"):
        index.search(queries, focus={"shape": -1})
    with pytest.raises(ValueError, match="all zero"):
        index.search(queries, focus={"shape": 0})
    with pytest.raises(ValueError, match="'texture'"):
        index.search(queries, focus={"texture": 1})
    with pytest.raises(ValueError, match=r"no matrix for focus \['colour'\]"):
        index.search({"shape": queries["shape"]}, focus={"shape": 1, "colour": 1})


# ----------------------------------------------------------------------------- save / load


def tiny_model(seed):
    from fashrec.models.conv_ae import ConvAE

    torch.manual_seed(seed)
    return ConvAE(channels=(4, 2))


def test_save_load_round_trip(tmp_path, labelled):
    x, ids, meta = labelled
    index = SimilarityIndex({"overall": x, "colour": x[:, :3] * 2}, ids, metadata=meta)
    folder = index.save(tmp_path / "idx")
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.safetensors", "ids.json", "index.json", "metadata.parquet"]
    record = json.loads((folder / "index.json").read_text())
    assert record["format_version"] == 1 and record["n_items"] == 120
    assert record["focuses"] == {"overall": 8, "colour": 3} and record["model"] is None
    loaded = SimilarityIndex.load(folder)
    assert loaded.ids == ids and loaded.focuses == ("overall", "colour")
    for name in loaded.focuses:
        np.testing.assert_array_equal(loaded.embeddings(name), index.embeddings(name))
    assert loaded.metadata_columns == ("colour", "group")
    assert loaded.metadata["colour"].tolist() == meta["colour"].tolist()
    assert loaded.metadata["group"].tolist() == meta["group"].tolist()
    for metric in METRICS:
        a = index.search(x[:5], k=4, metric=metric, where={"group": [0, 2]})
        b = loaded.search(x[:5], k=4, metric=metric, where={"group": [0, 2]})
        assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_save_replaces_an_index_and_refuses_other_folders(tmp_path):
    first = SimilarityIndex(np.ones((2, 3), np.float32), ["a", "b"])
    second = SimilarityIndex(np.zeros((3, 3), np.float32), ["x", "y", "z"])
    first.save(tmp_path / "idx")
    second.save(tmp_path / "idx")
    assert SimilarityIndex.load(tmp_path / "idx").ids == ["x", "y", "z"]
    assert not (tmp_path / "idx" / "metadata.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no staging or backup folders left
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a SimilarityIndex folder"):
        first.save(other)
    assert (other / "keep.jpg").read_bytes() == b"x"


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json"):
        SimilarityIndex.load(tmp_path)
    SimilarityIndex(np.ones((2, 3), np.float32), ["a", "b"]).save(tmp_path / "idx")
    (tmp_path / "idx" / "ids.json").write_text('["a"]')
    with pytest.raises(ValueError, match="ids.json"):
        SimilarityIndex.load(tmp_path / "idx")


def test_model_hash_is_checked_on_load(tmp_path):
    from fashrec.models.hub_model import weights_hash

    model, other = tiny_model(0), tiny_model(1)
    index = SimilarityIndex(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), list("abcde"))
    index.save(tmp_path / "idx", model=model)
    record = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert record["model"]["weights_hash"] == weights_hash(model)
    assert record["model"]["class"] == "ConvAE"
    assert record["model"]["config"] == model.config_dict()
    loaded = SimilarityIndex.load(tmp_path / "idx", model=model)
    assert loaded.model_record["weights_hash"] == weights_hash(model)
    with pytest.raises(ValueError) as err:
        SimilarityIndex.load(tmp_path / "idx", model=other)
    assert weights_hash(model) in str(err.value) and weights_hash(other) in str(err.value)
    assert "ConvAE" in str(err.value)
    index.save(tmp_path / "plain")
    with pytest.raises(ValueError, match="records no model"):
        SimilarityIndex.load(tmp_path / "plain", model=model)


def test_no_pickle_in_the_module():
    import importlib
    import inspect
    import pkgutil

    names = [m.name for m in pkgutil.walk_packages(fi.__path__, "fashrec.index.")]
    assert "fashrec.index.persistence" in names
    for name in ["fashrec.index", *names]:
        source = inspect.getsource(importlib.import_module(name))
        assert "pickle" not in source and "torch.load" not in source and "allow_pickle" not in source, name


# ----------------------------------------------------------------------------- FAISS


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_flat_equals_exact(random_data, metric):
    pytest.importorskip("faiss")
    x, q = random_data
    ids = make_ids(len(x))
    exact = SimilarityIndex(x, ids).search(q, k=6, metric=metric, exclude=[ids[0]])
    flat = SimilarityIndex(x, ids, backend="faiss-flat").search(q, k=6, metric=metric, exclude=[ids[0]])
    assert flat[0] == exact[0]
    np.testing.assert_allclose(flat[1], exact[1], rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_hnsw_recall_and_fallback(labelled, metric):
    pytest.importorskip("faiss")
    x, ids, meta = labelled
    hnsw = SimilarityIndex(x, ids, meta, backend="faiss-hnsw", ef_search=200)
    exact = SimilarityIndex(x, ids, meta)
    got, d = hnsw.search(x[:20] + 0.1, k=5, metric=metric)
    ref, ref_d = exact.search(x[:20] + 0.1, k=5, metric=metric)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, ref)])
    assert recall >= 0.95
    assert np.all(np.diff(d, axis=1) >= 0)
    # where= falls back to the exact engine: identical answers
    assert hnsw.search(x[:3], k=4, metric=metric, where={"colour": "red"})[0] == exact.search(
        x[:3], k=4, metric=metric, where={"colour": "red"}
    )[0]


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"fashrec\[faiss\]"):
        SimilarityIndex(np.ones((2, 2), np.float32), ["a", "b"], backend="faiss-flat")


# ----------------------------------------------------------------------------- projection pruning


@pytest.fixture(scope="module")
def wide_clustered():
    """Big and wide enough for the few-query pruning path, with duplicates, a zero row and blobs."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 160)).astype(np.float32)
    x = centres[rng.integers(0, 40, 2400)] + 0.3 * rng.standard_normal((2400, 160)).astype(np.float32)
    x[100:130] = x[0]  # exact ties
    x[200] = 0.0
    q = centres[:6] + 0.3 * rng.standard_normal((6, 160)).astype(np.float32)
    q[5] = x[0]
    labels = rng.integers(0, 3, len(x))
    return x.astype(np.float32), q.astype(np.float32), labels


def _one_by_one_matches_reference(index, x, q, metric, k, cases):
    """Each query alone (the pruning paths take few queries), for each (search kwargs, allowed mask,
    excluded positions) case: ids and distances equal the brute-force reference."""
    ids = index.ids
    for kwargs, allowed, exclude in cases:
        got_ids, got_d = [], []
        for row in q:
            i, d = index.search(row, k=k, metric=metric, **kwargs)
            got_ids += i
            got_d.append(d[0])
        ref_pos, ref_d = reference(q, x, metric, k, allowed=allowed, exclude=exclude)
        assert got_ids == [[ids[p] for p in r] for r in ref_pos]
        np.testing.assert_allclose(np.array(got_d), ref_d, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_pruned_path_is_exact(wide_clustered, metric):
    x, q, labels = wide_clustered
    ids = make_ids(len(x))
    index = SimilarityIndex(x, ids, metadata={"label": labels})
    pruned = index._planner.engine("overall", metric).search(q, 40, metric, 1.0, None, None)
    assert all(r is not None for r in pruned), "clustered data must take the pruning path"
    _one_by_one_matches_reference(index, x, q, metric, 40, [
        ({}, None, None),
        ({"where": {"label": [0, 2]}}, np.isin(labels, [0, 2]), None),
        ({"exclude": [ids[0], ids[101]]}, None, [[0, 101]] * len(q)),
    ])
    zero_ids, zero_d = index.search(np.zeros(160, np.float32), k=5, metric=metric)
    ref_pos, ref_d = reference(np.zeros((1, 160)), x, metric, 5)
    assert zero_ids == [[ids[p] for p in ref_pos[0]]]
    np.testing.assert_allclose(zero_d, ref_d, rtol=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_wide_projection_prunes_where_the_first_directions_cannot(metric, monkeypatch):
    """Many clusters: the first 4 directions see too little of them to prune, all 64 do (sizes scaled
    down from the real 64 / 256 directions and 32,768 items, same code)."""
    rng = np.random.default_rng(8)
    centres = rng.standard_normal((300, 256)).astype(np.float32)
    x = (centres[rng.integers(0, 300, 6000)] + 0.2 * rng.standard_normal((6000, 256))).astype(np.float32)
    x[50:60] = x[7]  # exact ties
    q = (centres[:5] + 0.2 * rng.standard_normal((5, 256))).astype(np.float32)
    q[4] = x[7]
    labels = rng.integers(0, 2, len(x))
    ids = make_ids(len(x))
    monkeypatch.setattr(projection, "_PRUNE_RANK", 4)
    monkeypatch.setattr(projection, "_PRUNE_WIDE_RANK", 64)
    monkeypatch.setattr(projection, "_PRUNE_WIDE_MIN_ITEMS", 10**9)
    narrow = SimilarityIndex(x, ids)
    # (query 4 is a catalogue item with 10 copies: its 10th distance is 0, which any bound prunes with)
    assert narrow._planner.engine("overall", metric).search(q, 10, metric, 1.0, None, None)[:4] == [None] * 4
    monkeypatch.setattr(projection, "_PRUNE_WIDE_MIN_ITEMS", 2048)
    index = SimilarityIndex(x, ids, metadata={"label": labels})
    engine = index._planner.engine("overall", metric)
    proj = engine.projection(metric)
    assert proj.basis.shape == (4, 256) and proj.tail[0].shape == (60, 256)
    basis = np.vstack([proj.basis, proj.tail[0]])
    basis = basis.astype(np.float64)  # stored as float32: orthonormal to float32 rounding
    np.testing.assert_allclose(basis @ basis.T, np.eye(64), atol=1e-6)
    pruned = engine.search(q, 10, metric, 1.0, None, None)
    assert all(r is not None for r in pruned), "the wide projection must prune these queries"
    _one_by_one_matches_reference(index, x, q, metric, 10, [
        ({}, None, None),
        ({"where": {"label": 1}}, labels == 1, None),
        ({"exclude": [ids[7], ids[55]]}, None, [[7, 55]] * len(q)),
    ])


def test_pruning_falls_back_on_isotropic_noise():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2100, 128)).astype(np.float32)
    q = rng.standard_normal((2, 128)).astype(np.float32)
    ids = make_ids(len(x))
    index = SimilarityIndex(x, ids)
    assert index._planner.engine("overall", "euclidean").search(q, 10, "euclidean", 1.0, None, None) == [None, None]
    got, d = index.search(q, k=10, metric="euclidean")
    ref_pos, ref_d = reference(q, x, "euclidean", 10)
    assert got == [[ids[p] for p in r] for r in ref_pos]


def test_pruning_is_given_up_where_it_never_helps():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2100, 128)).astype(np.float32)
    ids = make_ids(len(x))
    index = SimilarityIndex(x, ids)
    for row in rng.standard_normal((12, 128)).astype(np.float32):
        got, _ = index.search(row, k=3, metric="euclidean")
        assert got == [[ids[p] for p in reference(row[None], x, "euclidean", 3)[0][0]]]
    assert index._planner.record[("overall", "euclidean")] == (0, 8)  # tried 8 times, then stopped


# ----------------------------------------------------------------------------- cityblock cascade


def _cityblock_matches_reference(x, queries, k):
    ids = make_ids(len(x))
    index = SimilarityIndex(x, ids)
    for row in queries:  # one query at a time: the pruning path
        got, dist = index.search(row, k=k, metric="cityblock")
        ref_pos, ref_d = reference(row[None], x, "cityblock", k)
        assert got == [[ids[p] for p in ref_pos[0]]]
        np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12)
    return index


def test_cityblock_cascade_ties_on_integer_data_with_duplicates():
    """Small integer vectors: many exactly equal distances, duplicated rows; ties by catalogue position."""
    rng = np.random.default_rng(11)
    centres = rng.integers(-4, 5, size=(30, 128))
    noise = rng.integers(-1, 2, size=(600, 128)) * (rng.random((600, 128)) < 0.1)
    base = (centres[rng.integers(0, 30, 600)] + noise).astype(np.float32)
    x = np.vstack([base, base[:600], base[:600], base[:300], np.zeros((5, 128), np.float32)])
    queries = np.vstack([base[:4], centres[:4], np.zeros((1, 128))]).astype(np.float32)
    index = _cityblock_matches_reference(x, queries, k=25)
    assert index._planner.record.get(("overall", "cityblock"), (0, 0))[0] > 0, "the cascade must have been taken"


def test_cityblock_cascade_is_exact_where_the_bounds_are_loose():
    """Adversarial: every block of 4 sums to zero (block bounds are 0) and pivots are uninformative."""
    rng = np.random.default_rng(12)
    signs = rng.choice([-1.0, 1.0], size=(2200, 64, 2))
    x = np.concatenate([signs, -signs], axis=2).reshape(2200, 256).astype(np.float32)
    x *= rng.uniform(0.5, 2.0, size=(2200, 1)).astype(np.float32)
    queries = x[:3] + 0.01 * rng.standard_normal((3, 256)).astype(np.float32)
    _cityblock_matches_reference(x, np.vstack([queries, rng.standard_normal((2, 256))]).astype(np.float32), k=10)


def test_cityblock_bounds_never_exceed_the_distance():
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((2100, 200)) * rng.uniform(0.01, 100.0, size=(2100, 1))).astype(np.float32)
    q = (rng.standard_normal(200) * 10).astype(np.float32)
    index = SimilarityIndex(x, make_ids(len(x)))
    levels, l1norm, pivots, table = index._planner.engine("overall", "cityblock").structures()
    exact = np.abs(x.astype(np.float64) - q.astype(np.float64)).sum(axis=1)
    q_l1 = float(np.abs(q.astype(np.float64)).sum())
    for level in levels:
        assert np.all(cityblock_pivots.block_bound(level, q, q_l1, l1norm, None) <= exact)
        rows = np.arange(0, len(x), 7)
        assert np.all(cityblock_pivots.block_bound(level, q, q_l1, l1norm, rows) <= exact[rows])
    pivot_exact = np.abs(x.astype(np.float64)[:, None, :] - pivots.numpy().astype(np.float64)[None]).sum(axis=2)
    rel = distances.l1_rel_tol(200)
    assert np.all(np.abs(table.T.astype(np.float64) - pivot_exact) <= rel * pivot_exact + 1e-300)
    with torch.no_grad():
        got = index.search(q, k=30, metric="cityblock")
    ref_pos, ref_d = reference(q[None], x, "cityblock", 30)
    assert got[0] == [[make_ids(len(x))[p] for p in ref_pos[0]]]


def test_row_estimates_bound_the_float64_distances():
    """The float32 estimates the pruned paths rank with stay within their stated error of float64."""
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((2100, 300)) * rng.uniform(0.01, 100.0, size=(2100, 1))).astype(np.float32)
    x[5] = 0.0
    q = (rng.standard_normal(300) * 30).astype(np.float32)
    index = SimilarityIndex(x, make_ids(len(x)))
    rows = np.arange(0, len(x), 3)
    x64, q64 = x[rows].astype(np.float64), q.astype(np.float64)
    sq = np.einsum("ij,ij->i", x64 - q64, x64 - q64)
    approx, tol = projection.approx_rows(index._focuses["overall"], rows, q, "euclidean")
    assert np.all(np.abs(approx - sq) <= tol)
    norms = np.linalg.norm(x64, axis=1) * np.linalg.norm(q64)
    cos = np.where(norms > 0, 1.0 - (x64 @ q64) / np.where(norms > 0, norms, 1.0), 1.0)
    approx, tol = projection.approx_rows(index._focuses["overall"], rows, q, "cosine")
    assert np.all(np.abs(approx - cos) <= tol)
    l1 = np.abs(x64 - q64).sum(axis=1)
    got = distances.l1_float32(x, rows, torch.from_numpy(q[None]))
    assert np.all(np.abs(got - l1) <= distances.l1_rel_tol(300) * l1 + 1e-300)


@pytest.mark.parametrize("metric", METRICS)
def test_pruned_paths_exact_with_mixed_norms_and_near_ties(metric):
    """Blobs at very different scales (the bounds use the largest norm) and near-duplicate rows."""
    rng = np.random.default_rng(15)
    centres = rng.standard_normal((30, 192)).astype(np.float32)
    labels = rng.integers(0, 30, 2300)
    x = centres[labels] + 0.2 * rng.standard_normal((2300, 192)).astype(np.float32)
    x *= np.where(labels % 3 == 0, 50.0, 1.0).astype(np.float32)[:, None]
    x[300:320] = x[7] + np.float32(1e-6) * rng.standard_normal((20, 192)).astype(np.float32)
    queries = np.vstack([x[7], centres[:4] + 0.2 * rng.standard_normal((4, 192)), 50 * centres[0]]).astype(np.float32)
    ids = make_ids(len(x))
    index = SimilarityIndex(x, ids)
    for row in queries:
        got, dist = index.search(row, k=15, metric=metric)
        ref_pos, ref_d = reference(row[None], x, metric, 15)
        assert got == [[ids[p] for p in ref_pos[0]]]
        np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12)
    pruned, _ = index._planner.record[("overall", metric)]
    assert pruned > 0, "these queries must take the pruning path"


# ----------------------------------------------------------------------------- flat-scan fallback


@pytest.fixture(scope="module")
def uniform_with_ties():
    """Uniform random values (no structure for any bound to prune with), big and wide enough for the
    pruning engines to be tried, with duplicated rows, a scaled copy (a cosine tie) and a zero row."""
    rng = np.random.default_rng(21)
    x = rng.random((2300, 160), dtype=np.float32)
    x[100:112] = x[5]  # 13 equal rows: exact ties at every distance from any query
    x[300] = 2 * x[9]  # same direction as row 9
    x[400] = 0.0
    q = rng.random((5, 160), dtype=np.float32)
    q[3] = x[5]  # a query on the duplicated rows: 13 items at distance 0
    q[4] = x[9]
    labels = rng.integers(0, 3, len(x))
    labels[100:106] = 1
    return x, q, labels


def _route_everything(monkeypatch, route):
    monkeypatch.setattr(fi.planner.Planner, "route", lambda self, focus, metric: route)


@pytest.mark.parametrize("with_faiss", [True, False])
@pytest.mark.parametrize("route", ["flat", "prune"])
@pytest.mark.parametrize("metric", METRICS)
def test_fallback_is_exact_on_uniform_data_with_ties(uniform_with_ties, metric, route, with_faiss, monkeypatch):
    """Either route, with or without FAISS's kernels: each query alone, then all at once, with where
    and exclude, equal the float64 reference (ties by catalogue position)."""
    if with_faiss:
        pytest.importorskip("faiss")
    else:
        monkeypatch.setattr(distances, "_FAISS", None)  # the numpy / torch scans
    _route_everything(monkeypatch, route)
    x, q, labels = uniform_with_ties
    index = SimilarityIndex(x, make_ids(len(x)), metadata={"label": labels})
    ids = index.ids
    cases = [
        ({}, None, None),
        ({"where": {"label": [1, 2]}}, np.isin(labels, [1, 2]), None),
        ({"exclude": [ids[5], ids[101], ids[9]]}, None, [[5, 9, 101]] * len(q)),
        ({"where": {"label": 1}, "exclude": [ids[100]]}, labels == 1, [[100]] * len(q)),
    ]
    _one_by_one_matches_reference(index, x, q, metric, 20, cases)
    for kwargs, allowed, exclude in cases:  # several queries at once: the flat scan's batched kernels
        got, d = index.search(q, k=20, metric=metric, **kwargs)
        ref_pos, ref_d = reference(q, x, metric, 20, allowed=allowed, exclude=exclude)
        assert got == [[ids[p] for p in r] for r in ref_pos]
        np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=1e-12)
    tied, d = index.search(q[3], k=15, metric=metric)
    assert tied[0][:13] == [ids[5]] + ids[100:112]  # the 13 equal rows, in catalogue order
    assert np.all(d[0, :13] == d[0, 0])


@pytest.mark.parametrize("with_faiss", [True, False])
@pytest.mark.parametrize("metric", METRICS)
def test_flat_scan_is_exact_with_massive_ties(metric, with_faiss, monkeypatch):
    """Small integers: almost every distance is shared by many items; the flat scan alone."""
    if with_faiss:
        pytest.importorskip("faiss")
    else:
        monkeypatch.setattr(distances, "_FAISS", None)
    rng = np.random.default_rng(22)
    x = rng.integers(0, 3, size=(2500, 130)).astype(np.float32)
    x[50:70] = x[3]
    q = np.vstack([rng.integers(0, 3, size=(3, 130)), x[3:4]]).astype(np.float32)
    index = SimilarityIndex(x, make_ids(len(x)))
    engine = index._planner.flat("overall")
    for r in range(len(q)):
        allowed = np.arange(len(x)) % 3 != 1
        exclude = [np.array([3, 51, 60])]
        (pos, d), = engine.search(q[r : r + 1], 30, metric, 1.0, allowed, exclude)
        ref_pos, ref_d = reference(q[r : r + 1], x, metric, 30, allowed=allowed, exclude=exclude)
        np.testing.assert_array_equal(pos, ref_pos[0])
        np.testing.assert_allclose(d, ref_d[0], rtol=1e-13, atol=1e-13)


def test_planner_takes_the_cheaper_route_by_recorded_costs():
    """The route follows the recorded costs (injected here: no clock in tests) and re-checks the
    other route now and then; the give-up rule wins over costs."""
    planner = fi.planner.Planner({})
    key = ("overall", "euclidean")
    assert planner.route(*key) == "prune"  # nothing known: try the pruning engine
    planner.record[key] = (1, 0)
    chooser = planner._chooser(*key)
    for seconds in (5e-4, 4e-4, 6e-3):
        chooser.record("prune", seconds)
    assert planner.route(*key) == "flat"  # the flat scan has not been timed yet
    for seconds in (1e-4, 2e-4, 1e-4):
        chooser.record("flat", seconds)
    routes = []
    for _ in range(100):
        routes.append(planner.route(*key))
        chooser.record(routes[-1], {"prune": 5e-4, "flat": 1e-4}[routes[-1]])
    # timed afresh, 3 times in a row, after 10 compared searches, then 20 and 40 more (it loses by 5x)
    assert routes.count("prune") == 9 and routes[9:12] == routes[32:35] == routes[75:78] == ["prune"] * 3
    assert list(chooser.seconds["prune"]) == [5e-4] * 3  # its older timings (6e-3) are dropped
    for _ in range(9):
        chooser.record("flat", 9e-3)  # the flat scan became slow
    assert planner.route(*key) == "prune"
    planner.record[key] = (1, 8)  # 8 declined, 4x more than answered: given up
    assert planner.route(*key) == "flat"


def test_chooser_takes_turns_over_three_options():
    chooser = fi.costs.Chooser(("a", "b", "c"))
    assert [chooser.pick() for _ in range(1)] == ["a"]
    for name, seconds in (("a", 3.0), ("b", 1.0), ("c", 2.0)):
        for _ in range(3):
            chooser.record(name, seconds)
    picks = []
    for _ in range(200):
        picks.append(chooser.pick())
        chooser.record(picks[-1], {"a": 3.0, "b": 1.0, "c": 2.0}[picks[-1]])
    # the others in turn, 3 times in a row, after 10 compared picks, then 20, 40 and 50 more (c loses
    # by 2x, not more: the interval stops at 50); the next one, 100 later (a lost by 3x), is past 200
    assert picks.count("b") == 188
    assert picks[9:12] == picks[75:78] == ["c"] * 3 and picks[32:35] == picks[128:131] == ["a"] * 3


@pytest.mark.parametrize("with_faiss", [True, False])
@pytest.mark.parametrize("metric", METRICS)
def test_one_query_float32_scores_are_exact_at_every_scale(metric, with_faiss, monkeypatch):
    """The one-query flat scan ranks by float32 scores: near-ties below float32 resolution, blobs at
    scales 1e-30 to 1e3 in one catalogue, zero rows and a zero query, huge values (left to the float64
    pass). The oracle is a float64 brute force over every item with the index's own float64 formula:
    at these scales scipy's cosine rounds differently near 0 (and the float32 norms of reference()
    call a 1e-30 query zero), while what is tested here is that no candidate is lost."""
    if with_faiss:
        pytest.importorskip("faiss")
    else:
        monkeypatch.setattr(distances, "_FAISS", None)
    rng = np.random.default_rng(23)
    base = rng.standard_normal(48).astype(np.float32)
    near = np.repeat(base[None], 200, axis=0)
    cols = rng.integers(0, 48, 200)
    near[np.arange(200), cols] = np.nextafter(near[np.arange(200), cols], np.float32(np.inf))
    scales = np.repeat([1e-30, 1e-3, 1.0, 1e3], 100).astype(np.float32)[:, None]
    blobs = (rng.standard_normal((400, 48)) * scales).astype(np.float32)
    x = np.vstack([near, blobs, np.zeros((3, 48), np.float32)])
    queries = [base + 0.5 * rng.standard_normal(48), base, 1e-30 * rng.standard_normal(48),
               1e3 * rng.standard_normal(48), np.zeros(48)]
    for factor in (1.0, 1e13):  # 1e13: past what float32 scores hold, the float64 pass ranks
        catalogue = (x * np.float32(factor)).astype(np.float32)
        norms = distances.FocusVectors(catalogue).norm  # the norms the index divides by
        index = SimilarityIndex(catalogue, make_ids(len(catalogue)))
        for row in queries:
            row = (np.asarray(row) * factor).astype(np.float32)
            got, d = index.search(row, k=25, metric=metric)
            brute = distances.exact_distances(catalogue, row, metric, norms)
            order = np.lexsort((np.arange(len(catalogue)), brute))[:25]
            assert got == [[index.ids[p] for p in order]]
            np.testing.assert_array_equal(d[0], brute[order])
