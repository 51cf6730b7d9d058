"""An index folder on disk, as ``fashrec embed`` writes it and ``fashrec index`` updates it.

    OUT/index.json, embeddings.safetensors, ids.json, metadata.parquet    SimilarityIndex.save
    OUT/integrity.json                                                    the files' sha256 (fashrec.index.integrity)
    OUT/catalogue.json                                                    where each photo lives, the model reference

``index.json`` records, besides what ``SimilarityIndex.save`` writes, the photos that were left out
because they could not be decoded (``"skipped_images"``: ``[{"id", "reason"}]``), and in its ``model``
entry the identity of what made the vectors: class, config (the preprocessing, and ``flip_tta`` as it
was *used*) and weights hash. An update made with anything else is refused (:func:`check_same_model`).

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
    """Write ``index`` with its ``catalogue.json`` and skipped photos to ``out``, replacing it atomically."""
    from fashrec.atomic import disk_full_as_error, replace_dir, write_json_atomic
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
            if record.get("model") is not None:
                config = record["model"].setdefault("config", {}) or {}
                config.update({k: getattr(model, k) for k in EMBED_OPTIONS if hasattr(model, k)})
                record["model"]["config"] = config
            record[SKIPPED_KEY] = list(skipped)
            write_json_atomic(record, staging / INDEX_FILE)
            seal(staging)  # integrity.json, over the final files: what a Space checks before serving
            replace_dir(staging, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def read_record(index_dir: str | os.PathLike) -> dict:
    """The ``index.json`` of an index folder; FileNotFoundError / ValueError naming it."""
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {index_dir} is not an index folder")
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


def model_identity(model) -> dict:
    """What made the vectors: class, config (preprocessing, embed options as used; not the fashrec
    version) and weights hash."""
    from fashrec.models.hub_model import weights_hash

    config = dict(model.config_dict()) if hasattr(model, "config_dict") else {}
    config.pop("fashrec_version", None)
    config.update({k: getattr(model, k) for k in EMBED_OPTIONS if hasattr(model, k)})
    return {"class": type(model).__name__, "config": config, "weights_hash": weights_hash(model)}


def check_same_model(index_dir: str | os.PathLike, model) -> None:
    """ValueError naming what differs when ``model`` would not make the vectors the index holds."""
    stored = read_record(index_dir).get("model")
    if not stored:
        raise ValueError(f"{index_dir} records no model, so new vectors cannot be checked against its own; "
                         "rebuild it with 'fashrec embed'")
    mine = model_identity(model)
    theirs = {"class": stored.get("class"), "weights_hash": stored.get("weights_hash"),
              "config": {k: v for k, v in (stored.get("config") or {}).items() if k != "fashrec_version"}}
    differs = [k for k in ("class", "weights_hash") if theirs[k] != mine[k]]
    differs += [f"config.{k}" for k in sorted(set(theirs["config"]) | set(mine["config"]))
                if theirs["config"].get(k) != mine["config"].get(k)]
    if differs:
        shown = ", ".join(f"{d} {_pick(theirs, d)} vs {_pick(mine, d)}" for d in differs[:3])
        raise ValueError(f"{index_dir} was embedded with another model or preprocessing ({shown}): "
                         "an update must use the very model and options the index was built with")


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


def _pick(identity: dict, dotted: str):
    if dotted.startswith("config."):
        value = identity["config"].get(dotted[len("config."):])
    else:
        value = identity[dotted]
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."
