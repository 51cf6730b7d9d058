"""Embedding a stream of photos: threads decode the next batches while the model runs on this one.

    for batch in embed_batches(model, sources, [range(0, 256), range(256, 512)]):
        batch.kept, batch.vectors["overall"], batch.failed

Every photo goes through ``fashrec.preprocess`` with the model's own config, on a pool of threads (PIL
decodes and resizes with the GIL released, as does the forward pass), and up to ``prefetch`` batches
are decoded ahead, so the model never waits for JPEGs while there is work queued. Every focus of a
batch comes from one pass of ``fashrec.models.inference.Embedder``: BatchNorm folded into the
convolutions, the network in channels-last layout or on ONNX Runtime (``backend``), the same vectors as
``model.embed(x, focus=f)`` to float32 rounding.

Threads. The model gets half the CPUs (``threads``, at least one), not all of them: a two-thread
operator waits for its slower thread, and on a busy core that wait is a scheduler tick (on this 2-core
machine under load, a 1M-element subtraction took 8 ms on two threads and 0.13 ms on one). The
decoders get one thread per CPU (``workers``): they sleep while the queue is full, and when decoding is
the slower stage they take the CPU time the model leaves.

A photo that cannot be decoded is not an error here: it is left out of its batch and reported in
``failed`` with the reason, so one broken JPEG cannot abort a catalogue; the caller decides what to
do (``fashrec embed`` records them in the index, ``--strict`` refuses them).

``sources`` is anything indexable whose items ``preprocess`` reads (paths, bytes, PIL images, arrays).
Items are fetched from it on the calling thread only.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch

from fashrec.data.preprocess import ImageError, PreprocessConfig, preprocess

_CHUNK = 32  # photos per decoding task: one batch keeps every thread busy


@dataclass
class DecodedBatch:
    positions: list[int]  # the batch as asked for (positions into sources)
    kept: list[int]  # the positions that decoded, in order: the rows of x
    x: torch.Tensor  # (len(kept), 3, S, S) float32 in [0, 1]
    failed: list[tuple[int, str]]  # (position, why) of the photos that could not be decoded


@dataclass
class EmbeddedBatch:
    positions: list[int]
    kept: list[int]
    vectors: dict[str, torch.Tensor]  # focus -> (len(kept), D) float32 on the CPU
    failed: list[tuple[int, str]]


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The model's intra-op threads while a job embeds: half the CPUs, at least one."""
    return max(1, available_cpus() // 2)


def default_workers() -> int:
    """Decoding threads: one per CPU this process may run on."""
    return available_cpus()


def decode_batches(sources: Sequence, batches: Iterable[Sequence[int]], config=None, *, workers: int | None = None,
                   prefetch: int = 2) -> Iterator[DecodedBatch]:
    """Preprocess the photos of each batch (lists of positions into ``sources``), in order, on
    ``workers`` threads (default: one per CPU), ``prefetch`` batches ahead of the one being returned."""
    cfg = PreprocessConfig.from_dict(config)
    if prefetch < 0:
        raise ValueError(f"prefetch must be >= 0, got {prefetch}")
    todo = iter([list(b) for b in batches])
    pool = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="fashrec-decode")

    def submit(positions: list[int]):
        chunks = [positions[i:i + _CHUNK] for i in range(0, len(positions), _CHUNK)]
        return positions, [pool.submit(_decode_chunk, chunk, [sources[p] for p in chunk], cfg) for chunk in chunks]

    try:
        pending = deque(submit(b) for _, b in zip(range(prefetch + 1), todo))  # range first: no batch lost
        while pending:
            positions, futures = pending.popleft()
            following = next(todo, None)
            if following is not None:
                pending.append(submit(following))
            kept, tensors, failed = [], [], []
            for future in futures:
                chunk_kept, chunk_tensors, chunk_failed = future.result()
                kept += chunk_kept
                tensors += chunk_tensors
                failed += chunk_failed
            x = torch.stack(tensors) if tensors else torch.empty((0, 3, cfg.image_size, cfg.image_size))
            yield DecodedBatch(positions, kept, x, failed)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def embed_batches(model, sources: Sequence, batches: Iterable[Sequence[int]], *, workers: int | None = None,
                  threads: int | None = None, backend: str = "torch", prefetch: int = 2, progress: bool = True,
                  desc: str = "embed") -> Iterator[EmbeddedBatch]:
    """:func:`decode_batches` with the model's preprocessing on ``workers`` threads, then every focus
    of ``model`` embedded with ``threads`` intra-op threads on ``backend`` (``"torch"`` or ``"onnx"``:
    ``fashrec.models.inference``), on the device its parameters are on (a CUDA model gets its batches
    copied from pinned memory)."""
    from tqdm.auto import tqdm

    from fashrec.models.inference import Embedder

    batches = [list(b) for b in batches]
    device = next(model.parameters()).device
    threads = threads or default_threads()
    embed = Embedder(model, backend=backend, threads=threads)
    focuses = embed.focuses
    bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit="img", disable=not progress)
    try:
        for batch in decode_batches(sources, batches, model.preprocess_config, workers=workers, prefetch=prefetch):
            vectors = {f: torch.empty((0, int(model.embedding_dim))) for f in focuses}
            if batch.kept:
                x = batch.x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch.x
                vectors = {f: v.cpu() for f, v in embed(x).items()}
            bar.update(len(batch.positions))
            yield EmbeddedBatch(batch.positions, batch.kept, vectors, batch.failed)
    finally:
        bar.close()


def embed_sources(model, sources: Sequence, *, batch_size: int = 256, **options) -> EmbeddedBatch:
    """Every photo of ``sources`` embedded (:func:`embed_batches`), as one batch over all positions."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(sources)
    parts = list(embed_batches(model, sources, [range(i, min(n, i + batch_size)) for i in range(0, n, batch_size)],
                               **options))
    focuses = tuple(getattr(model, "focuses", ("overall",)))
    empty = torch.empty((0, int(model.embedding_dim)))
    vectors = {f: torch.cat([empty] + [p.vectors[f] for p in parts]) for f in focuses}
    return EmbeddedBatch(list(range(n)), [k for p in parts for k in p.kept], vectors,
                         [f for p in parts for f in p.failed])


def _decode_chunk(positions: list[int], items: list, cfg: PreprocessConfig):
    kept, tensors, failed = [], [], []
    for position, item in zip(positions, items):
        try:
            tensors.append(preprocess(item, cfg))
            kept.append(position)
        except (ImageError, OSError) as exc:  # OSError: a missing or unreadable file
            failed.append((position, str(exc)))
    return kept, tensors, failed
