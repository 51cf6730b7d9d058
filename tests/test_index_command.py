"""``fashrec index add / remove / replace`` on index folders: only new photos are embedded, duplicates and
another model are refused, a writer killed mid-update leaves the old or the new index, a full disk is
one line, and the Space serves the updated folder after a restart."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fashrec
from fashrec.cli import main
from fashrec.index import SimilarityIndex
from fashrec.index.folder import open_index
import fashrec.jobs.embed_stream
from fashrec.jobs import index_update
from tests.conftest import REPO_ROOT

SAMPLE = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))


@pytest.fixture()
def index_dir(untrained_ae_dir, tmp_path):
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", "20", "--out", str(out)]) == 0
    return out


def photo_folder(path, sources, names=None):
    path.mkdir()
    for i, src in enumerate(sources):
        shutil.copy(src, path / f"{names[i] if names else src.stem}.jpg")
    return path


def new_photos(index, tmp_path, n=3, name="new"):
    """``n`` sample photos that are not in ``index`` yet, in a plain folder (ids = file stems)."""
    fresh = [p for p in SAMPLE if p.stem not in set(index.ids)][:n]
    return photo_folder(tmp_path / name, fresh)


def test_add_embeds_only_the_new_photos_and_remove_and_replace_follow(index_dir, untrained_ae_dir, tmp_path, capsys,
                                                                          monkeypatch):
    before = SimilarityIndex.load(index_dir)
    folder = new_photos(before, tmp_path)
    embedded = []
    real = fashrec.jobs.embed_stream.embed_sources
    monkeypatch.setattr(fashrec.jobs.embed_stream, "embed_sources",
                        lambda model, sources, **kw: embedded.append(len(sources)) or real(model, sources, **kw))
    assert main(["index", "add", "--index", str(index_dir), "--data", str(folder)]) == 0
    assert embedded == [3]  # the 20 photos already in the index were not embedded again
    after = SimilarityIndex.load(index_dir)
    new_ids = sorted(p.stem for p in folder.iterdir())
    assert after.ids == before.ids + new_ids
    np.testing.assert_array_equal(after.embeddings()[:20], before.embeddings())
    model = fashrec.from_pretrained(untrained_ae_dir)
    x = fashrec.preprocess_batch(sorted(folder.iterdir()), model.preprocess_config)
    np.testing.assert_allclose(after.embeddings()[20:], model.embed(x).numpy(), rtol=1e-5, atol=1e-6)
    assert after.metadata["prod_name"].isna().tolist() == [False] * 20 + [True] * 3  # a folder has no labels
    opened = open_index(index_dir, model)  # sealed again, ids and metadata agree, the model matches
    assert list(opened.photos) == after.ids and all(p.is_file() for p in opened.photos.values())
    copies = [opened.photos[i] for i in new_ids]  # the folder's own copies of the new photos
    assert [p.read_bytes() for p in copies] == [(folder / f"{i}.jpg").read_bytes() for i in new_ids]
    assert main(["recommend", "--index", str(index_dir), "--item", new_ids[0], "--k", "3", "--json"]) == 0
    assert "added 3 photo(s)" in capsys.readouterr().err

    (tmp_path / "gone.txt").write_text(f"# discontinued\n{before.ids[4]}\n\n{new_ids[1]}\n")
    assert main(["index", "remove", "--index", str(index_dir), "--ids", str(tmp_path / "gone.txt")]) == 0
    removed = SimilarityIndex.load(index_dir, model=model)
    assert removed.ids == [i for i in after.ids if i not in (before.ids[4], new_ids[1])]
    assert list(json.loads((index_dir / "catalogue.json").read_text())["photos"]) == sorted(removed.ids)
    assert list(open_index(index_dir, model).photos) == removed.ids

    reshot = photo_folder(tmp_path / "reshot", [SAMPLE[-1]], names=[before.ids[0]])  # another photo, same id
    assert main(["index", "replace", "--index", str(index_dir), "--data", str(reshot)]) == 0
    replaced = SimilarityIndex.load(index_dir)
    assert replaced.ids == removed.ids
    np.testing.assert_allclose(replaced.embeddings()[0], model.embed(fashrec.preprocess_batch([SAMPLE[-1]]))[0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(replaced.embeddings()[1:], removed.embeddings()[1:])
    assert open_index(index_dir).photos[before.ids[0]].read_bytes() == SAMPLE[-1].read_bytes()


def test_duplicates_and_unknown_ids_are_refused_and_change_nothing(index_dir, tmp_path, capsys):
    before = (index_dir / "embeddings.safetensors").read_bytes()
    ids = SimilarityIndex.load(index_dir).ids
    dup = photo_folder(tmp_path / "dup", [SAMPLE[0]], names=[ids[2]])
    assert main(["index", "add", "--index", str(index_dir), "--data", str(dup)]) == 1
    assert f"already in {index_dir}" in capsys.readouterr().err
    unknown = photo_folder(tmp_path / "unknown", [SAMPLE[0]], names=["not-there"])
    assert main(["index", "replace", "--index", str(index_dir), "--data", str(unknown)]) == 1
    assert "not in" in capsys.readouterr().err
    (tmp_path / "ids.txt").write_text("not-there\n")
    assert main(["index", "remove", "--index", str(index_dir), "--ids", str(tmp_path / "ids.txt")]) == 1
    assert "not in the index" in capsys.readouterr().err
    assert (index_dir / "embeddings.safetensors").read_bytes() == before


def test_an_update_with_another_model_or_preprocessing_is_refused(index_dir, untrained_ae_dir, tmp_path, capsys):
    import torch

    folder = new_photos(SimilarityIndex.load(index_dir), tmp_path)
    torch.manual_seed(3)
    fashrec.ConvAE().save_pretrained(tmp_path / "other-weights")
    shutil.copytree(untrained_ae_dir, tmp_path / "other-preprocessing")  # the very weights, other padding
    config = json.loads((tmp_path / "other-preprocessing" / "config.json").read_text())
    config["preprocess"]["pad_value"] = 1.0
    (tmp_path / "other-preprocessing" / "config.json").write_text(json.dumps(config))
    for other, message in (("other-weights", "weights_hash"), ("other-preprocessing", "other preprocessing")):
        assert main(["index", "add", "--index", str(index_dir), "--data", str(folder),
                     "--model", str(tmp_path / other)]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert len(SimilarityIndex.load(index_dir)) == 20


def test_an_update_must_keep_the_flip_tta_choice(tmp_path):
    from tests.test_embed_fast import tiny_cnn

    tiny_cnn().save_pretrained(tmp_path / "cnn")
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(tmp_path / "cnn"), "--data", "sample", "--n", "8", "--out", str(out),
                 "--no-flip-tta"]) == 0
    folder = new_photos(SimilarityIndex.load(out), tmp_path, n=1)
    model = fashrec.from_pretrained(tmp_path / "cnn")  # flip_tta=True, as its config says
    with pytest.raises(ValueError, match="flip_tta False vs True"):
        index_update.add_photos(out, folder, model=model, progress=False)
    assert index_update.add_photos(out, folder, progress=False)["n_items"] == 9  # the recorded model and options


def test_a_full_disk_during_an_update_is_one_line_and_the_old_index_stays(index_dir, tmp_path, capsys, monkeypatch):
    before = SimilarityIndex.load(index_dir)
    folder = new_photos(before, tmp_path)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fashrec.atomic, "save_safetensors_atomic", no_space)
    assert main(["index", "add", "--index", str(index_dir), "--data", str(folder)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fashrec ")]
    assert len(lines) == 1 and "no space left on device" in lines[0] and f"index at {index_dir} is unchanged" in lines[0]
    assert "Traceback" not in err
    assert SimilarityIndex.load(index_dir).ids == before.ids
    assert sorted(p.name for p in index_dir.parent.iterdir() if p.name.startswith(".idx.")) == [".idx.lock"]


WRITER = """
import sys
import numpy as np
from fashrec.index.folder import open_index, writing_folder
folder = sys.argv[1]
extra = np.load(sys.argv[2])
print("ready", flush=True)
while True:  # toggle one item in and out, writing the whole folder each time, saying where it is
    opened = open_index(folder)
    index = opened.index
    index.remove(["extra"]) if "extra" in index.ids else index.add(extra, ["extra"])
    with writing_folder(folder) as writer:
        writer.carry_photos(opened, [i for i in index.ids if i != "extra"])
        print("staging", flush=True)  # the new folder half built beside the old one
        writer.add_photos({"extra": sys.argv[3]}, progress=False)
        writer.finish(index, model=None, model_ref=None, sources=[], skipped=[])
        print("swapped", flush=True)  # the new folder in place, its work folder not yet removed
"""


def test_a_writer_killed_mid_update_leaves_the_old_or_the_new_index(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 256)).astype(np.float32)  # 3 MB of vectors: a write takes a while
    extra = rng.normal(size=(1, 256)).astype(np.float32)
    np.save(tmp_path / "extra.npy", extra)
    ids = [f"i{n}" for n in range(3000)]
    folder = tmp_path / "idx"
    from fashrec.index.folder import writing_folder

    with writing_folder(folder) as writer:  # one photo stands for all 3,000 items
        writer.add_photos({i: SAMPLE[0] for i in ids}, progress=False)
        writer.finish(SimilarityIndex(base, ids, {"group": ["g"] * 3000}), model=None, model_ref=None, sources=[],
                      skipped=[])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for trial in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(tmp_path / "extra.npy"),
                                   str(SAMPLE[1])], env=env, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        # killed as soon as it says it reached a point: half built (even trials) or just swapped (odd), after
        # 1, 2 or 3 whole writes; the kill lands wherever the writer has got to by then
        point = ("staging", "swapped")[trial % 2]
        for _ in range(trial // 2 + 1):
            while (line := writer.stdout.readline().strip()) != point:
                assert line in ("staging", "swapped"), line
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        index = open_index(folder).index  # opens, whole and as sealed: the old folder or the new one
        assert index.ids in (ids, ids + ["extra"])
        np.testing.assert_array_equal(index.embeddings()[:3000], base)
        if len(index) == 3001:
            np.testing.assert_array_equal(index.embeddings()[3000:], extra)
    # the next update clears what the killed writers left beside the folder
    index_update.remove_items(folder, ["i7"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.")) == [".idx.lock"]


def test_replace_dir_swaps_in_one_step_on_linux(tmp_path, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("RENAME_EXCHANGE is Linux's")
    from fashrec.atomic import replace_dir

    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "old").write_text("old")
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "new").write_text("new")
    monkeypatch.setattr(os, "replace", lambda *a: pytest.fail("two renames: the target would be missing in between"))
    replace_dir(tmp_path / "staging", tmp_path / "target")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["new"] and not (tmp_path / "staging").exists()


@pytest.mark.slow
def test_the_space_serves_an_updated_index_after_a_restart(tmp_path):
    sys.path.insert(0, str(REPO_ROOT))
    from space.recommender import Recommender

    served = tmp_path / "index"
    shutil.copytree(REPO_ROOT / "space" / "index", served)
    hm = REPO_ROOT.parent / "shared" / "data" / "hm" / "images"
    if not hm.is_dir():
        pytest.skip("needs the shared H&M photos")
    before = Recommender.open(served, recon_model="none")
    photos = [p for p in sorted(hm.rglob("*.jpg")) if p.stem not in set(before.ids)][:2]
    folder = photo_folder(tmp_path / "new", photos)
    assert main(["index", "add", "--index", str(served), "--data", str(folder)]) == 0
    after = Recommender.open(served, recon_model="none")  # what a restarted Space does
    assert after.ids == before.ids + [p.stem for p in photos]
    hits = after.recommend_image(str(photos[0]), k=3)
    assert hits[0].article_id == photos[0].stem and hits[0].distance < 1e-5
    assert [h.article_id for h in after.recommend_item(photos[1].stem, k=3)]
    assert all(Path(h.image).parent.parent == served / "photos" for h in hits)  # the folder's own photos
