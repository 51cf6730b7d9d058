"""The Space in a real browser: Debian's headless Chromium driven by Playwright (never 'playwright install').

Opens the app, switches tabs, uploads photos, changes the metric and the focus, clicks a result and checks
what the page shows against the library (the default Space: multitask-cnn recommends with five focuses,
the paper's paper-ae reconstructs). Screenshots go to ``docs/screenshots/`` when ``FASHREC_SCREENSHOTS=1``,
else to the test's tmp folder.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INDEX = Path(os.environ.get("FASHREC_INDEX") or REPO_ROOT / "space" / "index")
CHROMIUM = os.environ.get("FASHREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
CAPTION_TAIL = re.compile(r"(?P<id>\S+) · d = (?P<d>\S+)\s*$")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def library():
    import fashrec

    opened = fashrec.open_index(INDEX, os.environ.get("FASHREC_MODEL") or None)
    return opened.model, opened.index, {i: str(p) for i, p in opened.photos.items()}


@pytest.fixture(scope="module")
def featured(library) -> str:
    """The product the page opens on (Recommender.featured: a garment of a known type)."""
    from space.recommender import Recommender

    model, index, photos = library
    return Recommender(model=model, index=index, images=[photos[i] for i in index.ids]).featured()


@pytest.fixture(scope="module")
def recon_model(library):
    """What the app reconstructs with: FASHREC_RECON_MODEL, else the served model if it has a decoder,
    else the shipped paper-ae."""
    import fashrec
    from space.recommender import has_decoder

    model = library[0]
    ref = os.environ.get("FASHREC_RECON_MODEL") or (None if has_decoder(model) else "paper-ae")
    return model if ref is None else fashrec.from_pretrained(fashrec.pretrained.resolve(ref)).eval()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from space.local_server import running_space

    with running_space(env={"FASHREC_INDEX": str(INDEX)}, log=tmp_path_factory.mktemp("space") / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail(f"CI must have Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.outside_requests = []  # anything the page asks of another host (fonts, CDNs, analytics)
        page.on("request", lambda r: None if r.url.startswith((app_url, "data:", "blob:"))
                else page.outside_requests.append(r.url))
        page.goto(app_url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("FASHREC_SCREENSHOTS") == "1":
        folder = REPO_ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def result_tiles(page, row: str = "results") -> list[tuple[str, float]]:
    """(id, distance) of each tile of a results gallery (``results`` or ``design``), from its caption."""
    out = []
    for caption in page.locator(f"#{row} .caption-label").all_inner_texts():
        match = CAPTION_TAIL.search(caption)
        assert match, caption
        out.append((match["id"], float(match["d"])))
    return out


def wait_for_results(page, previous: list | None = None, row: str = "results") -> list[tuple[str, float]]:
    """Wait until a results gallery is filled (and differs from ``previous``) and its photos are loaded."""
    page.wait_for_selector(f"#{row} .caption-label")
    if previous is not None:
        page.wait_for_function(
            "arg => { const [row, old] = arg; const c = [...document.querySelectorAll('#' + row + ' .caption-label')]"
            ".map(e => e.innerText.trim().split('\\n').pop().trim()); return c.length > 0 && c.join('|') !== old; }",
            arg=[row, "|".join(f"{i} · d = {d:.4g}" for i, d in previous)],
        )
    wait_for_images(page, f"#{row} img")
    return result_tiles(page, row)


def wait_for_images(page, selector: str) -> None:
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel)]; "
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector,
    )


def screenshot(page, path: Path) -> None:
    """A full-page screenshot without Gradio's toasts (warnings left over from earlier steps)."""
    style = page.add_style_tag(content=".toast-wrap { display: none !important; }")
    page.screenshot(path=str(path), full_page=True)
    style.evaluate("node => node.remove()")


def choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_for_status(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text)


def test_recommend_tab_upload_metric_focus_and_click(page, library, featured, shots):
    from fashrec.data.preprocess import preprocess
    from space.recommender import MAX_K

    model, index, photos = library
    # The page opens on a garment of a known type (not a close-up of socks of type "Unknown") and its
    # neighbours; it names the model of each tab.
    first = wait_for_results(page)
    expected, _ = index.search_ids([featured], k=8, metric="cosine")
    assert [i for i, _ in first] == expected[0]
    if model.design_focus is not None:  # and the second question: other colours of its design
        expected, _ = index.search_ids([featured], k=8, metric="cosine", focus=model.design_focus)
        assert [i for i, _ in wait_for_results(page, row="design")] == expected[0]
    else:
        assert not page.locator("#design").is_visible()
    assert type(model).__name__ in page.inner_text("#models").split("Reconstructions")[0]
    assert featured in page.locator("#item input").input_value()
    assert "Unknown" not in page.locator("#item input").input_value()
    # The k slider goes up to MAX_K, the most the API serves.
    assert page.locator("#k input[type=range]").get_attribute("max") == str(MAX_K)

    # Upload a catalogue photo: it is embedded and finds itself first; the product picker empties, so the
    # page shows one query (the photo), not a product and a photo.
    query = index.ids[len(index) // 3]
    page.locator("#upload input[type=file]").set_input_files(photos[query])
    wait_for_status(page, "your photo")
    uploaded = wait_for_results(page, previous=first)
    x = preprocess(photos[query], model.preprocess_config)[None]
    expected, _ = index.search(model.embed(x).numpy(), k=8, metric="cosine")
    assert [i for i, _ in uploaded] == expected[0]
    assert uploaded[0][0] == query
    assert page.locator("#item input").input_value() == ""

    # Change the metric: the same query, ranked by cityblock distance.
    choose(page, "metric", "cityblock")
    wait_for_status(page, "cityblock")
    by_l1 = wait_for_results(page, previous=uploaded)
    expected, dist = index.search(model.embed(x).numpy(), k=8, metric="cityblock")
    assert [i for i, _ in by_l1] == expected[0]
    np.testing.assert_allclose([d for _, d in by_l1], dist[0], rtol=1e-3, atol=1e-4)

    # Similar in colour: the focus control re-ranks the same photo by its colour embedding.
    focus = "colour" if "colour" in index.focuses else None
    if focus is None:
        assert not page.locator("#focus").is_visible()
        return
    assert page.locator("#focus").is_visible()
    page.locator("#focus").get_by_text(focus, exact=True).click()
    wait_for_status(page, f"similar in {focus}")
    by_colour = wait_for_results(page, previous=by_l1)
    expected, dist = index.search(model.embed(x, focus=focus).numpy(), k=8, metric="cityblock", focus=focus)
    assert [i for i, _ in by_colour] == expected[0]
    np.testing.assert_allclose([d for _, d in by_colour], dist[0], rtol=1e-3, atol=1e-4)
    assert [i for i, _ in by_colour] != [i for i, _ in by_l1]

    # Click the third result: it becomes the query (picker shows it, the photo is gone) and the gallery
    # changes to its neighbours, still by cityblock distance and colour.
    clicked = by_colour[2][0]
    page.locator("#results .thumbnail-item").nth(2).click()
    wait_for_status(page, clicked)
    after_click = wait_for_results(page, previous=by_colour)
    expected, _ = index.search_ids([clicked], k=8, metric="cityblock", focus=focus)
    assert [i for i, _ in after_click] == expected[0]
    assert clicked in page.locator("#item input").input_value()

    # Weights typed in the box win over the choice; emptying the box goes back to it.
    page.locator("#weights input, #weights textarea").first.fill("shape=2, colour=1")
    page.locator("#weights input, #weights textarea").first.press("Enter")
    wait_for_status(page, "weighted")
    weighted = wait_for_results(page, previous=after_click)
    expected, _ = index.search_ids([clicked], k=8, metric="cityblock", focus={"shape": 2.0, "colour": 1.0})
    assert [i for i, _ in weighted] == expected[0]
    page.locator("#weights input, #weights textarea").first.fill("")
    page.locator("#weights input, #weights textarea").first.press("Enter")
    wait_for_status(page, f"similar in {focus}")


def test_other_colours_of_this_design_and_a_click_on_one(page, library, shots):
    """The second row answers "other colours of this design" by the model's design focus, whatever the first
    row's focus; its captions say which results are the query's design in another colour, and a click on one
    searches from it (both rows follow)."""
    from space.recommender import Recommender

    model, index, photos = library
    if model.design_focus is None:
        pytest.skip("the served model was taught no designs: no second row (test_space_api checks it is hidden)")
    design, meta = model.design_focus, index.metadata.set_index("article_id")
    rec = Recommender(model=model, index=index, images=[photos[i] for i in index.ids])
    # The page as it opens (cosine, the first focus), on a product whose design row finds another colour of it.
    query = next(i for i in index.ids if any(
        j in rec.other_colours(i) for j in index.search_ids([i], k=8, metric="cosine", focus=design)[0][0]))
    choose(page, "metric", "cosine")
    page.locator("#focus").get_by_text(index.focuses[0], exact=True).click()
    page.locator("#item input").fill(query)
    before = result_tiles(page, "design")
    page.get_by_role("option").filter(has_text=query).first.click()
    wait_for_status(page, query)
    shown = wait_for_results(page, previous=before, row="design")
    similar = wait_for_results(page)
    assert [i for i, _ in similar] == index.search_ids([query], k=8, metric="cosine", focus=index.focuses[0])[0][0]
    assert [i for i, _ in shown] == index.search_ids([query], k=8, metric="cosine", focus=design)[0][0]
    assert_design_captions(page, meta, query)
    others = rec.other_colours(query)
    found = sum(i in others for i, _ in shown)
    assert f"{found} of {len(others)} other colour" in page.inner_text("#design_status")
    screenshot(page, shots / "recommend_tab.png")  # the README's picture: both rows, a design found

    # Click the other colour of the design: it becomes the query, and both rows are its own.
    tile = next(n for n, (i, _) in enumerate(shown) if i in others)
    clicked = shown[tile][0]
    page.locator("#design .thumbnail-item").nth(tile).click()
    wait_for_status(page, clicked)
    after = wait_for_results(page, previous=shown, row="design")
    assert [i for i, _ in after] == index.search_ids([clicked], k=8, metric="cosine", focus=design)[0][0]
    assert [i for i, _ in wait_for_results(page)] == \
        index.search_ids([clicked], k=8, metric="cosine", focus=index.focuses[0])[0][0]
    assert clicked in page.locator("#item input").input_value()
    assert_design_captions(page, meta, clicked)


def assert_design_captions(page, meta, query: str) -> None:
    """Each tile of the design row says whether it is the query's design, and in which colour."""
    code, colour = meta.loc[query, "product_code"], meta.loc[query, "colour_group_name"]
    for caption in page.locator("#design .caption-label").all_inner_texts():
        lines = caption.strip().splitlines()
        item = CAPTION_TAIL.search(lines[-1])["id"]
        same = meta.loc[item, "product_code"] == code
        assert lines[-2] == ("similar design" if not same else "same design, same colour"
                             if meta.loc[item, "colour_group_name"] == colour else "same design, other colour"), caption
        assert meta.loc[item, "colour_group_name"] in lines[-3]


def test_filter_by_product_group(page, library):
    _, index, _ = library
    meta = index.metadata
    group = meta["product_group_name"].value_counts().index[0]
    choose(page, "group", group)
    page.wait_for_function("g => document.querySelector('#status').innerText.includes('within product group ' + g)",
                           arg=group)
    tiles = wait_for_results(page)
    by_id = meta.set_index("article_id")["product_group_name"]
    assert tiles and all(by_id[i] == group for i, _ in tiles)


def test_bad_upload_shows_a_message_and_the_page_keeps_working(page, library, tmp_path):
    _, index, photos = library
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(Path(photos[index.ids[0]]).read_bytes()[:200])
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('broken.jpg')")
    assert "⚠️" in page.inner_text("#status")
    # Still serving: picking a catalogue product from the browse gallery searches from it.
    page.get_by_text("Browse the catalogue").click()
    wait_for_images(page, "#browse img")
    target_caption = page.locator("#browse .caption-label").nth(1).inner_text()
    target = target_caption.strip().splitlines()[-1].strip()
    page.locator("#browse .thumbnail-item").nth(1).click()
    page.wait_for_function(f"() => document.querySelector('#status').innerText.includes('{target}')")
    tiles = wait_for_results(page)
    assert tiles and target not in [i for i, _ in tiles]


def test_reconstruction_tab(page, library, recon_model, shots):
    """The tab reconstructs with the reconstruction model (the paper's AE by default, while the multitask
    model recommends): the preprocessed input, its reconstruction and the MSE."""
    import torch

    from fashrec.data.preprocess import preprocess

    _, index, photos = library
    page.get_by_role("tab", name="Reconstruction").click()
    assert type(recon_model).__name__ in page.inner_text("#r_model")
    assert not page.locator("#r_mse").is_visible()  # nothing reconstructed yet: no MSE (it used to read "0")
    photo = photos[index.ids[5]]
    page.locator("#r_upload input[type=file]").set_input_files(photo)
    size = recon_model.preprocess_config.image_size
    x = preprocess(photo, recon_model.preprocess_config)[None]
    with torch.no_grad():
        expected = float(torch.mean((recon_model.reconstruct(x).clamp(0, 1) - x) ** 2))
    page.wait_for_function("() => document.querySelector('#r_status').innerText.includes('Mean squared error')")
    wait_for_images(page, "#r_input img, #r_output img")
    assert float(page.locator("#r_mse input").input_value()) == pytest.approx(expected, rel=1e-5)  # 6 digits shown
    shown_size = page.eval_on_selector("#r_input img", "i => [i.naturalWidth, i.naturalHeight]")
    assert shown_size == [4 * size, 4 * size]  # the 64x64 input, enlarged 4x for the eye
    screenshot(page, shots / "reconstruction_tab.png")
    page.get_by_role("tab", name="Recommend").click()
    assert page.locator("#results").is_visible()


def test_huge_focus_weights_are_refused_on_the_page(page, library):
    _, index, _ = library
    if len(index.focuses) < 2:
        pytest.skip("one focus: no weights box")
    page.get_by_role("tab", name="Recommend").click()
    box = page.locator("#weights input, #weights textarea").first
    box.fill("shape=1.7e308, colour=1")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('keep each at most')")
    assert "⚠️" in page.inner_text("#status")
    box.fill("")
    box.press("Enter")
    page.wait_for_function("() => !document.querySelector('#status').innerText.includes('⚠️')")


def test_an_upload_over_the_size_limit_is_refused_on_the_page(page, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(11 * 1024 * 1024))
    page.get_by_role("tab", name="Recommend").click()
    page.locator("#upload input[type=file]").set_input_files(str(big))
    toast = page.locator(".toast-body").filter(has_text=re.compile("size|large|exceed", re.IGNORECASE))
    toast.first.wait_for()
    assert "10" in toast.first.inner_text()


def test_the_page_asks_nothing_of_other_hosts(page):
    assert page.outside_requests == []
