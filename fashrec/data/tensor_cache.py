"""Decoded + preprocessed image tensors of a dataset, cached on disk so that only the first run pays.

    dd = fashrec.load_hm("/path/to/hm")
    x_train = fashrec.dataset_tensor(dd["train"])    # (4000, 3, 64, 64) float32 in [0, 1], row order
    x_test = fashrec.dataset_tensor(dd["test"])

Every image goes through ``fashrec.preprocess`` (the one preprocessing function); this module only adds
parallel decoding and a cache: one safetensors file per (image set, ``PreprocessConfig``),
``<cache_dir>/tensors/<config hash>/<image-set hash>.safetensors``.

- An image is identified by where it comes from: ``path + size + mtime`` for a file, the SHA-1 of its
  bytes for an embedded image, so an edited or replaced photo is decoded again.
- A set is the sorted list of those identities (kept in the file's metadata), so the rows' order does
  not matter: the file is in sorted order and rows are indexed into it.
- A set seen for the first time takes whatever images other files of the same config already hold
  (the whole source, then its train split: nothing is decoded again) and decodes only the rest, so no
  image is decoded twice per config.
- Tensors are stored as uint8 when that is exact (``u8 / 255`` gives back the very same float32, true
  for every ``pad_value`` that is a multiple of 1/255), else as float32. Writes are atomic.

``cache_dir`` defaults to ``$FASHREC_CACHE`` or ``~/.cache/fashrec``; ``cache_dir=False`` turns the
cache off. Deleting it is always safe; a damaged cache file is ignored and rewritten.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from fashrec.data.preprocess import ImageError, PreprocessConfig, preprocess

CACHE_FORMAT = 1  # bump when the file layout changes


def default_cache_dir() -> Path:
    return Path(os.environ.get("FASHREC_CACHE") or Path.home() / ".cache" / "fashrec")


def dataset_tensor(
    ds,
    config: "PreprocessConfig | dict | None" = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> torch.Tensor:
    """The preprocessed images of ``ds`` (a ``datasets.Dataset`` with an ``image`` column) as one tensor.

    Returns ``(len(ds), 3, S, S)`` float32 in [0, 1], row ``i`` = ``preprocess(ds[i]["image"], config)``.
    ``cache_dir=False`` turns the cache off. ``workers`` threads decode in parallel (PIL releases the GIL
    while decoding and resizing; default: the number of CPUs, at most 8). Images that cannot be decoded
    raise one ``ImageError`` naming all of them (``load_hm`` already skips the ones a cheap check catches).
    """
    import datasets

    cfg = PreprocessConfig.from_dict(config)
    if "image" not in ds.column_names:
        raise ValueError(f"dataset_tensor: the dataset has no 'image' column (columns: {ds.column_names})")
    wanted = ["image"] + (["article_id"] if "article_id" in ds.column_names else [])
    table = ds.select_columns(wanted).cast_column("image", datasets.Image(decode=False)).with_format("arrow")[:]
    cells = table.column("image").to_pylist()  # row order, indices mapping applied; no decoding
    names = table.column("article_id").to_pylist() if "article_id" in wanted else [str(i) for i in range(len(ds))]
    keys = [_identity(c) for c in cells]
    unique = sorted(set(keys))
    position = {k: i for i, k in enumerate(unique)}
    rows = torch.tensor([position[k] for k in keys], dtype=torch.long)

    first = {}
    for k, c, name in zip(keys, cells, names):
        first.setdefault(k, (c, name))
    if cache_dir is False:
        return _decode_all([first[k] for k in unique], cfg, progress=progress, workers=workers)[rows]

    config_id = hashlib.sha256(json.dumps([CACHE_FORMAT, cfg.to_dict()], sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir or default_cache_dir()) / "tensors" / config_id
    file = folder / (hashlib.sha256("\n".join(unique).encode()).hexdigest()[:40] + ".safetensors")
    stored = _read(file, unique, cfg)
    if stored is not None:
        return stored[rows]

    # Reuse what other cached sets of this config hold (e.g. the whole source when a split is asked
    # for), decode only the rest, and keep the result as this set's own file.
    stored = torch.empty((len(unique), 3, cfg.image_size, cfg.image_size), dtype=torch.float32)
    missing = dict(position)
    for other in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        if not missing:
            break
        found = _read_some(other, missing, cfg)
        for k, t in found.items():
            stored[missing.pop(k)] = t
    if missing:
        todo = sorted(missing)
        stored[[missing[k] for k in todo]] = _decode_all([first[k] for k in todo], cfg, progress=progress, workers=workers)
    _write(file, stored, unique, cfg)
    return stored[rows]


def _identity(cell: dict) -> str:
    if cell.get("bytes") is not None:
        return "sha1:" + hashlib.sha1(cell["bytes"]).hexdigest()
    path = os.path.abspath(cell["path"])
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"dataset_tensor: image file {path} does not exist") from None
    return f"file:{path}:{st.st_size}:{st.st_mtime_ns}"


def _decode_all(items: list, cfg: PreprocessConfig, *, progress: bool, workers: int | None) -> torch.Tensor:
    from tqdm.auto import tqdm

    workers = workers or min(8, os.cpu_count() or 1)

    def one(item):
        cell, _name = item
        source = cell["bytes"] if cell.get("bytes") is not None else cell["path"]
        try:
            return preprocess(source, cfg)
        except (ImageError, OSError) as exc:
            return exc

    out = torch.empty((len(items), 3, cfg.image_size, cfg.image_size), dtype=torch.float32)
    failed = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, items)
        for i, result in enumerate(tqdm(results, total=len(items), disable=not progress, desc="decoding images", unit="img")):
            if isinstance(result, Exception):
                cell, name = items[i]
                failed.append(f"{name} ({cell.get('path') or 'embedded bytes'}): {result}")
            else:
                out[i] = result
    if failed:
        head = "\n  ".join(failed[:20]) + ("\n  ..." if len(failed) > 20 else "")
        raise ImageError(f"dataset_tensor: {len(failed)} image(s) cannot be decoded:\n  {head}")
    return out


def _open(file: Path):
    from safetensors import safe_open

    return safe_open(str(file), framework="pt")


def _as_float(name: str, t: torch.Tensor) -> torch.Tensor:
    return t.float().div_(255.0) if name == "u8" else t.float()


def _read(file: Path, unique: list[str], cfg: PreprocessConfig) -> torch.Tensor | None:
    """This exact set's tensors, or None (a missing or damaged file is a miss, never an error)."""
    if not file.exists():
        return None
    try:
        with _open(file) as f:
            if json.loads(f.metadata()["images"]) != unique:
                return None
            (name,) = list(f.keys())
            t = f.get_tensor(name)
    except Exception:  # noqa: BLE001
        return None
    if tuple(t.shape) != (len(unique), 3, cfg.image_size, cfg.image_size):
        return None
    return _as_float(name, t)


def _read_some(file: Path, wanted: dict, cfg: PreprocessConfig) -> dict[str, torch.Tensor]:
    """The images of ``wanted`` that another cache file of the same config holds."""
    try:
        with _open(file) as f:
            keys = json.loads(f.metadata()["images"])
            hits = [(i, k) for i, k in enumerate(keys) if k in wanted]
            if not hits:
                return {}
            (name,) = list(f.keys())
            sl = f.get_slice(name)
            if tuple(sl.get_shape()) != (len(keys), 3, cfg.image_size, cfg.image_size):
                return {}
            t = _as_float(name, f.get_tensor(name)[[i for i, _ in hits]])
    except Exception:  # noqa: BLE001
        return {}
    return {k: t[j] for j, (_, k) in enumerate(hits)}


def _write(file: Path, x: torch.Tensor, unique: list[str], cfg: PreprocessConfig) -> None:
    from fashrec.atomic import save_safetensors_atomic

    u8 = (x * 255.0).round_().to(torch.uint8)
    exact = torch.equal(u8.float().div_(255.0), x)
    meta = {
        "format": str(CACHE_FORMAT),
        "preprocess": json.dumps(cfg.to_dict(), sort_keys=True),
        "images": json.dumps(unique),
    }
    try:
        save_safetensors_atomic({"u8": u8} if exact else {"f32": x}, file, metadata=meta)
    except OSError as exc:  # a read-only or full disk must not lose the work: warn and go on
        import warnings

        warnings.warn(f"dataset_tensor: could not write the cache file {file}: {exc}", stacklevel=3)
