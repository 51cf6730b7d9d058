"""Exact cityblock top-k for a few queries through a cascade of proven lower bounds.

Two kinds of lower bound on ``||x - q||_1``, both proven, never estimates:

- block sums: for any partition of the D dimensions into blocks, ``sum_b |S_b(x) - S_b(q)|``
  (S_b = the sum over block b) is at most ``||x - q||_1`` (triangle inequality). Contiguous
  blocks of 32, 8 and 4 dimensions (levels); for conv latents flattened as C x H x W a block is
  a spatial neighbourhood within a channel, whose values move together, so the bound is tight.
- pivots: ``||x - q||_1 >= | ||q - p||_1 - ||x - p||_1 |`` for a stored item p. 128 pivots
  (k-means++ seeding, far apart) with their distances to every item are kept; 4 near the
  query give the bound (see ``_near_pivots``). Tight on clustered data, where block sums are not.

The pivots bound every item (4 values per item instead of D; without pivots the coarsest level
does); the float32 distances of the items with the smallest bounds give t, an upper bound on
the k-th distance; only items whose bound is <= t stay, the block-sum levels prune those
further (coarse to fine, on the survivors only), and the float32 distances of the survivors, then
float64 for the few that can still be in the top k, give the result. A query whose bounds prune too
little is declined (the flat scan answers it).
"""
from __future__ import annotations

import numpy as np

from fashrec.index.distances import U32, U64, l1_float32, l1_rel_tol, rank_exact
from fashrec.index.engines.base import Engine

_L1_BLOCK_SIZES = (32, 8, 4)
_L1_MIN_BLOCKS = 8
_L1_PIVOTS = 128
_L1_NEAR_PIVOTS = 4
_L1_FIRST_FACTOR, _L1_FIRST_MIN = 4, 32  # float32 distances of max(4k, 32) best-bounded items give t
_L1_THREADED_ELEMENTS = 1 << 24  # catalogues of more values than this (16.7M) search with all threads


class CityblockPivots(Engine):
    """The block-sum and pivot cascade; see the module docstring."""

    metrics = ("cityblock",)
    min_items, min_dim, max_queries = 2048, 128, 8

    def __init__(self, vectors) -> None:
        super().__init__(vectors)
        self._structures = None
        self._pivot_sums = None  # the pivots' coarsest block sums (choosing near ones)

    def prepare(self, metric: str) -> None:
        self.structures()

    def search(self, q, k, metric, weight, allowed, excluded):
        import torch

        levels, l1norm, pivots, table = self.structures()
        x = self.vectors.x
        n, d = x.shape
        rel = l1_rel_tol(d)
        out = []
        # Small catalogues: one thread avoids waiting on a busy second core; large ones have passes over
        # all items (tens of MB) that the caller's threads share well.
        with _torch_threads(1 if n * d < _L1_THREADED_ELEMENTS else torch.get_num_threads()):
            for r in range(q.shape[0]):
                query = q[r]
                qt = torch.from_numpy(query[None])
                q_l1 = float(np.abs(query.astype(np.float64)).sum())
                if pivots is not None:
                    near, dq = self._near_pivots(pivots, levels[0][0], query, qt)
                    tab, dqn = table[near], dq[:, None]
                    # float32 arithmetic: its rounding is covered by the 4 * 2**-24 added to the slack
                    gap = tab - dqn
                    np.abs(gap, out=gap)
                    slack = tab + dqn
                    slack *= 3.0 * rel + 4.0 * U32
                    gap -= slack
                    lb = gap.max(axis=0).astype(np.float64)
                    first_level = -1  # the pivots prune first; the block sums bound only their survivors
                else:
                    lb = block_bound(levels[0], query, q_l1, l1norm, None)
                    first_level = 0
                masked = allowed is not None or (excluded is not None and len(excluded[r]) > 0)
                if allowed is not None:
                    lb[~allowed] = np.inf
                if excluded is not None and len(excluded[r]):
                    lb[excluded[r]] = np.inf
                if masked:
                    cand = np.flatnonzero(lb < np.inf)
                    lb = lb[cand]
                else:  # every item is a candidate (the bounds are finite): no scan for them
                    cand = np.arange(n)
                m = min(max(_L1_FIRST_FACTOR * k, _L1_FIRST_MIN), cand.size)
                t = np.inf
                known = np.zeros(n, dtype=bool)  # float32 distances computed so far (each item at most once)
                estimate = np.empty(n)
                for level in range(first_level, len(levels)):
                    if level > first_level:
                        if cand.size <= 4 * m:
                            break
                        finer = block_bound(levels[level], query, q_l1, l1norm, cand)
                        np.maximum(lb, finer, out=lb)
                    # the float32 distances of the m items with the smallest bounds: t >= the k-th distance
                    first = cand[np.argpartition(lb, m - 1)[:m]] if m < cand.size else cand
                    fresh = first[~known[first]]
                    if fresh.size:
                        estimate[fresh] = l1_float32(x, fresh, qt)
                        known[fresh] = True
                    t = min(t, float(np.partition(estimate[first], k - 1)[k - 1]) * (1.0 + rel))
                    keep = lb <= t
                    cand, lb = cand[keep], lb[keep]
                if cand.size > n // 2:
                    out.append(None)  # the bounds prune too little here: a full scan is cheaper
                    continue
                fresh = cand[~known[cand]]
                if fresh.size:
                    estimate[fresh] = l1_float32(x, fresh, qt)
                approx = estimate[cand]
                upper_k = min(float(np.partition(approx, k - 1)[k - 1]) * (1.0 + rel), t)
                threshold = upper_k / (1.0 - rel) * (1.0 + 4 * U64) + 1e-300
                out.append(rank_exact(self.vectors, cand[approx <= threshold], query, "cityblock", k, weight))
        return out

    def _near_pivots(self, pivots, starts: np.ndarray, query: np.ndarray, qt) -> tuple[np.ndarray, np.ndarray]:
        """The pivots to bound with, and their float32 cityblock distances to the query.

        Any pivots keep the bound valid; near ones make it tight. The 2 x 4 pivots nearest by the
        cityblock distance of their coarsest block sums (D / 32 values each: a guide, not a bound)
        get their cityblock distance, and the 4 nearest of them by that distance are used; far cheaper
        than the cityblock distance to all 128 pivots.
        """
        if self._pivot_sums is None:  # ``starts``: the coarsest block-sum level's blocks
            self._pivot_sums = np.add.reduceat(pivots.numpy().astype(np.float64), starts, axis=1).astype(np.float32)
        guide_sums = self._pivot_sums
        n_pivots = guide_sums.shape[0]
        if n_pivots > 2 * _L1_NEAR_PIVOTS:
            q_sums = np.add.reduceat(query, starts).astype(np.float32)
            guide = np.abs(guide_sums - q_sums).sum(axis=1)
            chosen = np.sort(np.argpartition(guide, 2 * _L1_NEAR_PIVOTS - 1)[: 2 * _L1_NEAR_PIVOTS])
        else:
            chosen = np.arange(n_pivots)
        # |p - q| summed by torch in float32 (any summation order: covered by the caller's rel)
        dq = l1_float32(pivots.numpy(), chosen, qt).astype(np.float32)
        order = np.argsort(dq, kind="stable")[:_L1_NEAR_PIVOTS]
        return chosen[order], dq[order]

    def structures(self):
        """(levels, |x|_1 per item, pivots (P, D) tensor, pivot distances (P, N) float32), built once.

        A level is ``(block starts, block sums (N, B) float32, their torch view)``.
        """
        if self._structures is None:
            self._structures = _build_structures(self.vectors.x)
        return self._structures


def _build_structures(x: np.ndarray):
    import torch

    n, d = x.shape
    sizes = [bs for bs in _L1_BLOCK_SIZES if d // bs >= _L1_MIN_BLOCKS] or [max(1, d // _L1_MIN_BLOCKS)]
    step = 8192
    levels = []
    for bs in sizes:
        starts = np.arange(0, d, bs)
        sums = np.empty((n, len(starts)), dtype=np.float32)
        for start in range(0, n, step):
            sums[start : start + step] = np.add.reduceat(x[start : start + step].astype(np.float64), starts, axis=1)
        levels.append((starts, sums, torch.from_numpy(sums)))
    l1norm = np.concatenate([np.abs(x[s : s + step]).sum(axis=1, dtype=np.float64) for s in range(0, n, step)])
    # Pivots far apart: k-means++ seeding on a row sample. Any pivots keep the search exact.
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(n, size=min(n, 4096), replace=False))
    sample = torch.from_numpy(np.ascontiguousarray(x[rows]))
    chosen = [int(rng.integers(len(rows)))]
    nearest = torch.cdist(sample[chosen[0]][None], sample, p=1).numpy()[0].astype(np.float64)
    while len(chosen) < min(_L1_PIVOTS, len(rows)):
        weights = np.square(nearest)
        total = weights.sum()
        if not total > 0:
            break  # every sampled row is a pivot already (duplicates)
        pick = int(rng.choice(len(rows), p=weights / total))
        chosen.append(pick)
        np.minimum(nearest, torch.cdist(sample[pick][None], sample, p=1).numpy()[0], out=nearest)
    pivots = torch.from_numpy(np.ascontiguousarray(x[rows[chosen]]))
    table = np.empty((len(chosen), n), dtype=np.float32)
    for start in range(0, n, step):
        chunk = torch.from_numpy(np.array(x[start : start + step]))  # a writable copy: no torch warning
        table[:, start : start + step] = torch.cdist(pivots, chunk, p=1).numpy()
    return levels, l1norm, pivots, table


def block_bound(level, query: np.ndarray, q_l1: float, l1norm: np.ndarray, rows) -> np.ndarray:
    """A lower bound on the float64 cityblock distance from each item (or the items ``rows``) to
    ``query``: ``sum_b |S_b(x) - S_b(q)|`` over the blocks of ``level``, less its rounding error.

    The float32 block sums are within ``2**-24 |x|_1`` of the real ones; the float32 sum of B terms is
    within a relative ``rel(B)``; the float64 reference within ``(D + 4) * 2**-53 (|x|_1 + |q|_1)``.
    """
    import torch

    starts, _, sums_t = level
    q_sums = np.add.reduceat(query.astype(np.float64), starts).astype(np.float32)
    norms = l1norm if rows is None else l1norm[rows]
    if rows is None or 2 * len(rows) > sums_t.shape[0]:  # many rows: one pass over all, no gather
        raw = torch.cdist(torch.from_numpy(q_sums[None]), sums_t, p=1).numpy()[0].astype(np.float64)
        if rows is not None:
            raw = raw[rows]
    else:  # |S(x) - S(q)| on a gathered copy: as cdist(p=1) in float32, faster for a subset
        raw = l1_float32(sums_t.numpy(), rows, torch.from_numpy(q_sums[None]))
    slack = (8.0 * U32 + 8.0 * (query.shape[0] + 4) * U64) * (norms + q_l1)
    return raw * (1.0 - 2.0 * l1_rel_tol(len(starts))) - slack


class _torch_threads:
    """Context manager: torch runs with ``n`` threads inside, as before outside."""

    def __init__(self, n: int) -> None:
        self.n, self.old = n, None

    def __enter__(self):
        import torch

        self.old = torch.get_num_threads()
        if self.old != self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.old != self.n:
            torch.set_num_threads(self.old)
