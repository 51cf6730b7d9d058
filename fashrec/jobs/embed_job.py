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

A photo that cannot be used (undecodable, truncated, a decompression bomb) does not stop the job: it is
left out and listed, with the reason, in the index's ``index.json`` (``"skipped_images"``); ``strict=True``
makes it an error instead.

When every shard is there the index folder is written (``fashrec.index.folder.writing_folder``): each
kept photo as a small thumbnail in ``photos/`` (what the folder serves), the vectors, ``catalogue.json``
(the model reference, each id's photo, where the photos came from) and the seal over all of it, swapped
in atomically (a full disk is one clear error with the previous index untouched); the ``.partial``
folder is then removed.
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
MANIFEST_FILE = "manifest.json"
_FORMAT = "fashrec.jobs.embed_job"


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

    Photos that cannot be used are left out and listed in ``index.json`` (``"skipped_images"``, read
    with ``fashrec.open_index(out).skipped``); ``strict=True`` makes the first one an
    ``ImageError`` instead. ``engine="ray"`` embeds with Ray Data (:mod:`fashrec.jobs.ray_embed`) on
    the cluster at ``ray_address`` (None: a local Ray), into the very same files.

    Locally, photos are decoded on ``workers`` threads while the model runs with ``threads`` intra-op
    threads on ``backend`` (``"torch"``, or ``"onnx"`` for ONNX Runtime); by default one decoder per
    CPU and half the CPUs for the model (``fashrec.jobs.embed_stream``). The backend changes the vectors only by float32
    rounding, so it is not part of the index's identity.
    """
    from concurrent.futures import ThreadPoolExecutor

    from fashrec.atomic import disk_full_as_error
    from fashrec.index import SimilarityIndex
    from fashrec.index.folder import locked, writing_folder
    from fashrec.index.persistence import embed_options
    from fashrec.jobs.catalogue_source import (CellSources, catalogue_metadata, loader_skipped, open_catalogue,
                                               provenance)
    from fashrec.jobs.embed_stream import default_threads, embed_batches
    from fashrec.jobs.shards import ShardStore
    from fashrec.models.hub_model import weights_hash
    from fashrec.models.inference import check_backend, torch_threads

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
    skipped = [{"id": i, "reason": why} for i, why in loader_skipped(ds)]
    if strict and skipped:
        raise ImageError(f"{len(skipped)} photo(s) of {data} cannot be used (first: {skipped[0]['id']}: "
                         f"{skipped[0]['reason']}); without --strict they are skipped and listed in index.json")
    focuses = tuple(getattr(model, "focuses", ("overall",)))
    work = out.parent / f"{out.name}.partial"
    manifest = {
        "format": _FORMAT,
        "model_weights_hash": weights_hash(model),
        "model": model_ref,
        "embed_options": embed_options(model),
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
    sources = CellSources(ds)
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

    # The folder's thumbnails are made while the model runs (one background task at a time; its threads take
    # the CPU the decoders and the model leave): every photo, since which ones decode is known only at the
    # end; finish() leaves out the thumbnails of items not in the index. In chunks, so that a job that fails
    # drops the chunks not started instead of waiting for a whole catalogue's thumbnails.
    with locked(out), writing_folder(out) as writer:
        background = ThreadPoolExecutor(1)
        try:
            thumbnails = [background.submit(writer.add_photos, {ids[p]: sources[p] for p in
                                                                range(lo, min(lo + _THUMBNAIL_CHUNK, len(ids)))},
                                            progress=False) for lo in range(0, len(ids), _THUMBNAIL_CHUNK)]
            # the job's own tensor work (shards, their concatenation) on the model's threads: a loaded machine
            # makes every two-thread operator wait a scheduler tick for its second thread
            with disk_full_as_error(work, unchanged=kept_note), torch_threads(threads or default_threads()):
                store.collect(stream, on_shard=on_shard, check=refuse)
                kept, vectors, failed = store.load_all()
            thumbnail_failed = [bad for chunk in thumbnails for bad in chunk.result()]
        finally:
            background.shutdown(cancel_futures=True)
        skipped += [{"id": ids[p], "reason": why} for p, why in failed]
        if not kept:
            raise ImageError(f"none of the {len(ids)} photos of {data} could be decoded (first: {skipped[0]['reason']})")
        decoded = {ids[p] for p in kept}
        bad = {i: why for i, why in thumbnail_failed if i in decoded}
        if bad and strict:
            item, why = next(iter(bad.items()))
            raise ImageError(f"article_id {item}: {why}")
        skipped += [{"id": i, "reason": why} for i, why in bad.items()]
        rows = [r for r, p in enumerate(kept) if ids[p] not in bad]
        kept = [kept[r] for r in rows]
        if not kept:
            raise ImageError(f"none of the {len(ids)} photos of {data} could be used (first: {skipped[0]['reason']})")
        vectors = {f: v[rows] for f, v in vectors.items()} if bad else vectors
        kept_ds = ds.select(kept) if len(kept) < len(ids) else ds
        index = SimilarityIndex(vectors if len(focuses) > 1 else vectors[focuses[0]], [ids[p] for p in kept],
                                catalogue_metadata(kept_ds))
        writer.finish(index, model=model, model_ref=model_ref, skipped=skipped,
                      sources=[{"job": "embed", "data": provenance(data), "n": len(kept)}])
    shutil.rmtree(work, ignore_errors=True)
    return index


# --------------------------------------------------------------------------- internals

_THUMBNAIL_CHUNK = 512  # photos per background thumbnail task (fashrec.index.photo_catalogue.write_photos)


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
