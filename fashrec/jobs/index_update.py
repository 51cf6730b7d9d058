"""``fashrec index add / remove / replace``: update an index folder in place, embedding only what is new.

    add_photos("runs/hm-index", "new-photos/")             # embeds the new photos, nothing else
    remove_items("runs/hm-index", ["0108775015"])
    replace_photos("runs/hm-index", "reshot/")              # new photos of items already in the index

Every update reads the folder and the model it records (``catalogue.json``; the embed options of
``index.json`` applied), refuses a model that would not make the same vectors (other weights, class,
preprocessing or flip TTA: ``index_folder.check_same_model``), refuses duplicate ids before anything is
embedded, embeds the photos with the job's pipeline (``embed_stream``: photos that cannot be decoded
are skipped and reported, and for ``add`` recorded in ``index.json``), applies
``SimilarityIndex.add / remove / replace`` and writes the whole folder anew, swapped in atomically
(``index_folder.write_index_folder``): a crash leaves the old index or the new one, never a mix, and a
full disk is one error line with the old index still in place. One writer at a time (an advisory lock
beside the folder); what a killed writer left beside the folder is removed by the next one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from fashrec.data.preprocess import ImageError


def add_photos(index_dir, data, *, model=None, strict: bool = False, batch_size: int = 256,
               workers: int | None = None, progress: bool = True) -> dict:
    """Embed the photos of ``data`` (anything ``fashrec.load_hm`` reads) and append them to the index.
    Returns ``{"added": [ids], "skipped": [{"id", "reason"}], "n_items": N}``."""
    return _photos(index_dir, data, "add", model, strict, batch_size, workers, progress)


def replace_photos(index_dir, data, *, model=None, strict: bool = False, batch_size: int = 256,
                   workers: int | None = None, progress: bool = True) -> dict:
    """Re-embed items already in the index from the photos of ``data`` (their ids); their metadata
    is replaced by the new rows'. A photo that cannot be decoded leaves its item as it was."""
    return _photos(index_dir, data, "replace", model, strict, batch_size, workers, progress)


def remove_items(index_dir, ids) -> dict:
    """Drop ``ids`` (all must be in the index). Returns ``{"removed": [ids], "n_items": N}``."""
    from fashrec.index import SimilarityIndex
    from fashrec.jobs.index_folder import locked, skipped_images, write_index_folder

    index_dir = _existing(index_dir)
    ids = list(dict.fromkeys(ids))
    with locked(index_dir):
        _remove_leftovers(index_dir)
        index = SimilarityIndex.load(index_dir)
        index.remove(ids)
        write_index_folder(index_dir, index, model=None, catalogue=_catalogue(index_dir, index),
                           skipped=skipped_images(index_dir))
    return {"removed": ids, "n_items": len(index)}


def _photos(index_dir, data, op, model, strict, batch_size, workers, progress) -> dict:
    from fashrec.index import SimilarityIndex
    from fashrec.jobs.embed_job import (_catalogue_record, _CellSources, _undecoded_image, _unreadable,
                                        catalogue_metadata, open_catalogue, read_catalogue)
    from fashrec.jobs.embed_stream import embed_sources
    from fashrec.jobs.index_folder import (apply_embed_options, check_same_model, load_model, locked,
                                           skipped_images, write_index_folder)
    from fashrec.models.hub_model import weights_hash

    index_dir = _existing(index_dir)
    with locked(index_dir):
        _remove_leftovers(index_dir)
        index = SimilarityIndex.load(index_dir)
        ref = read_catalogue(index_dir).get("model")
        if model is None:
            if not ref:
                raise ValueError(f"{index_dir} records no model (catalogue.json): pass the one it was built with")
            model = apply_embed_options(load_model(ref), index_dir)
        check_same_model(index_dir, index, model)
        ds = open_catalogue(data)
        ids = list(ds["article_id"])
        position = set(index.ids)
        clash = [i for i in ids if i in position] if op == "add" else [i for i in ids if i not in position]
        if clash:
            raise ValueError(
                f"{len(clash)} id(s) of {data} are already in {index_dir} (first: {clash[:5]}): duplicate ids are "
                "refused; 'fashrec index replace' re-embeds them" if op == "add" else
                f"{len(clash)} id(s) of {data} are not in {index_dir} (first: {clash[:5]}): 'fashrec index add' "
                "adds new items")
        failed = [(i, "failed the loader's integrity check (unreadable or truncated file)") for i in _unreadable(ds)]
        if strict and failed:
            raise ImageError(f"article_id {failed[0][0]}: {failed[0][1]}")
        cells = ds.cast_column("image", _undecoded_image())
        done = embed_sources(model, _CellSources(cells), batch_size=batch_size, workers=workers, progress=progress)
        failed += [(ids[p], why) for p, why in done.failed]
        if strict and failed:
            raise ImageError(f"article_id {failed[0][0]}: {failed[0][1]}")
        if not done.kept:
            raise ImageError(f"none of the {len(ids)} photos of {data} could be decoded (first: {failed[0][1]})")
        kept = ds.select(done.kept)
        new_ids = [ids[p] for p in done.kept]
        columns = set(index.metadata_columns)
        metadata = {c: v for c, v in catalogue_metadata(kept).items() if c in columns} if columns else None
        vectors = done.vectors if len(index.focuses) > 1 else done.vectors[index.focuses[0]]
        getattr(index, op)(vectors, new_ids, metadata)
        record = _catalogue_record(data, ref, kept.cast_column("image", _undecoded_image()),
                                   {"model_weights_hash": weights_hash(model)})
        skipped = [s for s in skipped_images(index_dir) if s["id"] not in set(new_ids)]
        if op == "add":
            skipped += [{"id": i, "reason": why} for i, why in failed]
        write_index_folder(index_dir, index, model=model, catalogue=_catalogue(index_dir, index, record),
                           skipped=skipped)
    return {{"add": "added", "replace": "replaced"}[op]: new_ids, "skipped": [{"id": i, "reason": why} for i, why in failed],
            "n_items": len(index)}


def _catalogue(index_dir: Path, index, new: dict | None = None) -> dict:
    """``catalogue.json`` for the updated index: its ids in order, each photo where the old record or
    the new photos' record (``new``) says; files outside the old root are stored as absolute paths."""
    from fashrec.jobs.embed_job import image_root, photo_locations, read_catalogue

    old = read_catalogue(index_dir)
    where = dict(photo_locations(index_dir, old) or {})
    if new is not None:
        where.update(photo_locations(index_dir, new) or {})
    record = dict(old)
    record["ids"] = index.ids
    root = (old.get("images") or {}).get("root")
    if root is None or any(i not in where for i in index.ids):
        record["images"] = None  # some photo's place is unknown: catalogue_images reloads the source
    else:
        base = image_root(index_dir, root).resolve()
        files = []
        for i in index.ids:
            path = Path(where[i]).resolve()
            files.append(path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path))
        record["images"] = {"root": root, "files": files}
    if new is not None:
        record["updates"] = [*old.get("updates", []), {"data": new["data"], "n": len(new["ids"])}]
    return record


def _existing(index_dir) -> Path:
    folder = Path(index_dir)
    if not (folder / "index.json").is_file():
        raise FileNotFoundError(f"{folder}: no index there (make one with 'fashrec embed')")
    return folder


def _remove_leftovers(index_dir: Path) -> None:
    """The work folders of a writer that was killed (``.NAME.*.new``, beside the index): never read."""
    prefix = f".{index_dir.name}."
    for path in index_dir.parent.iterdir():
        if path.name.startswith(prefix) and path.name.endswith(".new") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
