"""Steerable similarity: which focuses a search ranks by, with what weights, and the search over a
weighted sum of focus distances.

An index may hold several named embeddings of the same items (``{"overall": ..., "shape": ...,
"colour": ...}``). ``focus="shape"`` ranks by one of them; ``focus={"shape": 2, "colour": 1}`` ranks by
the weighted sum ``sum_f w_f * d_f`` where each ``d_f`` is the chosen metric in its own space.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from fashrec.index.catalogue import as_float32_matrix
from fashrec.index.distances import U64, FocusVectors, exact_distances, mask
from fashrec.index.engines.flat import approx_scores, blocked_search

DEFAULT_FOCUS = "overall"
# Weights are relative: beyond this a weighted distance can overflow to inf, and inf distances would tie
# with the masked (excluded / filtered-out) items, which could then be returned.
MAX_FOCUS_WEIGHT = 1e6


def check_focus_name(name, focuses: Mapping[str, object]) -> None:
    if name not in focuses:
        raise ValueError(f"unknown focus {name!r}; this index has {list(focuses)}")


def design_focus(model, focuses) -> str | None:
    """The focus of an index that answers "other colours of this design": the one its model names as its
    ``design_focus`` (data of the checkpoint's config, e.g. ``"shape"``), when the index holds it; None
    for a model taught no designs (e.g. the paper's autoencoder)."""
    name = getattr(model, "design_focus", None)
    return name if name is not None and name in focuses else None


def parse_focus(focus: str | Mapping[str, float] | None, default: str = DEFAULT_FOCUS) -> str | dict[str, float]:
    """A focus as people type it: a name (``"shape"``), weights (``"shape=2, colour=1"`` -> ``{"shape": 2.0,
    "colour": 1.0}``), or a ``{name: weight}`` dict, unchanged; empty -> ``default``. The names and weights
    are judged by the search (:func:`focus_weights`); this only reads the text."""
    if isinstance(focus, Mapping):
        return dict(focus)
    text = (focus or "").strip()
    if "=" not in text:
        return text or default
    try:
        return {name.strip(): float(weight) for name, weight in (part.split("=") for part in text.split(",")
                                                                    if part.strip())}
    except ValueError:
        raise ValueError(f"focus weights must look like 'shape=2, colour=1', got {focus!r}") from None


def focus_weights(focus, focuses: Mapping[str, object]) -> dict[str, float]:
    """``{focus name: weight > 0}`` from a focus name or a ``{name: weight >= 0}`` dict."""
    if isinstance(focus, str):
        check_focus_name(focus, focuses)
        return {focus: 1.0}
    if not isinstance(focus, Mapping) or not focus:
        raise ValueError(f"focus must be a focus name or a non-empty {{name: weight}} dict, got {focus!r}")
    weights = {}
    for name, w in focus.items():
        check_focus_name(name, focuses)
        w = float(w)
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"focus weight for {name!r} must be finite and >= 0, got {w}")
        if w > MAX_FOCUS_WEIGHT:
            raise ValueError(f"focus weight for {name!r} is {w:g}: weights are relative, keep each at most "
                             f"{MAX_FOCUS_WEIGHT:g}")
        if w > 0:
            weights[name] = w
    if not weights:
        raise ValueError(f"focus weights {dict(focus)} are all zero: give at least one positive weight")
    return weights


def focus_queries(queries, weights: Mapping[str, float], focuses: Mapping[str, FocusVectors]) -> dict[str, np.ndarray]:
    """``{focus: float32 (Q, D_f)}`` for every weighted focus, from a matrix (one focus) or a dict."""
    if isinstance(queries, Mapping):
        for name in queries:
            check_focus_name(name, focuses)
        missing = [name for name in weights if name not in queries]
        if missing:
            raise ValueError(f"queries has no matrix for focus {missing}; it has {list(queries)}")
        q = {name: as_float32_matrix(queries[name], what=f"queries[{name!r}]", allow_vector=True) for name in weights}
    else:
        if len(weights) > 1:
            raise ValueError(
                f"focus {dict(weights)} weighs several focuses: pass queries as a dict {{focus: matrix}}"
            )
        (name,) = weights
        q = {name: as_float32_matrix(queries, what="queries", allow_vector=True)}
    n_queries = None
    for name, matrix in q.items():
        want = focuses[name].x.shape[1]
        if matrix.shape[1] != want:
            raise ValueError(f"queries for focus {name!r} have dimension {matrix.shape[1]}, the index has {want}")
        if n_queries is None:
            n_queries = matrix.shape[0]
        elif matrix.shape[0] != n_queries:
            raise ValueError(f"query matrices have different row counts: { {n: m.shape[0] for n, m in q.items()} }")
    if n_queries == 0:
        raise ValueError("queries has 0 rows")
    return q


def weighted_search(focuses: Mapping[str, FocusVectors], q, k, metric, weights, allowed, excluded) -> list:
    """Exact top-k by ``sum_f w_f * d_f``: each focus's float32 pass bounds its distance from below and
    above; the weighted sums of the bounds bound the total; items whose lower bound is at most the k-th
    smallest upper bound are re-ranked in float64."""
    n = len(next(iter(focuses.values())).x)

    def candidates(start, stop):
        lo = hi = None
        for name, w in weights.items():
            approx, abs_tol, rel_tol = approx_scores(focuses[name], q[name][start:stop], metric)
            err = abs_tol[:, None] + rel_tol * np.abs(approx)
            f_lo, f_hi = approx - err, approx + err
            if metric == "euclidean":  # bounds on the squared distance -> on the distance
                f_lo, f_hi = np.sqrt(np.maximum(f_lo, 0.0)), np.sqrt(np.maximum(f_hi, 0.0))
            lo = f_lo * w if lo is None else lo + f_lo * w
            hi = f_hi * w if hi is None else hi + f_hi * w
        mask(lo, allowed, excluded, start, stop)
        mask(hi, allowed, excluded, start, stop)
        if k >= lo.shape[1]:
            return np.full(stop - start, np.inf), lo
        upper_k = np.partition(hi, k - 1, axis=1)[:, k - 1]
        return upper_k + 4 * U64 * np.abs(upper_k) + 1e-300, lo

    def rank(r, cand):
        d = None
        for name, w in weights.items():
            vectors = focuses[name]
            part = exact_distances(vectors.x[cand], q[name][r], metric, vectors.norm[cand])
            d = part * w if d is None else d + part * w
        order = np.argsort(d, kind="stable")[:k]  # cand is ascending: ties keep catalogue order
        return cand[order], d[order]

    return blocked_search(n, next(iter(q.values())).shape[0], candidates, rank)
