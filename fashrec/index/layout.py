"""The files of an index folder, named once. Each file has one module that reads and writes it.

    OUT/index.json               what the vectors are: N, D per focus, the model (class, config with the embed
                                 options as used, weights hash), the photos skipped     fashrec.index.persistence
    OUT/embeddings.safetensors   one float32 tensor per focus                           fashrec.index.persistence
    OUT/ids.json                 the ids, in catalogue order                            fashrec.index.persistence
    OUT/metadata.parquet         the labels as strings (when there are any)             fashrec.index.persistence
    OUT/catalogue.json           the model reference, each id's photo file, provenance  fashrec.index.photo_catalogue
    OUT/photos/xx/<hash>.jpg     the photos shown and served: small JPEG thumbnails     fashrec.index.photo_catalogue
    OUT/integrity.json           the sha256 of every other file of the folder           fashrec.index.integrity

A bare ``SimilarityIndex.save`` writes the first four. ``fashrec embed`` and ``fashrec index`` write the
whole folder, sealed, through :mod:`fashrec.index.folder`, and every reader opens it with
``fashrec.open_index``, which refuses a folder that differs from its seal in any file.
"""
from __future__ import annotations

INDEX_FILE = "index.json"
EMBEDDINGS_FILE = "embeddings.safetensors"
IDS_FILE = "ids.json"
METADATA_FILE = "metadata.parquet"
CATALOGUE_FILE = "catalogue.json"
INTEGRITY_FILE = "integrity.json"
PHOTOS_DIR = "photos"
