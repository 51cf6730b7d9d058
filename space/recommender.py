"""What the Space does, without the UI: a recommendation model and its precomputed index, a reconstruction
model, and the three verbs.

    rec = Recommender.load(model="default", index="space/index")   # loads, never embeds the catalogue
    hits = rec.recommend_item("0156224002", metric="cosine", k=8, product_group="All")
    hits = rec.recommend_image("photo.jpg", metric="cityblock", k=8)
    pre, recon, mse = rec.reconstruct("photo.jpg")

``app.py`` is a thin Gradio shell over this class. Every query goes through the library: images through
``fashrec.preprocess`` (with the model's own config), vectors through ``model.embed``, neighbours through
``SimilarityIndex.search`` / ``search_ids``. Recommendations and reconstructions may come from two models:
the best embedding model (``MultiTaskCNN``) has no decoder, so reconstructions then come from the paper's
autoencoder (the shipped ``paper-ae``), the baseline. The catalogue photos come from the index's own
``catalogue.json`` (``fashrec.jobs.embed_job.catalogue_images``), so they always match the embeddings.

Bad input raises ``ValueError`` (``fashrec.ImageError`` for images) with a message meant for the user.

Served to the public (``restrict_files``), it reads no file a client names: an image must be an upload in
Gradio's cache or a catalogue photo, and any other path gets the same ``"not an uploaded image"`` error,
whether or not it exists.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

ALL = "All"  # the "no filter" choice of the product group / type dropdowns
METRICS = ("cosine", "euclidean", "cityblock")
GROUP_COLUMN = "product_group_name"
TYPE_COLUMN = "product_type_name"
MAX_K = 48
RECON_DEFAULT = "paper-ae"  # the shipped paper autoencoder: reconstructions when the recommender has no decoder
NO_MODEL = "none"  # FASHREC_RECON_MODEL=none: no reconstruction model at all
NOT_UPLOADED = "not an uploaded image: send the photo with the request (gradio_client.handle_file)"


@dataclass(frozen=True)
class Hit:
    """One recommended catalogue item: its id, distance to the query, photo and caption."""

    article_id: str
    distance: float
    image: str  # a file path the UI can serve
    caption: str


class Recommender:
    """A model, the precomputed index of a catalogue, the catalogue's photos and labels, and the model that
    reconstructs (``recon_model``; None: ``model`` itself, which may have no decoder)."""

    def __init__(self, *, model, index, images: list[str], index_dir: str | os.PathLike | None = None,
                 timings_file: str | os.PathLike | None = None, recon_model=None, model_name: str | None = None,
                 recon_model_name: str | None = None):
        if len(images) != len(index):
            raise ValueError(f"got {len(images)} catalogue images for an index of {len(index)} items")
        self.model = model
        self.recon_model = model if recon_model is None else recon_model
        self.model_name = model_name
        self.recon_model_name = model_name if recon_model is None else recon_model_name
        self.index = index
        self.index_dir = None if index_dir is None else Path(index_dir)
        self.ids = index.ids
        self.images = dict(zip(self.ids, images))
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

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, *, model: str | None = None, index: str | os.PathLike, thumbnails: str | os.PathLike | None = None,
             timings_file: str | os.PathLike | None = None, recon_model: str | None = None,
             checkpoints: str | os.PathLike | None = None) -> "Recommender":
        """Load ``model`` (a folder, Hub id, shipped name or None for the default) and the index at ``index``.

        Names are looked up in ``checkpoints`` first (a built Space's own ``checkpoints/`` folder, which
        travels with its index), then among the checkpoints shipped with fashrec.
        The index must have been built with these exact weights and preprocessing, and be unchanged since
        (``SimilarityIndex.load(model=)`` checks the weights hash, ``fashrec.index.integrity`` the rest),
        and made by ``fashrec embed`` (its ``catalogue.json`` says where each photo lives).
        Photos stored as bytes (a Hub dataset) are written once to ``thumbnails`` (default: a temp folder).
        ``recon_model`` reconstructs: None = ``model`` if it has a decoder, else the shipped ``paper-ae``;
        ``"none"`` = no reconstructions.
        """
        import fashrec
        from fashrec.index.integrity import check_index
        from fashrec.jobs.embed_job import catalogue_images, read_catalogue
        from fashrec.index import SimilarityIndex
        from fashrec.jobs.index_folder import apply_embed_options

        index_dir = Path(index)
        model = model_reference(index_dir, model, checkpoints)
        loaded_model = fashrec.from_pretrained(checkpoint_folder(model or fashrec.pretrained.DEFAULT, checkpoints))
        apply_embed_options(loaded_model, index_dir)  # e.g. an index embedded with --no-flip-tta
        model_name = short_name(model or fashrec.pretrained.DEFAULT)
        recon, recon_name = None, None
        if recon_model == NO_MODEL:
            recon, recon_name = _NoDecoder(loaded_model), None
        elif recon_model or (not has_decoder(loaded_model) and (
                RECON_DEFAULT in fashrec.pretrained.names() or checkpoint_folder(RECON_DEFAULT, checkpoints) != RECON_DEFAULT)):
            recon_name = short_name(recon_model or RECON_DEFAULT)
            recon = fashrec.from_pretrained(checkpoint_folder(recon_model or RECON_DEFAULT, checkpoints)).eval()
        try:
            loaded_index = SimilarityIndex.load(index_dir, model=loaded_model)
            check_index(index_dir, loaded_index, loaded_model)
        except ValueError as exc:
            built_with = read_catalogue(index_dir).get("model") if (index_dir / "catalogue.json").is_file() else None
            hint = f" (catalogue.json says it was built with {built_with!r}: set FASHREC_MODEL to it)" if built_with else ""
            raise ValueError(
                f"{exc}{hint}; or rebuild the index: fashrec embed --model {model or 'default'} --data sample --out {index_dir}"
            ) from None
        if not (index_dir / "catalogue.json").is_file():
            raise FileNotFoundError(
                f"{index_dir}/catalogue.json not found: the Space needs an index made by 'fashrec embed' "
                "(it records where each catalogue photo lives)"
            )
        sources = catalogue_images(index_dir, loaded_index.ids)
        missing = [i for i, s in zip(loaded_index.ids, sources) if s is None]
        if missing:
            raise FileNotFoundError(
                f"{index_dir}: no photo found for {len(missing)} catalogue item(s) (first: {missing[:5]}); "
                "is the catalogue's data where catalogue.json says?"
            )
        images = _as_files(loaded_index.ids, sources, thumbnails)
        return cls(model=loaded_model, index=loaded_index, images=images, index_dir=index_dir, timings_file=timings_file,
                   recon_model=recon, model_name=model_name, recon_model_name=recon_name)

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

    # ------------------------------------------------------------------ catalogue

    def __len__(self) -> int:
        return len(self.ids)

    def image_folders(self) -> list[str]:
        """The folders holding the catalogue photos (what the web server may serve): their common folder
        when that is specific (``.../hm_sample/images``), else each folder. Few folders keep Gradio's
        per-file path checks cheap."""
        folders = sorted({str(Path(p).resolve().parent) for p in self.images.values()})
        common = Path(os.path.commonpath(folders))
        return [str(common)] if len(common.parts) > 3 else folders

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
        if product_group not in (None, ALL) and self._labels[GROUP_COLUMN] is not None:
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
        groups = self._labels[GROUP_COLUMN]
        types = self._labels[TYPE_COLUMN]
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
        x = _preprocess(self._uploaded(image), self.recon_model.preprocess_config)
        with torch.no_grad():
            recon = self.recon_model.reconstruct(x).clamp(0, 1)
        mse = float(torch.mean((recon - x) ** 2))
        self._record("reconstruct", time.perf_counter() - start, time.thread_time() - cpu)
        return to_uint8(x[0]), to_uint8(recon[0]), mse

    def preprocessed(self, image: Any) -> np.ndarray:
        """What the recommendation model sees: the ``(S, S, 3)`` uint8 preprocessed image."""
        return to_uint8(_preprocess(self._uploaded(image), self.model.preprocess_config)[0])

    @property
    def can_reconstruct(self) -> bool:
        """Whether the reconstruction model has a decoder (asked once)."""
        if self._can_reconstruct is None:
            self._can_reconstruct = has_decoder(self.recon_model)
        return self._can_reconstruct

    def recommend_item(self, article_id: str, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                       product_type: str = ALL, focus: str | Mapping[str, float] = "overall") -> list[Hit]:
        """The ``k`` nearest catalogue items of a catalogue item (the item itself left out)."""
        start, cpu = time.perf_counter(), time.thread_time()
        article_id = str(article_id or "").strip()
        if article_id not in self.images:
            raise ValueError(f"article id {article_id!r} is not in this catalogue of {len(self)} items")
        metric, k, where, focus = self._options(metric, k, product_group, product_type, focus, exclude=article_id)
        ids, dist = self.index.search_ids([article_id], k=k, metric=metric, where=where, focus=focus)
        hits = self._hits(ids[0], dist[0])
        self._record("recommend_item", time.perf_counter() - start, time.thread_time() - cpu)
        return hits

    def recommend_image(self, image: Any, *, metric: str = "cosine", k: int = 8, product_group: str = ALL,
                        product_type: str = ALL, focus: str | Mapping[str, float] = "overall") -> list[Hit]:
        """The ``k`` nearest catalogue items of a photo (any input ``fashrec.preprocess`` takes)."""
        start, cpu = time.perf_counter(), time.thread_time()
        metric, k, where, focus = self._options(metric, k, product_group, product_type, focus)
        x = _preprocess(self._uploaded(image), self.model.preprocess_config)
        needed = [focus] if isinstance(focus, str) else [f for f, w in focus.items() if w > 0]
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
        """Checked search options; ``k`` is lowered to the items the filters leave (besides ``exclude``)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
        k = whole_number(k, "k")
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
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
        return metric, min(k, left), where or None, self._focus(focus)

    def _focus(self, focus):
        """A focus name, or weights as ``{name: w}`` or the string ``"shape=2, colour=1"``."""
        if isinstance(focus, str) and "=" in focus:
            try:
                focus = {n.strip(): float(w) for n, w in (part.split("=") for part in focus.split(",") if part.strip())}
            except ValueError:
                raise ValueError(f"focus weights must look like 'shape=2, colour=1', got {focus!r}") from None
        if isinstance(focus, Mapping):
            unknown = sorted(set(focus) - set(self.focuses))
            bad = [w for w in focus.values() if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
            if unknown or bad or not any(w > 0 for w in focus.values()):
                raise ValueError(f"focus weights {dict(focus)} must be >= 0, not all 0, over {list(self.focuses)}")
            return dict(focus)
        focus = focus or self.focuses[0]
        if focus not in self.focuses:
            raise ValueError(f"unknown focus {focus!r}; this index has {list(self.focuses)}")
        return focus

    def _uploaded(self, image: Any) -> Any:
        """``image`` unchanged, after ``restrict_files``'s check (one error for every refused input, so that
        a client learns nothing about the server's files)."""
        from fashrec.data.preprocess import ImageError

        if self._file_roots is None or image is None:
            return image
        path = image.get("path") if isinstance(image, Mapping) else image if isinstance(image, str) else None
        if not isinstance(path, str) or not path:
            raise ImageError(NOT_UPLOADED)
        real = os.path.realpath(path)
        if not any(os.path.commonpath([real, root]) == root for root in self._file_roots) or not os.path.isfile(real):
            raise ImageError(NOT_UPLOADED)
        return image

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
    return path.name if path.is_dir() else reference


def describe(model, name: str | None = None, focuses: tuple[str, ...] | None = None) -> str:
    """A model in a few words, for the page: class, name, size, and focuses when there are several."""
    focuses = tuple(focuses or getattr(model, "focuses", ("overall",)))
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


def model_reference(index_dir: str | os.PathLike, model: str | None = None,
                    checkpoints: str | os.PathLike | None = None) -> str | None:
    """The model to serve with the index at ``index_dir``: ``model`` when given; else the checkpoint its
    ``catalogue.json`` names, when that is in ``checkpoints``, shipped, or a local folder (so an index always
    comes up with the weights it was built with, with no network); else None, the shipped default."""
    if model:
        return model
    from fashrec import pretrained
    from fashrec.jobs.embed_job import read_catalogue

    built_with = read_catalogue(index_dir).get("model") if Path(index_dir).is_dir() else None
    if isinstance(built_with, str) and (built_with in pretrained.names() or Path(built_with).is_dir()
                                        or checkpoint_folder(built_with, checkpoints) != built_with):
        return built_with
    return None


def checkpoint_folder(name: str, checkpoints: str | os.PathLike | None = None) -> str:
    """``name`` as a folder of ``checkpoints`` when it holds one by that name (a built Space's own), else
    ``name`` itself, for ``fashrec.from_pretrained`` (a shipped name, a folder or a Hub id)."""
    if checkpoints is not None and name and (Path(checkpoints) / name / "config.json").is_file():
        return str(Path(checkpoints) / name)
    return name


def whole_number(value: Any, name: str) -> int:
    """``value`` as an int when it is a whole number (``8``, ``8.0``), else ValueError: ``2.5`` is not
    rounded, and ``True`` is not 1 (as ``SimilarityIndex.search`` takes k)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{name} must be a whole number, got {value!r}")


def to_uint8(x) -> np.ndarray:
    """A ``(3, H, W)`` tensor in [0, 1] as an ``(H, W, 3)`` uint8 array (round to nearest)."""
    return (x.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _preprocess(image: Any, config):
    """``fashrec.preprocess`` as a batch of one. Gradio hands uploads over as ``{"path", "orig_name"}``
    (the event skips Gradio's own decoding, so every bad file reaches ``preprocess`` and its clear
    message); errors then name the file the user sent, not the server's temporary copy."""
    from fashrec.data.preprocess import ImageError, preprocess

    if image is None:
        raise ImageError("no image: upload a photo or pick a catalogue item")
    if not isinstance(image, Mapping):
        return preprocess(image, config)[None]
    path = image.get("path")
    if not path:
        raise ImageError("the upload holds no file")
    try:
        return preprocess(path, config)[None]
    except ImageError as exc:
        name = image.get("orig_name") or Path(path).name
        raise ImageError(str(exc).replace(str(path), name)) from None


def _by_count(values) -> list[str]:
    if values is None:
        return []
    names, counts = np.unique(values, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    return [str(names[i]) for i in order]


def _as_files(ids: list[str], sources: list, thumbnails) -> list[str]:
    """Catalogue photos as file paths; photos given as bytes are written once under ``thumbnails``."""
    if all(isinstance(s, (str, os.PathLike)) for s in sources):
        return [str(s) for s in sources]
    import tempfile

    folder = Path(thumbnails) if thumbnails is not None else Path(tempfile.mkdtemp(prefix="fashrec-space-"))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in zip(ids, sources):
        if isinstance(s, (str, os.PathLike)):
            out.append(str(s))
            continue
        path = folder / f"{i}.jpg"
        if not path.exists():
            path.write_bytes(s)
        out.append(str(path))
    return out
