"""Every focus in one call, channels-last torch and ONNX Runtime: each gives ``model.embed``'s vectors to
float32 rounding, on any focus set; flip TTA follows the model's config, and without it no mirror
image is embedded; a missing ONNX Runtime is one line naming the extra."""
import json
import sys

import numpy as np
import pytest
import torch

import fashrec
from fashrec.cli import main
from fashrec.index import SimilarityIndex
from fashrec.jobs.embed_stream import embed_sources
from fashrec.models.inference import Embedder, torch_threads
from fashrec.models.onnx_runtime import OnnxNetwork
from tests.test_embed_fast import CLASSES, sample_photos, tiny_cnn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def batch(n, seed=1):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def per_focus(model, x):
    return {f: model.embed(x, focus=f) for f in model.focuses}


def assert_vectors(got, want, tol=1e-5):
    assert list(got) == list(want)
    for focus in want:
        torch.testing.assert_close(got[focus], want[focus], rtol=tol, atol=tol, msg=focus)


def two_focus_cnn():
    """Another focus set and representation: focus names are data, not a fixed list."""
    torch.manual_seed(3)
    model = fashrec.MultiTaskCNN(classes=CLASSES, focus_columns={"colour": "colour_group_name", "style": "product_type_name"},
                                 widths=(4, 8), head_dim=6, representation="embedding+probabilities",
                                 colour_histogram_bins=3, stem_stride=2, preprocess={"pad_value": 1.0})
    return model.eval()


@pytest.fixture()
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.mark.parametrize("flip_tta", [True, False])
def test_embed_focuses_is_embed_for_every_focus_in_one_pass(flip_tta):
    model = tiny_cnn()
    model.flip_tta = flip_tta
    x = batch(5)
    assert_vectors(model.embed_focuses(x), per_focus(model, x.clone()), tol=0)
    ae = fashrec.ConvAE()
    assert_vectors(ae.embed_focuses(x), {"overall": ae.embed(x)}, tol=0)
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        model.embed_focuses(x[:, :, :32])


@pytest.mark.parametrize("make", [tiny_cnn, two_focus_cnn, fashrec.ConvAE])
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_each_backend_gives_the_vectors_of_embed(make, backend, onnx_cache):
    model = make().eval()
    for flip_tta in ([True, False] if hasattr(model, "flip_tta") else [None]):
        if flip_tta is not None:
            model.flip_tta = flip_tta
        embed = Embedder(model, backend=backend, threads=1)
        for n in (1, 6):
            x = batch(n, seed=n)
            assert_vectors(embed(x), per_focus(model, x))
    if backend == "torch":  # the layout oneDNN runs fastest
        conv = next(m for m in embed.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_shipped_default_on_onnx_runtime_equals_torch(onnx_cache):
    model = fashrec.from_pretrained(fashrec.pretrained.path("default"))
    x = fashrec.preprocess_batch(sample_photos(16), model.preprocess_config)
    assert_vectors(Embedder(model, backend="onnx", threads=1)(x), per_focus(model, x))


def test_without_flip_tta_no_mirror_image_is_embedded(onnx_cache):
    model = tiny_cnn()
    for flip_tta, rows in ((True, 10), (False, 5)):
        model.flip_tta = flip_tta
        for backend in ("torch", "onnx"):
            embed = Embedder(model, backend=backend, threads=1)
            seen = []
            network = embed.network
            embed.network = lambda v, network=network: seen.append(v.shape[0]) or network(v)
            embed(batch(5))
            assert seen == [rows], (backend, flip_tta)


def test_the_export_is_kept_on_disk_and_a_damaged_copy_is_replaced(onnx_cache, monkeypatch):
    model = tiny_cnn()
    x = batch(4)
    want = per_focus(model, x)
    Embedder(model, backend="onnx")
    files = list(onnx_cache.glob("*.onnx"))
    assert len(files) == 1

    def no_export(self, probe):
        raise AssertionError("exported again although the cached file is good")

    with monkeypatch.context() as m:
        m.setattr(OnnxNetwork, "_export", no_export)
        assert_vectors(Embedder(model, backend="onnx")(x), want)
    files[0].write_bytes(files[0].read_bytes()[:1000])  # a damaged cache entry
    assert_vectors(Embedder(model, backend="onnx")(x), want)
    other = tiny_cnn(seed=1)  # other weights: another file, never the first model's graph
    assert_vectors(Embedder(other, backend="onnx")(x), per_focus(other, x))
    assert len(list(onnx_cache.glob("*.onnx"))) == 2


def test_a_graph_that_disagrees_with_torch_is_exported_again_or_refused(onnx_cache, monkeypatch):
    model = tiny_cnn()
    path = Embedder(model, backend="onnx").network.path
    wrong = Embedder(tiny_cnn(seed=5), backend="onnx").network.path.read_bytes()  # same shapes, other numbers
    path.write_bytes(wrong)  # a stale file under this model's name
    x = batch(4)
    assert_vectors(Embedder(model, backend="onnx")(x), per_focus(model, x))
    assert path.read_bytes() != wrong
    monkeypatch.setattr(OnnxNetwork, "_export", lambda self, probe: wrong)  # an exporter that gets it wrong
    path.unlink()
    with pytest.raises(ValueError, match="differs from torch.*--backend torch"):
        Embedder(model, backend="onnx")


def test_a_network_the_exporter_cannot_express_is_one_line(onnx_cache, monkeypatch):
    model = tiny_cnn()
    network = model._blocks_of

    def data_dependent(x):  # branches on the pixels: torch.export cannot trace it
        blocks = network(x)
        return blocks if float(x.mean()) > 0.5 else {f: {k: -v for k, v in p.items()} for f, p in blocks.items()}

    monkeypatch.setattr(model, "_blocks_of", data_dependent)
    with pytest.raises(ValueError, match=r"cannot be exported to ONNX .*--backend torch") as caught:
        Embedder(model, backend="onnx")
    assert "\n" not in str(caught.value)


def test_a_missing_onnx_runtime_names_the_extra(shop_photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'fashrec\[onnx\]'"):
        Embedder(tiny_cnn(), backend="onnx")
    folder = tmp_path / "cnn"
    tiny_cnn().save_pretrained(folder)
    assert main(["embed", "--model", str(folder), "--data", str(shop_photos), "--out", str(tmp_path / "idx"),
                 "--backend", "onnx"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("fashrec ")]
    assert len(lines) == 1 and "pip install 'fashrec[onnx]'" in lines[0], err
    assert not (tmp_path / "idx").exists()


@pytest.fixture()
def shop_photos(tmp_path):
    import shutil

    folder = tmp_path / "shop"
    folder.mkdir()
    for i, p in enumerate(sample_photos(5)):
        shutil.copy(p, folder / f"item-{i}.jpg")
    return folder


def test_fashrec_embed_follows_the_models_flip_tta_and_the_flags_override_it(shop_photos, tmp_path, onnx_cache):
    model = fashrec.MultiTaskCNN(classes=CLASSES, widths=(4, 8, 8, 8), head_dim=8, colour_histogram_bins=2,
                                 flip_tta=False).eval()  # as the new default model's config will say
    folder = tmp_path / "cnn"
    model.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["flip_tta"] is False
    x = fashrec.preprocess_batch(sorted(shop_photos.glob("*.jpg")), model.preprocess_config)
    runs = {"plain": [], "onnx": ["--backend", "onnx", "--threads", "1", "--workers", "1"],
            "forced": ["--flip-tta"]}
    for name, flags in runs.items():
        out = tmp_path / name
        assert main(["embed", "--model", str(folder), "--data", str(shop_photos), "--out", str(out), *flags]) == 0
        recorded = json.loads((out / "index.json").read_text())["model"]["config"]["flip_tta"]
        model.flip_tta = name == "forced"
        assert recorded is model.flip_tta
        index = SimilarityIndex.load(out)
        for focus in model.focuses:
            np.testing.assert_allclose(index.embeddings(focus), model.embed(x, focus=focus).numpy(),
                                       rtol=1e-5, atol=1e-5)


def test_embed_sources_takes_the_backend_and_threads(shop_photos, onnx_cache):
    model = tiny_cnn()
    paths = sorted(shop_photos.glob("*.jpg"))
    x = fashrec.preprocess_batch(paths, model.preprocess_config)
    for backend in ("torch", "onnx"):
        done = embed_sources(model, paths, batch_size=2, workers=1, threads=1, backend=backend, progress=False)
        assert done.kept == list(range(5))
        assert_vectors(done.vectors, per_focus(model, x))
    with pytest.raises(ValueError, match="unknown backend"):
        Embedder(model, backend="tensorrt")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_threads_are_set_for_the_call_and_put_back(backend, onnx_cache):
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    model = tiny_cnn()
    seen = []
    embed = Embedder(model, backend=backend, threads=1)  # the torch read-out too, on either backend
    network = embed.network
    embed.network = lambda v: seen.append(torch.get_num_threads()) or network(v)
    embed(batch(2))
    assert seen == [1] and torch.get_num_threads() == before
