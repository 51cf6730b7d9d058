"""The resumable part of an embedding job: the catalogue cut into shards, each written once it is done.

    store = ShardStore(work / "shards", ids, shard_size=1024, dims={"overall": 229})
    store.collect(embedded_batches, on_shard=print)      # rows in position order, any batch boundaries
    kept, vectors, failed = store.load_all()

A shard ``00000.safetensors`` holds one float32 tensor per focus (the rows of the photos that decoded)
and, in its metadata, those photos' ids and the ``[id, reason]`` of the ones that did not. It is
written atomically, so a killed job loses at most the shards in progress; :meth:`ShardStore.done`
accepts a shard only if it reads back with the expected ids, focuses and shapes.
"""
from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Callable, Iterable

import torch


class ShardStore:
    def __init__(self, folder: str | Path, ids: list[str], *, shard_size: int, dims: dict[str, int]) -> None:
        self.folder = Path(folder)
        self.ids = ids
        self.shard_size = int(shard_size)
        self.dims = dict(dims)
        self.n_shards = (len(ids) + self.shard_size - 1) // self.shard_size

    def bounds(self, s: int) -> tuple[int, int]:
        return s * self.shard_size, min(len(self.ids), (s + 1) * self.shard_size)

    def path(self, s: int) -> Path:
        return self.folder / f"{s:05d}.safetensors"

    def done(self, s: int) -> bool:
        """Shard ``s`` is on disk and reads back with the expected ids, focuses and shapes."""
        path = self.path(s)
        if not path.is_file():
            return False
        from safetensors import SafetensorError, safe_open

        lo, hi = self.bounds(s)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                kept = json.loads(meta.get("ids", "null"))
                failed = {i for i, _ in json.loads(meta.get("skipped", "[]"))}
                if kept != [i for i in self.ids[lo:hi] if i not in failed] or not failed <= set(self.ids[lo:hi]):
                    return False
                if set(f.keys()) != set(self.dims):
                    return False
                return all(tuple(f.get_slice(name).get_shape()) == (len(kept), dim) for name, dim in self.dims.items())
        except (SafetensorError, OSError, ValueError, TypeError):
            return False

    def todo(self) -> list[int]:
        return [s for s in range(self.n_shards) if not self.done(s)]

    def collect(self, batches: Iterable, *, on_shard: Callable[[int], object] | None = None,
                check: Callable[[list], object] | None = None) -> None:
        """Write the shards of the embedded batches (``EmbeddedBatch``: positions in increasing order,
        covering whole shards of :meth:`todo`); ``check(failed)`` may raise before anything is written."""
        open_shards: dict[int, dict] = {}
        try:
            for batch in batches:
                if check is not None and batch.failed:
                    check(batch.failed)
                for s in sorted({p // self.shard_size for p in batch.positions}):
                    state = open_shards.setdefault(s, {"kept": [], "rows": {f: [] for f in self.dims},
                                                       "failed": [], "seen": 0})
                    lo, hi = self.bounds(s)
                    # positions increase, so this shard's rows are one slice of the batch (a view, no copy)
                    first, last = bisect.bisect_left(batch.kept, lo), bisect.bisect_left(batch.kept, hi)
                    state["kept"] += batch.kept[first:last]
                    for f in self.dims:
                        state["rows"][f].append(batch.vectors[f][first:last])
                    state["failed"] += [(p, why) for p, why in batch.failed if lo <= p < hi]
                    state["seen"] += bisect.bisect_left(batch.positions, hi) - bisect.bisect_left(batch.positions, lo)
                    if state["seen"] == hi - lo:
                        self._write(s, open_shards.pop(s))
                        if on_shard is not None:
                            on_shard(s)
        finally:  # stop the producer now (its decoding threads, its progress bar), not when collected
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def load_all(self) -> tuple[list[int], dict[str, torch.Tensor], list[tuple[int, str]]]:
        """Every shard read back: the positions that decoded, their vectors per focus, and the failures."""
        from safetensors import safe_open

        position = {item: i for i, item in enumerate(self.ids)}
        kept, failed, parts = [], [], {f: [torch.empty((0, d))] for f, d in self.dims.items()}
        for s in range(self.n_shards):
            with safe_open(str(self.path(s)), framework="pt") as f:
                meta = f.metadata()
                kept += [position[i] for i in json.loads(meta["ids"])]
                failed += [(position[i], why) for i, why in json.loads(meta.get("skipped", "[]"))]
                for name in self.dims:
                    parts[name].append(f.get_tensor(name))
        return kept, {f: torch.cat(v) for f, v in parts.items()}, failed

    def _write(self, s: int, state: dict) -> None:
        from fashrec.atomic import save_safetensors_atomic

        tensors = {f: torch.cat([torch.empty((0, d))] + state["rows"][f]) for f, d in self.dims.items()}
        metadata = {"ids": json.dumps([self.ids[p] for p in state["kept"]]),
                    "skipped": json.dumps([[self.ids[p], why] for p, why in state["failed"]])}
        save_safetensors_atomic(tensors, self.path(s), metadata=metadata)
