"""The fast embedding path: BatchNorm folding, the threaded decoder, flip TTA as an option, photos that
cannot be decoded, and a full disk. References: ``model.embed`` and ``fashrec.preprocess_batch``."""
import errno
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import fashrec
from fashrec.cli import main
from fashrec.jobs.embed_stream import decode_batches, embed_sources
from fashrec.index.folder import open_index
from fashrec.models.hub_model import weights_hash
from fashrec.models.inference import for_inference
from fashrec.index import SimilarityIndex

CLASSES = {
    "product_type_name": ["Dress", "Trousers", "T-shirt"],
    "colour_group_name": ["Black", "Red", "White", "Blue"],
    "graphical_appearance_name": ["Solid", "Stripe"],
}


def sample_photos(n):
    return sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))[:n]


def tiny_cnn(seed=0):
    """A small MultiTaskCNN whose BatchNorms hold non-trivial running statistics."""
    torch.manual_seed(seed)
    model = fashrec.MultiTaskCNN(classes=CLASSES, widths=(4, 8, 8, 8), head_dim=8, colour_histogram_bins=2)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-cnn")
    tiny_cnn().save_pretrained(folder)
    return folder


@pytest.fixture()
def shop(tmp_path):
    """A plain folder of six good photos, one PNG that passes the loader's check but cannot be decoded,
    and one truncated JPEG that the loader's check already catches."""
    folder = tmp_path / "shop"
    folder.mkdir()
    for i, p in enumerate(sample_photos(6)):
        shutil.copy(p, folder / f"good-{i}.jpg")
    buf = io.BytesIO()
    Image.open(sample_photos(1)[0]).save(buf, "PNG")
    broken = bytearray(buf.getvalue())
    broken[len(broken) // 2:len(broken) // 2 + 200] = bytes(200)
    (folder / "broken.png").write_bytes(bytes(broken))
    (folder / "cut.jpg").write_bytes(sample_photos(1)[0].read_bytes()[:1000])
    return folder


def test_folding_batchnorm_keeps_the_vectors_and_the_original():
    model = tiny_cnn()
    before = weights_hash(model)
    fast = for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for focus in model.focuses:
        torch.testing.assert_close(fast.embed(x, focus=focus), model.embed(x, focus=focus), rtol=1e-5, atol=1e-6)
    assert weights_hash(model) == before and any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    ae = fashrec.ConvAE()  # no BatchNorm: the copy embeds bit for bit as the original
    torch.testing.assert_close(for_inference(ae).embed(x), ae.embed(x), rtol=0, atol=0)


@pytest.mark.parametrize("workers, prefetch", [(1, 0), (3, 1), (2, 4)])
def test_threaded_decoding_equals_preprocess_batch_in_order(workers, prefetch):
    paths = sample_photos(23)
    batches = [range(0, 5), range(5, 6), range(6, 23)]
    got = list(decode_batches(paths, batches, {"pad_value": 1.0}, workers=workers, prefetch=prefetch))
    assert [b.positions for b in got] == [list(b) for b in batches]
    assert all(b.kept == b.positions and b.failed == [] for b in got)
    expected = fashrec.preprocess_batch(paths, {"pad_value": 1.0})
    torch.testing.assert_close(torch.cat([b.x for b in got]), expected, rtol=0, atol=0)


def test_embed_sources_skips_what_cannot_be_decoded(shop):
    model = tiny_cnn()
    sources = [shop / "good-0.jpg", shop / "broken.png", shop / "good-1.jpg", shop / "missing.jpg", b"not an image"]
    done = embed_sources(model, sources, batch_size=2, workers=2, progress=False)
    assert done.kept == [0, 2]
    assert [p for p, _ in done.failed] == [1, 3, 4]
    assert "broken.png" in done.failed[0][1] and "missing.jpg" in done.failed[1][1]
    x = fashrec.preprocess_batch([sources[0], sources[2]], model.preprocess_config)
    for focus in model.focuses:
        torch.testing.assert_close(done.vectors[focus], model.embed(x, focus=focus), rtol=1e-5, atol=1e-6)


def test_undecodable_photos_are_skipped_reported_and_recorded(shop, untrained_ae_dir, tmp_path, capsys):
    out = tmp_path / "idx"
    with pytest.warns(UserWarning, match="cannot be decoded"):  # the loader's own notice of cut.jpg
        assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(shop), "--out", str(out),
                     "--batch-size", "3"]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 photo(s)" in err and "broken" in err and "cut" in err
    index = SimilarityIndex.load(out)
    assert index.ids == [f"good-{i}" for i in range(6)]
    assert {s["id"] for s in open_index(out).skipped} == {"broken", "cut"}
    assert all(s["reason"] for s in open_index(out).skipped)
    model = fashrec.from_pretrained(untrained_ae_dir)
    x = fashrec.preprocess_batch([shop / f"good-{i}.jpg" for i in range(6)], model.preprocess_config)
    np.testing.assert_allclose(index.embeddings(), model.embed(x).numpy(), rtol=1e-5, atol=1e-6)


def test_strict_makes_an_undecodable_photo_an_error(shop, untrained_ae_dir, tmp_path, capsys):
    (shop / "cut.jpg").unlink()  # leave only the photo that fails the full decode
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", str(shop), "--out", str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "article_id broken:" in err and "Traceback" not in err and not out.exists()


def test_no_flip_tta_is_recorded_and_reused_by_image_queries(cnn_dir, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(cnn_dir), "--data", "sample", "--n", "12", "--out", str(out),
                 "--no-flip-tta"]) == 0
    record = json.loads((out / "index.json").read_text())
    opened = open_index(out)
    assert record["model"]["config"]["flip_tta"] is False and opened.options == {"flip_tta": False}
    index = opened.index
    photos = [str(p) for p in opened.photos.values()]
    model = fashrec.from_pretrained(cnn_dir, flip_tta=False)
    x = fashrec.preprocess_batch(photos, model.preprocess_config)
    np.testing.assert_allclose(index.embeddings(), model.embed(x).numpy(), rtol=1e-4, atol=1e-6)
    # whoever opens the index again (image queries, updates, the Space) gets the model built with the option
    assert opened.model.flip_tta is False and opened.model.config_dict()["flip_tta"] is False
    assert fashrec.from_pretrained(cnn_dir).flip_tta is True
    assert main(["recommend", "--index", str(out), "--image", photos[4], "--k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)["neighbours"][0]
    assert hit["id"] == index.ids[4] and hit["distance"] < 1e-5


def test_a_full_disk_is_one_line_and_the_previous_index_still_loads(untrained_ae_dir, tmp_path, capsys,
                                                                       monkeypatch):
    out = tmp_path / "idx"
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", "8", "--out", str(out)]) == 0
    before = SimilarityIndex.load(out)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/fake/.embeddings.safetensors.tmp")

    monkeypatch.setattr(fashrec.atomic, "save_safetensors_atomic", no_space)
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", "12", "--out", str(out),
                 "--overwrite"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fashrec ")]  # the rest: progress bars
    assert len(lines) == 1 and "no space left on device" in lines[0] and f"{out} is unchanged" in lines[0]
    assert "Traceback" not in err
    after = SimilarityIndex.load(out)
    assert after.ids == before.ids
    np.testing.assert_array_equal(after.embeddings(), before.embeddings())


def test_switching_flip_tta_is_never_answered_from_the_remembered_batch():
    model = fashrec.from_pretrained(fashrec.pretrained.path("default"))  # a model that sees left from right
    x = torch.linspace(0, 1, 64).expand(3, 3, 64, 64).clone()  # ramps: not their own mirror images
    x[1], x[2] = x[1] ** 3, 1 - x[2].sqrt()
    with_tta = model.embed(x)
    model.flip_tta = False
    without = model.embed(x)  # the same tensor: MultiTaskCNN's memo must not hand back the averaged views
    fresh = fashrec.from_pretrained(fashrec.pretrained.path("default"))
    fresh.flip_tta = False
    torch.testing.assert_close(without, fresh.embed(x.clone()), rtol=0, atol=0)
    assert (with_tta - without).abs().max() > 0.05
