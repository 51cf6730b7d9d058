"""An index folder on disk, as ``fashrec embed`` writes it and ``fashrec index`` updates it.

    OUT/index.json, embeddings.safetensors, ids.json, metadata.parquet    SimilarityIndex.save
    OUT/integrity.json                                                    the files' sha256 (fashrec.index.integrity)
    OUT/catalogue.json                                                    where each photo lives, the model reference

``index.json`` records, besides what ``SimilarityIndex.save`` writes, the photos that were left out
because they could not be decoded (``"skipped_images"``: ``[{"id", "reason"}]``), and in its ``model``
entry the identity of what made the vectors: class, config (the preprocessing, and ``flip_tta`` as it
was *used*) and weights hash. An update made with anything else is refused (:func:`check_same_model`),
and whoever loads the model again for the index gets the same options back (:func:`apply_embed_options`).

Every write builds the complete new folder beside ``OUT`` and swaps it in with one atomic rename
(:func:`fashrec.atomic.replace_dir`): a crash leaves the old index or the new one, never a mix, and a
full disk is one :class:`~fashrec.atomic.DiskFullError` line, the old index untouched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

SKIPPED_KEY = "skipped_images"
INDEX_FILE = "index.json"
# Model attributes that change the vectors without changing the weights: recorded as used, reapplied
# when the model is loaded again for this index (updates, image queries).
EMBED_OPTIONS = ("flip_tta",)


def write_index_folder(out: str | os.PathLike, index, *, model, catalogue: dict, skipped: list[dict]) -> Path:
    """Write ``index`` with its ``catalogue.json`` and skipped photos to ``out``, replacing it atomically.
    ``model=None`` keeps the model record the (loaded) index carries."""
    from fashrec.atomic import _umask, disk_full_as_error, replace_dir, write_json_atomic
    from fashrec.index.integrity import seal
    from fashrec.jobs.embed_job import CATALOGUE_FILE

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    unchanged = f"the index at {out} is unchanged" if (out / INDEX_FILE).is_file() else "no index was written"
    with disk_full_as_error(out, unchanged=unchanged):
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
        try:
            staging = work / "index"
            index.save(staging, model=model)
            write_json_atomic(catalogue, staging / CATALOGUE_FILE)
            record = json.loads((staging / INDEX_FILE).read_text(encoding="utf-8"))
            if model is None:  # e.g. a removal: the vectors are still the ones the recorded model made
                record["model"] = getattr(index, "model_record", None)
            elif record.get("model") is not None:
                config = record["model"].setdefault("config", {}) or {}
                config.update({k: getattr(model, k) for k in EMBED_OPTIONS if hasattr(model, k)})
                record["model"]["config"] = config
            record[SKIPPED_KEY] = list(skipped)
            write_json_atomic(record, staging / INDEX_FILE)
            seal(staging)  # integrity.json, over the final files: what a Space checks before serving
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it 0700: give it the user's normal mode
            replace_dir(staging, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def read_record(index_dir: str | os.PathLike) -> dict:
    """The ``index.json`` of an index folder; FileNotFoundError / ValueError naming it."""
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {index_dir} is not an index folder")
    return read_json_object(path)


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; ValueError naming the file otherwise."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return record


def skipped_images(index_dir: str | os.PathLike) -> list[dict]:
    """The photos left out of an index because they could not be decoded: ``[{"id", "reason"}]``."""
    return list(read_record(index_dir).get(SKIPPED_KEY) or [])


def embed_options(index_dir: str | os.PathLike) -> dict:
    """The :data:`EMBED_OPTIONS` an index was embedded with (``{"flip_tta": False}``), for
    ``from_pretrained(..., **options)`` so that new vectors are made the same way."""
    config = (read_record(index_dir).get("model") or {}).get("config") or {}
    return {k: config[k] for k in EMBED_OPTIONS if k in config}


def apply_embed_options(model, index_dir: str | os.PathLike):
    """Set on a model loaded from its checkpoint the embed options the index at ``index_dir`` was made
    with (e.g. ``flip_tta=False``), so that its query vectors are made like the catalogue's; returns it."""
    if (Path(index_dir) / INDEX_FILE).is_file():
        for name, value in embed_options(index_dir).items():
            if hasattr(model, name):
                setattr(model, name, value)
    return model


def check_same_model(index_dir: str | os.PathLike, index, model) -> None:
    """ValueError (one line) unless ``model`` makes the vectors the index at ``index_dir`` holds: the same
    weights (``fashrec.index.persistence``), class and preprocessing, files as sealed
    (``fashrec.index.integrity``), and the same embed options (``flip_tta``)."""
    from fashrec.index.integrity import check_index
    from fashrec.index.persistence import check_model

    stored = read_record(index_dir).get("model")
    check_model(stored, model, Path(index_dir) / INDEX_FILE)
    check_index(index_dir, index, model, require_seal=False)
    recorded = embed_options(index_dir)
    differs = {k: (v, getattr(model, k, None)) for k, v in recorded.items() if getattr(model, k, None) != v}
    if differs:
        shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in differs.items())
        raise ValueError(f"{index_dir} was embedded with other options than this model's ({shown}): an update "
                         "must make its vectors the way the index was made")


def load_model(ref: str, *, device: str = "cpu", options: dict | None = None):
    """The model of ``ref`` (a shipped name, folder or Hub id) on ``device``, with embed options (e.g.
    ``{"flip_tta": False}``) set; a device torch cannot use, or an option the model lacks, is one clear error."""
    import torch

    from fashrec.models.hub_model import from_pretrained
    from fashrec.models.pretrained import resolve

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this torch sees no CUDA GPU (torch.cuda.is_available() is False)")
    model = from_pretrained(resolve(ref), map_location=device)
    for name, value in (options or {}).items():
        if not hasattr(model, name):
            raise ValueError(f"{type(model).__name__} has no {name} option (--flip-tta / --no-flip-tta are for models "
                             "with flip TTA)")
        setattr(model, name, value)
    return model


@contextlib.contextmanager
def locked(index_dir: str | os.PathLike) -> Iterator[None]:
    """One writer at a time for an index folder (an advisory lock beside it; a no-op without fcntl)."""
    folder = Path(index_dir)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

