"""A progress bar for a step that reports no progress of its own (a PCA fit, k-means): its elapsed time
ticks on stderr every second, so a long step is visibly alive, and the bar ends with the time it took.

    with phase("fitting PCA (229 components) on 4000 images", progress=True):
        pca.fit(x)
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator


@contextlib.contextmanager
def phase(desc: str, *, progress: bool = True, tick_s: float = 1.0) -> Iterator[None]:
    if not progress:
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=desc, bar_format="{desc}: {elapsed}{postfix}", file=sys.stderr)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(tick_s):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="fashrec-phase", daemon=True)
    ticker.start()
    try:
        yield
        bar.update(1)
        bar.set_postfix_str("done", refresh=False)
    finally:
        stop.set()
        ticker.join()
        bar.close()
