"""The baselines of the scoreboard, computed once per data set and kept on disk.

The raw-pixel and PCA rows of ``fashrec evaluate`` do not depend on the model being scored (PCA only
on its embedding size): the neighbours they find, and the reconstruction errors of PCA and of the mean
image, are the same for every model evaluated on the same images. They are most of a run's time (a
PCA fit and three exact searches over 12,288 values), so they are kept here, keyed by a hash of the
preprocessed train and test tensors (which also covers the preprocessing) and of everything else
that shapes them: split, queries, k, seed.

    cache = BaselineCache.open(cache_dir, train_images, test_images, split="test", query_rows=rows, k=10, seed=42)
    positions = cache.get("raw-cityblock")            # (Q, k) int64 catalogue positions, or None
    cache.put("raw-cityblock", positions)
    cache.get_value("pca229-mse"); cache.put_value("pca229-mse", 0.0123)

One safetensors file per entry, ``<cache_dir>/eval/<key>/<name>.safetensors`` (values as JSON in its
metadata), written atomically. ``cache_dir`` defaults to ``$FASHREC_CACHE`` or ``~/.cache/fashrec``;
``cache_dir=False`` keeps nothing. A damaged or unreadable entry is recomputed, never an error, and a
failed write (a read-only or full disk) is a warning. Deleting the folder is always safe.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

CACHE_FORMAT = 1  # bump when what an entry means changes


class BaselineCache:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder  # None: a cache that keeps nothing

    @classmethod
    def open(cls, cache_dir, train_images, test_images, *, split: str, query_rows, k: int, seed: int) -> "BaselineCache":
        if cache_dir is False:
            return cls(None)
        from fashrec.data.tensor_cache import default_cache_dir

        key = {
            "format": CACHE_FORMAT,
            "train": tensor_digest(train_images),
            "test": tensor_digest(test_images),
            "split": split,
            "queries": hashlib.sha256(np.ascontiguousarray(query_rows, dtype=np.int64).tobytes()).hexdigest(),
            "k": int(k),
            "seed": int(seed),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return cls(Path(cache_dir or default_cache_dir()) / "eval" / digest)

    def get(self, name: str) -> np.ndarray | None:
        """The array stored under ``name``, or None."""
        found = self._read(name)
        return None if found is None else found[0]

    def put(self, name: str, array: np.ndarray) -> None:
        self._write(name, {"value": np.ascontiguousarray(array)}, {})

    def get_value(self, name: str):
        """The JSON value stored under ``name``, or None."""
        found = self._read(name)
        return None if found is None else found[1].get("value")

    def put_value(self, name: str, value) -> None:
        self._write(name, {}, {"value": value})

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.safetensors"

    def _read(self, name: str):
        if self.folder is None or not self._path(name).is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(self._path(name)), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("json", "{}"))
                array = f.get_tensor("value") if "value" in f.keys() else None
        except Exception:  # noqa: BLE001 - a damaged entry is a miss
            return None
        return array, meta

    def _write(self, name: str, tensors: dict, meta: dict) -> None:
        if self.folder is None:
            return
        from safetensors.numpy import save_file

        from fashrec.atomic import atomic_path

        try:
            with atomic_path(self._path(name)) as tmp:
                save_file(tensors, str(tmp), metadata={"json": json.dumps(meta)})
        except OSError as exc:  # a read-only or full disk must not lose the evaluation
            warnings.warn(f"evaluate: could not keep the baseline {name!r} in {self.folder}: {exc}", stacklevel=3)


def tensor_digest(x) -> str:
    """sha256 of a tensor's or array's dtype, shape and bytes."""
    array = x.detach().cpu().contiguous().numpy() if hasattr(x, "detach") else np.ascontiguousarray(x)
    h = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    h.update(memoryview(array.reshape(-1)).cast("B"))
    return h.hexdigest()


class Baselines:
    """PCA (the model's embedding size, fitted on ``flat_fit`` on first use) and the mean fit image, as
    the scoreboard needs them; ``flat_fit`` / ``flat_all``: the fit and catalogue images, flattened."""

    def __init__(self, flat_fit: np.ndarray, flat_all: np.ndarray, dim: int, seed: int, progress: bool) -> None:
        self.flat_fit, self.flat_all, self.seed, self.progress = flat_fit, flat_all, seed, progress
        self.n_components = min(dim, flat_fit.shape[0], flat_fit.shape[1])
        self._pca = None

    def pca(self):
        if self._pca is None:
            from sklearn.decomposition import PCA

            from fashrec.eval.progress import phase

            what = f"fitting PCA ({self.n_components} components) on {self.flat_fit.shape[0]} images"
            with phase(what, progress=self.progress):
                self._pca = PCA(n_components=self.n_components, random_state=self.seed).fit(self.flat_fit)
        return self._pca

    def pca_vectors(self) -> np.ndarray:
        from fashrec.eval.progress import phase

        pca = self.pca()
        with phase(f"PCA of {len(self.flat_all)} images", progress=self.progress):
            return pca.transform(self.flat_all).astype(np.float32)

    def pca_mse(self, queries_x) -> float:
        """MSE per value of PCA's reconstruction of the query images."""
        flat = queries_x.reshape(len(queries_x), -1).numpy()
        pca = self.pca()
        return float(((flat.astype(np.float64) - pca.inverse_transform(pca.transform(flat))) ** 2).mean())

    def mean_image_mse(self, queries_x) -> float:
        """MSE per value of the mean fit image as the reconstruction of every query image."""
        flat = queries_x.reshape(len(queries_x), -1).numpy().astype(np.float64)
        return float(((flat - self.flat_fit.astype(np.float64).mean(axis=0)) ** 2).mean())

    def entry(self, embedding: str, metric: str) -> str:
        """The cache entry of a baseline's neighbours (PCA's depend on its size)."""
        return f"{embedding}{self.n_components if embedding == 'pca' else ''}-{metric}"

    def errors(self, queries_x, cache: BaselineCache) -> dict:
        """``pca_mse`` and ``mean_image_mse`` of the query images, from ``cache`` or computed and kept."""
        out = {}
        for name, key, compute in (("pca_mse", f"pca{self.n_components}-mse", self.pca_mse),
                                   ("mean_image_mse", "mean-image-mse", self.mean_image_mse)):
            value = cache.get_value(key)
            if value is None:
                value = compute(queries_x)
                cache.put_value(key, value)
            out[name] = value
        return out
