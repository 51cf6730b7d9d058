"""Saving and loading a :class:`~fashrec.index.SimilarityIndex` folder, and the model identity check.

The folder holds ``embeddings.safetensors`` (one float32 tensor per focus), ``ids.json``,
``metadata.parquet`` (when there is metadata; needs pyarrow) and ``index.json`` (format version, N, D
per focus, and with ``model`` its class, ``config_dict()`` and ``weights_hash``): plain tensors, JSON
and parquet, nothing that runs code when read.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from fashrec.index.layout import EMBEDDINGS_FILE, IDS_FILE, INDEX_FILE, METADATA_FILE

FORMAT_NAME = "fashrec.SimilarityIndex"
FORMAT_VERSION = 1
# Model attributes that change the vectors without changing the weights. ``index.json`` records them as
# they were used (``model.config``); whoever embeds for this index again loads the model with them
# (``from_pretrained(..., **options)``), so its vectors are made the same way.
EMBED_OPTIONS = ("flip_tta",)


def save_index(
    path: str | os.PathLike,
    vectors: Mapping[str, np.ndarray],
    ids: list[str],
    metadata: Mapping[str, np.ndarray] | None,
    *,
    model=None,
    record: Mapping | None = None,
) -> Path:
    """Write the folder ``path`` (replaced as a whole, atomically: it is built beside the target and
    renamed over it, so a crash leaves either the old index or the new one). ``record``: more entries of
    ``index.json`` (an index folder's skipped photos; ``"model"`` there is the model record to keep when
    no ``model`` is given), so that the file is written once."""
    import torch

    from fashrec.version import __version__
    from fashrec.atomic import replace_dir, save_safetensors_atomic, write_json_atomic

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not (target / INDEX_FILE).exists() and any(target.iterdir()):
        raise ValueError(f"{target} exists and is not a SimilarityIndex folder: refusing to replace it")
    kept_model = (record or {}).get("model") if model is None else None
    record = {
        **(record or {}),
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fashrec_version": __version__,
        "n_items": len(ids),
        "focuses": {name: int(x.shape[1]) for name, x in vectors.items()},
        "focus_order": list(vectors),  # JSON objects are written with sorted keys
        "metadata_columns": list(metadata or ()),
        "model": model_record(model) if model is not None else kept_model,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        save_safetensors_atomic(
            {name: torch.from_numpy(np.array(x)) for name, x in vectors.items()},
            staging / EMBEDDINGS_FILE,
            metadata={"format": FORMAT_NAME},
        )
        write_json_atomic(ids, staging / IDS_FILE)
        if metadata is not None:
            _write_metadata(metadata, staging / METADATA_FILE)
        write_json_atomic(record, staging / INDEX_FILE)
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_index(path: str | os.PathLike, *, model=None):
    """``(embeddings {focus: (N, D)} in focus order, ids, metadata columns or None, model record)``
    from a folder written by :func:`save_index`; ValueError naming the file that is wrong. With
    ``model``, refuses an index built with other weights (see :func:`check_model`)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(path)
    index_file = folder / INDEX_FILE
    record = read_record(folder)
    if model is not None:
        check_model(record.get("model"), model, index_file)
    try:
        tensors = load_file(str(folder / EMBEDDINGS_FILE))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read {folder / EMBEDDINGS_FILE}: {err}") from None
    focuses = record.get("focuses", {})
    if set(tensors) != set(focuses):
        raise ValueError(f"{folder / EMBEDDINGS_FILE} holds focuses {sorted(tensors)}, {index_file} lists {sorted(focuses)}")
    n = record.get("n_items")
    for name, dim in focuses.items():
        if tensors[name].shape != (n, dim):
            raise ValueError(
                f"{folder / EMBEDDINGS_FILE}: focus {name!r} has shape {tensors[name].shape}, "
                f"{index_file} says ({n}, {dim})"
            )
    ids_file = folder / IDS_FILE
    try:
        ids = json.loads(ids_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {ids_file}: {err}") from None
    if not isinstance(ids, list) or len(ids) != n:
        raise ValueError(f"{ids_file} must hold a list of {n} ids")
    metadata = None
    if record.get("metadata_columns"):
        metadata = _read_metadata(folder / METADATA_FILE)
    order = record.get("focus_order", list(focuses))
    if sorted(order) != sorted(focuses):
        raise ValueError(f"{index_file}: focus_order {order} does not match focuses {sorted(focuses)}")
    return {name: tensors[name] for name in order}, ids, metadata, record.get("model")


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; ValueError naming the file otherwise."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return record


def read_record(path: str | os.PathLike) -> dict:
    """The ``index.json`` of the folder ``path``, checked to describe an index this fashrec reads;
    FileNotFoundError / ValueError naming the file otherwise."""
    folder = Path(path)
    index_file = folder / INDEX_FILE
    if not index_file.is_file():
        raise FileNotFoundError(f"{index_file} not found: {folder} is not a saved SimilarityIndex")
    try:
        record = json.loads(index_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{index_file} is not valid JSON: {err}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise ValueError(f"{index_file} does not describe a {FORMAT_NAME}")
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{index_file} has format_version {record.get('format_version')!r}; "
            f"this fashrec reads version {FORMAT_VERSION}"
        )
    return record


def model_record(model) -> dict:
    """The ``model`` entry of ``index.json``: class name, ``config_dict()`` with the :data:`EMBED_OPTIONS` as
    the model has them now (as it embeds), and ``weights_hash``."""
    from fashrec.models.hub_model import weights_hash

    config = model.config_dict() if hasattr(model, "config_dict") else None
    if config is not None:
        config.update(embed_options(model))
    return {"class": type(model).__name__, "config": config, "weights_hash": weights_hash(model)}


def embed_options(model) -> dict:
    """The :data:`EMBED_OPTIONS` ``model`` has (``{"flip_tta": False}``; ``{}`` for a model without any)."""
    return {name: getattr(model, name) for name in EMBED_OPTIONS if hasattr(model, name)}


def recorded_options(model_entry: Mapping | None) -> dict:
    """The :data:`EMBED_OPTIONS` an ``index.json`` model entry records, for ``from_pretrained(..., **options)``."""
    config = (model_entry or {}).get("config") or {}
    return {name: config[name] for name in EMBED_OPTIONS if name in config}


def check_model(stored: dict | None, model, index_file: Path) -> None:
    """ValueError unless the stored record's ``weights_hash`` equals ``weights_hash(model)``."""
    from fashrec.models.hub_model import weights_hash

    actual = weights_hash(model)
    if not stored:
        raise ValueError(
            f"{index_file} records no model (it was saved without model=), so it cannot be checked against "
            f"{type(model).__name__} (weights_hash {actual}); load it without model= or re-save it with model="
        )
    if stored.get("weights_hash") != actual:
        raise ValueError(
            f"{index_file} was built with {stored.get('class')} (weights_hash {stored.get('weights_hash')}), "
            f"not with this {type(model).__name__} (weights_hash {actual}): re-embed the catalogue with this "
            "model or load the model the index was built with"
        )


def _write_metadata(columns: Mapping[str, np.ndarray], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("saving index metadata needs pyarrow: pip install 'fashrec[data]'") from None
    from fashrec.atomic import atomic_path

    try:
        table = pa.table({name: pa.array(values.tolist() if values.dtype == object else values) for name, values in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"metadata cannot be stored as parquet ({path}): {err}") from None
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _read_metadata(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading index metadata {path} needs pyarrow: pip install 'fashrec[data]'") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
