"""``fashrec index add / remove / replace``: update an index folder in place, embedding only what is new.

    add_photos("runs/hm-index", "new-photos/")             # embeds the new photos, nothing else
    remove_items("runs/hm-index", ["0108775015"])
    replace_photos("runs/hm-index", "reshot/")              # new photos of items already in the index

Every update opens the folder with ``fashrec.open_index``: a folder whose seal is missing or broken is
refused (``fashrec index seal`` is the one way to vouch for a changed folder), and so is a model that
would not make the same vectors (other weights, class, preprocessing or flip TTA); by default the
update embeds with the model the folder records, built with the options it records. Duplicate ids are
refused before anything is embedded; the photos are embedded with the job's pipeline
(``fashrec.jobs.embed_stream``); a photo that cannot be used (undecodable, a decompression bomb) is skipped
and reported, and for ``add`` recorded in ``index.json``. ``SimilarityIndex.add / remove / replace``
then gives the new index, and the whole folder is written anew, its photos carried over or made from
the new ones, sealed, and swapped in atomically (``fashrec.index.folder.writing_folder``): a crash leaves
the old index or the new one, never a mix, and a full disk is one error line with the old index still
in place. One writer at a time (an advisory lock beside the folder); what a killed writer left beside the
folder is removed by the next one.
"""
from __future__ import annotations

from fashrec.data.preprocess import ImageError


def add_photos(index_dir, data, *, model=None, strict: bool = False, batch_size: int = 256,
               workers: int | None = None, progress: bool = True, device: str = "cpu") -> dict:
    """Embed the photos of ``data`` (anything ``fashrec.load_hm`` reads) and append them to the index.
    Returns ``{"added": [ids], "skipped": [{"id", "reason"}], "n_items": N}``."""
    return _photos(index_dir, data, "add", model, strict, batch_size, workers, progress, device)


def replace_photos(index_dir, data, *, model=None, strict: bool = False, batch_size: int = 256,
                   workers: int | None = None, progress: bool = True, device: str = "cpu") -> dict:
    """Re-embed items already in the index from the photos of ``data`` (their ids); their metadata
    and photos are replaced by the new rows'. A photo that cannot be used leaves its item as it was."""
    return _photos(index_dir, data, "replace", model, strict, batch_size, workers, progress, device)


def remove_items(index_dir, ids) -> dict:
    """Drop ``ids`` (all must be in the index). Returns ``{"removed": [ids], "n_items": N}``."""
    from fashrec.index.folder import locked, open_index, writing_folder

    ids = list(dict.fromkeys(ids))
    with locked(index_dir):
        opened = open_index(index_dir)
        index = opened.index
        index.remove(ids)
        with writing_folder(index_dir) as writer:
            writer.carry_photos(opened, index.ids)
            writer.finish(index, model=None, model_ref=opened.catalogue.model, sources=opened.catalogue.sources,
                          skipped=opened.skipped)
    return {"removed": ids, "n_items": len(index)}


def _photos(index_dir, data, op, model, strict, batch_size, workers, progress, device) -> dict:
    from fashrec.index.folder import locked, open_index, writing_folder
    from fashrec.jobs.catalogue_source import (CellSources, catalogue_metadata, loader_skipped, open_catalogue,
                                               provenance)
    from fashrec.jobs.embed_stream import embed_sources

    with locked(index_dir):
        opened = open_index(index_dir, model, device=device)
        model, index = opened.model, opened.index
        ds = open_catalogue(data)
        ids = list(ds["article_id"])
        present = set(index.ids)
        clash = [i for i in ids if i in present] if op == "add" else [i for i in ids if i not in present]
        if clash:
            raise ValueError(
                f"{len(clash)} id(s) of {data} are already in {index_dir} (first: {clash[:5]}): duplicate ids are "
                "refused; 'fashrec index replace' re-embeds them" if op == "add" else
                f"{len(clash)} id(s) of {data} are not in {index_dir} (first: {clash[:5]}): 'fashrec index add' "
                "adds new items")
        failed = loader_skipped(ds)
        _refuse(strict, failed)
        sources = CellSources(ds)
        done = embed_sources(model, sources, batch_size=batch_size, workers=workers, progress=progress)
        failed += [(ids[p], why) for p, why in done.failed]
        _refuse(strict, failed)
        with writing_folder(index_dir) as writer:
            bad = writer.add_photos({ids[p]: sources[p] for p in done.kept}, progress=progress)
            failed += bad
            _refuse(strict, failed)
            unusable = {i for i, _ in bad}
            rows = [r for r, p in enumerate(done.kept) if ids[p] not in unusable]
            if not rows:
                raise ImageError(f"none of the {len(ids)} photos of {data} could be used (first: {failed[0][1]})")
            kept = [done.kept[r] for r in rows]
            new_ids = [ids[p] for p in kept]
            columns = set(index.metadata_columns)
            metadata = {c: v for c, v in catalogue_metadata(ds.select(kept)).items() if c in columns} if columns else None
            vectors = {f: v[rows] for f, v in done.vectors.items()}
            getattr(index, op)(vectors if len(index.focuses) > 1 else vectors[index.focuses[0]], new_ids, metadata)
            writer.carry_photos(opened, [i for i in index.ids if i not in set(new_ids)])
            skipped = [s for s in opened.skipped if s["id"] not in set(new_ids)]
            if op == "add":
                skipped += [{"id": i, "reason": why} for i, why in failed]
            writer.finish(index, model=model, model_ref=opened.catalogue.model, skipped=skipped,
                          sources=[*opened.catalogue.sources, {"job": op, "data": provenance(data), "n": len(new_ids)}])
    return {{"add": "added", "replace": "replaced"}[op]: new_ids,
            "skipped": [{"id": i, "reason": why} for i, why in failed], "n_items": len(index)}


def _refuse(strict: bool, failed: list[tuple[str, str]]) -> None:
    if strict and failed:
        raise ImageError(f"article_id {failed[0][0]}: {failed[0][1]}")
