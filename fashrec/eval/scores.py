"""One retrieval row of the scoreboard: how a run of neighbours scores against one relevance.

A relevance is a label column (a neighbour is relevant when it shares the query's
``product_type_name``, ``colour_group_name`` or ``graphical_appearance_name``) or ``"design"``: the
catalogue items with the query's ``product_code`` — the same garment in another colourway — other than
the query itself. Labels are object arrays over the whole catalogue; a missing label (``MISSING``) is
never relevant, and its queries are left out.

For ``design`` a query counts only when the catalogue holds another article of its design (most
products come in one colourway), and the row adds ``design_hit_at_k`` (the share of those queries with
at least one such item in the top k) and ``n_scored`` (how many queries were scored).
"""
from __future__ import annotations

import numpy as np

DESIGN = "design"
DESIGN_COLUMN = "product_code"
MISSING = "\x00<missing label>"  # never equal to a real label, so a missing label is never "relevant"


def scored_queries(labels: np.ndarray, query_rows: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mask over query_rows, R per scored query)``: the queries this relevance can score.

    R = relevant catalogue items other than the query. A query without a label is left out; for
    ``design``, so is one whose design has no other article in the catalogue (R = 0).
    """
    from fashrec.eval.retrieval_metrics import count_relevant

    query_labels = labels[query_rows]
    has = query_labels != MISSING
    r = np.zeros(len(query_rows), dtype=np.int64)
    if has.any():
        r[has] = count_relevant(query_labels[has], labels, queries_in_catalogue=True)
    if column == DESIGN:
        has &= r > 0
    return has, r[has]


def label_scores(labels: np.ndarray, query_rows: np.ndarray, positions: np.ndarray, k: int, column: str,
                 subset: np.ndarray | None = None) -> dict:
    """P@k and mAP@k (and for ``design`` the hit rate and the count) of ``(Q, k)`` neighbour positions.

    ``subset`` (a bool mask over ``query_rows``) restricts the average to some queries, e.g. those whose
    design the model never saw in training.
    """
    from fashrec.eval.retrieval_metrics import average_precision_at_k, hit_rate_at_k, precision_at_k

    has, r = scored_queries(labels, query_rows, column)
    if subset is not None:
        keep = subset[has]
        has, r = has & subset, r[keep]
    out = _empty(column)
    if has.any():
        q = labels[query_rows[has]]
        neighbours = labels[positions[has]]
        out["precision_at_k"] = precision_at_k(q, neighbours, k).mean
        out["map_at_k"] = average_precision_at_k(q, neighbours, k, n_relevant=r).mean
        if column == DESIGN:
            out["design_hit_at_k"] = hit_rate_at_k(q, neighbours, k).mean
    if column == DESIGN:
        out["n_scored"] = int(has.sum())
    return out


def random_scores(labels: np.ndarray, query_rows: np.ndarray, k: int, column: str) -> dict:
    """Exact expected P@k and mAP@k (and hit rate) of k neighbours drawn uniformly without replacement.

    With M candidates per query (the catalogue minus the query) of which R are relevant, each rank is
    relevant with probability p = R/M and two distinct ranks both with q = R(R-1) / (M(M-1)), so
    E[P@k] = p and E[AP@k] = (1/min(k,R)) * sum_{i<=k} (1/i) * (p + (i-1) q); a hit is missed only when
    all k draws miss: E[Hit@k] = 1 - prod_{i<k} (M-R-i) / (M-i).
    """
    has, r = scored_queries(labels, query_rows, column)
    out = _empty(column)
    if column == DESIGN:
        out["n_scored"] = int(has.sum())
    if not has.any():
        return out
    r = r.astype(np.float64)
    m = float(len(labels) - 1)
    p = r / m
    q = r * (r - 1) / (m * (m - 1)) if m > 1 else np.zeros_like(r)
    i = np.arange(1, k + 1, dtype=np.float64)
    summed = (p[:, None] + (i[None, :] - 1) * q[:, None]) / i[None, :]
    denominator = np.minimum(k, r)
    ap = np.divide(summed.sum(axis=1), denominator, out=np.zeros_like(r), where=denominator > 0)
    out["precision_at_k"], out["map_at_k"] = float(p.mean()), float(ap.mean())
    if column == DESIGN:
        draws = np.arange(min(k, int(m)), dtype=np.float64)
        miss = np.prod(np.clip(m - r[:, None] - draws[None, :], 0, None) / (m - draws[None, :]), axis=1)
        out["design_hit_at_k"] = float((1.0 - miss).mean())
    return out


def _empty(column: str) -> dict:
    out = {"precision_at_k": float("nan"), "map_at_k": float("nan")}
    if column == DESIGN:
        out["design_hit_at_k"] = float("nan")
    return out
