"""Choosing among interchangeable exact methods by what they measure on this machine, with this data.

Which is fastest depends on things no rule of thumb sees: how far a pruning bound cuts on these
embeddings, whether a threaded BLAS call has a free second core or waits milliseconds for it, how the
catalogue sits in the caches. All the options give the same results, so the choice is free to follow
measurements: each option is timed a few times, then the one with the lowest typical cost is taken,
and the others are timed afresh now and then so that the choice follows the machine.
"""
from __future__ import annotations

from collections import deque

_PROBES = 3  # timings of each option before they are compared
_WINDOW = 9  # recent timings kept per option
# Compared picks before another option is timed afresh: 10, then twice as many each time, up to 50;
# up to 800 while the options re-timed keep losing by more than 2x (each re-timing costs searches).
_FIRST_REPROBE, _REPROBE, _MAX_REPROBE = 10, 50, 800


def typical(seconds) -> float:
    """The median of recent timings: robust to a minority of searches that another process delayed,
    and it counts the delays an option suffers most of the time (a threaded call that waits on a busy
    second core more often than not is slow, however fast its best runs)."""
    ordered = sorted(seconds)  # a handful of values: cheaper than numpy
    return ordered[len(ordered) // 2]


class Chooser:
    """The option to use next among ``options`` (names), from the timings given to :meth:`record`.

    Each option is timed ``_PROBES`` times first, in order; then the one of lowest :func:`typical`
    cost is picked, and after 10, 20, 40, then every 50 picks another one (in turn) is timed
    ``_PROBES`` times in a row afresh, its older timings dropped: a choice made on a bad moment (a
    load burst, cold caches right after a build) does not stick. While the re-timed options lose by
    more than 2x, the interval keeps doubling, up to 800 picks.
    """

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = options
        self.seconds = {name: deque(maxlen=_WINDOW) for name in options}
        self.compared = 0
        self._interval = _FIRST_REPROBE
        self._next_reprobe = _FIRST_REPROBE
        self._turn = 0
        self._again: list[str] = []  # picks left of a fresh timing of one option
        self._checked: str | None = None  # the option just timed afresh

    def pick(self) -> str:
        if self._again:
            return self._again.pop()
        for name in self.options:
            if len(self.seconds[name]) < _PROBES:
                return name
        self.compared += 1
        ranked = sorted(self.options, key=lambda name: typical(self.seconds[name]))
        if self._checked is not None:  # its fresh timings are in: when is the next check?
            lost_badly = typical(self.seconds[self._checked]) > 2 * typical(self.seconds[ranked[0]])
            self._interval = min(2 * self._interval, _MAX_REPROBE if lost_badly else _REPROBE)
            self._next_reprobe = self.compared + self._interval
            self._checked = None
        if self.compared >= self._next_reprobe:
            other = self._checked = ranked[1 + self._turn % (len(ranked) - 1)]
            self._turn += 1
            self.seconds[other].clear()
            self._again = [other] * (_PROBES - 1)
            return other
        return ranked[0]

    def record(self, name: str, seconds: float) -> None:
        self.seconds[name].append(seconds)
