"""SimilarityIndex.add / remove / replace: after any sequence of updates the index answers exactly as a
fresh build of the same items in the same order (the reference); refused updates change nothing."""
import numpy as np
import pytest

from fashrec.index import SimilarityIndex

METRICS = ("cityblock", "euclidean", "cosine")
GROUPS = ["a", "b", "c"]
DIMS = {"overall": 6, "shape": 4}


class Reference:
    """The items as plain lists: what a fresh build is made from."""

    def __init__(self, rng, n):
        self.rng, self.counter = rng, 0
        self.ids, self.vectors, self.meta = [], {f: [] for f in DIMS}, {"group": [], "name": []}
        self.append(*self.new_items(n))

    def new_items(self, n, with_metadata=True):
        ids = [f"item-{self.counter + i:04d}" for i in range(n)]
        self.counter += n
        vectors = {f: self.rng.normal(size=(n, d)).astype(np.float32) for f, d in DIMS.items()}
        # ties on purpose: a copied row makes equal distances, ordered by catalogue position
        if n > 1 and self.rng.random() < 0.5:
            for f in DIMS:
                vectors[f][1] = vectors[f][0]
        meta = {"group": list(self.rng.choice(GROUPS, size=n)), "name": [f"n{i}" for i in ids]} if with_metadata else None
        return ids, vectors, meta

    def append(self, ids, vectors, meta):
        self.ids += ids
        for f in DIMS:
            self.vectors[f] += list(vectors[f])
        for c in self.meta:
            self.meta[c] += list(meta[c]) if meta is not None else [None] * len(ids)

    def fresh(self) -> SimilarityIndex:
        return SimilarityIndex({f: np.array(v) for f, v in self.vectors.items()}, self.ids,
                               {c: np.array(v, dtype=object) for c, v in self.meta.items()})


def same_answers(index: SimilarityIndex, fresh: SimilarityIndex, rng) -> None:
    assert index.ids == fresh.ids and index.focuses == fresh.focuses
    for f in DIMS:
        np.testing.assert_array_equal(index.embeddings(f), fresh.embeddings(f))
    assert index.metadata.astype(object).values.tolist() == fresh.metadata.astype(object).values.tolist()
    queries = {f: rng.normal(size=(3, d)).astype(np.float32) for f, d in DIMS.items()}
    k = min(5, len(fresh))
    for metric in METRICS:
        for focus in ("overall", "shape", {"overall": 1.0, "shape": 2.0}):
            q = queries if isinstance(focus, dict) else queries[focus]
            got, want = index.search(q, k=k, metric=metric, focus=focus), fresh.search(q, k=k, metric=metric, focus=focus)
            assert got[0] == want[0]
            np.testing.assert_array_equal(got[1], want[1])
        group = {"group": ["a", "b"]}
        if int(np.isin(fresh.metadata["group"].astype(object), ["a", "b"]).sum()) >= k:
            got = index.search(queries["overall"], k=k, metric=metric, where=group)
            assert got[0] == fresh.search(queries["overall"], k=k, metric=metric, where=group)[0]
        some = fresh.ids[:: max(1, len(fresh) // 3)][:3]
        kk = min(4, len(fresh) - 1)
        got, want = index.search_ids(some, k=kk, metric=metric), fresh.search_ids(some, k=kk, metric=metric)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("seed", range(12))
def test_any_sequence_of_updates_answers_as_a_fresh_build(seed, tmp_path):
    rng = np.random.default_rng(seed)
    ref = Reference(rng, 25)
    index = ref.fresh()
    same_answers(index, ref.fresh(), rng)  # derived structures built here must not survive the updates
    for _ in range(10):
        op = rng.choice(["add", "remove", "replace"])
        if op == "add" or len(ref.ids) < 6:
            ids, vectors, meta = ref.new_items(int(rng.integers(1, 6)), with_metadata=rng.random() < 0.7)
            index.add(vectors, ids, meta)
            ref.append(ids, vectors, meta)
        elif op == "remove":
            gone = list(rng.choice(ref.ids, size=int(rng.integers(1, 4)), replace=False))
            index.remove(gone)
            keep = [i not in gone for i in ref.ids]
            ref.ids = [i for i, k in zip(ref.ids, keep) if k]
            ref.vectors = {f: [v for v, k in zip(vs, keep) if k] for f, vs in ref.vectors.items()}
            ref.meta = {c: [v for v, k in zip(vs, keep) if k] for c, vs in ref.meta.items()}
        else:
            chosen = list(rng.choice(ref.ids, size=int(rng.integers(1, 4)), replace=False))
            _, vectors, meta = ref.new_items(len(chosen))
            meta = {"group": meta["group"]} if rng.random() < 0.5 else None  # only some columns, or none
            index.replace(vectors, chosen, meta)
            for r, item in enumerate(chosen):
                p = ref.ids.index(item)
                for f in DIMS:
                    ref.vectors[f][p] = vectors[f][r]
                if meta is not None:
                    ref.meta["group"][p] = meta["group"][r]
        same_answers(index, ref.fresh(), rng)
    index.save(tmp_path / "idx")  # and what is written reads back the same
    same_answers(SimilarityIndex.load(tmp_path / "idx"), ref.fresh(), rng)


def test_updates_rebuild_the_pruning_engines_of_a_large_index():
    """2,500 x 128: single queries go through the pruning engines, whose structures are made on first use."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2500, 128)).astype(np.float32)
    ids = [f"p{i}" for i in range(2500)]
    index = SimilarityIndex(x, ids)
    q = x[:1] + 0.01
    before = {m: index.search(q, k=10, metric=m)[0][0] for m in METRICS}
    near = q + rng.normal(scale=0.001, size=(3, 128)).astype(np.float32)
    index.add(near, ["new-0", "new-1", "new-2"])
    index.remove(before["euclidean"][3:6])
    kept = [i for i in ids if i not in set(before["euclidean"][3:6])]
    fresh = SimilarityIndex(np.concatenate([x[[int(i[1:]) for i in kept]], near]), kept + ["new-0", "new-1", "new-2"])
    for m in METRICS:
        got, want = index.search(q, k=10, metric=m), fresh.search(q, k=10, metric=m)
        assert got[0] == want[0] and {"new-0", "new-1", "new-2"} <= set(got[0][0])
        np.testing.assert_array_equal(got[1], want[1])


def test_a_faiss_backed_index_is_rebuilt_too():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    index = SimilarityIndex(x, [str(i) for i in range(60)], backend="faiss-hnsw", ef_search=80)
    index.search(x[:1], k=3, metric="euclidean")  # builds the HNSW graph
    index.add(x[:1] * 3, ["far"]).remove(["0"])
    assert index.backend == "faiss-hnsw" and index.ef_search == 80
    assert index.search(x[:1] * 3, k=1, metric="euclidean")[0] == [["far"]]


@pytest.mark.parametrize("update, message", [
    (lambda ix: ix.add(np.ones((1, 3), np.float32), ["a"]), "already in the index"),
    (lambda ix: ix.add(np.ones((2, 3), np.float32), ["x", "x"]), "ids given twice"),
    (lambda ix: ix.add(np.ones((1, 4), np.float32), ["x"]), r"shape \(1, 4\)"),
    (lambda ix: ix.add({"shape": np.ones((1, 3), np.float32)}, ["x"]), "focuses"),
    (lambda ix: ix.add(np.full((1, 3), np.nan, np.float32), ["x"]), "NaN"),
    (lambda ix: ix.add(np.ones((1, 3), np.float32), ["x"], {"colour": ["red"]}), r"columns \['colour'\]"),
    (lambda ix: ix.add(np.ones((1, 3), np.float32), ["x"], {"group": ["a", "b"]}), "has 2 rows for 1 ids"),
    (lambda ix: ix.remove(["a", "zz"]), "not in the index"),
    (lambda ix: ix.remove(["a", "b", "c", "d"]), "empty index"),
    (lambda ix: ix.replace(np.ones((1, 3), np.float32), ["zz"]), "not in the index"),
    (lambda ix: ix.add(np.ones((1, 3), np.float32), "x"), "not one string"),
])
def test_a_refused_update_leaves_the_index_as_it_was(update, message):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    index = SimilarityIndex(x, ["a", "b", "c", "d"], {"group": ["g", "g", "h", "h"]})
    before = index.search(x, k=2, metric="cityblock")
    with pytest.raises(ValueError, match=message):
        update(index)
    assert index.ids == ["a", "b", "c", "d"] and index.metadata["group"].tolist() == ["g", "g", "h", "h"]
    np.testing.assert_array_equal(index.embeddings(), x)
    assert index.search(x, k=2, metric="cityblock")[0] == before[0]


def test_missing_metadata_of_added_items_is_none():
    index = SimilarityIndex(np.eye(3, dtype=np.float32), ["a", "b", "c"], {"group": ["g", "h", "g"], "name": ["A", "B", "C"]})
    index.add(np.ones((2, 3), np.float32), ["d", "e"], {"name": ["D", "E"]})
    index.add(np.zeros((1, 3), np.float32), ["f"])
    meta = index.metadata
    assert meta["group"].isna().tolist() == [False] * 3 + [True] * 3
    assert meta["name"].tolist()[:5] == ["A", "B", "C", "D", "E"] and meta["name"].isna().tolist()[5]
    assert index.search_ids(["a"], k=1, where={"group": "g"})[0] == [["c"]]
