"""An index folder, opened one way and written one way (the files: :mod:`fashrec.index.layout`).

    opened = fashrec.open_index("runs/hm-index")        # checked: the seal, the ids, the catalogue, the model
    opened.index.search_ids(["0108775015"], k=5)
    opened.model.embed(x)                               # the recorded model, with the recorded options
    opened.photos["0108775015"]                         # the photo file the folder serves for that id

Every reader goes through :func:`open_index`: the command line (``recommend``, ``index add|remove|replace``,
``space build``), the Space and the Python API. It refuses, naming the file, a folder that is not exactly
what was sealed (:mod:`fashrec.index.integrity`), then loads the index, checks that its ids and metadata
agree and that ``catalogue.json`` names one photo of the folder per id and nothing else, and gives the
model that made the vectors: the one ``catalogue.json`` records, built with the options ``index.json``
records (``from_pretrained(ref, flip_tta=False)``), or the one the caller names, checked to make the same
vectors (weights, class, preprocessing, options).

Every writer goes through :func:`writing_folder`: the complete new folder is built beside the target
(photos, vectors, ``index.json`` written once, ``catalogue.json``, then the seal) and swapped in with one
atomic rename (:func:`fashrec.atomic.replace_dir`): a crash leaves the old folder or the new one, never a
mix, and a full disk is one :class:`~fashrec.atomic.DiskFullError` line, the old folder untouched.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from fashrec.index.layout import INDEX_FILE, PHOTOS_DIR
from fashrec.index.photo_catalogue import Catalogue

SKIPPED_KEY = "skipped_images"  # index.json: the photos left out, [{"id", "reason"}]


@dataclass
class OpenedIndex:
    """A checked index folder: ``index`` (a :class:`~fashrec.index.SimilarityIndex`), ``catalogue``
    (``catalogue.json``), ``record`` (``index.json``) and, loaded on first use, ``model``."""

    folder: Path
    index: object
    catalogue: Catalogue
    record: dict
    model_ref: str | None = None  # where the model is (or will be) loaded from; a relative record made absolute
    device: str = "cpu"
    _model: object = field(default=None, repr=False)

    @property
    def model(self):
        """The model that made the vectors, with the options it made them with (loaded once, then kept)."""
        if self._model is None:
            if not self.model_ref:
                raise ValueError(f"{self.folder} records no model (catalogue.json): pass the one it was built with")
            self._model = self._checked(self._load(self.model_ref))
        return self._model

    @property
    def photos(self) -> dict[str, Path]:
        """``{id: photo file}``, absolute paths, in catalogue order: all the folder serves."""
        return {i: self.folder / f for i, f in self.catalogue.photos.items()}

    @property
    def photo_dir(self) -> Path:
        """The folder of the photos; it holds exactly the catalogue's photo files (checked when opened)."""
        return self.folder / PHOTOS_DIR

    @property
    def skipped(self) -> list[dict]:
        """The photos left out because they could not be used: ``[{"id", "reason"}]``."""
        return list(self.record.get(SKIPPED_KEY) or [])

    @property
    def design_focus(self) -> str | None:
        """The focus that finds other colours of a product's design (its model's ``design_focus``), or None."""
        from fashrec.index.focus import design_focus

        return design_focus(self.model, self.index.focuses)

    @property
    def options(self) -> dict:
        """The embed options the vectors were made with (``{"flip_tta": False}``)."""
        from fashrec.index.persistence import recorded_options

        return recorded_options(self.record.get("model"))

    def use_model(self, model) -> None:
        """Serve with ``model``: a loaded model (checked to make these vectors) or a reference to load."""
        if isinstance(model, (str, os.PathLike)):
            self.model_ref = str(model)
            self._model = self._checked(self._load(str(model)))
        else:
            self._model = self._checked(model)

    def _load(self, ref: str):
        from fashrec.models.hub_model import UnknownOptionError, load_model

        try:
            return load_model(ref, device=self.device, options=self.options)
        except UnknownOptionError:  # another kind of model than the one recorded: the checks say how it differs
            return load_model(ref, device=self.device)

    def _checked(self, model):
        from fashrec.index.integrity import check_model
        from fashrec.index.persistence import check_model as check_weights
        from fashrec.index.persistence import embed_options

        stored = self.record.get("model")
        hint = f"; it records the model {self.catalogue.model!r}" if self.catalogue.model else ""
        try:
            check_weights(stored, model, self.folder / INDEX_FILE)
            check_model(self.folder, stored, model)
        except ValueError as exc:
            raise ValueError(f"{exc}{hint}") from None
        mine = embed_options(model)
        differs = {k: (v, mine.get(k)) for k, v in self.options.items() if mine.get(k) != v}
        if differs:
            shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in differs.items())
            raise ValueError(f"{self.folder} was embedded with other options than this model's ({shown}): load it "
                             "with the recorded ones (fashrec.open_index does)")
        return model.eval()


def open_index(folder: str | os.PathLike, model=None, *, device: str = "cpu") -> OpenedIndex:
    """Open the index folder ``folder``, checked (see the module docstring); ValueError naming the file.

    ``model``: None loads the model ``catalogue.json`` records, on first use of ``.model``, with the options
    ``index.json`` records; a reference (shipped name, checkpoint folder, Hub id) is loaded the same way now;
    a loaded model is used as it is. Either is refused unless it makes the vectors the folder holds.
    """
    from fashrec.index.integrity import check_ids, check_seal
    from fashrec.index.persistence import read_record
    from fashrec.index.photo_catalogue import read_catalogue
    from fashrec.index.similarity_index import SimilarityIndex

    folder = Path(folder)
    if not (folder / INDEX_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no index there (make one with 'fashrec embed')")
    check_seal(folder)
    record = read_record(folder)
    index = SimilarityIndex.load(folder)
    check_ids(folder, index)
    catalogue = read_catalogue(folder, index.ids)
    ref = catalogue.model
    if ref and ref.startswith(("./", "../")):  # a checkpoint that travels with the folder (a built Space's)
        ref = str((folder / ref).resolve())
    opened = OpenedIndex(folder, index, catalogue, record, model_ref=ref, device=device)
    if model is not None:
        opened.use_model(model)
    return opened


def seal_folder(folder: str | os.PathLike) -> dict[str, str]:
    """``fashrec index seal``: vouch for ``folder`` as it is now. Everything :func:`open_index` checks but the
    seal is checked first (the formats, ids against metadata, one photo per id and nothing else in
    ``photos/``); then every file is hashed into ``integrity.json``. Returns what was trusted."""
    from fashrec.index.integrity import check_ids, seal
    from fashrec.index.photo_catalogue import read_catalogue
    from fashrec.index.similarity_index import SimilarityIndex

    folder = Path(folder)
    if not (folder / INDEX_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no index there (make one with 'fashrec embed')")
    with locked(folder):  # not in the middle of an update
        index = SimilarityIndex.load(folder)
        check_ids(folder, index)
        read_catalogue(folder, index.ids)
        return seal(folder)


class FolderWriter:
    """The new folder being built beside the target (see :func:`writing_folder`)."""

    def __init__(self, out: Path, work: Path) -> None:
        self.out, self.work, self.staging = out, work, work / "index"
        self.staging.mkdir()
        self.photos: dict[str, str] = {}

    def add_photos(self, sources: Mapping[str, object], *, progress: bool = True) -> list[tuple[str, str]]:
        """Thumbnails of ``{id: photo}`` (paths or encoded bytes); returns ``[(id, why)]`` for the ones that
        could not be used (their items must be left out of the index)."""
        from fashrec.index.photo_catalogue import write_photos

        written, failed = write_photos(self.staging, sources, progress=progress)
        self.photos.update(written)
        return failed

    def carry_photos(self, opened: OpenedIndex, ids) -> None:
        """The photos of ``ids`` from an opened folder, as they are."""
        from fashrec.index.photo_catalogue import carry_photos

        files = {i: opened.catalogue.photos[i] for i in ids}
        carry_photos(opened.folder, self.staging, list(files.values()))
        self.photos.update(files)

    def finish(self, index, *, model, model_ref: str | None, sources, skipped: list[dict]) -> Path:
        """Write ``index`` (``model=None``: keep the model record the loaded index carries), its catalogue and
        seal, and swap the folder in. Photos of items not in ``index`` are left out."""
        from fashrec.atomic import _umask, replace_dir
        from fashrec.index.integrity import seal
        from fashrec.index.photo_catalogue import photo_files, write_catalogue

        missing = [i for i in index.ids if i not in self.photos]
        if missing:
            raise ValueError(f"no photo for {len(missing)} item(s) of the new index (first: {missing[:3]})")
        saved = index.save(self.work / "saved", model=model,
                           record={"model": getattr(index, "model_record", None), SKIPPED_KEY: list(skipped)})
        for name in os.listdir(saved):
            os.replace(saved / name, self.staging / name)
        kept = {i: self.photos[i] for i in index.ids}
        for file in set(photo_files(self.staging)) - set(kept.values()):
            (self.staging / file).unlink()
        write_catalogue(self.staging, Catalogue(model=model_ref, photos=kept, sources=tuple(sources)))
        seal(self.staging)  # over the final files: what every opener checks first
        os.chmod(self.staging, 0o777 & ~_umask())  # mkdtemp made it 0700: give it the user's normal mode
        replace_dir(self.staging, self.out)
        return self.out


@contextlib.contextmanager
def writing_folder(out: str | os.PathLike) -> Iterator[FolderWriter]:
    """A :class:`FolderWriter` for the index folder ``out``; nothing changes at ``out`` until its
    ``finish``, and whatever was built is removed when the block ends."""
    from fashrec.atomic import disk_full_as_error

    out = Path(out)
    if out.exists() and not (out / INDEX_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an index folder: refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    unchanged = f"the index at {out} is unchanged" if (out / INDEX_FILE).is_file() else "no index was written"
    with disk_full_as_error(out, unchanged=unchanged):
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
        try:
            yield FolderWriter(out, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def locked(index_dir: str | os.PathLike) -> Iterator[None]:
    """One writer at a time for an index folder (an advisory lock beside it; a no-op without fcntl). What a
    killed writer left beside the folder (``.NAME.*.new``) is removed once the lock is held."""
    folder = Path(index_dir)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            prefix = f".{folder.name}."
            for path in folder.parent.iterdir():
                if path.name.startswith(prefix) and path.name.endswith(".new") and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
