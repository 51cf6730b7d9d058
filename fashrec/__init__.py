"""fashrec: visual "similar products" recommendation for fashion catalogues.

    import fashrec
    model = fashrec.from_pretrained("path/or/org-repo")      # ConvAE, ConvVAE, ... (class from config.json)
    x = fashrec.preprocess_batch(["a.jpg", "b.jpg"], model.preprocess_config)
    vectors = model.embed(x)                                  # (N, model.embedding_dim)
    index = fashrec.SimilarityIndex(vectors, ids=["a", "b"])
    index.search(vectors[:1], k=1, metric="cosine")

Names are imported lazily so that ``import fashrec`` (and ``fashrec --help``) stay fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# The function ``fashrec.preprocess`` shares its name with the module ``fashrec/preprocess.py``. Importing
# it eagerly here binds the package attribute to the function once and for all; a lazy import would let a
# later ``import fashrec.preprocess`` elsewhere leave the attribute pointing at the module.
from fashrec.preprocess import ImageError, PreprocessConfig, preprocess, preprocess_batch  # noqa: E402

_EXPORTS = {
    "HubModel": "fashrec.hub_model",
    "from_pretrained": "fashrec.hub_model",
    "ConvAE": "fashrec.conv_ae",
    "ConvVAE": "fashrec.conv_vae",
    "MultiTaskCNN": "fashrec.multitask_cnn",
    "load_hm": "fashrec.hm_dataset",
    "LABEL_COLUMNS": "fashrec.hm_dataset",
    "dataset_tensor": "fashrec.tensor_cache",
    "SAMPLE_DIR": "fashrec.sample",
    "SimilarityIndex": "fashrec.index",
    "precision_at_k": "fashrec.retrieval_metrics",
    "average_precision_at_k": "fashrec.retrieval_metrics",
    "evaluate": "fashrec.evaluation",
    "train": "fashrec.trainer",
    "push_folder": "fashrec.hub_push",
    "load_report": "fashrec.hm_dataset",
    "sample_path": "fashrec.sample",
}

__all__ = sorted([*_EXPORTS, "ImageError", "PreprocessConfig", "preprocess", "preprocess_batch"]) + ["__version__"]


def __getattr__(name: str):
    if name == "pretrained":  # a submodule, not a name inside one
        return importlib.import_module("fashrec.pretrained")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fashrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
