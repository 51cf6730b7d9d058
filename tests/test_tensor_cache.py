"""dataset_tensor: values are exactly preprocess()'s, row order is the dataset's, the cache is used and invalidated."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import datasets
import pytest
import torch

import fashrec.data.tensor_cache as tc
from fashrec.data.hm_dataset import load_hm
from fashrec.data.preprocess import ImageError, PreprocessConfig, preprocess


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images dataset_tensor sends through preprocess."""
    calls = []

    def counting(image, config=None):
        calls.append(image)
        return preprocess(image, config)

    monkeypatch.setattr(tc, "preprocess", counting)
    return calls


@pytest.fixture(scope="module")
def small():
    return load_hm("sample", n=40, seed=5, progress=False)


def _paths(ds) -> list[str]:
    return [c["path"] for c in ds.cast_column("image", datasets.Image(decode=False))["image"]]


def _cache_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.safetensors"))


def test_values_and_row_order_equal_preprocess(small, tmp_path):
    test = small["test"]  # a split: rows reached through an indices mapping
    x = tc.dataset_tensor(test, cache_dir=tmp_path, progress=False)
    assert x.shape == (len(test), 3, 64, 64) and x.dtype == torch.float32
    for i, path in enumerate(_paths(test)):
        assert torch.equal(x[i], preprocess(path)), i
    cached = tc.dataset_tensor(test, cache_dir=tmp_path, progress=False)
    assert torch.equal(cached, x)  # bit-identical after the uint8 round trip


def test_splits_reuse_a_cached_superset(small, tmp_path, decodes):
    whole = load_hm("sample", n=40, seed=5, split=False, progress=False)
    x = tc.dataset_tensor(whole, cache_dir=tmp_path, progress=False)
    assert len(decodes) == 40
    position = {a: i for i, a in enumerate(whole["article_id"])}
    for name in ("train", "test"):
        y = tc.dataset_tensor(small[name], cache_dir=tmp_path, progress=False)
        assert torch.equal(y, x[[position[a] for a in small[name]["article_id"]]])
    assert len(decodes) == 40 and len(_cache_files(tmp_path)) == 3
    # a set that overlaps only partly decodes only what is new
    more = load_hm("sample", n=60, seed=5, split=False, progress=False)
    tc.dataset_tensor(more, cache_dir=tmp_path, progress=False)
    assert len(decodes) == 40 + len(set(more["article_id"]) - set(whole["article_id"]))


def test_second_call_reads_the_cache(small, tmp_path, decodes):
    first = tc.dataset_tensor(small["train"], cache_dir=tmp_path, progress=False)
    assert len(decodes) == len(small["train"])
    assert len(_cache_files(tmp_path)) == 1
    again = tc.dataset_tensor(small["train"], cache_dir=tmp_path, progress=False)
    assert len(decodes) == len(small["train"])  # nothing decoded the second time
    assert torch.equal(first, again)
    # rows in another order come from the same cache file
    shuffled = small["train"].shuffle(seed=1)
    y = tc.dataset_tensor(shuffled, cache_dir=tmp_path, progress=False)
    assert len(decodes) == len(small["train"]) and len(_cache_files(tmp_path)) == 1
    position = {a: i for i, a in enumerate(small["train"]["article_id"])}
    assert torch.equal(y, first[[position[a] for a in shuffled["article_id"]]])


def test_config_change_and_file_change_invalidate(small, tmp_path, decodes):
    ds = small["test"]
    n = len(ds)
    tc.dataset_tensor(ds, cache_dir=tmp_path, progress=False)
    grey = PreprocessConfig(pad_value=0.5)  # 127.5 / 255 is not a uint8 level: stored as float32
    x = tc.dataset_tensor(ds, grey, cache_dir=tmp_path, progress=False)
    assert len(decodes) == 2 * n and len(_cache_files(tmp_path)) == 2
    assert len({f.parent for f in _cache_files(tmp_path)}) == 2  # one folder per config
    assert torch.equal(x[0], preprocess(_paths(ds)[0], grey))
    assert torch.equal(tc.dataset_tensor(ds, {"pad_value": 0.5}, cache_dir=tmp_path, progress=False), x)
    assert len(decodes) == 2 * n


def test_a_changed_file_is_decoded_again(small, tmp_path, decodes):
    copies = []
    for i, p in enumerate(_paths(small["test"])[:4]):
        copies.append(tmp_path / f"{i}.jpg")
        shutil.copy(p, copies[-1])
    ds = datasets.Dataset.from_dict({"image": [str(p) for p in copies]}, features=datasets.Features({"image": datasets.Image()}))
    tc.dataset_tensor(ds, cache_dir=tmp_path / "cache", progress=False)
    assert len(decodes) == 4
    stat = os.stat(copies[1])
    os.utime(copies[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    tc.dataset_tensor(ds, cache_dir=tmp_path / "cache", progress=False)
    assert len(decodes) == 5 and decodes[-1] == str(copies[1])  # only the changed photo


def test_damaged_cache_file_is_rewritten(small, tmp_path, decodes):
    ds = small["test"]
    x = tc.dataset_tensor(ds, cache_dir=tmp_path, progress=False)
    (file,) = _cache_files(tmp_path)
    file.write_bytes(file.read_bytes()[:100])
    y = tc.dataset_tensor(ds, cache_dir=tmp_path, progress=False)
    assert torch.equal(x, y) and len(decodes) == 2 * len(ds)
    assert file.stat().st_size > 100


def test_default_cache_dir_and_no_cache(small, tmp_path, monkeypatch, decodes):
    monkeypatch.setenv("FASHREC_CACHE", str(tmp_path / "env-cache"))
    tc.dataset_tensor(small["test"], progress=False)
    assert len(_cache_files(tmp_path / "env-cache")) == 1
    tc.dataset_tensor(small["test"], cache_dir=False, progress=False)
    tc.dataset_tensor(small["test"], cache_dir=False, progress=False)
    assert len(decodes) == 3 * len(small["test"])


def test_embedded_bytes(small, tmp_path):
    paths = _paths(small["test"])[:5]
    blobs = [Path(p).read_bytes() for p in paths]
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in blobs], "article_id": [f"id{i}" for i in range(5)]},
        features=datasets.Features({"image": datasets.Image(), "article_id": datasets.Value("string")}),
    )
    x = tc.dataset_tensor(ds, cache_dir=tmp_path, progress=False)
    for i, b in enumerate(blobs):
        assert torch.equal(x[i], preprocess(b))


def test_undecodable_images_are_named(small, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    good = _paths(small["test"])[0]
    ds = datasets.Dataset.from_dict(
        {"image": [good, str(bad)], "article_id": ["0000000001", "0999999999"]},
        features=datasets.Features({"image": datasets.Image(), "article_id": datasets.Value("string")}),
    )
    with pytest.raises(ImageError, match=r"1 image\(s\) cannot be decoded:\n  0999999999 \(.*bad.jpg\)"):
        tc.dataset_tensor(ds, cache_dir=tmp_path / "cache", progress=False)
    assert not _cache_files(tmp_path / "cache")


@pytest.mark.slow
def test_all_5000_staged_photos(hm_dir, tmp_path, decodes):
    ds = load_hm(hm_dir, split=False, progress=False)
    x = tc.dataset_tensor(ds, cache_dir=tmp_path, progress=False)
    assert x.shape == (5000, 3, 64, 64) and len(decodes) == 5000
    paths = _paths(ds)
    for i in (0, 1234, 4999):
        assert torch.equal(x[i], preprocess(paths[i]))
    # every photo is 360x540: fitted to 43x64 and centred, the 10 columns left and right are padding
    assert x[:, :, :, :10].abs().max() == 0 and x[:, :, :, 54:].abs().max() == 0
    dd = load_hm(hm_dir, progress=False)
    y = tc.dataset_tensor(dd["test"], cache_dir=tmp_path, progress=False)
    assert len(decodes) == 5000  # the test split is taken from the whole source's cache file
    assert len(_cache_files(tmp_path)) == 2  # and kept as its own file
    position = {a: i for i, a in enumerate(ds["article_id"])}
    assert torch.equal(y, x[[position[a] for a in dd["test"]["article_id"]]])
