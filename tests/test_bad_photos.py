"""A bad photo is skipped, never fatal: decompression bombs (a 20000x20000 PNG of a few kB, JPEG headers
claiming 20000x20000 or 9000x9000) and undecodable files are left out and recorded with their reason by
``load_hm``, ``fashrec embed`` and ``fashrec index add|replace``, and the ids recorded are the right ones:
every kept row's vector and photo is its own photo's. The tensor cache, whose rows must stay aligned with
their labels, refuses them in one error naming each; ``load_hm`` (which feeds it) has left them out."""
from __future__ import annotations

import io
import json
import shutil
import struct

import datasets
import numpy as np
import pytest
from PIL import Image

import fashrec
from fashrec.cli import main
from fashrec.data.preprocess import ImageError
from fashrec.index.folder import open_index

SAMPLE = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))
BOMB = "refused as a possible decompression bomb"


def claims_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(jpeg)
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def broken_png(photo) -> bytes:
    """A PNG whose header is fine (the loader's cheap check passes) and whose pixels cannot be decoded."""
    buffer = io.BytesIO()
    Image.open(photo).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[len(data) // 2:len(data) // 2 + 200] = bytes(200)
    return bytes(data)


def shop(folder, names, *, offset=0):
    """A plain folder of photos named ``names``; bad ones by their name: bomb-png, bomb-header, big-header,
    broken (ids are the file stems)."""
    folder.mkdir(parents=True)
    expected = {}
    for n, name in enumerate(names):
        good = SAMPLE[offset + n]
        if name.startswith("bomb-png"):
            buffer = io.BytesIO()
            Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400 Mpx in a few kB
            (folder / f"{name}.png").write_bytes(buffer.getvalue())
        elif name.startswith("bomb-header"):
            (folder / f"{name}.jpg").write_bytes(claims_size(good.read_bytes(), 20_000, 20_000))
        elif name.startswith("big-header"):
            (folder / f"{name}.jpg").write_bytes(claims_size(good.read_bytes(), 9_000, 9_000))
        elif name.startswith("broken"):
            (folder / f"{name}.png").write_bytes(broken_png(good))
        else:
            shutil.copy(good, folder / f"{name}.jpg")
            expected[name] = good
    return folder, expected


NAMES = ["a0", "bomb-png", "a1", "bomb-header", "a2", "big-header", "broken", "a3"]
REASONS = {"bomb-png": BOMB, "bomb-header": BOMB, "big-header": f"{BOMB} (9000x9000 = 81,000,000 pixels",
           "broken": "broken.png"}


def check_rows(folder, expected: dict, model) -> None:
    """Each id's vector and served photo are made from that id's own photo."""
    opened = open_index(folder)
    rows = [opened.index.position(i) for i in expected]
    x = fashrec.preprocess_batch(list(expected.values()), model.preprocess_config)
    np.testing.assert_allclose(opened.index.embeddings()[rows], model.embed(x).numpy(), rtol=1e-5, atol=1e-6)
    for item, photo in expected.items():
        assert opened.photos[item].read_bytes() == photo.read_bytes()


def test_load_hm_skips_bombs_with_their_reason(tmp_path):
    from fashrec.data.hm_dataset import load_report

    folder, expected = shop(tmp_path / "shop", NAMES)
    with pytest.warns(UserWarning, match="images that cannot be decoded: 3"):
        ds = fashrec.load_hm(folder, split=False, progress=False)
    assert sorted(ds["article_id"]) == sorted([*expected, "broken"])  # the broken PNG's header is fine
    report = load_report(ds)
    assert sorted(report["skipped"]["undecodable"]) == ["big-header", "bomb-header", "bomb-png"]
    assert all(REASONS[i] in report["why"][i] for i in report["skipped"]["undecodable"])


def test_embed_skips_and_records_the_right_ids(untrained_ae_dir, tmp_path, capsys):
    folder, expected = shop(tmp_path / "shop", NAMES)
    out = tmp_path / "idx"
    with pytest.warns(UserWarning):
        assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(folder), "--out", str(out),
                     "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped 4 photo(s) that cannot be used" in err
    skipped = {s["id"]: s["reason"] for s in open_index(out).skipped}
    assert sorted(skipped) == sorted(REASONS) and all(REASONS[i] in skipped[i] for i in REASONS)
    assert open_index(out).index.ids == sorted(expected)
    check_rows(out, expected, fashrec.from_pretrained(untrained_ae_dir))


def test_embed_strict_refuses_a_bomb_in_one_line(untrained_ae_dir, tmp_path, capsys):
    folder, _ = shop(tmp_path / "shop", ["a0", "bomb-header", "a1"])
    with pytest.warns(UserWarning):
        assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(folder), "--out", str(tmp_path / "i"),
                     "--strict"]) == 1
    err = capsys.readouterr().err
    assert "bomb-header" in err and BOMB in err and "Traceback" not in err and not (tmp_path / "i").exists()


def test_index_add_skips_and_records_the_right_ids(untrained_ae_dir, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", "6", "--out", str(out)]) == 0
    before = open_index(out).index.ids
    folder, expected = shop(tmp_path / "shop", NAMES, offset=100)
    with pytest.warns(UserWarning):
        assert main(["index", "add", "--index", str(out), "--data", str(folder), "--batch-size", "3"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "added 4 photo(s)" in err and "skipped 4 photo(s)" in err
    opened = open_index(out)
    assert opened.index.ids == before + sorted(expected)
    skipped = {s["id"]: s["reason"] for s in opened.skipped}
    assert sorted(skipped) == sorted(REASONS) and all(REASONS[i] in skipped[i] for i in REASONS)
    check_rows(out, expected, fashrec.from_pretrained(untrained_ae_dir))


def test_index_replace_keeps_an_item_whose_new_photo_is_a_bomb(untrained_ae_dir, tmp_path, capsys):
    first = tmp_path / "first"
    first.mkdir()
    for n, name in enumerate(["a0", "a1", "bomb-header", "broken"]):  # good photos, at first
        shutil.copy(SAMPLE[300 + n], first / f"{name}.jpg")
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(first), "--out", str(out)]) == 0
    kept = open_index(out)
    reshot, expected = shop(tmp_path / "reshot", ["a0", "bomb-header", "broken", "a1"], offset=400)
    with pytest.warns(UserWarning):
        assert main(["index", "replace", "--index", str(out), "--data", str(reshot)]) == 0
    err = capsys.readouterr().err
    assert "replaced 2 photo(s)" in err and "skipped 2 photo(s)" in err and "Traceback" not in err
    after = open_index(out)
    assert after.index.ids == kept.index.ids == ["a0", "a1", "bomb-header", "broken"]
    for item in ("bomb-header", "broken"):  # left as they were: their vector and their photo
        np.testing.assert_array_equal(after.index.embeddings()[after.index.position(item)],
                                      kept.index.embeddings()[kept.index.position(item)])
        assert after.photos[item].read_bytes() == kept.photos[item].read_bytes()
    check_rows(out, expected, fashrec.from_pretrained(untrained_ae_dir))  # a0 and a1: the new photos
    assert after.skipped == []  # a replace records no skips: the items are still there


def test_the_tensor_cache_names_every_bomb_and_takes_what_load_hm_kept(tmp_path):
    from fashrec.data.tensor_cache import dataset_tensor

    folder, expected = shop(tmp_path / "shop", ["a0", "bomb-header", "a1", "big-header"])
    with pytest.warns(UserWarning):
        ds = fashrec.load_hm(folder, split=False, progress=False)
    x = dataset_tensor(ds, cache_dir=tmp_path / "cache", progress=False)
    assert x.shape[0] == 2 and np.allclose(x[1].numpy(), fashrec.preprocess(expected["a1"]).numpy())
    files = sorted(str(p) for p in folder.iterdir())
    raw = datasets.Dataset.from_dict({"image": files, "article_id": [p.rsplit("/", 1)[1][:-4] for p in files]},
                                     features=datasets.Features({"image": datasets.Image(),
                                                                 "article_id": datasets.Value("string")}))
    with pytest.raises(ImageError) as err:
        dataset_tensor(raw, cache_dir=tmp_path / "cache", progress=False)
    message = str(err.value)
    assert "2 image(s) cannot be decoded" in message and message.count(BOMB) == 2
    assert "bomb-header" in message and "big-header" in message
    json.dumps(message)  # one plain message, no traceback inside
