"""One sealed index folder, opened one way: every file a reader trusts (vectors, ids, metadata, index.json,
catalogue.json, the photos) is sealed, and a change to any one of them alone is refused, naming the file,
by every entry point (the Python opener, ``recommend``, ``index add|remove|replace``, ``space build`` and
the Space's start-up). ``fashrec index seal`` is the one way to accept a changed folder, and it still
refuses a folder that could serve anything but its own photos."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fashrec
from fashrec.cli import main
from fashrec.index.folder import open_index
from fashrec.index.integrity import folder_files

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))
SEALED = ["embeddings.safetensors", "ids.json", "metadata.parquet", "index.json", "catalogue.json", "a photo"]
ENTRY_POINTS = ["python opener", "recommend", "index add", "index remove", "index replace", "space build",
                pytest.param("Space start-up", marks=pytest.mark.slow)]  # python space/app.py, ~7 s each


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """40 sample photos embedded by the shipped paper-ae, as 'fashrec embed' writes them."""
    from fashrec.jobs.embed_job import embed_catalogue

    out = tmp_path_factory.mktemp("index") / "paper-ae-40"
    embed_catalogue(model=fashrec.from_pretrained("paper-ae"), model_ref="paper-ae", data="sample", out=out, n=40,
                    progress=False)
    return out


@pytest.fixture
def index_copy(small_index, tmp_path):
    return Path(shutil.copytree(small_index, tmp_path / "index"))


def tamper(folder: Path, what: str) -> str:
    """Change one sealed file so that it still reads as a valid file of its kind; returns its name."""
    catalogue = json.loads((folder / "catalogue.json").read_text())
    ids = json.loads((folder / "ids.json").read_text())
    if what == "embeddings.safetensors":
        data = bytearray((folder / what).read_bytes())
        data[-4:] = b"\x00\x00\x80\x3f"  # the last float becomes 1.0
        (folder / what).write_bytes(bytes(data))
    elif what == "ids.json":
        ids[0], ids[1] = ids[1], ids[0]
        (folder / what).write_text(json.dumps(ids))
    elif what == "metadata.parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(folder / what).to_pandas()
        table.loc[0, "prod_name"] = "Something else"
        table.to_parquet(folder / what, index=False)
    elif what == "index.json":
        record = json.loads((folder / what).read_text())
        record["skipped_images"] = [{"id": "x", "reason": "made up"}]
        (folder / what).write_text(json.dumps(record))
    elif what == "catalogue.json":  # the first two items show each other's photo
        photos = catalogue["photos"]
        photos[ids[0]], photos[ids[1]] = photos[ids[1]], photos[ids[0]]
        (folder / what).write_text(json.dumps(catalogue))
    else:  # one served photo becomes another (valid) JPEG
        what = catalogue["photos"][ids[2]]
        (folder / what).write_bytes(SAMPLE[-1].read_bytes())
    return what


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def attempt(entry: str, folder: Path, tmp_path: Path, capsys) -> str:
    """Run one entry point on ``folder``; it must refuse: returns what it said."""
    ids = json.loads((folder / "ids.json").read_text())
    if entry == "python opener":
        with pytest.raises(ValueError) as err:
            open_index(folder)
        return str(err.value)
    if entry == "Space start-up":
        env = {**os.environ, "FASHREC_INDEX": str(folder), "FASHREC_RECON_MODEL": "none", "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": str(REPO_ROOT), "GRADIO_SERVER_PORT": "1"}  # a port it never reaches
        done = subprocess.run([sys.executable, str(REPO_ROOT / "space" / "app.py")], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
        return done.stderr
    photos = tmp_path / "photos"
    if not photos.exists():
        photos.mkdir(parents=True)
        shutil.copy(SAMPLE[-2], photos / ("new-item.jpg" if entry == "index add" else f"{ids[5]}.jpg"))
    (tmp_path / "gone.txt").write_text(f"{ids[6]}\n")
    argv = {
        "recommend": ["recommend", "--index", str(folder), "--item", ids[3]],
        "index add": ["index", "add", "--index", str(folder), "--data", str(photos)],
        "index replace": ["index", "replace", "--index", str(folder), "--data", str(photos)],
        "index remove": ["index", "remove", "--index", str(folder), "--ids", str(tmp_path / "gone.txt")],
        "space build": ["space", "build", str(tmp_path / "space"), "--index", str(folder), "--wheel",
                        str(tmp_path / "never-read.whl")],  # refused before the wheel is looked at
    }[entry]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("sealed", SEALED)
def test_a_change_to_any_one_sealed_file_is_refused_by_every_entry_point(index_copy, tmp_path, capsys, sealed, entry):
    name = tamper(index_copy, sealed)
    before = snapshot(index_copy)
    said = attempt(entry, index_copy, tmp_path, capsys)
    assert f"{name} changed since the folder was sealed" in said, said
    assert "fashrec index seal" in said  # and what to do about it
    assert snapshot(index_copy) == before  # nothing laundered: no update wrote a new seal
    assert not (tmp_path / "space").exists()


@pytest.mark.parametrize("change", ["delete the seal", "add a file", "remove a photo", "a photo becomes a link"])
def test_a_missing_seal_and_added_missing_or_linked_files_are_refused(index_copy, tmp_path, capsys, change):
    catalogue = json.loads((index_copy / "catalogue.json").read_text())
    photo = index_copy / next(iter(catalogue["photos"].values()))
    if change == "delete the seal":
        (index_copy / "integrity.json").unlink()
        words = "no integrity.json"
    elif change == "add a file":
        shutil.copy(SAMPLE[0], index_copy / "photos" / "extra.jpg")
        words = "photos/extra.jpg was added"
    elif change == "remove a photo":
        photo.unlink()
        words = f"{photo.relative_to(index_copy).as_posix()} is missing"
    else:
        photo.unlink()
        photo.symlink_to("/etc/passwd")
        words = "is a link or a special file"
    for entry in ("python opener", "index add", "index remove"):
        assert words in attempt(entry, index_copy, tmp_path / entry.replace(" ", "-"), capsys)


def test_a_reseal_is_the_only_way_to_accept_a_changed_folder(index_copy, tmp_path, capsys):
    ids = json.loads((index_copy / "ids.json").read_text())
    first_photo = open_index(index_copy).photos[ids[1]].read_bytes()
    tamper(index_copy, "catalogue.json")  # say the shop really meant to swap the first two photos
    for entry in ("python opener", "recommend", "index remove"):
        attempt(entry, index_copy, tmp_path / entry.replace(" ", "-"), capsys)
    assert main(["index", "seal", str(index_copy)]) == 0
    said = capsys.readouterr().out
    assert "catalogue.json  sha256" in said and "embeddings.safetensors  sha256" in said
    assert "photos/: 40 photo(s), exactly the ones catalogue.json lists" in said
    opened = open_index(index_copy)
    hashes = json.loads((index_copy / "integrity.json").read_text())["sha256"]
    assert sorted(hashes) == folder_files(index_copy) and len(hashes) == 5 + 40
    assert opened.photos[ids[0]].read_bytes() == first_photo  # the swap, as vouched for
    assert main(["index", "remove", "--index", str(index_copy), "--ids", str(_ids_file(tmp_path, ids[7]))]) == 0
    assert ids[7] not in open_index(index_copy).index.ids  # updates work again, on the folder as vouched for


def _ids_file(tmp_path: Path, *ids) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


@pytest.mark.parametrize("where", ["/etc/shadow", "../../../../etc/passwd", "photos/../catalogue.json",
                                   "index.json"])
def test_a_catalogue_can_name_only_its_own_photos_even_resealed(index_copy, capsys, where):
    catalogue = json.loads((index_copy / "catalogue.json").read_text())
    first = next(iter(catalogue["photos"]))
    catalogue["photos"][first] = where
    (index_copy / "catalogue.json").write_text(json.dumps(catalogue))
    assert main(["index", "seal", str(index_copy)]) == 1  # a seal vouches for files, never for serving others
    err = capsys.readouterr().err
    assert f"the photo of '{first}' must be a file under photos/" in err or "photos/ holds 1 file(s)" in err, err
    with pytest.raises(ValueError, match="catalogue.json changed"):
        open_index(index_copy)


def test_a_photo_the_catalogue_does_not_list_cannot_be_sealed_in(index_copy, capsys):
    (index_copy / "photos" / "00").mkdir(exist_ok=True)
    shutil.copy(SAMPLE[0], index_copy / "photos" / "00" / "stray.jpg")
    assert main(["index", "seal", str(index_copy)]) == 1
    assert "photos/00/stray.jpg" in capsys.readouterr().err


def test_same_weights_other_padding_is_refused(small_index, tmp_path):
    checkpoint = tmp_path / "paper-ae-white"
    shutil.copytree(fashrec.pretrained.path("paper-ae"), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["preprocess"]["pad_value"] = 1.0
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"other preprocessing \(pad_value 0\.0\).*\(pad_value 1\.0\)"):
        open_index(small_index, str(checkpoint))


def test_ids_that_disagree_with_the_metadata_are_refused_even_resealed(index_copy, capsys):
    tamper(index_copy, "ids.json")
    assert main(["index", "seal", str(index_copy)]) == 1  # the rows would be captioned with another product
    assert "ids.json and the metadata's article_id disagree" in capsys.readouterr().err


def test_the_opener_gives_the_recorded_model_with_its_options_and_checks_a_given_one(small_index, untrained_ae_dir):
    opened = open_index(small_index)
    assert opened.model_ref == "paper-ae" and opened.catalogue.model == "paper-ae"
    assert type(opened.model).__name__ == "ConvAE" and not opened.model.training
    x = fashrec.preprocess_batch([opened.photos[opened.index.ids[4]]], opened.model.preprocess_config)
    ids, dist = opened.index.search(opened.model.embed(x).numpy(), k=1)
    assert ids[0] == [opened.index.ids[4]] and dist[0][0] < 1e-6
    assert open_index(small_index, fashrec.from_pretrained("paper-ae")).model is not None  # a loaded, matching model
    with pytest.raises(ValueError, match="weights_hash.*it records the model 'paper-ae'"):
        open_index(small_index, str(untrained_ae_dir))


def test_the_committed_space_index_is_sealed_and_matches_its_model():
    opened = open_index(REPO_ROOT / "space" / "index")
    assert opened.catalogue.model == fashrec.pretrained.DEFAULT and opened.model is not None
    assert sorted(f.relative_to(opened.folder).as_posix() for f in opened.photos.values()) == \
        sorted(set(folder_files(opened.folder)) - {"catalogue.json", "embeddings.safetensors", "ids.json",
                                                   "index.json", "metadata.parquet"})
    assert all(f.stat().st_size < 20_000 for f in opened.photos.values())  # thumbnails, not photos


def test_the_opener_says_which_focus_finds_other_colours_of_a_design(small_index):
    """The design focus is data: the one the model's config names (recorded in index.json), never a name
    fixed in code; a model taught no designs (the paper's AE) has none, and neither has an index without
    that focus."""
    from fashrec.index.focus import design_focus

    opened = open_index(REPO_ROOT / "space" / "index")
    named = opened.record["model"]["config"]["design_focus"]
    assert named and opened.design_focus == named == opened.model.design_focus
    assert named in opened.index.focuses and named != "overall"
    assert open_index(small_index).design_focus is None
    assert design_focus(opened.model, ["overall", "colour"]) is None


@pytest.mark.parametrize("weight", [1.7e308, 1e300, 1e7, float("inf")])
def test_huge_focus_weights_are_refused_by_the_index(weight):
    from fashrec.index import SimilarityIndex

    rng = np.random.default_rng(0)
    index = SimilarityIndex({"overall": rng.random((30, 4)), "shape": rng.random((30, 4))}, [str(i) for i in range(30)])
    with pytest.raises(ValueError, match="focus weight"):
        index.search_ids(["0"], k=3, focus={"overall": weight, "shape": 1.0})


def test_focus_text_is_read_once_for_the_cli_and_the_space():
    from fashrec.index import parse_focus

    assert parse_focus("shape") == "shape" and parse_focus("") == "overall" and parse_focus(None, "colour") == "colour"
    assert parse_focus("shape=2, colour=1") == {"shape": 2.0, "colour": 1.0}
    assert parse_focus({"shape": 1}) == {"shape": 1}
    with pytest.raises(ValueError, match="must look like 'shape=2, colour=1'"):
        parse_focus("shape=two")


def test_the_largest_allowed_weights_keep_exclude_and_where():
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


def test_an_index_of_an_older_fashrec_is_refused_with_what_to_do(index_copy):
    seal = json.loads((index_copy / "integrity.json").read_text())
    seal["format_version"] = 1
    (index_copy / "integrity.json").write_text(json.dumps(seal))
    with pytest.raises(ValueError, match="seal of an older fashrec.*rebuild the index with 'fashrec embed'"):
        open_index(index_copy)
