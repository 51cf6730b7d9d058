"""Choosing among interchangeable exact methods by what they measure on this machine, with this data.

Which is fastest depends on things no rule of thumb sees: how far a pruning bound cuts on these
embeddings, whether a threaded BLAS call has a free second core or waits milliseconds for it, how the
catalogue sits in the caches. All the options give the same results, so the choice is free to follow
measurements: each option is timed a few times, then the one with the lowest typical cost is taken,
and the others are timed again now and then so that the choice follows the machine.
"""
from __future__ import annotations

from collections import deque

_PROBES = 3  # timings of each option before they are compared
_WINDOW = 9  # recent timings kept per option
_REPROBE = 50  # every this many compared picks, another option is timed again


def typical(seconds) -> float:
    """The lower tercile of recent timings: a busy machine only ever adds time (another process takes
    the core for milliseconds), so the low values are the option's own cost."""
    ordered = sorted(seconds)  # a handful of values: cheaper than numpy
    return ordered[len(ordered) // 3]


class Chooser:
    """The option to use next among ``options`` (names), from the timings given to :meth:`record`."""

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = options
        self.seconds = {name: deque(maxlen=_WINDOW) for name in options}
        self.compared = 0

    def pick(self) -> str:
        for name in self.options:  # each option is timed _PROBES times first, in order
            if len(self.seconds[name]) < _PROBES:
                return name
        self.compared += 1
        ranked = sorted(self.options, key=lambda name: typical(self.seconds[name]))
        if self.compared % _REPROBE == 0:  # now and then one of the others, in turn
            return ranked[1 + (self.compared // _REPROBE - 1) % (len(ranked) - 1)]
        return ranked[0]

    def record(self, name: str, seconds: float) -> None:
        self.seconds[name].append(seconds)
