"""fashrec: visual "similar products" recommendation for fashion catalogues.

    import fashrec
    model = fashrec.from_pretrained("default")               # a shipped name, a folder, or a Hub repo id
    x = fashrec.preprocess_batch(["a.jpg", "b.jpg"], model.preprocess_config)
    vectors = model.embed(x)                                  # (N, model.embedding_dim)
    index = fashrec.SimilarityIndex(vectors, ids=["a", "b"])
    index.search(vectors[:1], k=1, metric="cosine")
    opened = fashrec.open_index("runs/hm-index")              # a sealed index folder: index, model, photos

The package follows the data, one layer a subpackage:

    data/     images -> tensors (preprocess, the H&M loader, the tensor cache, the sample)
    models/   tensors -> embeddings (the Hub base class, ConvAE, ConvVAE, MultiTaskCNN, shipped checkpoints)
    index/    embeddings -> neighbours (SimilarityIndex, its exact engines, FAISS)
    eval/     neighbours -> scores (retrieval metrics, the scoreboard, neighbour grids)
    training/ the resumable training loops        hub/   publishing        jobs/   end-to-end catalogue jobs

Names are imported lazily so that ``import fashrec`` (and ``fashrec --help``) stay fast.
"""
from __future__ import annotations

import importlib

from fashrec.version import __version__  # the one version source

# Imported eagerly: the function ``fashrec.preprocess`` is the package's most used name (and cheap).
from fashrec.data.preprocess import ImageError, PreprocessConfig, preprocess, preprocess_batch

_EXPORTS = {
    "HubModel": "fashrec.models.hub_model",
    "from_pretrained": "fashrec.models.hub_model",
    "ConvAE": "fashrec.models.conv_ae",
    "ConvVAE": "fashrec.models.conv_vae",
    "MultiTaskCNN": "fashrec.models.multitask_cnn",
    "load_hm": "fashrec.data.hm_dataset",
    "LABEL_COLUMNS": "fashrec.data.hm_dataset",
    "load_report": "fashrec.data.hm_dataset",
    "dataset_tensor": "fashrec.data.tensor_cache",
    "SAMPLE_DIR": "fashrec.data.sample",
    "sample_path": "fashrec.data.sample",
    "SimilarityIndex": "fashrec.index",
    "open_index": "fashrec.index.folder",
    "OpenedIndex": "fashrec.index.folder",
    "precision_at_k": "fashrec.eval.retrieval_metrics",
    "average_precision_at_k": "fashrec.eval.retrieval_metrics",
    "evaluate": "fashrec.eval.evaluation",
    "train": "fashrec.training.trainer",
    "push_folder": "fashrec.hub.push",
}

__all__ = sorted([*_EXPORTS, "ImageError", "PreprocessConfig", "preprocess", "preprocess_batch"]) + ["__version__"]


def __getattr__(name: str):
    if name == "pretrained":  # a submodule, not a name inside one
        return importlib.import_module("fashrec.models.pretrained")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fashrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

