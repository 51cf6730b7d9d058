"""Embed a whole catalogue into a saved ``SimilarityIndex``: batched, shard by shard, resumable.

    fashrec.jobs.embed_job.embed_catalogue(model=model, model_ref="paper-ae", data="../shared/data/hm", out="runs/hm-index")

Photos are decoded on a pool of threads a few batches ahead of the model (``fashrec.jobs.embed_stream``),
or by a Ray Data pipeline with the model in an actor pool (``engine="ray"``, ``fashrec.jobs.ray_embed``).

A catalogue of any size is cut into shards of ``shard_size`` images (1,024 by default). Each finished
shard is written atomically to ``<out>.partial/shards/00000.safetensors`` (``fashrec.jobs.shards``),
beside a ``manifest.json`` naming the model (weights hash and embed options such as ``flip_tta``), the
data (a hash of the ids) and the shard size. A job killed at any moment loses at most the shards in
progress: running the same command again skips every finished shard. A different model or catalogue
in the manifest is refused rather than mixed in (``restart=True`` starts over).

A photo that cannot be decoded does not stop the job: it is left out and listed, with the reason, in
the index's ``index.json`` (``"skipped_images"``); ``strict=True`` makes it an error instead.

When every shard is there the index is built and written with ``catalogue.json`` beside it
(``fashrec.jobs.index_folder.write_index_folder``: the whole folder is swapped in atomically, and a full
disk is one clear error with the previous index untouched); the ``.partial`` folder is then removed.

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

from fashrec.data.preprocess import ImageError

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
    table = ds.select_columns([c for c in ds.column_names if c != "image"]).with_format("arrow")[:]
    for name, feature in ds.features.items():
        if name == "image":
            continue
        values = table.column(name).to_pylist()  # one Arrow read a column, not a formatted list
        if isinstance(feature, datasets.ClassLabel):
            names = feature.names
            columns[name] = [names[v] if v is not None and 0 <= v < len(names) else None for v in values]
        else:
            columns[name] = [None if v is None else str(v) for v in values]
    return columns


def embed_catalogue(*, model, data: str | os.PathLike, out: str | os.PathLike, model_ref: str | None = None,
                    n: int | None = None, batch_size: int = 256, shard_size: int = SHARD_SIZE,
                    restart: bool = False, overwrite: bool = False, progress: bool = True,
                    on_shard: Callable[[int], Any] | None = None, strict: bool = False, workers: int | None = None,
                    threads: int | None = None, backend: str = "torch", engine: str = "local",
                    ray_address: str | None = None, ray_actors: int | None = None):
    """Embed every image of ``data`` with every focus of ``model`` and save the index to ``out``.

    Returns the ``SimilarityIndex``. ``model_ref`` (a checkpoint folder or Hub id) is recorded so the
    model can be reloaded from the index; ``on_shard(i)`` is called after shard ``i`` is on disk (tests
    use it to interrupt a job). ``overwrite`` replaces an existing index at ``out``.

    Photos that cannot be decoded are left out and listed in ``index.json`` (``"skipped_images"``, read
    with :func:`fashrec.jobs.index_folder.skipped_images`); ``strict=True`` makes the first one an
    ``ImageError`` instead. ``engine="ray"`` embeds with Ray Data (:mod:`fashrec.jobs.ray_embed`) on
    the cluster at ``ray_address`` (None: a local Ray), into the very same files.

    Locally, photos are decoded on ``workers`` threads while the model runs with ``threads`` intra-op
    threads on ``backend`` (``"torch"``, or ``"onnx"`` for ONNX Runtime); by default one decoder per
    CPU and half the CPUs for the model (``fashrec.jobs.embed_stream``). The backend changes the vectors only by float32
    rounding, so it is not part of the index's identity.
    """
    from fashrec.atomic import disk_full_as_error
    from fashrec.jobs.embed_stream import default_threads, embed_batches
    from fashrec.jobs.index_folder import EMBED_OPTIONS, write_index_folder
    from fashrec.jobs.shards import ShardStore
    from fashrec.models.hub_model import weights_hash
    from fashrec.models.inference import check_backend, torch_threads
    from fashrec.index import SimilarityIndex

    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be positive, got {batch_size} and {shard_size}")
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; choose 'local' or 'ray'")
    check_backend(backend)
    if engine == "ray" and backend != "torch":
        raise ValueError(f"--backend {backend} runs in this process only; the Ray engine embeds with torch")
    ds = open_catalogue(data, n=n)
    ids = list(ds["article_id"])
    skipped = [{"id": i, "reason": "failed the loader's integrity check (unreadable or truncated file)"}
               for i in _unreadable(ds)]
    if strict and skipped:
        raise ImageError(f"{len(skipped)} photo(s) of {data} cannot be decoded (first: {skipped[0]['id']}); "
                         "without --strict they are skipped and listed in index.json")
    focuses = tuple(getattr(model, "focuses", ("overall",)))
    work = out.parent / f"{out.name}.partial"
    manifest = {
        "format": _FORMAT,
        "model_weights_hash": weights_hash(model),
        "model": model_ref,
        "embed_options": {k: getattr(model, k) for k in EMBED_OPTIONS if hasattr(model, k)},
        "data": str(data),
        "n_items": len(ids),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "shard_size": int(shard_size),
        "focuses": {f: int(model.embedding_dim) for f in focuses},
    }
    kept_note = (f"{out} is unchanged" if out.exists() else "no index was written") + \
        f"; finished shards are kept in {work}: run the same command again when there is room"
    with disk_full_as_error(work, unchanged=kept_note):
        _start_work_folder(work, manifest, restart=restart)
    model.eval()
    store = ShardStore(work / "shards", ids, shard_size=shard_size, dims=manifest["focuses"])
    todo = store.todo()
    batches = [range(b, min(hi, b + batch_size))
               for lo, hi in map(store.bounds, todo) for b in range(lo, hi, batch_size)]
    cells = ds.cast_column("image", _undecoded_image())
    sources = _CellSources(cells)
    if engine == "ray":
        from fashrec.jobs.ray_embed import ray_embed_batches

        stream = ray_embed_batches(model, sources, batches, address=ray_address, actors=ray_actors, progress=progress)
    else:
        stream = embed_batches(model, sources, batches, workers=workers, threads=threads, backend=backend,
                               progress=progress)

    def refuse(failed):
        if strict:
            position, why = failed[0]
            raise ImageError(f"article_id {ids[position]}: {why}")

    # the job's own tensor work (shards, their concatenation) on the model's threads: a loaded machine
    # makes every two-thread operator wait a scheduler tick for its second thread
    with disk_full_as_error(work, unchanged=kept_note), torch_threads(threads or default_threads()):
        store.collect(stream, on_shard=on_shard, check=refuse)
        kept, vectors, failed = store.load_all()
    skipped += [{"id": ids[p], "reason": why} for p, why in failed]
    if not kept:
        raise ImageError(f"none of the {len(ids)} photos of {data} could be decoded (first: {skipped[0]['reason']})")
    kept_ds = ds.select(kept) if len(kept) < len(ids) else ds
    index = SimilarityIndex(vectors if len(focuses) > 1 else vectors[focuses[0]], [ids[p] for p in kept],
                            catalogue_metadata(kept_ds))
    record = _catalogue_record(data, model_ref, kept_ds.cast_column("image", _undecoded_image()), manifest)
    write_index_folder(out, index, model=model, catalogue=record, skipped=skipped)
    shutil.rmtree(work, ignore_errors=True)
    return index


def read_catalogue(index_dir: str | os.PathLike) -> dict:
    """The ``catalogue.json`` of an index made by :func:`embed_catalogue` (``{}`` for other indexes)."""
    from fashrec.jobs.index_folder import read_json_object

    path = Path(index_dir) / CATALOGUE_FILE
    return read_json_object(path) if path.is_file() else {}


def catalogue_images(index_dir: str | os.PathLike, item_ids: list[str]) -> list:
    """The photo of each id (a path, or encoded bytes), or None where it cannot be found.

    Uses the file list in ``catalogue.json``; for a source without files (a Hub or saved dataset) the
    source is reloaded with ``fashrec.load_hm``. Never raises for a missing photo: the grid shows a gap.
    """
    record = read_catalogue(index_dir)
    where = photo_locations(index_dir, record)
    if where is not None:
        return [where[i] if i in where and Path(where[i]).is_file() else None for i in item_ids]
    if record.get("data"):
        try:
            ds = open_catalogue(record["data"])
        except (OSError, ValueError):
            return [None] * len(item_ids)
        cells = ds.cast_column("image", _undecoded_image())
        position = {a: k for k, a in enumerate(cells["article_id"])}
        return [_cell_source(cells[position[i]]["image"]) if i in position else None for i in item_ids]
    return [None] * len(item_ids)


def photo_locations(index_dir: str | os.PathLike, record: dict | None = None) -> dict[str, str] | None:
    """``{id: photo path}`` from ``catalogue.json``'s file list (``record`` if given), or None when it
    has none (a Hub or saved dataset). Files are relative to ``images.root``: ``@sample`` (the sample
    shipped in the package), a folder relative to the index (photos that travel with it, ``fashrec space
    build``) or an absolute one; a file may also be an absolute path of its own (an added photo)."""
    record = read_catalogue(index_dir) if record is None else record
    images = record.get("images") or {}
    root, files, ids = images.get("root"), images.get("files"), record.get("ids")
    if root is None or files is None or ids is None:
        return None
    return {i: str(image_root(index_dir, root) / f) for i, f in zip(ids, files)}


def image_root(index_dir: str | os.PathLike, root: str) -> Path:
    """The folder ``images.root`` of ``catalogue.json`` names."""
    if root == SAMPLE_ROOT:
        from fashrec.data.sample import SAMPLE_DIR

        return Path(SAMPLE_DIR)
    if not Path(root).is_absolute():  # photos that travel with the index (fashrec space build)
        return Path(index_dir) / root
    return Path(root)


# --------------------------------------------------------------------------- internals


def _undecoded_image():
    import datasets

    return datasets.Image(decode=False)


def _cell_source(cell: dict):
    if cell.get("bytes") is not None:
        return cell["bytes"]
    return cell.get("path")


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


def _catalogue_record(data, model_ref, cells, manifest: dict) -> dict:
    """What ``catalogue.json`` holds: the source, the model, and each photo's file relative to a root."""
    from fashrec.data.sample import SAMPLE_DIR

    ids = list(cells["article_id"])
    column = cells.select_columns(["image"]).with_format("arrow")[:].column("image").combine_chunks()
    stored = column.field("bytes").is_valid().to_pylist()  # one Arrow read, not a formatted row per photo
    paths = [None if has_bytes else p for p, has_bytes in zip(column.field("path").to_pylist(), stored)]
    images = None
    if all(paths):
        # each folder resolved and made relative once, not each of thousands of photos (Path objects
        # per photo cost ~1 s over 5,000 on a loaded machine)
        split = [os.path.split(p) for p in paths]
        folders = {folder: Path(folder).resolve() for folder in {f for f, _ in split}}
        root = Path(os.path.commonpath([str(f) for f in folders.values()]))
        label = SAMPLE_ROOT if root == SAMPLE_DIR.resolve() or SAMPLE_DIR.resolve() in root.parents else str(root)
        base = SAMPLE_DIR.resolve() if label == SAMPLE_ROOT else root
        prefix = {f: "" if r == base else r.relative_to(base).as_posix() + "/" for f, r in folders.items()}
        images = {"root": label, "files": [prefix[folder] + name for folder, name in split]}
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


class _CellSources:
    """The photo of each row (encoded bytes or a path), read from the dataset's image column a block of
    rows at a time (one Arrow slice instead of a formatted row per photo; bytes stay bounded)."""

    BLOCK = 1024

    def __init__(self, cells) -> None:
        self.images = cells.select_columns(["image"])
        self.block, self.start = [], -1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        i = int(i)
        if not self.start <= i < self.start + len(self.block):
            self.start = i - i % self.BLOCK
            self.block = self.images[self.start:self.start + self.BLOCK]["image"]
        return _cell_source(self.block[i - self.start])


def _unreadable(ds) -> list[str]:
    """The ids ``load_hm`` left out because the photo failed its integrity check."""
    from fashrec.data.hm_dataset import load_report

    try:
        return list(load_report(ds).get("skipped", {}).get("undecodable", []))
    except ValueError:  # not made by load_hm
        return []
