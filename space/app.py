"""fashrec Space: visual "similar products" search over a fashion catalogue, and an autoencoder's reconstructions.

    python space/app.py                      # the embedded H&M sample, http://127.0.0.1:7860
    fashrec demo                             # the same, from the console script

Start-up loads, never recomputes: the index folder (made by ``fashrec embed``) through
``fashrec.open_index``, which refuses it, naming the file, unless it is exactly what was sealed, and gives
the model it records with the options it records. Settings come from the environment:

    FASHREC_MODEL   recommendation model: checkpoint folder, Hub id or shipped name (default: the model the
                    index records); refused unless it makes the index's vectors
    FASHREC_RECON_MODEL   reconstruction model (default: FASHREC_MODEL if it has a decoder, else the shipped
                    paper-ae, the paper's autoencoder; "none": no reconstructions)
    FASHREC_INDEX   index folder written by 'fashrec embed' (default: space/index, the embedded sample)

A Space folder made by ``fashrec space build`` also holds ``space.json`` (its index, and the checkpoints
that recommend and reconstruct, as paths in the folder) and ``checkpoints/``; its index names the
checkpoint beside it, so the index and the weights it was made with travel together.
    FASHREC_CONCURRENCY   handlers run at once, all events together (default 1: a search takes ~10 ms)
    FASHREC_TORCH_THREADS torch threads for embedding one photo (default 1: a 64x64 photo needs no more)
    FASHREC_TIMINGS_FILE  append each handler's server-side duration here as JSON lines (benchmarks)
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   where to listen (Gradio's own variables)

Safe to expose: the server serves the index folder's own photos/ and nothing else of the machine (it holds
exactly the catalogue's photos, sealed), handlers read only uploads (Gradio's cache) and those photos,
uploads are capped at MAX_FILE_SIZE and deleted after CACHE_SECONDS, and a bad request is one line in the
log, not a traceback.

Named API endpoints for ``gradio_client`` (every parameter has a default):

    /reconstruct      (image)                                                     -> input, reconstruction, MSE
    /recommend_image  (image, metric, k, product_group, product_type, focus)      -> similar, design
    /recommend_item   (article_id, metric, k, product_group, product_type, focus) -> similar, design

The recommend endpoints answer the page's two questions, as two galleries: ``similar`` ("Similar
products", ranked by ``focus``) and ``design`` ("Other colours of this design", ranked by the model's
design focus with the same metric, k and filters; ``[]`` for a model taught no designs). Each caption's
last line is ``<article_id> · d = <distance>``; the line before it may say why the item is there
("same design, other colour", "same type and colour").

This file is a thin shell: everything it shows comes from ``recommender.Recommender``.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # 'python space/app.py', 'fashrec demo' and the Hub all find recommender.py
    sys.path.insert(0, str(HERE))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # starts and runs with no network
import gradio as gr  # noqa: E402

from recommender import ALL, MAX_K, METRICS, NO_MODEL, Answer, Recommender  # noqa: E402
import status_lines  # noqa: E402
import request_log  # noqa: E402,F401  Gradio's own refusals of a request: one log line each

DEFAULT_INDEX = HERE / "index"
SPACE_FILE = HERE / "space.json"
DEFAULT_K = 8
MAX_FILE_SIZE = "10mb"  # an upload is one product photo
CACHE_SECONDS = 3600  # uploads are deleted once this old, checked this often
log = logging.getLogger("fashrec.space")
DISPLAY_SCALE = 4  # the model sees 64x64: the UI shows its input and output 4x larger, pixels kept sharp
# A click on a tile searches from that product and fills the rows anew; Gradio would keep highlighting the
# position clicked ("selected") over the new results, so no tile is shown as selected.
CSS = """
#results .grid-wrap, #design .grid-wrap { padding-top: 8px; }
#results .thumbnail-item, #design .thumbnail-item, #browse .thumbnail-item { display: flex; flex-direction: column;
  aspect-ratio: auto; height: auto; padding: 4px; }
#results .thumbnail-item img, #design .thumbnail-item img { height: 170px; width: 100%; object-fit: contain; }
#browse .thumbnail-item img { height: 110px; width: 100%; object-fit: contain; }
#results .caption-label, #design .caption-label, #browse .caption-label { position: static; transform: none;
  max-width: 100%; margin: 0; white-space: pre-line; text-align: left; font-size: 0.72rem; line-height: 1.2;
  background: none; border: none; padding: 2px 0 0 0; overflow: visible; }
#browse .caption-label { font-size: 0.65rem; }
:is(#results, #design, #browse) .thumbnail-item.selected:not(:hover) { --ring-color: transparent;
  border-color: var(--border-color-primary); }
.pixelated img { image-rendering: pixelated; }
"""


def load_recommender() -> Recommender:
    """The index and models named by the environment, else by ``space.json`` (see the module docstring)."""
    built = json.loads(SPACE_FILE.read_text(encoding="utf-8")) if SPACE_FILE.is_file() else {}
    recon = built.get("recon_model")
    return Recommender.open(
        os.environ.get("FASHREC_INDEX") or HERE / built.get("index", DEFAULT_INDEX),
        model=os.environ.get("FASHREC_MODEL") or None,
        recon_model=os.environ.get("FASHREC_RECON_MODEL") or (str(HERE / recon) if recon not in (None, NO_MODEL) else recon),
        timings_file=os.environ.get("FASHREC_TIMINGS_FILE") or None,
    )


def build_demo(rec: Recommender):
    """The Gradio Blocks app over ``rec``: a Recommend tab, a Reconstruction tab and three API endpoints."""
    from fashrec.data.preprocess import ImageError

    # Catalogue photos are served straight from the index folder's photos/ (never copied per request into
    # Gradio's cache); that folder holds exactly the catalogue's photos. One folder, not one entry per photo:
    # Gradio checks a path against each entry in turn (68 ms a photo with the sample's 800 photos listed).
    gr.set_static_paths(rec.served_folders())
    # A client may name any path in a request: only uploads and catalogue photos are read.
    rec.restrict_files([gr.utils.get_upload_folder(), *rec.served_folders()])
    user_errors = (ValueError, ImageError, NotImplementedError)
    first_id = rec.featured()
    model_name = type(rec.model).__name__
    recon_name = type(rec.recon_model).__name__
    item_choices = [(rec.label(i), i) for i in rec.ids]
    multi_focus = len(rec.focuses) > 1

    gallery = rec.gallery

    # ---------------------------------------------------------------- UI handlers (never raise)

    def search(mode, article_id, upload, metric, k, group, ptype, focus, weights=""):
        """Run the current query; returns (gallery, result ids, design gallery, design ids, design status,
        query photo, status). Focus weights, when typed, win over the focus choice."""
        focus = (weights or "").strip() or focus or rec.focuses[0]
        options = dict(metric=metric, k=k, product_group=group, product_type=ptype, focus=focus)
        try:
            if mode == "image":
                answer = rec.answer_image(upload, **options)
                query_image, query, article_id = (upload or {}).get("path"), "your photo", None
            elif not article_id:
                return [], [], [], [], "", None, "Pick a catalogue product or upload a photo."
            else:
                answer = rec.answer_item(article_id, **options)
                query_image, query = rec.images[article_id], f"`{article_id}` ({rec.caption(article_id).splitlines()[0]})"
        except user_errors as exc:
            gr.Warning(str(exc))
            return [], [], [], [], "", None, f"⚠️ {exc}"
        design_ids = [h.article_id for h in answer.design]
        others = rec.other_colours(article_id, product_group=group, product_type=ptype) if article_id else None
        design_note = status_lines.design_status(rec.design_focus, design_ids, others) if rec.design_focus else ""
        return (gallery(answer.similar), [h.article_id for h in answer.similar], gallery(answer.design), design_ids,
                design_note, query_image, status_lines.similar_status(
                    query, len(answer.similar), metric=metric, k=k, product_group=group, product_type=ptype,
                    focus=focus if multi_focus else None))

    def pick_item(article_id, *opts):
        """A catalogue product becomes the query (the uploaded photo, if any, is cleared)."""
        return ("item", gr.update(value=article_id), None, article_id or None,
                *search("item", article_id, None, *opts))

    def pick_from(ids, metric, k, group, ptype, focus, weights, evt: gr.SelectData):
        """A click on a gallery tile: search from that product (Gradio passes ``evt`` by its annotation)."""
        return pick_item(ids[evt.index], metric, k, group, ptype, focus, weights)

    def upload_photo(upload, *opts):
        """An uploaded photo becomes the query: the product picker is emptied, so the page shows one query."""
        return ("image", gr.update(value=None), *search("image", None, upload, *opts))

    def browse_page(group, ptype, page):
        ids = rec.browse(product_group=group, product_type=ptype, page=int(page))
        return [(rec.images[i], rec.caption(i)) for i in ids], ids, int(page)

    def group_changed(group):
        return gr.update(choices=rec.types(group), value=ALL)

    def show_reconstruction(upload):
        no_mse = gr.update(value=None, visible=False)  # an empty tab shows no MSE (not a "0")
        if upload is None:
            return None, None, no_mse, ""
        try:
            if not rec.can_reconstruct:  # still show what the model sees
                pre = rec.preprocessed(upload)
                note = f"{model_name} has no decoder: this is what it sees, it cannot reconstruct it."
                return enlarge(pre), None, no_mse, note
            pre, recon, mse = rec.reconstruct(upload)
        except user_errors as exc:
            gr.Warning(str(exc))
            return None, None, no_mse, f"⚠️ {exc}"
        return (enlarge(pre), enlarge(recon), gr.update(value=float(f"{mse:.6g}"), visible=True),
                f"Mean squared error per value (pixels in [0, 1]) between the {pre.shape[1]}×{pre.shape[0]} input "
                f"and {recon_name}'s reconstruction: **{mse:.4g}** (shown enlarged {DISPLAY_SCALE}×).")

    def load_catalogue_photo(article_id):
        return rec.images[article_id] if article_id in rec.images else None

    # ---------------------------------------------------------------- API handlers (raise gr.Error)

    def api_call(fn, *args, **kwargs):
        """A user error goes back to the client (AppError) and into the log as one line, not a traceback."""
        try:
            return fn(*args, **kwargs)
        except user_errors as exc:
            log.warning("bad request to %s: %s", fn.__name__, exc)
            raise gr.Error(str(exc), title="fashrec: bad request", print_exception=False) from None

    def reconstruct(image=None):
        """Preprocess an image, reconstruct it with the autoencoder; returns input, reconstruction and MSE."""
        return api_call(rec.reconstruct, image)

    def galleries(answer: Answer):
        return gallery(answer.similar), gallery(answer.design)

    def recommend_image(image=None, metric="cosine", k=DEFAULT_K, product_group=ALL, product_type=ALL, focus=None):
        """The k catalogue products nearest to an image, and its design's nearest (other colours of it);
        filters by product group / type ('All' = any)."""
        return galleries(api_call(rec.answer_image, image, metric=metric, k=k, product_group=product_group,
                                  product_type=product_type, focus=focus or rec.focuses[0]))

    def recommend_item(article_id=first_id, metric="cosine", k=DEFAULT_K, product_group=ALL, product_type=ALL, focus=None):
        """The k catalogue products nearest to a catalogue product (itself left out), and by its design."""
        return galleries(api_call(rec.answer_item, article_id, metric=metric, k=k, product_group=product_group,
                                  product_type=product_type, focus=focus or rec.focuses[0]))

    # ---------------------------------------------------------------- layout

    with gr.Blocks(title="fashrec: similar fashion products", delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(
            f"# fashrec: visual similar-product search\n"
            f"A catalogue of **{len(rec):,}** H&M products. Pick a product or upload a photo: the nearest "
            "products by embedding distance come back"
            + (", and other colours of its design" if rec.design_focus else "")
            + ". Photos: H&M Group (Kaggle competition data, research use only).\n\n"
            f"**Recommendations:** {rec.describe_model()} · **Reconstructions:** {rec.describe_recon_model()}",
            elem_id="models",
        )
        mode = gr.State("item")
        last_item = gr.State(first_id)  # the product to go back to when an uploaded photo is removed
        result_ids = gr.State([])
        design_ids = gr.State([])
        browse_ids = gr.State([])
        page = gr.State(0)
        with gr.Tabs():
            with gr.Tab("Recommend", id="recommend"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        item = gr.Dropdown(item_choices, value=first_id, label="Catalogue product (type a name or id)",
                                           filterable=True, elem_id="item")
                        upload = gr.Image(type="filepath", label="…or upload a photo", sources=["upload", "clipboard"],
                                          height=200, elem_id="upload")
                        query_view = gr.Image(label="Query", interactive=False, height=200, elem_id="query")
                        focus = gr.Radio(list(rec.focuses), value=rec.focuses[0], label="Similar in…",
                                         visible=multi_focus, elem_id="focus")
                        weights = gr.Textbox(label="…or weigh the focuses", placeholder="shape=2, colour=1",
                                             visible=multi_focus, max_lines=1, elem_id="weights")
                        metric = gr.Dropdown(list(METRICS), value="cosine", label="Distance", elem_id="metric")
                        k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Results (k)", elem_id="k")
                        group = gr.Dropdown(rec.groups(), value=ALL, label="Product group", elem_id="group")
                        ptype = gr.Dropdown(rec.types(), value=ALL, label="Product type", elem_id="ptype")
                    with gr.Column(scale=3):
                        status = gr.Markdown(elem_id="status")
                        results = gr.Gallery(label="Similar products (click one to search from it)", columns=4,
                                             height="auto", object_fit="contain", allow_preview=False,
                                             elem_id="results")
                        with gr.Column(visible=rec.design_focus is not None, elem_id="design_row"):  # taught designs
                            design_status = gr.Markdown(elem_id="design_status")
                            design = gr.Gallery(label="Other colours of this design (click one to search from it)",
                                                columns=4, height="auto", object_fit="contain", allow_preview=False,
                                                elem_id="design")
                        with gr.Accordion("Browse the catalogue", open=False):
                            browse = gr.Gallery(show_label=False, columns=8, height="auto", object_fit="contain",
                                                allow_preview=False, elem_id="browse")
                            more = gr.Button("More products", size="sm")
            with gr.Tab("Reconstruction", id="reconstruction"):
                if not rec.can_reconstruct:
                    gr.Markdown(f"**Note:** {recon_name} is an embedding model without a decoder: it cannot "
                                "reconstruct images. Load an autoencoder (FASHREC_RECON_MODEL) to use this tab.",
                                elem_id="r_model")
                else:
                    gr.Markdown(f"What an autoencoder keeps of a photo. Reconstructions by {rec.describe_recon_model()}"
                                + ("" if rec.recon_model is rec.model else
                                   f"; recommendations use {model_name}, which has no decoder") + ".",
                                elem_id="r_model")
                with gr.Row():
                    with gr.Column():
                        r_item = gr.Dropdown(item_choices, value=None, label="Catalogue product", filterable=True,
                                             elem_id="r_item")
                        r_upload = gr.Image(type="filepath", label="…or upload a photo", sources=["upload", "clipboard"],
                                            height=256, elem_id="r_upload")
                        gr.Examples([[rec.images[i]] for i in rec.browse(per_page=4)], inputs=[r_upload],
                                    label="Examples")
                    r_input = gr.Image(label="Preprocessed input", format="png", interactive=False, height=256,
                                       elem_classes="pixelated", elem_id="r_input")
                    r_output = gr.Image(label="Reconstruction", format="png", interactive=False, height=256,
                                        elem_classes="pixelated", elem_id="r_output")
                r_mse = gr.Number(label="MSE", precision=None, interactive=False, visible=False, elem_id="r_mse")
                r_status = gr.Markdown(elem_id="r_status")
        with gr.Row(visible=False):  # inputs of the API-only endpoints
            api_image = gr.Image(type="filepath", label="image")
            api_article = gr.Textbox(value=first_id, label="article_id")
            api_results = gr.Gallery(label="similar products", format="png")
            api_design = gr.Gallery(label="other colours of this design", format="png")
            api_buttons = [gr.Button(name) for name in ("reconstruct", "recommend_image", "recommend_item")]

        options = [metric, k, group, ptype, focus]  # what the API endpoints take
        ui_options = options + [weights]
        query_outputs = [results, result_ids, design, design_ids, design_status, query_view, status]
        picked_outputs = [mode, item, upload, last_item] + query_outputs
        # One queue slot group for every event: at most FASHREC_CONCURRENCY handlers run at once, in total.
        private = dict(api_visibility="private", concurrency_id="fashrec")

        # Recommend tab
        rerun = dict(fn=search, inputs=[mode, item, upload] + ui_options, outputs=query_outputs, preprocess=False,
                     **private)
        item.input(pick_item, [item] + ui_options, picked_outputs, **private)
        upload.upload(upload_photo, [upload] + ui_options, [mode, item] + query_outputs, preprocess=False, **private)
        upload.clear(lambda last: ("item", last), last_item, [mode, item], **private).then(**rerun)
        results.select(pick_from, [result_ids] + ui_options, picked_outputs, **private)
        design.select(pick_from, [design_ids] + ui_options, picked_outputs, **private)
        browse.select(pick_from, [browse_ids] + ui_options, picked_outputs, **private)
        for control in (metric, ptype, focus):
            control.input(**rerun)
        weights.submit(**rerun)
        weights.blur(**rerun)
        k.release(**rerun)
        group.input(group_changed, group, ptype, **private).then(**rerun).then(
            browse_page, [group, ptype, gr.State(0)], [browse, browse_ids, page], **private)
        ptype.input(browse_page, [group, ptype, gr.State(0)], [browse, browse_ids, page], **private)
        more.click(lambda g, t, p: browse_page(g, t, p + 1), [group, ptype, page], [browse, browse_ids, page], **private)
        demo.load(**rerun).then(browse_page, [group, ptype, page], [browse, browse_ids, page], **private)

        # Reconstruction tab
        r_item.input(load_catalogue_photo, r_item, r_upload, **private)
        r_upload.change(show_reconstruction, r_upload, [r_input, r_output, r_mse, r_status], preprocess=False, **private)

        # API endpoints
        api_buttons[0].click(reconstruct, [api_image], [r_input, r_output, r_mse], preprocess=False,
                             api_name="reconstruct", concurrency_id="fashrec")
        api_buttons[1].click(recommend_image, [api_image] + options, [api_results, api_design], preprocess=False,
                             api_name="recommend_image", concurrency_id="fashrec")
        api_buttons[2].click(recommend_item, [api_article] + options, [api_results, api_design], preprocess=False,
                             api_name="recommend_item", concurrency_id="fashrec")
    return demo


def enlarge(image):
    """An ``(H, W, 3)`` uint8 image repeated ``DISPLAY_SCALE`` times in each direction (nearest neighbour)."""
    return image.repeat(DISPLAY_SCALE, axis=0).repeat(DISPLAY_SCALE, axis=1)


def main(argv: list[str] | None = None) -> int:
    """Load, build and serve; prints the local URL. Blocks until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _set_torch_threads()
    try:
        rec = load_recommender()
    except (ValueError, FileNotFoundError) as exc:  # a refused index or model: one line, not a traceback
        print(f"fashrec Space: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    rec.warm_up()  # before serving: search structures are built once, not on some user's first query
    demo = build_demo(rec)
    concurrency = int(os.environ.get("FASHREC_CONCURRENCY", "1"))
    demo.queue(default_concurrency_limit=concurrency)
    _, url, _ = demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        allowed_paths=rec.served_folders(),
        max_file_size=MAX_FILE_SIZE,
        # System fonts: the page asks no font server for anything (offline demos, headless tests).
        theme=gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        css=CSS,
        prevent_thread_lock=True,
        quiet=True,
    )
    recon = "none" if not rec.can_reconstruct else type(rec.recon_model).__name__
    print(f"fashrec Space: {len(rec):,} products, model {type(rec.model).__name__}, reconstructions {recon}; "
          f"open {url}", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def _set_torch_threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(int(os.environ.get("FASHREC_TORCH_THREADS", "1")), os.cpu_count() or 1)))


if __name__ == "__main__":
    sys.exit(main())
