"""A served index is the one its model made, unchanged: preprocessing, ids and file checksums are checked
at load (fashrec.index.integrity), as the Space does before serving."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import fashrec
from fashrec.index.integrity import INTEGRITY_FILE, check_index, seal

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """40 sample photos embedded by the shipped paper-ae, as 'fashrec embed' writes them."""
    from fashrec.jobs.embed_job import embed_catalogue

    out = tmp_path_factory.mktemp("index") / "paper-ae-40"
    model = fashrec.from_pretrained("paper-ae")
    embed_catalogue(model=model, model_ref="paper-ae", data="sample", out=out, n=40)
    return out


@pytest.fixture
def index_copy(small_index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(small_index, copy)
    return copy


def _load(folder):
    from fashrec.index import SimilarityIndex

    return SimilarityIndex.load(folder)


def _recommender(index_dir, model="paper-ae"):
    sys.path.insert(0, str(REPO_ROOT))
    from space.recommender import Recommender

    return Recommender.load(model=model, index=index_dir, recon_model="none")


def test_fashrec_embed_seals_the_index_and_the_space_loads_it(small_index):
    assert (small_index / INTEGRITY_FILE).is_file()
    rec = _recommender(small_index)
    assert len(rec) == 40


def test_same_weights_other_padding_is_refused(small_index, tmp_path):
    checkpoint = tmp_path / "paper-ae-white"
    shutil.copytree(fashrec.pretrained.path("paper-ae"), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["preprocess"]["pad_value"] = 1.0
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"other preprocessing \(pad_value 0\.0\).*\(pad_value 1\.0\)"):
        _recommender(small_index, model=str(checkpoint))


def test_changed_embeddings_are_refused(index_copy):
    data = bytearray((index_copy / "embeddings.safetensors").read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # the last float becomes 1.0: still a valid file
    (index_copy / "embeddings.safetensors").write_bytes(bytes(data))
    _load(index_copy)  # the file itself reads fine...
    with pytest.raises(ValueError, match="embeddings.safetensors changed since the index was made"):
        _recommender(index_copy)  # ...but it is not what was made


def test_ids_that_disagree_with_the_metadata_are_refused(index_copy):
    ids = json.loads((index_copy / "ids.json").read_text())
    ids[0], ids[1] = ids[1], ids[0]
    (index_copy / "ids.json").write_text(json.dumps(ids))
    seal(index_copy)  # even re-sealed: the rows would be captioned with another product's labels
    with pytest.raises(ValueError, match="ids.json and the metadata's article_id disagree .*position 0"):
        check_index(index_copy, _load(index_copy))


def test_an_unsealed_index_is_refused_by_the_space_but_not_by_the_library(index_copy):
    (index_copy / INTEGRITY_FILE).unlink()
    check_index(index_copy, _load(index_copy), require_seal=False)
    with pytest.raises(ValueError, match=f"no {INTEGRITY_FILE}"):
        _recommender(index_copy)


def test_the_committed_space_index_is_sealed_and_matches_its_model():
    from space.recommender import model_reference

    index_dir = REPO_ROOT / "space" / "index"
    model = fashrec.from_pretrained(model_reference(index_dir))
    check_index(index_dir, _load(index_dir), model)


@pytest.mark.parametrize("weight", [1.7e308, 1e300, 1e7, float("inf")])
def test_huge_focus_weights_are_refused_by_the_index(weight):
    import numpy as np

    from fashrec.index import SimilarityIndex

    rng = np.random.default_rng(0)
    index = SimilarityIndex({"overall": rng.random((30, 4)), "shape": rng.random((30, 4))}, [str(i) for i in range(30)])
    with pytest.raises(ValueError, match="focus weight"):
        index.search_ids(["0"], k=3, focus={"overall": weight, "shape": 1.0})


def test_the_largest_allowed_weights_keep_exclude_and_where():
    import numpy as np

    from fashrec.index import MAX_FOCUS_WEIGHT, SimilarityIndex

    rng = np.random.default_rng(1)
    vectors = {"overall": rng.random((400, 64), dtype=np.float32) * 50, "shape": rng.random((400, 64), dtype=np.float32)}
    groups = np.array(["a", "b"] * 200, dtype=object)
    index = SimilarityIndex(vectors, [str(i) for i in range(400)], {"g": groups})
    for metric in ("cosine", "euclidean", "cityblock"):
        ids, dist = index.search_ids(["0", "2"], k=20, metric=metric, where={"g": "a"},
                                     focus={"overall": MAX_FOCUS_WEIGHT, "shape": MAX_FOCUS_WEIGHT})
        assert np.isfinite(dist).all()
        for query, row in zip(["0", "2"], ids):
            assert query not in row and all(int(i) % 2 == 0 for i in row)
