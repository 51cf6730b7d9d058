"""load_hm on every kind of source, the embedded sample, bad data, and export-dataset round trips."""
from __future__ import annotations

import csv
import io
import shutil
import warnings
from pathlib import Path

import datasets
import pytest
from PIL import Image

from fashrec.cli import main as cli
from fashrec.data.hm_dataset import LABEL_COLUMNS, HMDataWarning, load_hm, load_report
from fashrec.data.sample import SAMPLE_DIR


def _ids(ds) -> list[str]:
    return list(ds["article_id"])


def _labels_by_id(ds) -> dict[str, dict[str, str]]:
    """{article_id: {label column: class name}}, independent of class indices and row order."""
    cols = [c for c in LABEL_COLUMNS if c in ds.column_names]
    out = {}
    for row in ds.remove_columns("image"):
        out[row["article_id"]] = {c: ds.features[c].int2str(row[c]) for c in cols}
    return out


def _metadata_rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as f:
        return {r["article_id"]: r for r in csv.DictReader(f)}


# ----------------------------------------------------------------------------- the 5,000 staged photos


@pytest.fixture(scope="module")
def hm(hm_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", HMDataWarning)  # the staged data is clean: nothing may be skipped
        return load_hm(hm_dir, progress=False)


def test_hm_folder_gives_4000_1000_split_with_classlabels(hm, hm_dir):
    train, test = hm["train"], hm["test"]
    assert (len(train), len(test)) == (4000, 1000)
    assert not set(_ids(train)) & set(_ids(test))
    assert set(_ids(train)) | set(_ids(test)) == set(_metadata_rows(hm_dir))
    for c in LABEL_COLUMNS:
        feature = train.features[c]
        assert isinstance(feature, datasets.ClassLabel), c
        assert feature.names == sorted(feature.names), c
        assert train.features[c] == test.features[c]
    assert train.features["product_type_name"].num_classes == 90  # SOURCE.md: 90 product types
    assert isinstance(train.features["image"], datasets.Image)
    assert load_report(train)["skipped"] == {"no_metadata": [], "no_image": [], "duplicate_id": [], "undecodable": []}


def test_hm_labels_and_images_match_the_metadata(hm, hm_dir):
    rows = _metadata_rows(hm_dir)
    test = hm["test"]
    for aid, labels in list(_labels_by_id(test.select(range(50))).items()):
        for c, name in labels.items():
            assert rows[aid][c] == name
    raw = test.cast_column("image", datasets.Image(decode=False))
    cell, aid = raw[0]["image"], raw[0]["article_id"]
    assert cell["bytes"] is None  # lazy: a path, decoded only when read
    assert Path(cell["path"]).resolve() == (hm_dir / rows[aid]["file_name"]).resolve()
    assert test[0]["image"].size == (360, 540)
    assert all(len(a) == 10 and a.isdigit() for a in _ids(test))


def test_hm_split_is_deterministic_and_seeded(hm, hm_dir):
    again = load_hm(hm_dir, progress=False)
    assert _ids(again["train"]) == _ids(hm["train"]) and _ids(again["test"]) == _ids(hm["test"])
    other = load_hm(hm_dir, seed=7, progress=False)
    assert set(_ids(other["test"])) != set(_ids(hm["test"]))


def test_hm_subset_n(hm_dir):
    a = load_hm(hm_dir, n=300, split=False, progress=False)
    b = load_hm(hm_dir, n=300, split=False, progress=False)
    c = load_hm(hm_dir, n=300, seed=1, split=False, progress=False)
    assert len(a) == 300 and _ids(a) == _ids(b) == sorted(_ids(a))
    assert set(_ids(a)) != set(_ids(c))
    assert set(_ids(a)) <= set(_metadata_rows(hm_dir))
    dd = load_hm(hm_dir, n=300, test_size=0.1, progress=False)
    assert (len(dd["train"]), len(dd["test"])) == (270, 30)
    assert set(_ids(dd["train"])) | set(_ids(dd["test"])) == set(_ids(a))


def test_hm_label_columns_choice_and_errors(hm_dir, tmp_path):
    ds = load_hm(hm_dir, n=20, split=False, label_columns=["colour_group_name"], progress=False)
    assert [c for c in ds.column_names if c in LABEL_COLUMNS] == ["colour_group_name"]
    with pytest.raises(ValueError, match="no column"):
        load_hm(hm_dir, n=20, label_columns=["not_a_column"], progress=False)
    with pytest.raises(ValueError, match="only 800 valid"):
        load_hm("sample", n=801, progress=False)
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        load_hm(tmp_path / "nope", progress=False)


# ----------------------------------------------------------------------------- the embedded sample


def test_sample_is_small_and_loads(hm_dir):
    files = [p for p in SAMPLE_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 8_000_000
    readme = (SAMPLE_DIR / "README.md").read_text()
    for words in ("H&M", "Kaggle", "research", "fashrec make-sample"):
        assert words in readme
    dd = load_hm("sample", progress=False)
    assert (len(dd["train"]), len(dd["test"])) == (640, 160)
    image = dd["train"][0]["image"]
    assert max(image.size) == 128 and image.mode == "RGB"
    # every sample row carries the labels of the full data it was drawn from
    full = _metadata_rows(hm_dir)
    for aid, labels in _labels_by_id(dd["test"]).items():
        assert all(full[aid][c] == name for c, name in labels.items())


# ----------------------------------------------------------------------------- bad data


def _kaggle_folder(tmp_path: Path, *, with_file_name: bool) -> tuple[Path, list[str]]:
    """A tiny Kaggle-layout folder: 4 good photos, a corrupt one, a truncated one, a photo without a
    metadata row and a metadata row without a photo. Ids are written like Kaggle's articles.csv (no
    leading zero) when there is no file_name column."""
    src = load_hm("sample", n=5, split=False, progress=False).cast_column("image", datasets.Image(decode=False))
    folder = tmp_path / "hm"
    good = _ids(src)[:4]
    rows = []
    for cell, aid in zip(src["image"], _ids(src)):
        dest = folder / "images" / aid[:3] / f"{aid}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cell["path"], dest)
        rows.append(aid)
    orphan = rows.pop()  # its photo stays, its row goes
    data = (folder / "images" / good[0][:3] / f"{good[0]}.jpg").read_bytes()
    for aid, payload in (("0999999001", b"this is not a jpeg at all"), ("0999999002", data[: len(data) // 2])):
        (folder / "images" / "099").mkdir(exist_ok=True)
        (folder / "images" / "099" / f"{aid}.jpg").write_bytes(payload)
        rows.append(aid)
    rows.append("0999999003")  # no photo
    with open(folder / ("metadata.csv" if with_file_name else "articles.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow((["file_name"] if with_file_name else []) + ["article_id", "prod_name", "product_type_name"])
        for i, aid in enumerate(rows):
            w.writerow(([f"images/{aid[:3]}/{aid}.jpg"] if with_file_name else [])
                       + [aid if with_file_name else str(int(aid)), f"name {i}", "Dress" if i % 2 else "Top"])
    return folder, good + [orphan]


@pytest.mark.parametrize("with_file_name", [True, False], ids=["metadata.csv", "articles.csv"])
def test_bad_rows_are_skipped_and_reported(tmp_path, with_file_name):
    folder, (*good, orphan) = _kaggle_folder(tmp_path, with_file_name=with_file_name)
    with pytest.warns(HMDataWarning) as record:
        ds = load_hm(folder, split=False, progress=False)
    assert sorted(_ids(ds)) == sorted(good)
    skipped = load_report(ds)["skipped"]
    assert skipped["no_metadata"] == [orphan]
    assert skipped["no_image"] == ["0999999003"]
    assert skipped["undecodable"] == ["0999999001", "0999999002"]
    message = str(record[0].message)
    assert "images without a metadata row: 1" in message and "images that cannot be decoded: 2" in message
    assert "0999999001" in message
    assert ds.features["product_type_name"].names == ["Dress", "Top"]
    assert ds.features["prod_name"].dtype == "string"
    # what is kept decodes
    assert all(im.size == (85, 128) for im in ds["image"])


def test_unreadable_metadata_names_the_file(tmp_path):
    (tmp_path / "metadata.csv").write_text("no,article,id,here\n1,2,3,4\n")
    with pytest.raises(ValueError, match="metadata.csv has no article_id"):
        load_hm(tmp_path, progress=False)


# ----------------------------------------------------------------------------- other sources


def test_save_to_disk_and_plain_image_folder_sources(tmp_path):
    dd = load_hm("sample", n=60, progress=False)
    dd.save_to_disk(str(tmp_path / "saved"))
    back = load_hm(tmp_path / "saved", progress=False)
    for split in ("train", "test"):  # predefined splits are kept
        assert sorted(_ids(back[split])) == sorted(_ids(dd[split]))
        assert _labels_by_id(back[split]) == _labels_by_id(dd[split])

    raw = dd["test"].cast_column("image", datasets.Image(decode=False))
    plain = tmp_path / "plain"
    plain.mkdir()
    for cell, aid in zip(raw["image"], _ids(raw)):
        shutil.copy(cell["path"], plain / f"{aid}.jpg")
    ds = load_hm(plain, split=False, progress=False)
    assert sorted(_ids(ds)) == sorted(_ids(dd["test"]))
    assert not set(ds.column_names) & set(LABEL_COLUMNS)


# ----------------------------------------------------------------------------- export-dataset


def _image_bytes_by_id(ds) -> dict[str, bytes]:
    raw = ds.cast_column("image", datasets.Image(decode=False))
    return {aid: (c["bytes"] if c["bytes"] is not None else Path(c["path"]).read_bytes())
            for c, aid in zip(raw["image"], raw["article_id"])}


def test_export_round_trip(tmp_path):
    out = tmp_path / "export"
    assert cli(["export-dataset", "--data", "sample", "--out", str(out), "--n", "100", "--seed", "3"]) == 0
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    original = load_hm("sample", n=100, seed=3, progress=False)
    back = load_hm(out, progress=False)
    for split in ("train", "test"):
        assert sorted(_ids(back[split])) == sorted(_ids(original[split]))
        assert _labels_by_id(back[split]) == _labels_by_id(original[split])
        assert _image_bytes_by_id(back[split]) == _image_bytes_by_id(original[split])  # byte for byte
        assert back[split].features == original[split].features
    # plain `datasets` reads it too, with the ClassLabel features
    plain = datasets.load_dataset(str(out))
    assert plain["test"].features["product_type_name"] == original["test"].features["product_type_name"]

    from huggingface_hub import DatasetCard

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other"
    assert card.data.task_categories == ["image-feature-extraction", "image-classification"]
    assert card.data.configs[0]["data_files"] == [{"split": "train", "path": "data/train-*"},
                                                  {"split": "test", "path": "data/test-*"}]
    splits = {s["name"]: s["num_examples"] for s in card.data.dataset_info["splits"]}
    assert splits == {"train": 80, "test": 20}
    for words in ("H&M Personalized Fashion Recommendations", "non-commercial research",
                  "hungle45/PSE-Recommendor-System", "| train | 80 |", "`product_type_name`"):
        assert words in card.text

    # a second export into the same folder needs --overwrite
    assert cli(["export-dataset", "--data", "sample", "--out", str(out), "--n", "10"]) == 1
    assert cli(["export-dataset", "--data", "sample", "--out", str(out), "--n", "10", "--overwrite",
                "--max-side", "40"]) == 0
    small = load_hm(out, split=False, progress=False)
    assert len(small) == 10 and all(max(im.size) <= 40 for im in small["image"])
    assert Image.open(io.BytesIO(_image_bytes_by_id(small)[_ids(small)[0]])).format == "JPEG"


def test_export_push_to_hub(tmp_path, hub_server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    repo_id = hub_server.repo_id("hm-mini")
    out = tmp_path / "export"
    assert cli(["export-dataset", "--data", "sample", "--out", str(out), "--n", "30",
                "--push-to-hub", repo_id]) == 0
    assert hub_server.state.repo(repo_id, "dataset").private  # H&M photos: private unless --public
    files = hub_server.files(repo_id, "dataset")
    assert {"README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"} <= set(files)
    assert files["data/test-00000-of-00001.parquet"] == (out / "data/test-00000-of-00001.parquet").read_bytes()
    back = load_hm(repo_id, progress=False)  # through datasets.load_dataset(repo_id)
    original = load_hm("sample", n=30, progress=False)
    for split in ("train", "test"):
        assert sorted(_ids(back[split])) == sorted(_ids(original[split]))
        assert _labels_by_id(back[split]) == _labels_by_id(original[split])
