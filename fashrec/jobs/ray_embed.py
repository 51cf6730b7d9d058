"""``fashrec embed --engine ray``: the embedding job on a Ray cluster, with Ray Data.

    for batch in ray_embed_batches(model, sources, batches, address="10.0.0.5:6379", actors=8): ...

The listing of the photos (position, and a path or the encoded bytes) becomes a Ray Dataset
(``ray.data.from_items``); ``map_batches`` runs a pool of actors, each of which loads the model once
(from its ``config.json`` and safetensors weights sent through the object store: no pickled model)
and embeds its batches with :func:`fashrec.jobs.embed_stream.embed_sources`, the same preprocessing
and forward pass as one process. Results come back in order (``preserve_order``), as the same
``EmbeddedBatch`` objects, and the driver writes the very same shards and index files.

``address=None`` starts a private local Ray (all CPUs of this machine, no dashboard) and stops it at
the end; a Ray already initialised in this process is used as it is. Paths must be readable on every
node (a shared file system); a dataset of encoded images (a Hub or saved dataset) ships its bytes.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

_PROBE_TIMEOUT_S = 5.0


def ray_embed_batches(model, sources: Sequence, batches, *, address: str | None = None, actors: int | None = None,
                      progress: bool = True) -> Iterator:
    """``EmbeddedBatch`` objects for the positions of ``batches`` (in order), embedded by Ray actors.
    ``model``'s device picks CPU or GPU actors (one GPU each)."""
    import torch

    ray = import_ray()
    from fashrec.jobs.embed_stream import EmbeddedBatch

    positions = [p for b in batches for p in b]
    if not positions:
        return
    batch_size = max(len(b) for b in batches)
    focuses = tuple(getattr(model, "focuses", ("overall",)))
    device = next(model.parameters()).device.type
    started = connect(address)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = progress
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its progress bars say enough
        rows = []
        for p in positions:
            source = sources[p]
            encoded = isinstance(source, (bytes, bytearray))  # one type a column: "" / b"" stand for none
            rows.append({"position": p, "path": "" if encoded else os.fspath(source),
                         "bytes": bytes(source) if encoded else b""})
        available = int(ray.cluster_resources().get("GPU" if device == "cuda" else "CPU", 1))
        n_actors = max(1, min(actors or available, (len(positions) + batch_size - 1) // batch_size))
        embedded = ray.data.from_items(rows).map_batches(
            _Embedder, fn_constructor_args=(model_payload(model), device), batch_size=batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=n_actors),
            **({"num_gpus": 1} if device == "cuda" else {"num_cpus": 1}))
        for out in embedded.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ok = out["ok"].astype(bool)
            pos = [int(p) for p in out["position"]]
            yield EmbeddedBatch(pos, [p for p, good in zip(pos, ok) if good],
                                {f: torch.from_numpy(np.ascontiguousarray(out[f"vector_{f}"][ok], dtype=np.float32))
                                 for f in focuses},
                                [(p, str(e)) for p, e, good in zip(pos, out["error"], ok) if not good])
    finally:
        if started:
            ray.shutdown()


def import_ray():
    """``ray`` with Ray Data, or one MissingExtra line: ``pip install 'fashrec[ray]'``."""
    from fashrec.extras import require

    require("ray.data", "--engine ray")
    return require("ray", "--engine ray")


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: a private local Ray); True when this call started Ray.

    An address that does not answer is one ValueError naming it (Ray itself would retry for minutes)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address in (None, "local"):
        import fashrec

        package_root = str(Path(fashrec.__file__).resolve().parents[1])  # the workers import this fashrec
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"PYTHONPATH": package_root}})
        return True
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ...
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot reach the Ray cluster at {address}: {why}") from None
    return True


def model_payload(model) -> dict:
    """The model as data (config JSON, safetensors bytes, embed options): what each actor rebuilds it from."""
    from safetensors.torch import save

    from fashrec.index.persistence import embed_options

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {"config": json.dumps(model.config_dict()), "weights": save(state), "options": embed_options(model)}


def load_payload(payload: dict, device: str = "cpu"):
    """The model :func:`model_payload` describes, rebuilt through ``fashrec.from_pretrained``."""
    from fashrec.models.hub_model import from_pretrained

    with tempfile.TemporaryDirectory(prefix="fashrec-model-") as folder:
        Path(folder, "config.json").write_text(payload["config"], encoding="utf-8")
        Path(folder, "model.safetensors").write_bytes(payload["weights"])
        return from_pretrained(folder, map_location=device, **payload["options"])


class _Embedder:
    """A Ray Data actor: the model, loaded once, embeds each batch of the listing."""

    def __init__(self, payload: dict, device: str) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per actor: the actors are the parallelism
        self.model = load_payload(payload, device)
        self.focuses = tuple(getattr(self.model, "focuses", ("overall",)))

    def __call__(self, batch: dict) -> dict:
        from fashrec.jobs.embed_stream import embed_sources

        sources = [b if len(b) else str(p) for p, b in zip(batch["path"], batch["bytes"])]
        done = embed_sources(self.model, sources, batch_size=max(1, len(sources)), workers=1, threads=1,
                             prefetch=0, progress=False)
        n, dim = len(sources), int(self.model.embedding_dim)
        out = {"position": np.asarray(batch["position"], dtype=np.int64), "ok": np.zeros(n, dtype=bool),
               "error": np.array([""] * n, dtype=object)}
        out["ok"][done.kept] = True
        for position, why in done.failed:
            out["error"][position] = why
        for f in self.focuses:
            matrix = np.zeros((n, dim), dtype=np.float32)
            matrix[done.kept] = done.vectors[f].numpy()
            out[f"vector_{f}"] = matrix
        return out


def _probe(address: str) -> None:
    """A TCP connection to ``host:port`` (``ray://`` allowed) within a few seconds, or ValueError."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} must be HOST:PORT (or ray://HOST:PORT, 'auto')")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
