"""Embed a whole catalogue into a saved ``SimilarityIndex``: batched, shard by shard, resumable.

    fashrec.jobs.embed_job.embed_catalogue(model=model, model_ref="paper-ae", data="../shared/data/hm", out="runs/hm-index")

A catalogue of any size is cut into shards of ``shard_size`` images (1,024 by default). Each finished
shard is written atomically to ``<out>.partial/shards/00000.safetensors`` (one float32 tensor per focus,
the shard's ids in its metadata), beside a ``manifest.json`` naming the model (weights hash), the data
(a hash of the ids) and the shard size. A job killed at any moment loses at most the shard in
progress: running the same command again skips every finished shard. A different model or catalogue
in the manifest is refused rather than mixed in (``restart=True`` starts over).

When every shard is there the index is built and saved (``SimilarityIndex.save(..., model=model)``, so
loading it with another model is refused), ``catalogue.json`` is added beside it, and the folder is
renamed to ``out`` in one step; the ``.partial`` folder is then removed. ``out`` therefore only ever
holds a complete index.

``catalogue.json`` records what the index cannot: the model reference it was built with (a folder or
Hub id, so ``fashrec recommend --image`` can reload it) and where each photo lives (so the neighbour
grid can draw them). Read it with :func:`read_catalogue` and :func:`catalogue_images`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

SHARD_SIZE = 1024
CATALOGUE_FILE = "catalogue.json"
MANIFEST_FILE = "manifest.json"
SAMPLE_ROOT = "@sample"  # stands for fashrec.data.sample.SAMPLE_DIR, so an index of the sample travels with the package
_FORMAT = "fashrec.jobs.embed_job"


def open_catalogue(data: str | os.PathLike, *, n: int | None = None, seed: int = 42):
    """Every image of ``data`` as one ``datasets.Dataset`` (train and test together), ordered by id.

    ``data`` is anything ``fashrec.load_hm`` reads: an H&M folder, a saved or exported dataset, a Hub id,
    ``"sample"``, or a plain folder of images (ids are the file stems, no labels).
    """
    from fashrec.data.hm_dataset import load_hm

    ds = load_hm(data, n=n, seed=seed, split=False, progress=False)
    if len(ds) == 0:
        raise ValueError(f"{data}: the catalogue holds no images")
    return ds


def catalogue_metadata(ds) -> dict[str, list]:
    """Every column but ``image`` as strings (labels by name; a missing label is None), in row order."""
    import datasets

    columns = {}
    for name, feature in ds.features.items():
        if name == "image":
            continue
        values = ds[name]
        if isinstance(feature, datasets.ClassLabel):
            columns[name] = [feature.int2str(int(v)) if v is not None and v >= 0 else None for v in values]
        else:
            columns[name] = [None if v is None else str(v) for v in values]
    return columns


def embed_catalogue(*, model, data: str | os.PathLike, out: str | os.PathLike, model_ref: str | None = None,
                    n: int | None = None, batch_size: int = 256, shard_size: int = SHARD_SIZE,
                    restart: bool = False, overwrite: bool = False, progress: bool = True,
                    on_shard: Callable[[int], Any] | None = None):
    """Embed every image of ``data`` with every focus of ``model`` and save the index to ``out``.

    Returns the ``SimilarityIndex``. ``model_ref`` (a checkpoint folder or Hub id) is recorded so the
    model can be reloaded from the index; ``on_shard(i)`` is called after shard ``i`` is on disk (tests
    use it to interrupt a job). ``overwrite`` replaces an existing index at ``out``.
    """
    import torch
    from tqdm.auto import tqdm

    from fashrec.atomic import write_json_atomic
    from fashrec.models.hub_model import weights_hash
    from fashrec.index import SimilarityIndex

    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be positive, got {batch_size} and {shard_size}")
    ds = open_catalogue(data, n=n)
    ids = list(ds["article_id"])
    focuses = tuple(getattr(model, "focuses", ("overall",)))
    work = out.parent / f"{out.name}.partial"
    manifest = {
        "format": _FORMAT,
        "model_weights_hash": weights_hash(model),
        "model": model_ref,
        "data": str(data),
        "n_items": len(ids),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "shard_size": int(shard_size),
        "focuses": {f: int(model.embedding_dim) for f in focuses},
    }
    _start_work_folder(work, manifest, restart=restart)

    model.eval()
    device = next(model.parameters()).device
    n_shards = (len(ids) + shard_size - 1) // shard_size
    cells = ds.cast_column("image", _undecoded_image())
    bar = tqdm(total=len(ids), desc="embed", unit="img", disable=not progress)
    for s in range(n_shards):
        lo, hi = s * shard_size, min(len(ids), (s + 1) * shard_size)
        shard_file = work / "shards" / f"{s:05d}.safetensors"
        if _shard_ok(shard_file, ids[lo:hi], manifest["focuses"]):
            bar.update(hi - lo)
            continue
        chunks: dict[str, list] = {f: [] for f in focuses}
        for b in range(lo, hi, batch_size):
            x = _preprocess_cells(cells[b:min(hi, b + batch_size)]["image"], ids[b:min(hi, b + batch_size)], model)
            x = x.to(device)
            with torch.no_grad():
                for f in focuses:
                    chunks[f].append(model.embed(x, focus=f).cpu())
            bar.update(x.shape[0])
        _save_shard({f: torch.cat(v) for f, v in chunks.items()}, ids[lo:hi], shard_file)
        if on_shard is not None:
            on_shard(s)
    bar.close()

    vectors = {f: [] for f in focuses}
    for s in range(n_shards):
        tensors = _load_shard(work / "shards" / f"{s:05d}.safetensors")
        for f in focuses:
            vectors[f].append(tensors[f])
    embeddings = {f: torch.cat(v) for f, v in vectors.items()}
    index = SimilarityIndex(embeddings if len(focuses) > 1 else embeddings[focuses[0]], ids, catalogue_metadata(ds))

    staging = work / "index"
    if staging.exists():
        shutil.rmtree(staging)
    index.save(staging, model=model)
    write_json_atomic(_catalogue_record(data, model_ref, cells, manifest), staging / CATALOGUE_FILE)
    _move_into_place(staging, out)
    shutil.rmtree(work, ignore_errors=True)
    return index


def read_catalogue(index_dir: str | os.PathLike) -> dict:
    """The ``catalogue.json`` of an index made by :func:`embed_catalogue` (``{}`` for other indexes)."""
    path = Path(index_dir) / CATALOGUE_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return record


def catalogue_images(index_dir: str | os.PathLike, item_ids: list[str]) -> list:
    """The photo of each id (a path, or encoded bytes), or None where it cannot be found.

    Uses the file list in ``catalogue.json``; for a source without files (a Hub or saved dataset) the
    source is reloaded with ``fashrec.load_hm``. Never raises for a missing photo: the grid shows a gap.
    """
    record = read_catalogue(index_dir)
    images = record.get("images") or {}
    root, files = images.get("root"), images.get("files")
    ids = record.get("ids")
    if root is not None and files is not None and ids is not None:
        if root == SAMPLE_ROOT:
            from fashrec.data.sample import SAMPLE_DIR

            root = SAMPLE_DIR
        where = dict(zip(ids, files))
        out = []
        for i in item_ids:
            path = Path(root) / where[i] if i in where else None
            out.append(str(path) if path is not None and path.is_file() else None)
        return out
    if record.get("data"):
        try:
            ds = open_catalogue(record["data"])
        except (OSError, ValueError):
            return [None] * len(item_ids)
        cells = ds.cast_column("image", _undecoded_image())
        position = {a: k for k, a in enumerate(cells["article_id"])}
        return [_cell_source(cells[position[i]]["image"]) if i in position else None for i in item_ids]
    return [None] * len(item_ids)


# --------------------------------------------------------------------------- internals


def _undecoded_image():
    import datasets

    return datasets.Image(decode=False)


def _cell_source(cell: dict):
    if cell.get("bytes") is not None:
        return cell["bytes"]
    return cell.get("path")


def _preprocess_cells(cells: list[dict], ids: list[str], model):
    from fashrec.data.preprocess import ImageError, preprocess_batch

    try:
        return preprocess_batch([_cell_source(c) for c in cells], model.preprocess_config)
    except ImageError as exc:  # name the catalogue id, not only the position in the batch
        position = str(exc).split(":", 1)[0].removeprefix("item ")
        who = ids[int(position)] if position.isdigit() and int(position) < len(ids) else "?"
        raise ImageError(f"article_id {who}: {exc}") from exc


def _start_work_folder(work: Path, manifest: dict, *, restart: bool) -> None:
    from fashrec.atomic import write_json_atomic

    path = work / MANIFEST_FILE
    if restart and work.exists():
        shutil.rmtree(work)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old != manifest:
            differs = sorted(k for k in manifest if not isinstance(old, dict) or old.get(k) != manifest[k])
            raise ValueError(
                f"{work} holds an unfinished embedding job with a different {', '.join(differs) or 'manifest'}; "
                "pass restart=True (--restart) to discard it and start over"
            )
        return
    (work / "shards").mkdir(parents=True, exist_ok=True)
    write_json_atomic(manifest, path)


def _save_shard(tensors: dict, ids: list[str], path: Path) -> None:
    from fashrec.atomic import save_safetensors_atomic

    save_safetensors_atomic(tensors, path, metadata={"ids": json.dumps(ids)})


def _load_shard(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _shard_ok(path: Path, ids: list[str], focuses: dict[str, int]) -> bool:
    """A shard counts as done only if it reads back with the expected ids, focuses and shapes."""
    if not path.is_file():
        return False
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if json.loads((f.metadata() or {}).get("ids", "null")) != ids or set(f.keys()) != set(focuses):
                return False
            return all(tuple(f.get_slice(name).get_shape()) == (len(ids), dim) for name, dim in focuses.items())
    except (SafetensorError, OSError, ValueError):
        return False


def _catalogue_record(data, model_ref, cells, manifest: dict) -> dict:
    """What ``catalogue.json`` holds: the source, the model, and each photo's file relative to a root."""
    from fashrec.data.sample import SAMPLE_DIR

    ids = list(cells["article_id"])
    paths = [c.get("path") if c.get("bytes") is None else None for c in cells["image"]]
    images = None
    if all(paths):
        absolute = [Path(p).resolve() for p in paths]
        root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
        files = [p.relative_to(root).as_posix() for p in absolute]
        label = SAMPLE_ROOT if root == SAMPLE_DIR.resolve() or SAMPLE_DIR.resolve() in root.parents else str(root)
        if label == SAMPLE_ROOT and root != SAMPLE_DIR.resolve():
            files = [p.relative_to(SAMPLE_DIR.resolve()).as_posix() for p in absolute]
        images = {"root": label, "files": files}
    source = str(data)
    if source != "sample" and Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())
    return {
        "format": "fashrec.catalogue",
        "data": source,
        "model": model_ref,
        "model_weights_hash": manifest["model_weights_hash"],
        "ids": ids,
        "images": images,
    }


def _move_into_place(staging: Path, out: Path) -> None:
    from fashrec.atomic import replace_dir

    replace_dir(staging, out)
