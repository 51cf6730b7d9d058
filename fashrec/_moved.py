"""Old import paths (fashrec 0.1's flat package) that keep working for one release.

``import fashrec.similarity_index`` still works, warns with a ``DeprecationWarning`` naming the new path,
and gives the very module object now at ``fashrec.index`` (no copy: ``isinstance`` and monkeypatching
behave as before). Remove in fashrec 0.3.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "fashrec.hub_model": "fashrec.models.hub_model",
    "fashrec.conv_blocks": "fashrec.models.conv_blocks",
    "fashrec.conv_ae": "fashrec.models.conv_ae",
    "fashrec.conv_vae": "fashrec.models.conv_vae",
    "fashrec.multitask_cnn": "fashrec.models.multitask_cnn",
    "fashrec.weight_init": "fashrec.models.weight_init",
    "fashrec.pretrained": "fashrec.models.pretrained",
    "fashrec.preprocess": "fashrec.data.preprocess",
    "fashrec.hm_dataset": "fashrec.data.hm_dataset",
    "fashrec.tensor_cache": "fashrec.data.tensor_cache",
    "fashrec.sample": "fashrec.data.sample",
    "fashrec.trainer": "fashrec.training.trainer",
    "fashrec.train_state": "fashrec.training.train_state",
    "fashrec.multitask_training": "fashrec.training.multitask_training",
    "fashrec.figures": "fashrec.training.figures",
    "fashrec.hub_push": "fashrec.hub.push",
    "fashrec.evaluation": "fashrec.eval.evaluation",
    "fashrec.retrieval_metrics": "fashrec.eval.retrieval_metrics",
    "fashrec.neighbour_grid": "fashrec.eval.neighbour_grid",
    "fashrec.embed_job": "fashrec.jobs.embed_job",
    "fashrec.similarity_index": "fashrec.index",
    "fashrec.faiss_backend": "fashrec.index.faiss_backend",
}

# ``fashrec.pretrained`` stays a public spelling (``fashrec.pretrained.path("default")``): no warning.
QUIET = {"fashrec.pretrained"}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The import system stamped the old name's spec on the shared module object: give it its own back.
        module.__spec__ = self.own_spec


class MovedFinder(importlib.abc.MetaPathFinder):
    """Resolves an old module name to the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        if fullname not in QUIET:
            warnings.warn(f"{fullname} moved to {new}; the old path goes away in fashrec 0.3",
                          DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
