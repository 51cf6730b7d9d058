"""``fashrec embed`` -> ``fashrec recommend``: same neighbours as the index itself, resume, grid, errors."""
import json
import shutil

import datasets

import numpy as np
import pytest
import torch
from PIL import Image

import fashrec
from fashrec.cli import main
from fashrec.index.folder import open_index
from fashrec.jobs.catalogue_source import open_catalogue
from fashrec.jobs.embed_job import embed_catalogue
from fashrec.eval.neighbour_grid import grid_size
from fashrec.index import SimilarityIndex

N = 40  # photos of the embedded sample used here: three shards of 16, 16 and 8


@pytest.fixture(scope="module")
def index_dir(untrained_ae_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("indexes") / "sample-index"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", str(N), "--out", str(out),
                 "--shard-size", "16", "--batch-size", "8"]) == 0
    return out


def recommend_json(capsys, *args):
    assert main(["recommend", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_recommend_item_matches_the_index_built_directly(index_dir, untrained_ae_dir, capsys):
    model = fashrec.from_pretrained(untrained_ae_dir)
    ds = open_catalogue("sample", n=N)
    x = fashrec.preprocess_batch(ds["image"], model.preprocess_config)  # decoded PIL images
    direct = SimilarityIndex(model.embed(x), list(ds["article_id"]))
    item = direct.ids[7]
    for metric in ("cosine", "cityblock"):
        ids, dist = direct.search_ids([item], k=5, metric=metric)
        got = recommend_json(capsys, "--index", str(index_dir), "--item", item, "--k", "5", "--metric", metric)
        assert [n["id"] for n in got["neighbours"]] == ids[0]
        assert [n["rank"] for n in got["neighbours"]] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([n["distance"] for n in got["neighbours"]], dist[0], rtol=1e-5, atol=1e-7)
    # the table names every neighbour with its product name, type and colour
    assert main(["recommend", "--index", str(index_dir), "--item", item, "--k", "3", "--metric", "cityblock"]) == 0
    table = capsys.readouterr().out
    meta = SimilarityIndex.load(index_dir).metadata.set_index("article_id")
    for neighbour in ids[0][:3]:
        line = next(line for line in table.splitlines() if neighbour in line)
        assert meta.loc[neighbour, "prod_name"] in line and meta.loc[neighbour, "colour_group_name"] in line


def test_index_records_model_metadata_and_photos(index_dir, untrained_ae_dir):
    index = SimilarityIndex.load(index_dir, model=fashrec.from_pretrained(untrained_ae_dir))  # same weights: accepted
    assert len(index) == N and index.dims == {"overall": 2048}
    for column in ("article_id", "prod_name", "product_type_name", "colour_group_name", "graphical_appearance_name"):
        assert column in index.metadata_columns
    assert all(isinstance(v, str) for v in index.metadata["product_type_name"])
    opened = open_index(index_dir)
    assert opened.catalogue.model == str(untrained_ae_dir.resolve())
    assert [s["data"] for s in opened.catalogue.sources] == ["sample"]  # provenance; the photos are in the folder
    ds = open_catalogue("sample", n=N)
    sample = dict(zip(ds["article_id"], ds.cast_column("image", datasets.Image(decode=False))["image"]))
    for item, photo in opened.photos.items():  # the sample's 85x128 JPEGs are kept byte for byte
        assert photo.is_relative_to(index_dir / "photos") and photo.read_bytes() == open(sample[item]["path"], "rb").read()
    assert not (index_dir.parent / f"{index_dir.name}.partial").exists()  # the work folder is gone


def test_where_filters_and_image_queries_use_the_recorded_model(index_dir, capsys):
    index = SimilarityIndex.load(index_dir)
    colour = index.metadata["colour_group_name"].value_counts().index[0]
    got = recommend_json(capsys, "--index", str(index_dir), "--item", index.ids[0], "--k", "2",
                         "--where", f"colour_group_name={colour}")
    assert all(n["colour"] == colour for n in got["neighbours"])
    # a catalogue photo as --image finds itself first (distance ~0), with the model recorded in the index
    photo = str(open_index(index_dir).photos[index.ids[3]])
    got = recommend_json(capsys, "--index", str(index_dir), "--image", photo, "--k", "3", "--metric", "euclidean")
    assert got["neighbours"][0]["id"] == index.ids[3] and got["neighbours"][0]["distance"] < 1e-3


def test_grid_png_has_the_expected_size(index_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    index = SimilarityIndex.load(index_dir)
    assert main(["recommend", "--index", str(index_dir), "--item", index.ids[1], "--k", "4", "--grid", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == grid_size(4)
        # the query tile holds a photo, not the grey 'no image' placeholder
        tile = np.asarray(im.convert("RGB"))[10:100, 10:90]
        assert not (tile == 200).all()


def test_embed_resumes_after_a_crash_and_equals_a_clean_run(untrained_ae_dir, index_dir, tmp_path):
    model = fashrec.from_pretrained(untrained_ae_dir)
    out = tmp_path / "resumed"

    class Crash(Exception):
        pass

    def crash_after_first(i):
        if i == 0:
            raise Crash

    with pytest.raises(Crash):
        embed_catalogue(model=model, data="sample", n=N, out=out, shard_size=16, batch_size=8, progress=False,
                        on_shard=crash_after_first)
    partial = tmp_path / "resumed.partial"
    assert sorted(p.name for p in (partial / "shards").iterdir()) == ["00000.safetensors"] and not out.exists()

    done = []
    embed_catalogue(model=model, data="sample", n=N, out=out, shard_size=16, batch_size=8, progress=False,
                    on_shard=done.append)
    assert done == [1, 2]  # shard 0 was skipped
    resumed, clean = SimilarityIndex.load(out), SimilarityIndex.load(index_dir)
    assert resumed.ids == clean.ids
    np.testing.assert_array_equal(resumed.embeddings(), clean.embeddings())
    assert not partial.exists()


def test_unfinished_job_of_another_model_is_refused(untrained_ae_dir, tmp_path):
    out = tmp_path / "idx"

    def stop(i):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_catalogue(model=fashrec.from_pretrained(untrained_ae_dir), data="sample", n=N, out=out, shard_size=16,
                        progress=False, on_shard=stop)
    torch.manual_seed(1)
    other = fashrec.ConvAE()
    with pytest.raises(ValueError, match="different model_weights_hash.*--restart"):
        embed_catalogue(model=other, data="sample", n=N, out=out, shard_size=16, progress=False)
    index = embed_catalogue(model=other, data="sample", n=N, out=out, shard_size=16, progress=False, restart=True)
    assert len(index) == N
    # an index is refused by a model it was not built with
    with pytest.raises(ValueError, match="weights_hash"):
        SimilarityIndex.load(out, model=fashrec.from_pretrained(untrained_ae_dir))


def test_a_plain_folder_of_images_is_a_catalogue(untrained_ae_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))[:6]
    for i, p in enumerate(src):
        shutil.copy(p, photos / f"shop-{i}.jpg")
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(photos), "--out", str(out)]) == 0
    got = recommend_json(capsys, "--index", str(out), "--item", "shop-2", "--k", "5")
    assert sorted(n["id"] for n in got["neighbours"]) == sorted(f"shop-{i}" for i in range(6) if i != 2)
    assert got["neighbours"][0]["name"] is None  # no metadata: no names, but no failure either
    grid = tmp_path / "g.png"
    assert main(["recommend", "--index", str(out), "--item", "shop-2", "--k", "2", "--grid", str(grid)]) == 0
    with Image.open(grid) as im:
        assert im.size == grid_size(2)


@pytest.mark.parametrize("args, message", [
    (["--item", "0000000000"], "id '0000000000' is not in this index"),
    (["--item", "{first}", "--where", "colour_group_name"], "--where expects COLUMN=VALUE"),
    (["--item", "{first}", "--where", "nope=1"], "unknown metadata column 'nope'"),
    (["--item", "{first}", "--focus", "shape"], "unknown focus 'shape'"),
    (["--item", "{first}", "--k", "0"], "--k must be a positive integer"),
    (["--item", "{first}", "--k", "40"], "k=40 but only 39 items are left"),
])
def test_bad_recommend_arguments_give_one_clear_line(index_dir, capsys, args, message):
    first = SimilarityIndex.load(index_dir).ids[0]
    args = [a.replace("{first}", first) for a in args]
    assert main(["recommend", "--index", str(index_dir), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_embed_and_index_paths(untrained_ae_dir, index_dir, tmp_path, capsys):
    assert main(["recommend", "--index", str(tmp_path / "missing"), "--item", "x"]) == 1
    assert "no index there" in capsys.readouterr().err
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--out", str(index_dir)]) == 1
    assert "already exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --item and --image together: argparse refuses
        main(["recommend", "--index", str(index_dir), "--item", "a", "--image", "b.jpg"])


def test_focus_weights_on_the_command_line_rank_like_the_index(tmp_path, capsys):
    """--focus takes a focus of the index or weights 'a=2, b=1' (read by fashrec.index.parse_focus, as the
    Space reads them); --image embeds each weighted focus with the recorded model."""
    from tests.test_embed_fast import tiny_cnn

    tiny_cnn().save_pretrained(tmp_path / "cnn")
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(tmp_path / "cnn"), "--data", "sample", "--n", "30", "--out", str(out)]) == 0
    opened = open_index(out)
    index, model = opened.index, opened.model
    first, second = index.focuses[1], index.focuses[2]
    weights = {first: 2.0, second: 1.0}
    text = f"{first}=2, {second}=1"
    got = recommend_json(capsys, "--index", str(out), "--item", index.ids[4], "--k", "5", "--focus", text)
    assert [n["id"] for n in got["neighbours"]] == index.search_ids([index.ids[4]], k=5, focus=weights)[0][0]
    assert got["focus"] == text
    photo = opened.photos[index.ids[9]]
    x = fashrec.preprocess_batch([photo], model.preprocess_config)
    expected, _ = index.search({f: model.embed(x, focus=f).numpy() for f in weights}, k=5, focus=weights)
    got = recommend_json(capsys, "--index", str(out), "--image", str(photo), "--k", "5", "--focus", text)
    assert [n["id"] for n in got["neighbours"]] == expected[0] and got["neighbours"][0]["id"] == index.ids[9]
    assert main(["recommend", "--index", str(out), "--item", index.ids[4], "--focus", "smell=1"]) == 1
    assert "unknown focus 'smell'" in capsys.readouterr().err
