"""What the Space shows, without the UI: the page's verbs over an index folder opened by the library.

    rec = Recommender.open("space/index")                    # fashrec.open_index: checked, loads, never embeds
    hits = rec.recommend_item("0156224002", metric="cosine", k=8, product_group="All")
    hits = rec.recommend_image("photo.jpg", metric="cityblock", k=8, focus="shape=2, colour=1")
    answer = rec.answer_item("0156224002", k=8)              # the recommend tab's two rows: answer.similar,
                                                             # answer.design (other colours of this design)
    pre, recon, mse = rec.reconstruct("photo.jpg")

``app.py`` is a thin Gradio shell over this class. Opening, checking and loading is the library's
(``fashrec.open_index``: the seal, the ids, the catalogue's photos, the model with its recorded options);
every query goes through it too: images through ``fashrec.preprocess`` with the model's own config,
vectors through ``model.embed``, neighbours and focus weights through ``SimilarityIndex.search`` /
``search_ids``. What is left here is about the page: captions, galleries, the filter choices, the
Space's own limits (``MAX_K``, whole-number ``k``), which model reconstructs, and what a request may read.

Two questions, two rows: "Similar products" ranks by the focus the shopper picks (``overall`` first);
"Other colours of this design" ranks by the focus the model names as its design focus
(``fashrec.index.focus.design_focus``: the checkpoint's config says which, e.g. ``shape``), and is empty
for a model taught no designs. Captions say why a result is in its row (``captions.py``).

Recommendations and reconstructions may come from two models: the best embedding model (``MultiTaskCNN``)
has no decoder, so reconstructions then come from the paper's autoencoder (the shipped ``paper-ae``).

Bad input raises ``ValueError`` (``fashrec.ImageError`` for images) with a message meant for the user.
Served to the public (``restrict_files``), it reads no file a client names: an image must be an upload in
Gradio's cache or a catalogue photo, and any other path gets the same ``"not an uploaded image"`` error,
whether or not it exists.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fashrec.index.distances import METRICS
from fashrec.index.focus import design_focus

if str(Path(__file__).resolve().parent) not in sys.path:  # its sibling modules, however this file was loaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import captions  # noqa: E402
from captions import DESIGN, SIMILAR  # noqa: E402
from catalogue_labels import ALL, CatalogueLabels  # noqa: E402,F401
from inputs import NOT_UPLOADED, check_upload, preprocess_upload, to_uint8, whole_number  # noqa: E402,F401

MAX_K = 48
RECON_DEFAULT = "paper-ae"  # the shipped paper autoencoder: reconstructions when the recommender has no decoder
NO_MODEL = "none"  # FASHREC_RECON_MODEL=none: no reconstruction model at all


@dataclass(frozen=True)
class Hit:
    """One recommended catalogue item: its id, distance to the query, photo and caption."""

    article_id: str
    distance: float
    image: str  # the photo file the index folder serves for it
    caption: str


@dataclass(frozen=True)
class Answer:
    """The recommend tab's two rows for one query."""

    similar: list[Hit]  # "Similar products": the nearest by the chosen focus
    design: list[Hit]  # "Other colours of this design": the nearest by the design focus ([] without one)


class Recommender:
    """A model, the index of a catalogue, its photos and labels, and the model that reconstructs
    (``recon_model``; None: ``model`` itself, which may have no decoder)."""

    def __init__(self, *, model, index, images, timings_file: str | os.PathLike | None = None, recon_model=None,
                 model_name: str | None = None, recon_model_name: str | None = None,
                 photo_dir: str | os.PathLike | None = None):
        images = [images[i] for i in index.ids] if isinstance(images, Mapping) else list(images)
        if len(images) != len(index):
            raise ValueError(f"got {len(images)} catalogue images for an index of {len(index)} items")
        self.model = model
        self.recon_model = model if recon_model is None else recon_model
        self.model_name = model_name
        self.recon_model_name = model_name if recon_model is None else recon_model_name
        self.index = index
        self.ids = index.ids
        self.images = {i: str(p) for i, p in zip(self.ids, images)}
        self.photo_dir = None if photo_dir is None else Path(photo_dir)
        self.labels = CatalogueLabels(self.ids, index.metadata)  # captions, filters, browsing
        self.focuses = tuple(index.focuses)
        self.design_focus = design_focus(model, self.focuses)  # None: no "Other colours of this design" row
        self.timings: deque[tuple[str, float]] = deque(maxlen=10_000)
        self._timings_file = None if timings_file is None else Path(timings_file)
        self._lock = threading.Lock()
        self._can_reconstruct: bool | None = None
        self._file_roots: list[str] | None = None  # restrict_files: where an image path may point

    @classmethod
    def open(cls, index: str | os.PathLike, *, model: str | None = None, recon_model: str | None = None,
             timings_file: str | os.PathLike | None = None) -> "Recommender":
        """The index folder ``index`` through ``fashrec.open_index`` (refused, naming the file, unless it is
        exactly what was sealed and ``model`` makes its vectors; ``model=None``: the one it records).
        ``recon_model`` reconstructs: None = the model if it has a decoder, else the shipped ``paper-ae``;
        ``"none"`` = no reconstructions; else a checkpoint (shipped name, folder or Hub id)."""
        from fashrec.index.folder import open_index
        from fashrec.models.hub_model import load_model
        from fashrec.models.pretrained import names

        opened = open_index(index, model)
        loaded = opened.model
        recon, recon_name = None, None
        if recon_model == NO_MODEL:
            recon = _NoDecoder(loaded)
        elif recon_model or (not has_decoder(loaded) and RECON_DEFAULT in names()):
            recon_name = short_name(recon_model or RECON_DEFAULT)
            recon = load_model(recon_model or RECON_DEFAULT).eval()
        return cls(model=loaded, index=opened.index, images=opened.photos, timings_file=timings_file,
                   recon_model=recon, model_name=short_name(opened.model_ref or type(loaded).__name__),
                   recon_model_name=recon_name, photo_dir=opened.photo_dir)

    # ------------------------------------------------------------------ what serves what

    def describe_model(self) -> str:
        """The recommendation model in words: ``MultiTaskCNN `multitask-cnn` (D-d per focus: overall, shape, ...)``."""
        return describe(self.model, self.model_name, self.focuses)

    def describe_recon_model(self) -> str:
        """The reconstruction model in words, or why there is none."""
        if isinstance(self.recon_model, _NoDecoder):
            return "none (FASHREC_RECON_MODEL=none)"
        if not self.can_reconstruct:
            return f"none ({type(self.recon_model).__name__} has no decoder)"
        if self.recon_model is self.model:
            return "the same model"
        return describe(self.recon_model, self.recon_model_name)

    def served_folders(self) -> list[str]:
        """What the web server may serve: the index folder's ``photos/``, which holds exactly the catalogue's
        photos (``fashrec.open_index`` checked it); for a Recommender made from loose photos, their folders."""
        if self.photo_dir is not None:
            return [str(self.photo_dir.resolve())]
        return sorted({str(Path(p).resolve().parent) for p in self.images.values()})

    # ------------------------------------------------------------------ catalogue

    def __len__(self) -> int:
        return len(self.ids)

    def info(self, article_id: str) -> dict[str, str]:
        """The item's labels as strings ({} when the index has no metadata)."""
        return dict(self.labels.row(article_id))

    def label(self, article_id: str) -> str:
        return captions.label(self.labels.row(article_id), article_id)

    def caption(self, article_id: str, distance: float | None = None) -> str:
        return captions.caption(self.labels.row(article_id), article_id, distance)

    def other_colours(self, article_id: str, *, product_group: str = ALL, product_type: str = ALL) -> list[str]:
        return self.labels.other_colours(article_id, product_group=product_group, product_type=product_type)

    def gallery(self, hits: list[Hit]) -> list[tuple[str, str]]:
        """A row of results as a Gradio gallery takes it: ``(photo, caption)`` each."""
        return [(h.image, h.caption) for h in hits]

    def groups(self) -> list[str]:
        return self.labels.groups()

    def types(self, product_group: str = ALL) -> list[str]:
        return self.labels.types(product_group)

    def browse(self, *, product_group: str = ALL, product_type: str = ALL, page: int = 0, per_page: int = 24) -> list[str]:
        return self.labels.browse(product_group=product_group, product_type=product_type, page=page, per_page=per_page)

    def featured(self) -> str:
        return self.labels.featured()

    def restrict_files(self, folders) -> None:
        """From now on an image given as a path (or Gradio's ``{"path": ...}``) must lie inside one of
        ``folders`` (Gradio's upload cache, the catalogue photos); other inputs that name no upload are
        refused alike. What a public Space needs: clients must not make the server read its own files."""
        self._file_roots = [os.path.realpath(f) for f in folders]

    # ------------------------------------------------------------------ the three verbs

    def reconstruct(self, image: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """The preprocessed input and its reconstruction (``(S, S, 3)`` uint8) and the MSE on [0, 1] floats.

        Raises ``fashrec.ImageError`` for a bad image and ``NotImplementedError`` for a model that has no
        decoder (a classifier-style embedding model).
        """
        import torch

        if not self.can_reconstruct:
            raise NotImplementedError(
                f"{type(self.recon_model).__name__} embeds images but has no decoder, so it cannot reconstruct "
                "them (set FASHREC_RECON_MODEL to an autoencoder, e.g. paper-ae)"
                if not isinstance(self.recon_model, _NoDecoder) else "this Space cannot reconstruct: "
                "reconstructions are switched off (FASHREC_RECON_MODEL=none)"
            )
        start, cpu = time.perf_counter(), time.thread_time()
        x = preprocess_upload(check_upload(image, self._file_roots), self.recon_model.preprocess_config)
        with torch.no_grad():
            recon = self.recon_model.reconstruct(x).clamp(0, 1)
        mse = float(torch.mean((recon - x) ** 2))
        self._record("reconstruct", time.perf_counter() - start, time.thread_time() - cpu)
        return to_uint8(x[0]), to_uint8(recon[0]), mse

    def preprocessed(self, image: Any) -> np.ndarray:
        """What the recommendation model sees: the ``(S, S, 3)`` uint8 preprocessed image."""
        return to_uint8(preprocess_upload(check_upload(image, self._file_roots), self.model.preprocess_config)[0])

    @property
    def can_reconstruct(self) -> bool:
        """Whether the reconstruction model has a decoder (asked once)."""
        if self._can_reconstruct is None:
            self._can_reconstruct = has_decoder(self.recon_model)
        return self._can_reconstruct

    def recommend_item(self, article_id: str, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                       product_type: str = ALL, focus: str | Mapping[str, float] | None = None) -> list[Hit]:
        """The ``k`` nearest catalogue items of a catalogue item (the item itself left out)."""
        return self._answer(article_id, None, metric, k, product_group, product_type, focus, design=False).similar

    def recommend_image(self, image: Any, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                        product_type: str = ALL, focus: str | Mapping[str, float] | None = None) -> list[Hit]:
        """The ``k`` nearest catalogue items of a photo (any input ``fashrec.preprocess`` takes)."""
        return self._answer(None, image, metric, k, product_group, product_type, focus, design=False).similar

    def answer_item(self, article_id: str, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                    product_type: str = ALL, focus: str | Mapping[str, float] | None = None) -> Answer:
        """Both rows of the recommend tab for a catalogue item (left out of both): ``recommend_item``'s, and
        the ``k`` nearest by the design focus with the same metric and filters ([] without a design focus)."""
        return self._answer(article_id, None, metric, k, product_group, product_type, focus, design=True)

    def answer_image(self, image: Any, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                     product_type: str = ALL, focus: str | Mapping[str, float] | None = None) -> Answer:
        """Both rows of the recommend tab for a photo, embedded once for both."""
        return self._answer(None, image, metric, k, product_group, product_type, focus, design=True)

    def warm_up(self) -> float:
        """Build the index's lazily made search structures (per focus and metric) now, with one search each,
        so that no user's first query pays for them (up to 0.7 s each at 5,000 items). Returns seconds."""
        start = time.perf_counter()
        for focus in self.focuses:
            for metric in METRICS:
                self.index.search_ids(self.ids[:1], k=1, metric=metric, focus=focus)
        return time.perf_counter() - start

    # ------------------------------------------------------------------ internals

    def _options(self, metric, k, product_group, product_type, focus, *, exclude: str | None = None):
        """Checked search options and the focuses to embed a photo for; ``k`` is lowered to the items the
        filters leave (besides ``exclude``). Focus names and weights are judged by the library."""
        from fashrec.index.focus import focus_weights, parse_focus

        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
        k = whole_number(k, "k")
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        focus = parse_focus(focus, default=self.focuses[0])
        needed = list(focus_weights(focus, self.focuses))  # ValueError for an unknown focus or a bad weight
        where, left = self.labels.filters(product_group, product_type, exclude=exclude)
        return metric, min(k, left), where or None, focus, needed

    def _answer(self, article_id, image, metric, k, product_group, product_type, focus, *, design: bool) -> Answer:
        """One query (a catalogue item, or else a photo) answered by ``focus`` and, with ``design``, by the
        design focus too; the photo is preprocessed and embedded once for both."""
        start, cpu = time.perf_counter(), time.thread_time()
        query = None
        if image is None:
            article_id = str(article_id or "").strip()
            if article_id not in self.images:
                raise ValueError(f"article id {article_id!r} is not in this catalogue of {len(self)} items")
            query = self.labels.row(article_id)
        metric, k, where, focus, needed = self._options(metric, k, product_group, product_type, focus,
                                                        exclude=article_id if image is None else None)
        focuses = [(focus, SIMILAR)] + ([(self.design_focus, DESIGN)] if design and self.design_focus else [])
        if image is None:
            def search(f):
                return self.index.search_ids([article_id], k=k, metric=metric, where=where, focus=f)
        else:
            x = preprocess_upload(check_upload(image, self._file_roots), self.model.preprocess_config)
            wanted = dict.fromkeys(needed + [f for f, _ in focuses[1:]])
            every = self.model.embed_focuses(x)  # one pass of the network for every focus
            vectors = {f: every[f].numpy() for f in wanted}

            def search(f):
                return self.index.search(vectors[f] if isinstance(f, str) else vectors, k=k, metric=metric,
                                         where=where, focus=f)
        rows = {}
        for f, kind in focuses:
            ids, dist = search(f)
            rows[kind] = self._hits(ids[0], dist[0], query, kind)
        self._record("recommend_item" if image is None else "recommend_image", time.perf_counter() - start,
                     time.thread_time() - cpu)
        return Answer(rows[SIMILAR], rows.get(DESIGN, []))

    def _hits(self, ids: list[str], distances, query: Mapping[str, str] | None, kind: str) -> list[Hit]:
        """Results, captioned with why each is in its row ``kind`` for the query's labels (None: a photo)."""
        out = []
        for i, d in zip(ids, distances):
            row = self.labels.row(i)
            why = captions.why(query, row, kind)
            out.append(Hit(i, float(d), self.images[i], captions.caption(row, i, float(d), why)))
        return out

    def _record(self, endpoint: str, seconds: float, cpu_seconds: float | None = None) -> None:
        """One handler's wall time, and the CPU time of its thread (the work itself, without the time it
        waited for a core: on a busy machine the two differ)."""
        self.timings.append((endpoint, seconds))
        if self._timings_file is not None:
            line = json.dumps({"endpoint": endpoint, "seconds": seconds, "cpu_seconds": cpu_seconds}) + "\n"
            with self._lock, open(self._timings_file, "a", encoding="utf-8") as f:
                f.write(line)


def has_decoder(model) -> bool:
    """Whether ``model`` reconstructs; asked on a blank image (embedding-only models raise NotImplementedError)."""
    import torch

    size = model.preprocess_config.image_size
    try:
        with torch.no_grad():
            model.reconstruct(torch.zeros(1, 3, size, size))
    except (NotImplementedError, AttributeError):
        return False
    return True


def short_name(reference: str) -> str:
    """A model reference as users know it: a shipped name, a folder's name, or a Hub id."""
    path = Path(reference)
    return path.name if path.is_dir() or reference.startswith(("./", "../", "/")) else reference


def describe(model, name: str | None = None, focuses: tuple[str, ...] | None = None) -> str:
    """A model in a few words, for the page: class, name, size, and focuses when there are several."""
    focuses = tuple(focuses or model.focuses)
    named = f"{type(model).__name__}" + (f" `{name}`" if name else "")
    if name == RECON_DEFAULT:
        return f"the paper's {named} ({model.embedding_dim}-d; the baseline)"
    if len(focuses) > 1:
        return f"{named} ({model.embedding_dim}-d per focus: {', '.join(focuses)})"
    return f"{named} ({model.embedding_dim}-d)"


class _NoDecoder:
    """Stands in for 'no reconstruction model' (FASHREC_RECON_MODEL=none)."""

    def __init__(self, model):
        self.preprocess_config = model.preprocess_config

    def reconstruct(self, x):
        raise NotImplementedError("reconstructions are switched off (FASHREC_RECON_MODEL=none)")
