"""What the Space shows, without the UI: the page's verbs over an index folder opened by the library.

    rec = Recommender.open("space/index")                    # fashrec.open_index: checked, loads, never embeds
    hits = rec.recommend_item("0156224002", metric="cosine", k=8, product_group="All")
    hits = rec.recommend_image("photo.jpg", metric="cityblock", k=8, focus="shape=2, colour=1")
    pre, recon, mse = rec.reconstruct("photo.jpg")

``app.py`` is a thin Gradio shell over this class. Opening, checking and loading is the library's
(``fashrec.open_index``: the seal, the ids, the catalogue's photos, the model with its recorded options);
every query goes through it too: images through ``fashrec.preprocess`` with the model's own config,
vectors through ``model.embed``, neighbours and focus weights through ``SimilarityIndex.search`` /
``search_ids``. What is left here is about the page: captions, galleries, the filter choices, the
Space's own limits (``MAX_K``, whole-number ``k``), which model reconstructs, and what a request may read.

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

if str(Path(__file__).resolve().parent) not in sys.path:  # its sibling inputs.py, however this file was loaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from inputs import NOT_UPLOADED, check_upload, preprocess_upload, to_uint8, whole_number  # noqa: E402,F401

ALL = "All"  # the "no filter" choice of the product group / type dropdowns
GROUP_COLUMN = "product_group_name"
TYPE_COLUMN = "product_type_name"
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
        meta = index.metadata
        # Labels as plain strings per id, once: captions and filters are then dictionary look-ups.
        self._rows: dict[str, dict[str, str]] = {}
        if meta is not None:
            text = meta.astype(object).where(meta.notna(), "").astype(str)
            self._rows = dict(zip(self.ids, text.to_dict("records")))
        self._labels = {c: (np.array([self._rows[i][c] for i in self.ids], dtype=object) if meta is not None and c in meta
                            else None) for c in (GROUP_COLUMN, TYPE_COLUMN)}
        self._groups = [ALL] + _by_count(self._labels[GROUP_COLUMN])
        self._all_types = [ALL] + _by_count(self._labels[TYPE_COLUMN])
        self.focuses = tuple(index.focuses)
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
        return dict(self._rows.get(article_id, {}))

    def label(self, article_id: str) -> str:
        """One line naming an item, for pickers: ``Box 4p Socks · Socks & Tights · 0156224002``."""
        info = self._rows.get(article_id, {})
        parts = [info.get("prod_name"), info.get(TYPE_COLUMN), article_id]
        return " · ".join(p for p in parts if p)

    def caption(self, article_id: str, distance: float | None = None) -> str:
        """Gallery caption: name, type, colour, id and (for a result) the distance to the query."""
        info = self._rows.get(article_id, {})
        lines = [info.get("prod_name") or article_id,
                 " · ".join(p for p in (info.get(TYPE_COLUMN), info.get("colour_group_name")) if p)]
        tail = article_id if distance is None else f"{article_id} · d = {distance:.4g}"
        return "\n".join([line for line in lines if line] + [tail])

    def gallery(self, hits: list[Hit]) -> list[tuple[str, str]]:
        """A row of results as a Gradio gallery takes it: ``(photo, caption)`` each."""
        return [(h.image, h.caption) for h in hits]

    def groups(self) -> list[str]:
        """Filter choices for the product group: ``All`` then the groups, most common first."""
        return list(self._groups)

    def types(self, product_group: str = ALL) -> list[str]:
        """Filter choices for the product type, within ``product_group``."""
        types = self._labels[TYPE_COLUMN]
        if types is None:
            return [ALL]
        if product_group in (None, "", ALL):
            return list(self._all_types)
        if self._labels[GROUP_COLUMN] is not None:
            types = types[self._labels[GROUP_COLUMN] == product_group]
        return [ALL] + _by_count(types)

    def browse(self, *, product_group: str = ALL, product_type: str = ALL, page: int = 0, per_page: int = 24) -> list[str]:
        """A page of catalogue ids (catalogue order) matching the filters; pages wrap around."""
        mask = self._mask(product_group, product_type)
        ids = [i for i, keep in zip(self.ids, mask) if keep] if mask is not None else self.ids
        if not ids:
            return []
        start = (page * per_page) % len(ids)
        return (ids[start:] + ids[:start])[:per_page]

    def featured(self) -> str:
        """The product the page opens on: the first of the most common product group whose type is known
        (the first catalogue item may be a close-up of socks of type "Unknown")."""
        groups, types = self._labels[GROUP_COLUMN], self._labels[TYPE_COLUMN]
        if groups is None or types is None:
            return self.ids[0]
        common = self._groups[1] if len(self._groups) > 1 else None
        for i, (group, ptype) in enumerate(zip(groups, types)):
            if group == common and ptype not in ("", "Unknown"):
                return self.ids[i]
        return self.ids[0]

    def restrict_files(self, folders) -> None:
        """From now on an image given as a path (or Gradio's ``{"path": ...}``) must lie inside one of
        ``folders`` (Gradio's upload cache, the catalogue photos); other inputs that name no upload are
        refused alike. What a public Space needs: clients must not make the server read its own files."""
        self._file_roots = [os.path.realpath(f) for f in folders]

    def find(self, text: str, limit: int = 50) -> list[str]:
        """Ids whose id or label contains ``text`` (case-insensitive), catalogue order."""
        text = (text or "").strip().lower()
        return [i for i in self.ids if not text or text in self.label(i).lower()][:limit]

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
        start, cpu = time.perf_counter(), time.thread_time()
        article_id = str(article_id or "").strip()
        if article_id not in self.images:
            raise ValueError(f"article id {article_id!r} is not in this catalogue of {len(self)} items")
        metric, k, where, focus, _ = self._options(metric, k, product_group, product_type, focus, exclude=article_id)
        ids, dist = self.index.search_ids([article_id], k=k, metric=metric, where=where, focus=focus)
        hits = self._hits(ids[0], dist[0])
        self._record("recommend_item", time.perf_counter() - start, time.thread_time() - cpu)
        return hits

    def recommend_image(self, image: Any, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                        product_type: str = ALL, focus: str | Mapping[str, float] | None = None) -> list[Hit]:
        """The ``k`` nearest catalogue items of a photo (any input ``fashrec.preprocess`` takes)."""
        start, cpu = time.perf_counter(), time.thread_time()
        metric, k, where, focus, needed = self._options(metric, k, product_group, product_type, focus)
        x = preprocess_upload(check_upload(image, self._file_roots), self.model.preprocess_config)
        queries = {f: self.model.embed(x, focus=f).numpy() for f in needed}
        ids, dist = self.index.search(queries[focus] if isinstance(focus, str) else queries, k=k, metric=metric,
                                      where=where, focus=focus)
        hits = self._hits(ids[0], dist[0])
        self._record("recommend_image", time.perf_counter() - start, time.thread_time() - cpu)
        return hits

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
        where = {}
        for column, value, choices in ((GROUP_COLUMN, product_group, self._groups),
                                       (TYPE_COLUMN, product_type, self._all_types)):
            if value in (None, "", ALL):
                continue
            if value not in choices:
                raise ValueError(f"no {column.removesuffix('_name').replace('_', ' ')} {value!r} in this catalogue")
            where[column] = value
        mask = self._mask(product_group, product_type)
        left = len(self) if mask is None else int(mask.sum())
        if exclude is not None and (mask is None or mask[self.index.position(exclude)]):
            left -= 1
        if left < 1:
            filters = ", ".join(f"{c}={v!r}" for c, v in where.items())
            raise ValueError(f"no {'other ' if exclude else ''}catalogue item matches the filters ({filters})")
        return metric, min(k, left), where or None, focus, needed

    def _mask(self, product_group, product_type):
        mask = None
        for column, value in ((GROUP_COLUMN, product_group), (TYPE_COLUMN, product_type)):
            if value in (None, "", ALL) or self._labels[column] is None:
                continue
            m = self._labels[column] == value
            mask = m if mask is None else mask & m
        return mask

    def _hits(self, ids: list[str], distances) -> list[Hit]:
        return [Hit(i, float(d), self.images[i], self.caption(i, float(d))) for i, d in zip(ids, distances)]

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


def _by_count(values) -> list[str]:
    if values is None:
        return []
    names, counts = np.unique(values, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    return [str(names[i]) for i in order]
