"""SimilarityIndex contracts that mutation testing found unpinned (docs/testing.md): the saved folder's
format and its error messages, the FAISS backend's answer-or-fall-back rule, the cost chooser's median.
"""
from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch

from fashrec.index import SimilarityIndex
from fashrec.index.costs import typical
from fashrec.index.persistence import EMBEDDINGS_FILE, IDS_FILE, INDEX_FILE, METADATA_FILE


def _index(n=12, dim=4, seed=0, metadata=True):
    rng = np.random.default_rng(seed)
    x = {"overall": rng.standard_normal((n, dim)).astype(np.float32),
         "colour": rng.standard_normal((n, 3)).astype(np.float32)}
    meta = {"group": np.array(["a", "b", None] * (n // 3), dtype=object), "small": np.arange(n, dtype=np.int8),
            "price": np.linspace(0, 1, n, dtype=np.float32)} if metadata else None
    return SimilarityIndex(x, [f"id{i}" for i in range(n)], meta)


# ----- the saved folder -------------------------------------------------------------------------------


def test_save_writes_the_documented_files_beside_and_then_over_the_target(tmp_path, monkeypatch):
    import fashrec.atomic
    from safetensors import safe_open

    target = tmp_path / "deep" / "er" / "idx"  # parents are made
    staged = []
    real = fashrec.atomic.replace_dir
    monkeypatch.setattr(fashrec.atomic, "replace_dir", lambda src, dst: (staged.append(src), real(src, dst))[1])
    _index().save(target)
    (staging,) = staged
    assert staging.parent == target.parent and staging.name.startswith(".idx.") and staging.name.endswith(".tmp")
    assert not staging.exists() and sorted(p.name for p in target.iterdir()) == sorted(
        [EMBEDDINGS_FILE, IDS_FILE, METADATA_FILE, INDEX_FILE])
    record = json.loads((target / INDEX_FILE).read_text())
    from fashrec import __version__

    assert record["fashrec_version"] == __version__ and record["format"] == "fashrec.SimilarityIndex"
    with safe_open(str(target / EMBEDDINGS_FILE), framework="np") as f:
        assert f.metadata() == {"format": "fashrec.SimilarityIndex"}
    loaded = SimilarityIndex.load(target)
    meta = loaded.metadata
    assert meta["small"].dtype == np.int8 and meta["price"].dtype == np.float32  # dtypes survive
    assert meta["group"].isna().tolist() == [False, False, True] * 4 and meta["group"][:2].tolist() == ["a", "b"]


def test_a_failed_save_leaves_no_staging_folder_and_the_old_index(tmp_path):
    target = tmp_path / "idx"
    _index(seed=1).save(target)
    before = sorted((p.name, p.read_bytes()) for p in target.iterdir())
    bad = SimilarityIndex(np.ones((2, 2), np.float32), ["a", "b"], {"mixed": np.array([1, "x"], dtype=object)})
    with pytest.raises(ValueError, match=rf"^metadata cannot be stored as parquet \({re.escape(str(tmp_path))}/\.idx\..*\.tmp/"
                                         rf"metadata\.parquet\): "):
        bad.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert sorted((p.name, p.read_bytes()) for p in target.iterdir()) == before


def test_saving_a_model_without_config_dict_records_its_class_and_hash(tmp_path):
    from fashrec.models.hub_model import weights_hash

    model = torch.nn.Linear(2, 2)
    _index(metadata=False).save(tmp_path / "idx", model=model)
    record = json.loads((tmp_path / "idx" / INDEX_FILE).read_text())["model"]
    assert record == {"class": "Linear", "config": None, "weights_hash": weights_hash(model)}


def _edit(folder, change):
    record = json.loads((folder / INDEX_FILE).read_text())
    change(record)
    (folder / INDEX_FILE).write_text(json.dumps(record))


def test_every_damaged_part_of_a_folder_is_named(tmp_path):
    folder = tmp_path / "idx"
    _index(metadata=False).save(folder)
    index_file = re.escape(str(folder / INDEX_FILE))
    embeddings = re.escape(str(folder / EMBEDDINGS_FILE))
    good = (folder / INDEX_FILE).read_text()

    def expect(message):
        with pytest.raises(ValueError, match=message):
            SimilarityIndex.load(folder)
        (folder / INDEX_FILE).write_text(good)

    (folder / INDEX_FILE).write_text("{oops")
    expect(rf"^{index_file} is not valid JSON: ")
    (folder / INDEX_FILE).write_text("[1, 2]")
    expect(rf"^{index_file} does not describe a fashrec.SimilarityIndex$")
    _edit(folder, lambda r: r.update(format="other"))
    expect(rf"^{index_file} does not describe a fashrec.SimilarityIndex$")
    _edit(folder, lambda r: r.update(format_version=2))
    expect(rf"^{index_file} has format_version 2; this fashrec reads version 1$")
    _edit(folder, lambda r: r["focuses"].update(extra=3))
    expect(rf"^{embeddings} holds focuses \['colour', 'overall'\], {index_file} lists \['colour', 'extra', 'overall'\]$")
    _edit(folder, lambda r: r.pop("focuses"))
    expect(rf"^{embeddings} holds focuses \['colour', 'overall'\], {index_file} lists \[\]$")
    _edit(folder, lambda r: r["focuses"].update(overall=5))
    expect(rf"^{embeddings}: focus 'overall' has shape \(12, 4\), {index_file} says \(12, 5\)$")
    _edit(folder, lambda r: r.update(focus_order=["overall", "nope"]))
    expect(rf"^{index_file}: focus_order \['overall', 'nope'\] does not match focuses \['colour', 'overall'\]$")
    _edit(folder, lambda r: r.pop("focus_order"))  # an older folder: the focuses' own order
    assert SimilarityIndex.load(folder).focuses == ("colour", "overall")
    (folder / INDEX_FILE).write_text(good)
    ids = (folder / IDS_FILE).read_text()
    (folder / IDS_FILE).write_text("[oops")
    expect(rf"^cannot read {re.escape(str(folder / IDS_FILE))}: ")
    (folder / IDS_FILE).write_text(ids)
    (folder / EMBEDDINGS_FILE).write_bytes(b"not safetensors")
    expect(rf"^cannot read {embeddings}: ")


def test_metadata_file_errors_are_named(tmp_path, monkeypatch):
    folder = tmp_path / "idx"
    _index().save(folder)
    (folder / METADATA_FILE).write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=rf"^cannot read {re.escape(str(folder / METADATA_FILE))}: "):
        SimilarityIndex.load(folder)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=rf"^reading index metadata {re.escape(str(folder / METADATA_FILE))} needs "
                                          r"pyarrow: pip install 'fashrec\[data\]'$"):
        SimilarityIndex.load(folder)
    with pytest.raises(ImportError, match=r"^saving index metadata needs pyarrow: pip install 'fashrec\[data\]'$"):
        _index().save(tmp_path / "other")


def test_model_check_messages_name_the_file_both_classes_and_both_hashes(tmp_path):
    from fashrec.models.hub_model import weights_hash

    folder = tmp_path / "idx"
    torch.manual_seed(0)
    built_with, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
    _index(metadata=False).save(folder, model=built_with)
    index_file = re.escape(str(folder / INDEX_FILE))
    with pytest.raises(ValueError, match=(
            rf"^{index_file} was built with Linear \(weights_hash {weights_hash(built_with)}\), not with this Linear "
            rf"\(weights_hash {weights_hash(other)}\): re-embed the catalogue with this model or load the model the "
            r"index was built with$")):
        SimilarityIndex.load(folder, model=other)
    _index(metadata=False).save(folder)
    with pytest.raises(ValueError, match=(
            rf"^{index_file} records no model \(it was saved without model=\), so it cannot be checked against "
            rf"Linear \(weights_hash {weights_hash(other)}\); load it without model= or re-save it with model=$")):
        SimilarityIndex.load(folder, model=other)


# ----- FAISS: answer, or hand the search to the exact engine -----------------------------------------


def test_faiss_backend_answers_plain_searches_and_hands_the_rest_over():
    pytest.importorskip("faiss")
    from fashrec.index.distances import FocusVectors
    from fashrec.index.faiss_backend import FaissBackend

    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 5)).astype(np.float32)
    focuses = {"overall": FocusVectors(x), "other": FocusVectors(x[:, :3].copy())}

    class Settings:
        hnsw_m, ef_construction, ef_search = 8, 40, 2

    with pytest.raises(ValueError, match=r"^unknown FAISS index kind 'ivf'; choose 'flat' or 'hnsw'$"):
        FaissBackend(focuses, kind="ivf", settings=Settings())
    flat = FaissBackend(focuses, kind="flat", settings=Settings())
    reference = SimilarityIndex(x, [str(i) for i in range(30)])
    queries = np.vstack([x[:1] + 0.01, np.zeros((1, 5), np.float32)])  # near item 0; a zero vector
    q = {"overall": queries}
    for metric in ("euclidean", "cosine", "cityblock"):  # one backend, every metric: one FAISS index each
        built = flat.build("overall", metric)
        assert flat.build("overall", metric) is built  # built once
        # the first query's two nearest are excluded: FAISS must be asked for them on top of k
        (near,), _ = reference.search(queries[:1], k=2, metric=metric)
        excluded = [np.array(sorted(int(i) for i in near)), np.array([], np.int64)]
        answer = flat.search(q, 5, metric, {"overall": 2.0}, None, excluded)
        assert answer is not None, f"FAISS must answer a plain {metric} search"
        ids, dist = reference.search(queries, k=5, metric=metric, exclude=[near, []], focus="overall")
        assert answer[0].tolist() == [[int(i) for i in row] for row in ids]
        np.testing.assert_allclose(answer[1], 2.0 * dist, rtol=1e-12)
        assert flat.search(q, 30, metric, {"overall": 1.0}, None, None) is not None  # k = every item
        assert flat.search({"overall": queries[1:]}, 3, metric, {"overall": 1.0}, None, None) is not None  # zero query
    assert flat.search(q, 5, "euclidean", {"overall": 1.0}, np.ones(30, bool), None) is None  # where: exact engine
    both = {"overall": x[:1], "other": x[:1, :3]}
    assert flat.search(both, 5, "euclidean", {"overall": 1.0, "other": 1.0}, None, None) is None  # weighted
    hnsw = FaissBackend(focuses, kind="hnsw", settings=Settings())
    hnsw.search(q, 7, "euclidean", {"overall": 1.0}, None, None)
    assert hnsw.build("overall", "euclidean").hnsw.efSearch == 7  # at least k, whatever ef_search says


def test_typical_cost_is_the_median():
    assert typical([5.0, 1.0, 3.0, 2.0, 4.0]) == 3.0
    assert typical([4.0, 1.0, 3.0, 2.0]) == 3.0  # the upper middle of an even count
    assert typical([7.0]) == 7.0


def test_a_zero_query_among_others_on_the_pruned_path():
    """Cosine on a catalogue big enough for projection pruning: a zero query (distance 1.0 to all, handed to
    the flat scan) must not cut short the queries after it."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((8, 128))
    x = (centres[rng.integers(0, 8, 2100)] + 0.2 * rng.standard_normal((2100, 128))).astype(np.float32)
    queries = np.vstack([np.zeros(128), x[5], x[6]]).astype(np.float32)
    ids, dist = SimilarityIndex(x, [str(i) for i in range(len(x))]).search(queries, k=4, metric="cosine")
    x64 = x.astype(np.float64)
    for row, q in enumerate(queries.astype(np.float64)):
        norms = np.linalg.norm(x64, axis=1) * np.linalg.norm(q)
        d = np.ones(len(x)) if not norms.any() else np.clip(1.0 - (x64 @ q) / norms, 0.0, 2.0)
        order = np.argsort(d, kind="stable")[:4]
        assert ids[row] == [str(i) for i in order]
        np.testing.assert_allclose(dist[row], d[order], rtol=1e-9, atol=1e-12)


# ----- the public defaults, and blocks of queries with filters --------------------------------------


def test_search_ids_defaults_and_load_keeps_the_backend(tmp_path):
    index = _index(n=15, metadata=False)
    ids = index.ids
    got = index.search_ids(ids[2])
    assert got[0] == index.search(index.embeddings()[2], k=10, metric="cosine", exclude=[ids[2]])[0]
    assert len(got[0][0]) == 10
    pytest.importorskip("faiss")
    index.save(tmp_path / "idx")
    assert SimilarityIndex.load(tmp_path / "idx", backend="faiss-flat").backend == "faiss-flat"


def test_blocks_of_queries_with_filters_equal_one_query_at_a_time(monkeypatch):
    """The flat scan and the weighted search take queries in blocks; per-query exclude lists and the where
    mask must line up with the queries of every block, not only the first."""
    from fashrec.index.engines import flat

    index = _index(n=30, seed=4)
    ids = index.ids
    rng = np.random.default_rng(9)
    q = {"overall": rng.standard_normal((7, 4)).astype(np.float32), "colour": rng.standard_normal((7, 3)).astype(np.float32)}
    exclude = [[ids[j] for j in rng.choice(30, size=4, replace=False)] for _ in range(7)]
    cases = [dict(focus="overall"), dict(focus={"overall": 1.0, "colour": 0.5})]
    for kw in cases:
        queries = q["overall"] if kw["focus"] == "overall" else q
        for metric in ("cityblock", "euclidean", "cosine"):
            one = [index.search(queries[r:r + 1] if kw["focus"] == "overall" else {f: m[r:r + 1] for f, m in q.items()},
                                k=3, metric=metric, exclude=[exclude[r]], where={"group": ["a", "b"]}, **kw)
                   for r in range(7)]
            monkeypatch.setattr(flat, "_BLOCK_ELEMENTS", 3 * 30)  # three queries per block
            got_ids, got_d = index.search(queries, k=3, metric=metric, exclude=exclude, where={"group": ["a", "b"]}, **kw)
            monkeypatch.undo()
            assert got_ids == [o[0][0] for o in one]
            np.testing.assert_allclose(got_d, np.vstack([o[1] for o in one]), rtol=1e-12)


def test_unhashable_where_values_match_nothing():
    index = _index(n=12)
    ids, _ = index.search(index.embeddings()[:1], k=2, where={"group": [["a"], "b"]})
    groups = dict(zip(index.ids, index.metadata["group"]))
    assert all(groups[i] == "b" for i in ids[0])
