"""The Space's named API, driven with gradio_client against the real app (``python space/app.py``).

The app serves the model ``FASHREC_MODEL`` (default: the model ``space/index`` was built with, the shipped
default ``multitask-cnn``), the index ``FASHREC_INDEX`` (default: ``space/index``) and reconstructions by
``FASHREC_RECON_MODEL`` (default: the shipped ``paper-ae``, since the default model has no decoder); the
expected answers are computed here with the library itself (``SimilarityIndex``, ``fashrec.preprocess``,
``model.embed`` / ``model.reconstruct``).
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
INDEX = Path(os.environ.get("FASHREC_INDEX") or REPO_ROOT / "space" / "index")
CAPTION_TAIL = re.compile(r"^(?P<id>\S+) · d = (?P<d>\S+)$")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library():
    """The model and index the app serves, loaded here through the library."""
    import torch

    import fashrec

    torch.set_num_threads(2)
    opened = fashrec.open_index(INDEX, os.environ.get("FASHREC_MODEL") or None)
    return opened.model, opened.index, {i: str(p) for i, p in opened.photos.items()}


@pytest.fixture(scope="module")
def recon_model(library):
    """The model the app reconstructs with: FASHREC_RECON_MODEL, else the served model if it has a
    decoder, else the shipped paper-ae (the paper's autoencoder)."""
    import fashrec
    from space.recommender import has_decoder

    model = library[0]
    ref = os.environ.get("FASHREC_RECON_MODEL") or (None if has_decoder(model) else "paper-ae")
    return model if ref is None else fashrec.from_pretrained(fashrec.pretrained.resolve(ref)).eval()


def default_space() -> bool:
    """Whether the app serves the committed defaults (no FASHREC_* override)."""
    return not any(os.environ.get(v) for v in ("FASHREC_INDEX", "FASHREC_MODEL", "FASHREC_RECON_MODEL"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The running app: its URL, its log file and its upload folder (GRADIO_TEMP_DIR)."""
    from space.local_server import running_space

    folder = tmp_path_factory.mktemp("space")
    log, uploads = folder / "app.log", folder / "uploads"
    with running_space(env={"FASHREC_INDEX": str(INDEX), "GRADIO_TEMP_DIR": str(uploads)}, log=log) as url:
        yield url, log, uploads


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    from gradio_client import Client

    return Client(served[0], verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def parse_gallery(gallery) -> tuple[list[str], np.ndarray]:
    """Ids and distances from the captions the app writes (last line: ``<id> · d = <distance>``)."""
    ids, dist = [], []
    for tile in gallery:
        match = CAPTION_TAIL.match(tile["caption"].splitlines()[-1])
        assert match, f"caption without id and distance: {tile['caption']!r}"
        assert Path(tile["image"]).is_file()
        ids.append(match["id"])
        dist.append(float(match["d"]))
    return ids, np.array(dist)


def why_line(tile) -> str | None:
    """The caption line before ``<id> · d = ...`` that says why the item is there (None when there is none)."""
    lines = tile["caption"].splitlines()
    return lines[-2] if len(lines) > 3 else None


def item_with_other_colours(index, focus: str, k: int = 8, **search) -> str:
    """A catalogue item whose k nearest by ``focus`` hold an article of its design in another colour."""
    meta = index.metadata.set_index("article_id")
    for i in index.ids:
        ids, _ = index.search_ids([i], k=k, focus=focus, **search)
        if any(meta.loc[j, "product_code"] == meta.loc[i, "product_code"]
               and meta.loc[j, "colour_group_name"] != meta.loc[i, "colour_group_name"] for j in ids[0]):
            return i
    raise AssertionError(f"no item of this catalogue finds another colour of its design by {focus!r}")


def item_with_group(index, minimum: int = 12):
    """A catalogue item whose product group and type each hold at least ``minimum`` items."""
    meta = index.metadata
    groups = meta["product_group_name"].value_counts()
    types = meta["product_type_name"].value_counts()
    for i, row in meta.iterrows():
        if groups[row["product_group_name"]] >= minimum and types[row["product_type_name"]] >= minimum:
            return index.ids[i], row["product_group_name"], row["product_type_name"]
    raise AssertionError("no product type with enough items")


def test_every_endpoint_is_named_and_every_parameter_has_a_default(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/reconstruct", "/recommend_image", "/recommend_item"} <= set(api)
    for name in ("/reconstruct", "/recommend_image", "/recommend_item"):
        for parameter in api[name]["parameters"]:
            assert parameter["parameter_has_default"], f"{name}: {parameter['parameter_name']} has no default"
    names = [p["parameter_name"] for p in api["/recommend_item"]["parameters"]]
    assert names == ["article_id", "metric", "k", "product_group", "product_type", "focus"]
    for name in ("/recommend_image", "/recommend_item"):  # the page's two questions, two answers
        assert [r["label"] for r in api[name]["returns"]] == ["similar products", "other colours of this design"]


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "cityblock"])
@pytest.mark.parametrize("filters", ["none", "group", "group+type"])
def test_recommend_item_gives_exactly_the_index_neighbours(client, library, metric, filters):
    _, index, _ = library
    article_id, group, ptype = item_with_group(index)
    where, kwargs = {}, {}
    if filters != "none":
        where["product_group_name"] = kwargs["product_group"] = group
    if filters == "group+type":
        where["product_type_name"] = kwargs["product_type"] = ptype
    k = 7
    gallery, _ = client.predict(article_id=article_id, metric=metric, k=k, api_name="/recommend_item", **kwargs)
    ids, dist = parse_gallery(gallery)

    expected_ids, expected_dist = index.search_ids([article_id], k=k, metric=metric, where=where or None)
    assert ids == expected_ids[0]
    np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-9)  # captions print 4 significant digits
    meta = index.metadata.set_index("article_id")
    for i in ids:
        assert all(meta.loc[i, column] == value for column, value in where.items())


@pytest.mark.parametrize("focus", ["shape", "colour", "pattern", "shape=2, colour=1"])
def test_recommend_item_with_a_focus_gives_exactly_the_index_neighbours(client, library, focus):
    _, index, _ = library
    if len(index.focuses) < 2:
        pytest.skip(f"the served index has one focus {index.focuses}")
    article_id, group, _ = item_with_group(index)
    weights = {n.strip(): float(w) for n, w in (part.split("=") for part in focus.split(","))} if "=" in focus else focus
    gallery, _ = client.predict(article_id=article_id, metric="cityblock", k=6, product_group=group, focus=focus,
                             api_name="/recommend_item")
    ids, dist = parse_gallery(gallery)
    expected_ids, expected_dist = index.search_ids([article_id], k=6, metric="cityblock", focus=weights,
                                                   where={"product_group_name": group})
    assert ids == expected_ids[0]
    np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-9)
    overall, _ = index.search_ids([article_id], k=6, metric="cityblock", where={"product_group_name": group})
    assert expected_ids[0] != overall[0]  # the focus matters for this item: the test can tell it was used


@pytest.mark.parametrize("options", [{}, {"metric": "cityblock", "k": 5, "focus": "colour", "type": True}])
def test_recommend_item_answers_both_questions(client, library, options):
    """The second gallery is "Other colours of this design": exactly the index's nearest by the focus the
    model names as its design focus, with the request's metric, k and filters (its focus is for the first
    gallery only). Its captions say which results are the query's design, and whether their colour differs."""
    model, index, _ = library
    if model.design_focus is None:
        pytest.skip("the served model was taught no designs")
    focus = options.get("focus") if options.get("focus") in index.focuses else index.focuses[0]
    meta = index.metadata.set_index("article_id")
    query = item_with_other_colours(index, model.design_focus)
    where = {"product_type_name": meta.loc[query, "product_type_name"]} if options.get("type") else None
    request = {k: v for k, v in options.items() if k in ("metric", "k")}
    similar, design = client.predict(article_id=query, focus=focus, product_type=(where or {}).get(
        "product_type_name", "All"), api_name="/recommend_item", **request)
    k, metric = options.get("k", 8), options.get("metric", "cosine")
    for gallery, by in ((similar, focus), (design, model.design_focus)):
        ids, dist = parse_gallery(gallery)
        expected_ids, expected_dist = index.search_ids([query], k=k, metric=metric, where=where, focus=by)
        assert ids == expected_ids[0], by
        np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-9)
    code, colour = meta.loc[query, "product_code"], meta.loc[query, "colour_group_name"]
    whys = {}
    for tile in design:
        item = parse_gallery([tile])[0][0]
        expected = ("similar design" if meta.loc[item, "product_code"] != code else
                    "same design, same colour" if meta.loc[item, "colour_group_name"] == colour else
                    "same design, other colour")
        assert why_line(tile) == expected, tile["caption"]
        whys[item] = expected
    if not options:  # the query was chosen so: its design row shows another colour of it
        assert "same design, other colour" in whys.values()
    if where is not None:
        assert all(meta.loc[i, "product_type_name"] == where["product_type_name"] for i in whys)


def test_the_page_says_which_model_serves_each_tab(client, library, recon_model):
    import urllib.request

    model, _, _ = library
    with urllib.request.urlopen(client.src.rstrip("/") + "/config", timeout=30) as response:
        config = json.loads(response.read())
    header = next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "models")
    recommendations, reconstructions = header.split("**Recommendations:**")[1].split("**Reconstructions:**")
    assert type(model).__name__ in recommendations and str(model.embedding_dim) in recommendations
    assert type(recon_model).__name__ in reconstructions or "same model" in reconstructions
    if default_space():  # the committed Space: the best model recommends, the paper's AE reconstructs
        assert "MultiTaskCNN `multitask-cnn`" in recommendations
        assert "overall, design, shape, colour, pattern" in recommendations
        assert "ConvAE `paper-ae`" in reconstructions and "baseline" in reconstructions


def test_recommend_item_defaults_answer(client, library):
    """With no arguments: the product the page opens on, a garment of a known type (not the first item of
    the catalogue, a close-up of socks of type "Unknown")."""
    from space.recommender import Recommender

    _, index, photos = library
    featured = Recommender(model=library[0], index=index, images=[photos[i] for i in index.ids]).featured()
    meta = index.metadata.set_index("article_id")
    assert meta.loc[featured, "product_type_name"] != "Unknown"
    assert meta.loc[featured, "product_group_name"] == meta["product_group_name"].value_counts().index[0]
    ids, _ = parse_gallery(client.predict(api_name="/recommend_item")[0])
    expected, _ = index.search_ids([featured], k=8, metric="cosine")
    assert ids == expected[0]


def test_recommend_image_embeds_the_upload_with_the_model(client, library):
    from gradio_client import handle_file

    from fashrec.data.preprocess import preprocess

    model, index, photos = library
    article_id = index.ids[len(index) // 2]
    gallery, _ = client.predict(image=handle_file(photos[article_id]), metric="euclidean", k=5,
                                api_name="/recommend_image")
    ids, dist = parse_gallery(gallery)

    x = preprocess(photos[article_id], model.preprocess_config)[None]
    expected_ids, expected_dist = index.search(model.embed(x).numpy(), k=5, metric="euclidean")
    assert ids == expected_ids[0]
    np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-6)
    assert ids[0] == article_id and dist[0] < 1e-4  # a catalogue photo finds itself first

    if len(index.focuses) > 1:  # a focus embeds the photo for that focus
        focus = index.focuses[-1]
        gallery, _ = client.predict(image=handle_file(photos[article_id]), metric="cosine", k=5, focus=focus,
                                 api_name="/recommend_image")
        ids, dist = parse_gallery(gallery)
        expected_ids, expected_dist = index.search(model.embed(x, focus=focus).numpy(), k=5, metric="cosine",
                                                   focus=focus)
        assert ids == expected_ids[0]
        np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-6)

    if model.design_focus is not None:  # the design row embeds the photo for the design focus
        _, design = client.predict(image=handle_file(photos[article_id]), metric="cityblock", k=6,
                                   api_name="/recommend_image")
        ids, dist = parse_gallery(design)
        by = model.design_focus
        expected_ids, expected_dist = index.search(model.embed(x, focus=by).numpy(), k=6, metric="cityblock", focus=by)
        assert ids == expected_ids[0]
        np.testing.assert_allclose(dist, expected_dist[0], rtol=1e-3, atol=1e-6)
        assert {why_line(tile) for tile in design} == {"similar design"}  # nothing is known of a photo's design


def test_reconstruct_returns_input_reconstruction_and_mse(client, library, recon_model):
    """/reconstruct answers with the reconstruction model (the paper's AE by default), whatever model
    recommends: with the default multitask model, which has no decoder, it still reconstructs."""
    import torch
    from gradio_client import handle_file

    from fashrec.data.preprocess import preprocess
    from space.recommender import has_decoder

    model, index, photos = library
    if default_space():
        assert type(model).__name__ == "MultiTaskCNN" and not has_decoder(model)
        assert type(recon_model).__name__ == "ConvAE"
    photo = photos[index.ids[3]]
    pre_file, recon_file, mse = client.predict(image=handle_file(photo), api_name="/reconstruct")

    x = preprocess(photo, recon_model.preprocess_config)[None]
    with torch.no_grad():
        recon = recon_model.reconstruct(x).clamp(0, 1)
    size = recon_model.preprocess_config.image_size
    pre = np.asarray(Image.open(pre_file).convert("RGB"))
    out = np.asarray(Image.open(recon_file).convert("RGB"))
    assert pre.shape == out.shape == (size, size, 3)
    np.testing.assert_array_equal(pre, np.rint(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert np.abs(out.astype(int) - np.rint(recon[0].permute(1, 2, 0).numpy() * 255)).max() <= 1
    assert mse == pytest.approx(float(torch.mean((recon - x) ** 2)), rel=1e-4)


def _corrupt_uploads(tmp_path: Path, photo: str) -> dict[str, tuple[Path, str]]:
    """Bad files and the words the error must contain."""
    data = Path(photo).read_bytes()
    cases = {}
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    cases["truncated"] = (tmp_path / "truncated.jpg", "truncated.jpg")
    (tmp_path / "notes.txt").write_text("not an image at all")
    cases["text"] = (tmp_path / "notes.txt", "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.png", "empty")
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")  # 400 Mpx in a few kB: a decompression bomb
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    cases["huge"] = (tmp_path / "bomb.png", "bomb.png")
    (tmp_path / "claims.jpg").write_bytes(claims_size(data, 20_000, 20_000))
    cases["huge header"] = (tmp_path / "claims.jpg", "claims.jpg: refused as a possible decompression bomb")
    return cases


def claims_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims ``width`` x ``height``."""
    import struct

    data = bytearray(jpeg)
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("case", ["truncated", "text", "empty", "huge", "huge header"])
@pytest.mark.parametrize("endpoint", ["/recommend_image", "/reconstruct"])
def test_bad_upload_gets_a_clear_error_and_the_app_keeps_serving(client, library, tmp_path, case, endpoint):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, index, photos = library
    path, words = _corrupt_uploads(tmp_path, photos[index.ids[0]])[case]
    with pytest.raises(AppError) as err:
        client.predict(image=handle_file(str(path)), api_name=endpoint)
    message = str(err.value)
    assert words in message, message
    assert "/tmp/gradio" not in message  # names the user's file, not the server's copy
    ids, _ = parse_gallery(client.predict(article_id=index.ids[1], k=3, api_name="/recommend_item")[0])
    assert len(ids) == 3 and index.ids[1] not in ids


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16"])
def test_odd_image_modes_are_accepted(client, library, tmp_path, mode):
    from gradio_client import handle_file

    _, index, photos = library
    image = Image.open(photos[index.ids[0]]).convert("RGB" if mode == "I;16" else mode)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
        assert image.mode == "I;16"
    path = tmp_path / f"odd.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    ids, dist = parse_gallery(client.predict(image=handle_file(str(path)), k=4, api_name="/recommend_image")[0])
    assert len(ids) == 4 and np.all(np.diff(dist) >= 0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"article_id": "0000000000"}, "'0000000000' is not in this catalogue"),
        ({"metric": "hamming"}, "unknown metric 'hamming'"),
        ({"k": 0}, "k must be between 1 and"),
        ({"k": 49}, "k must be between 1 and 48, got 49"),  # MAX_K + 1
        ({"k": 2.5}, "k must be a whole number, got 2.5"),
        ({"k": 47.99}, "k must be a whole number, got 47.99"),
        ({"k": True}, "k must be a whole number, got True"),
        ({"focus": "shape=1.7e308, colour=1"}, "keep each at most"),
        ({"focus": "shape=nan, colour=1"}, "focus weight for 'shape' must be finite"),
        ({"product_group": "Spacesuits"}, "'Spacesuits'"),
        ({"focus": "smell"}, "unknown focus 'smell'"),
    ],
)
def test_bad_options_are_named(client, kwargs, words):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=re.escape(words)):
        client.predict(api_name="/recommend_item", **kwargs)


def test_max_k_is_served_and_one_more_is_refused(client, library):
    from gradio_client.exceptions import AppError

    from space.recommender import MAX_K

    _, index, _ = library
    ids, _ = parse_gallery(client.predict(article_id=index.ids[2], k=MAX_K, api_name="/recommend_item")[0])
    assert len(ids) == MAX_K
    with pytest.raises(AppError, match=f"between 1 and {MAX_K}"):
        client.predict(article_id=index.ids[2], k=MAX_K + 1, api_name="/recommend_item")


def test_the_largest_focus_weights_never_bypass_exclude_or_the_filters(client, library):
    _, index, _ = library
    article_id, group, ptype = item_with_group(index)
    for focus in ("shape=1000000, colour=1", "shape=1000000, colour=1000000", "overall=1000000"):
        ids, dist = parse_gallery(client.predict(article_id=article_id, metric="cityblock", k=10, product_group=group,
                                                 focus=focus, api_name="/recommend_item")[0])
        meta = index.metadata.set_index("article_id")
        assert article_id not in ids and len(ids) == 10
        assert all(meta.loc[i, "product_group_name"] == group for i in ids)
        assert np.all(np.isfinite(dist))


def _raw_call(url: str, endpoint: str, data: list) -> dict:
    """One call of the HTTP API as any client could make it (no gradio_client): the final SSE event."""
    import urllib.request

    request = urllib.request.Request(f"{url}gradio_api/call/{endpoint}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=120) as response:
        events = response.read().decode().strip().split("\n\n")
    kind, _, payload = events[-1].partition("\ndata: ")
    return {"event": kind.removeprefix("event: "), "data": json.loads(payload)}


@pytest.mark.parametrize("endpoint", ["reconstruct", "recommend_image"])
def test_the_server_reads_no_file_a_client_names(served, endpoint):
    """Paths that exist (a readable image, a text file, a folder, the index) and paths that do not all get
    one and the same answer: the server opens none of them and says nothing about them. A file given as
    {"path": ...} (no Gradio "meta") reaches the handler, which refuses it; a bare string never gets past
    Gradio's own input check."""
    url = served[0]
    real_image = str(REPO_ROOT / "docs" / "screenshots" / "recommend_tab.png")
    options = [] if endpoint == "reconstruct" else ["cosine", 8, "All", "All", "overall"]
    shapes = {"path": lambda p: {"path": p}, "named": lambda p: {"path": p, "orig_name": "x.png"}, "string": str}
    for shape, payload in shapes.items():
        answers = set()
        for path in (real_image, "/etc/passwd", "/nonexistent/photo.png", "/tmp", str(INDEX / "embeddings.safetensors")):
            answer = _raw_call(url, endpoint, [payload(path), *options])
            assert answer["event"] == "error", answer
            answers.add(json.dumps(answer["data"], sort_keys=True))
        assert len(answers) == 1, (shape, answers)
        if shape != "string":
            assert "not an uploaded image" in answers.pop()


def test_gradio_serves_the_catalogue_photos_and_nothing_else(served, library):
    """Raw HTTP: every photo of the catalogue is served (200); the checkout's git config, sources and
    checkpoints, the index's own files and the machine's are not (403)."""
    import urllib.error
    import urllib.request

    url = served[0]
    for path in ("/etc/passwd", str(REPO_ROOT / ".git"), str(REPO_ROOT / "space" / "app.py"),
                 str(REPO_ROOT / "fashrec" / "checkpoints" / "multitask-cnn" / "model.safetensors"),
                 str(INDEX / "embeddings.safetensors"), str(INDEX / "catalogue.json"), str(INDEX / "photos"),
                 str(INDEX / "photos" / ".." / "index.json")):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
        assert err.value.code == 403, path
    photos = library[2]
    for photo in photos.values():
        with urllib.request.urlopen(f"{url}gradio_api/file={photo}", timeout=30) as response:
            assert response.status == 200 and response.read() == Path(photo).read_bytes()


def test_a_model_taught_no_designs_answers_one_question(tmp_path):
    """The paper's AE names no design focus: through the real app, the second gallery is empty for both
    endpoints and the page shows no "Other colours of this design" row."""
    import urllib.request

    from gradio_client import Client, handle_file

    import fashrec
    from fashrec.jobs.embed_job import embed_catalogue
    from space.local_server import running_space

    folder = tmp_path / "paper-ae-index"
    embed_catalogue(model=fashrec.from_pretrained("paper-ae"), model_ref="paper-ae", data="sample", out=folder, n=30,
                    progress=False)
    photo = next(iter(fashrec.open_index(folder).photos.values()))
    with running_space(env={"FASHREC_INDEX": str(folder), "FASHREC_RECON_MODEL": ""}, log=tmp_path / "app.log") as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        similar, design = client.predict(k=4, api_name="/recommend_item")
        assert len(similar) == 4 and design == []
        similar, design = client.predict(image=handle_file(str(photo)), k=3, api_name="/recommend_image")
        assert len(similar) == 3 and design == []
        with urllib.request.urlopen(url + "config", timeout=30) as response:
            config = json.loads(response.read())
    row = next(c for c in config["components"] if c["props"].get("elem_id") == "design_row")
    assert row["props"]["visible"] is False


def test_a_bad_request_is_one_line_in_the_log(client, served):
    from gradio_client.exceptions import AppError

    log = served[1]
    before = log.read_text(errors="replace")
    with pytest.raises(AppError):
        client.predict(article_id="0000000001", api_name="/recommend_item")
    with pytest.raises(AppError):
        client.predict(article_id="0000000001", k=2.5, api_name="/recommend_item")
    new = log.read_text(errors="replace")[len(before):].splitlines()
    assert "Traceback" not in "\n".join(new)
    assert [line for line in new if "bad request" in line] == new and len(new) == 2, new



def test_a_request_gradio_refuses_is_one_line_in_the_log(served):
    """Requests Gradio rejects before any handler runs (too few inputs, a file it did not receive, a value of
    the wrong shape) are one warning line each (space/request_log.py), not Gradio's 20-line traceback."""
    url, log = served[0], served[1]
    before = log.read_text(errors="replace")
    refused = [("recommend_item", ["0156224002", "cosine"]),
               ("reconstruct", [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]),
               ("reconstruct", ["/etc/passwd"])]
    for endpoint, data in refused:
        assert _raw_call(url, endpoint, data)["event"] == "error"
    for _ in range(50):  # the server writes its log line after answering
        new = log.read_text(errors="replace")[len(before):].splitlines()
        if len(new) >= len(refused):
            break
        threading.Event().wait(0.1)
    assert "Traceback" not in "\n".join(new)
    assert len(new) == len(refused), new
    for (endpoint, _), line in zip(refused, new):
        assert f"WARNING request to {endpoint} refused by Gradio: " in line, line
    assert "ValueError: An event handler (recommend_item) didn't receive enough input values" in new[0]
    assert "InvalidPathError" in new[1] and "ValidationError" in new[2]


def test_only_gradios_refusals_are_shortened():
    """An exception from a handler (a bug) keeps its traceback: only input preparation is a refusal."""
    sys.path.insert(0, str(REPO_ROOT / "space"))
    import request_log

    try:
        raise RuntimeError("a bug in a handler")
    except RuntimeError as exc:
        assert request_log.refusal(exc) is None
    assert request_log.install() == list(request_log.GRADIO_MODULES)  # this Gradio prints there: patched

def test_uploads_are_capped_and_not_kept(client, served, tmp_path):
    """An upload over 10 MB is refused before it is stored; the app sets a cache lifetime for the rest."""
    from gradio_client import handle_file

    uploads = served[2]
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(11 * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(image=handle_file(str(big)), api_name="/reconstruct")
    stored = [p for p in uploads.rglob("*") if p.is_file() and p.stat().st_size > 10 * 1024 * 1024]
    assert stored == []


def test_the_app_deletes_old_uploads(two_focus):
    from space.app import CACHE_SECONDS, build_demo

    rec = two_focus[0]
    assert build_demo(rec).delete_cache == (CACHE_SECONDS, CACHE_SECONDS) and CACHE_SECONDS <= 24 * 3600


# ---------------------------------------------------------------------- the Recommender alone (no server)


@pytest.fixture(scope="module")
def two_focus():
    """A small catalogue indexed by a model with two focuses (the overall code, and a blurred photo)."""
    import datasets
    import torch

    from fashrec.models.conv_ae import ConvAE
    from fashrec.jobs.catalogue_source import catalogue_metadata, open_catalogue
    from fashrec.index import SimilarityIndex
    from space.recommender import Recommender

    class TwoFocusAE(ConvAE):
        focuses = ("overall", "colour")

        def _embed(self, x, focus):  # "colour": the photo at 16x16, channels repeated to the same 2,048 values
            if focus == "overall":
                return self._code(x)
            small = torch.nn.functional.adaptive_avg_pool2d(x, (16, 16))
            return torch.cat([small, small, small[:, :2]], dim=1)

    torch.manual_seed(0)
    model = TwoFocusAE().eval()
    ds = open_catalogue("sample").select(range(80))
    paths = [cell["path"] for cell in ds.cast_column("image", datasets.Image(decode=False))["image"]]
    vectors = {f: model.embed_images(paths, focus=f) for f in model.focuses}
    index = SimilarityIndex(vectors, list(ds["article_id"]), catalogue_metadata(ds))
    return Recommender(model=model, index=index, images=paths), model, index, paths


def test_focus_and_weights_rank_like_the_index(two_focus):
    from fashrec.data.preprocess import preprocess

    rec, model, index, paths = two_focus
    x = preprocess(paths[7], model.preprocess_config)[None]
    q = {f: model.embed(x, focus=f).numpy() for f in model.focuses}
    hits = rec.recommend_image(paths[7], metric="euclidean", k=5, focus="colour")
    assert [h.article_id for h in hits] == index.search(q["colour"], k=5, metric="euclidean", focus="colour")[0][0]
    hits = rec.recommend_image(paths[7], metric="cityblock", k=5, focus="overall=1, colour=2")
    expected, dist = index.search(q, k=5, metric="cityblock", focus={"overall": 1.0, "colour": 2.0})
    assert [h.article_id for h in hits] == expected[0]
    np.testing.assert_allclose([h.distance for h in hits], dist[0], rtol=1e-5)
    with pytest.raises(ValueError, match="unknown focus 'shape'"):
        rec.recommend_item(rec.ids[0], focus="shape")


def test_the_focus_control_shows_only_for_several_focuses(two_focus):
    from fashrec.index import SimilarityIndex
    from space.app import build_demo
    from space.recommender import Recommender

    def focus_control(rec):
        config = build_demo(rec).get_config_file()
        return next(c for c in config["components"] if c["props"].get("elem_id") == "focus")["props"]

    rec, model, index, paths = two_focus
    props = focus_control(rec)
    assert props["visible"] is True
    assert [choice[1] for choice in props["choices"]] == ["overall", "colour"]
    single = SimilarityIndex(index.embeddings("overall"), index.ids, index.metadata)
    assert focus_control(Recommender(model=model, index=single, images=paths))["visible"] is False


def design_row_shown(rec) -> bool:
    """Whether the page built over ``rec`` shows the "Other colours of this design" row."""
    from space.app import build_demo

    config = build_demo(rec).get_config_file()
    return next(c for c in config["components"] if c["props"].get("elem_id") == "design_row")["props"]["visible"]


def test_the_design_row_follows_the_focus_the_model_names(two_focus):
    """Focus names are data: a model whose design focus is called "design" (and listed last) gets its row
    from that focus; the same model naming none, or a model taught no designs, gets no row and no answers."""
    import torch

    from fashrec.index import SimilarityIndex
    from fashrec.models.multitask_cnn import MultiTaskCNN
    from space.recommender import Recommender

    no_design, _, small, paths = two_focus
    meta = small.metadata
    columns = {"design": "product_type_name", "colour": "colour_group_name"}
    classes = {c: sorted(set(meta[c])) for c in columns.values()}
    torch.manual_seed(0)
    model = MultiTaskCNN(classes=classes, focus_columns=columns, design_focus="design", widths=(8, 16), head_dim=8)
    model.eval()
    assert model.focuses == ("overall", "design", "colour")  # FOCUS_ORDER: as a shopper would list them
    index = SimilarityIndex({f: model.embed_images(paths, focus=f) for f in model.focuses}, small.ids, meta)
    rec = Recommender(model=model, index=index, images=paths)
    assert rec.design_focus == "design" and design_row_shown(rec)
    query = rec.ids[3]
    answer = rec.answer_item(query, metric="euclidean", k=5, focus="colour")
    assert [h.article_id for h in answer.similar] == index.search_ids([query], k=5, metric="euclidean", focus="colour")[0][0]
    assert [h.article_id for h in answer.design] == index.search_ids([query], k=5, metric="euclidean", focus="design")[0][0]
    x = fashrec_preprocess(paths[3], model)
    answer = rec.answer_image(paths[3], k=4)
    assert [h.article_id for h in answer.design] == index.search(model.embed(x, focus="design").numpy(), k=4,
                                                                 focus="design")[0][0]

    model.design_focus = None  # the same vectors, from a model that names no design focus
    for rec in (Recommender(model=model, index=index, images=paths), no_design):
        assert rec.design_focus is None and not design_row_shown(rec)
        assert rec.answer_item(query, k=5).design == [] and rec.answer_image(paths[3], k=5).design == []
        assert len(rec.answer_item(query, k=5).similar) == 5


def fashrec_preprocess(path, model):
    from fashrec.data.preprocess import preprocess

    return preprocess(path, model.preprocess_config)[None]


def test_captions_say_why_a_result_is_in_its_row():
    from space.captions import DESIGN, SIMILAR, caption, why

    query = {"product_code": "1", "product_type_name": "Shirt", "colour_group_name": "Dark Red",
             "graphical_appearance_name": "Solid"}
    other_colour = {**query, "colour_group_name": "Light Blue"}
    assert why(query, other_colour, DESIGN) == why(query, other_colour, SIMILAR) == "same design, other colour"
    assert why(query, dict(query), DESIGN) == "same design, same colour"
    shirt = {"product_code": "2", "product_type_name": "Shirt", "colour_group_name": "Dark Red",
             "graphical_appearance_name": "Stripe"}
    assert why(query, shirt, DESIGN) == "similar design"
    assert why(query, shirt, SIMILAR) == "same type and colour"
    assert why(query, {**shirt, "graphical_appearance_name": "Solid"}, SIMILAR) == "same type, colour and pattern"
    assert why(query, {**shirt, "product_type_name": "Blouse", "colour_group_name": "Red"}, SIMILAR) is None
    unknown = {"product_code": "3", "product_type_name": "Unknown"}
    assert why(unknown, {"product_code": "4", "product_type_name": "Unknown"}, SIMILAR) is None
    assert why(None, shirt, SIMILAR) is None and why(None, shirt, DESIGN) == "similar design"  # a photo
    assert why({"product_code": ""}, {"product_code": ""}, DESIGN) == "similar design"  # no design recorded
    assert caption(shirt, "0002", 0.25, "same type").splitlines() == \
        ["0002", "Shirt · Dark Red", "same type", "0002 · d = 0.25"]  # no name: the id names it
    assert caption({"prod_name": "Tee", **shirt}, "0002").splitlines() == ["Tee", "Shirt · Dark Red", "0002"]


def test_reconstructions_come_from_the_reconstruction_model(library, two_focus):
    """An embedding-only model alone refuses clearly; with a reconstruction model beside it, reconstructions
    are that model's (its own preprocessing too) while recommendations stay the embedding model's."""
    import torch

    from fashrec.data.preprocess import preprocess
    from space.recommender import Recommender, has_decoder

    model, index, photos = library
    if has_decoder(model):
        pytest.skip("the served model has a decoder")
    _, autoencoder, _, paths = two_focus
    images = [photos[i] for i in index.ids]
    alone = Recommender(model=model, index=index, images=images)
    with pytest.raises(NotImplementedError, match="FASHREC_RECON_MODEL"):
        alone.reconstruct(paths[0])
    assert alone.describe_recon_model().startswith("none")
    both = Recommender(model=model, index=index, images=images, recon_model=autoencoder, model_name="m",
                       recon_model_name="ae")
    pre, out, mse = both.reconstruct(paths[0])
    x = preprocess(paths[0], autoencoder.preprocess_config)[None]
    with torch.no_grad():
        recon = autoencoder.reconstruct(x).clamp(0, 1)
    np.testing.assert_array_equal(pre, np.rint(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert mse == pytest.approx(float(torch.mean((recon - x) ** 2)), rel=1e-5)
    assert "`ae`" in both.describe_recon_model() and "`m`" in both.describe_model()
    hits = both.recommend_item(index.ids[0], k=3)
    assert [h.article_id for h in hits] == index.search_ids([index.ids[0]], k=3)[0][0]


def test_filters_captions_and_k_clamped_to_what_the_filter_leaves(two_focus):
    rec, _, index, _ = two_focus
    meta = index.metadata.set_index("article_id")
    group = rec.groups()[1]
    types = rec.types(group)
    assert types[0] == "All" and set(types[1:]) == set(meta[meta["product_group_name"] == group]["product_type_name"])
    ptype = types[-1]  # the rarest type of the group
    n = int(((meta["product_group_name"] == group) & (meta["product_type_name"] == ptype)).sum())
    query = rec.ids[0]
    hits = rec.recommend_item(query, k=48, product_group=group, product_type=ptype)
    assert len(hits) == n - (meta.loc[query, "product_type_name"] == ptype and meta.loc[query, "product_group_name"] == group)
    assert all(meta.loc[h.article_id, "product_type_name"] == ptype for h in hits)
    hit = rec.recommend_item(query, k=1)[0]
    name, colour = meta.loc[hit.article_id, "prod_name"], meta.loc[hit.article_id, "colour_group_name"]
    assert hit.caption.splitlines()[0] == name and colour in hit.caption.splitlines()[1]
    assert hit.caption.splitlines()[-1] == f"{hit.article_id} · d = {hit.distance:.4g}"


def test_fashrec_demo_serves_the_sample_and_prints_its_url(tmp_path):
    """The README's command: 'fashrec demo' serves the Space at a local URL and says which."""
    import queue
    import subprocess
    import sys
    import threading
    import urllib.request

    from space.local_server import free_port

    port = free_port()
    env = {**os.environ, "FASHREC_INDEX": str(INDEX), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fashrec.cli", "demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        seen = []
        while not any("open http" in line for line in seen):
            seen.append(lines.get(timeout=180))  # raises queue.Empty if nothing comes
        url = seen[-1].rsplit("open ", 1)[1].strip()
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "config", timeout=30) as response:
            config = json.loads(response.read())
        assert {"recommend_item", "recommend_image", "reconstruct"} <= {d.get("api_name") for d in config["dependencies"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
