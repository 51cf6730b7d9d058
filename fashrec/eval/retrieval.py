"""From a model to retrieval scores: the one path that ``fashrec evaluate`` and training's validation share.

    vectors = embed_focuses(model, images, model.focuses)          # {focus: (N, D)} as `fashrec embed` makes them
    rows = score_embedding(vectors["colour"], catalogue_ids=ids, catalogue_labels=labels, query_rows=queries, k=10)

- ``embed_focuses``: every focus of a batch of preprocessed images (uint8 or float in [0, 1]), with
  BatchNorm folded (``fashrec.models.inference``), in one pass over the batches.
- ``neighbour_positions``: each query's k nearest catalogue items by ``SimilarityIndex`` (exact, the query
  itself excluded), the search ``fashrec recommend`` runs, so scores and recommendations agree.
- ``retrieval_rows``: the scoreboard rows (``fashrec.eval.scores``) of those neighbours, one per relevance.

A second implementation of any of these (a validation loop that counts the query as its own design hit,
say) would pass every test of its own; there is none: validation calls these.
"""
from __future__ import annotations

import sys
from typing import Mapping, Sequence

import numpy as np

from fashrec.eval.scores import DESIGN, MISSING, label_scores

QUERY_CHUNK = 256  # queries per search call: bounds memory and drives the progress bar


def labels_array(values) -> np.ndarray:
    """Catalogue labels as the scores expect them: strings, ``MISSING`` for a missing label."""
    return np.array([MISSING if v is None else str(v) for v in values], dtype=object)


def embed_focuses(model, x, focuses: Sequence[str], *, batch_size: int = 256,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """Every focus of the images ``x`` ``(N, 3, S, S)``, float32 ``(N, D)`` each: the vectors ``fashrec embed``
    makes (BatchNorm folded into the convolutions; the model itself is left as it was)."""
    import torch
    from tqdm.auto import tqdm

    from fashrec.models.inference import for_inference

    fast = for_inference(model) if isinstance(model, torch.nn.Module) else model
    if hasattr(fast, "eval"):
        fast.eval()
    device = model_device(model)
    out: dict[str, list] = {f: [] for f in focuses}
    with torch.no_grad():
        for start in tqdm(range(0, len(x), batch_size), desc="embed", unit="batch", disable=not progress,
                          file=sys.stderr):
            xb = torch.as_tensor(x[start:start + batch_size])
            xb = (xb.float().div(255.0) if xb.dtype == torch.uint8 else xb.float()).to(device)
            for f, v in _batch_focuses(fast, xb, focuses).items():
                out[f].append(v.float().cpu())
    return {f: torch.cat(v).numpy().astype(np.float32) for f, v in out.items()}


def _batch_focuses(model, xb, focuses: Sequence[str]) -> dict:
    """The focuses of one batch: from one pass of the network (``embed_focuses``, what ``fashrec embed``
    runs) where the model has it, else (a focus it does not know, an object with ``embed`` only) one
    ``embed`` call per focus, which names an unknown focus."""
    if hasattr(model, "embed_focuses") and set(focuses) <= set(getattr(model, "focuses", ())):
        every = model.embed_focuses(xb)
        return {f: every[f] for f in focuses}
    return {f: model.embed(xb, focus=f) for f in focuses}


def neighbour_positions(index, matrix: np.ndarray, query_rows: np.ndarray, k: int, metric: str,
                        progress: bool = False, desc: str = "search") -> np.ndarray:
    """``(Q, k)`` catalogue positions of each query's neighbours (the query excluded), by SimilarityIndex."""
    from tqdm.auto import tqdm

    ids = index.ids
    position = {item: i for i, item in enumerate(ids)}
    out = np.empty((len(query_rows), k), dtype=np.int64)
    for start in tqdm(range(0, len(query_rows), QUERY_CHUNK), desc=desc, unit="chunk", disable=not progress,
                      file=sys.stderr):
        rows = query_rows[start:start + QUERY_CHUNK]
        found, _ = index.search(matrix[rows], k=k, metric=metric, exclude=[[ids[r]] for r in rows])
        out[start:start + len(rows)] = [[position[i] for i in row] for row in found]
    return out


def retrieval_rows(head: Mapping, catalogue_labels: Mapping[str, np.ndarray], query_rows: np.ndarray,
                   positions: np.ndarray, k: int, unseen: np.ndarray | None = None) -> list[dict]:
    """One row per relevance (``head`` + its scores), and with ``unseen`` (a mask over the queries) the
    design row again over those queries only (``"subset": "unseen"``)."""
    rows = [{**head, "label": column, **label_scores(values, query_rows, positions, k, column)}
            for column, values in catalogue_labels.items()]
    if unseen is not None and DESIGN in catalogue_labels:
        rows.append({**head, "label": DESIGN, "subset": "unseen",
                     **label_scores(catalogue_labels[DESIGN], query_rows, positions, k, DESIGN, unseen)})
    return rows


def score_embedding(matrix: np.ndarray, *, catalogue_ids: Sequence[str], catalogue_labels: Mapping[str, np.ndarray],
                    query_rows: np.ndarray, k: int, metric: str = "cosine", head: Mapping | None = None) -> list[dict]:
    """:func:`neighbour_positions` then :func:`retrieval_rows` for one catalogue matrix ``(N, D)``."""
    from fashrec.index import SimilarityIndex

    index = SimilarityIndex(matrix, [str(i) for i in catalogue_ids])
    positions = neighbour_positions(index, matrix, np.asarray(query_rows), k, metric)
    return retrieval_rows(dict(head or {"metric": metric}), catalogue_labels, np.asarray(query_rows), positions, k)


def headline(row: Mapping) -> float:
    """The figure a row is judged by: design hit@k for the design relevance, precision@k otherwise."""
    return float(row["design_hit_at_k"] if row["label"] == DESIGN else row["precision_at_k"])


def model_device(model):
    import torch

    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")
