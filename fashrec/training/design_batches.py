"""Batches that hold colourways: the sampler behind the design (supervised contrastive) loss.

A contrastive loss learns only from pairs that meet in a batch. Drawn uniformly, two articles of one
design almost never do (12,085 designs among 18,919 H&M photos). So each batch is ``pairs`` designs
that have at least two photos, two distinct photos each, and the rest drawn uniformly from all photos
(which keeps every photo, singletons too, in the label losses and among the negatives).

Everything is drawn from the generator passed in, so an epoch's batches are a function of its seed.
"""
from __future__ import annotations

import torch


class DesignBatches:
    """``batches(generator, steps, batch_size)`` yields index tensors of ``batch_size`` rows."""

    def __init__(self, designs: torch.Tensor, *, pair_fraction: float = 0.375):
        designs = torch.as_tensor(designs, dtype=torch.long).cpu()
        if designs.ndim != 1:
            raise ValueError(f"DesignBatches: designs must be (N,), got {tuple(designs.shape)}")
        if not 0.0 <= pair_fraction <= 1.0:
            raise ValueError(f"DesignBatches: pair_fraction must be in [0, 1], got {pair_fraction}")
        self.n = int(designs.shape[0])
        self.pair_fraction = float(pair_fraction)
        order = torch.argsort(designs, stable=True)
        values, counts = torch.unique_consecutive(designs[order], return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        multi = (counts >= 2) & (values >= 0)
        # members of each multi-photo design, as (start, count) into ``order``
        self._order = order
        self._starts = starts[multi]
        self._counts = counts[multi]

    @property
    def n_designs_with_pairs(self) -> int:
        return int(self._counts.numel())

    def batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        pairs = min(int(batch_size * self.pair_fraction) // 2, batch_size // 2) if self.n_designs_with_pairs else 0
        parts = []
        if pairs:
            pick = torch.randint(0, self.n_designs_with_pairs, (pairs,), generator=generator)
            starts, counts = self._starts[pick], self._counts[pick]
            first = (torch.rand(pairs, generator=generator) * counts).long()
            # a second member, distinct from the first: shift by 1..count-1 around the group
            step = 1 + (torch.rand(pairs, generator=generator) * (counts - 1)).long()
            second = (first + step) % counts
            parts += [self._order[starts + first], self._order[starts + second]]
        rest = batch_size - 2 * pairs
        parts.append(torch.randint(0, self.n, (rest,), generator=generator))
        return torch.cat(parts)
