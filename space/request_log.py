"""A request Gradio itself refuses is one line in the Space's log, not a 20-line traceback.

Gradio checks a request before any handler runs (the number of inputs, that a file was uploaded through
it, the shape of each value) and, on failure, prints the whole traceback with ``traceback.print_exc()``.
Those are a client's mistakes, not the server's, and a client can send them as fast as it likes. Importing
this module (``app.py`` does, in one line) makes Gradio's request handling log them as

    fashrec.space WARNING request to recommend_item refused by Gradio: ValueError: An event handler ...

Only exceptions raised while Gradio prepares a request's inputs (``Blocks.preprocess_data``) are shortened;
anything that goes wrong in a handler or in Gradio itself keeps its full traceback. The app's own handlers
already log a bad request in one line (``app.api_call``).
"""
from __future__ import annotations

import logging
import sys
import traceback
import types

log = logging.getLogger("fashrec.space")
# The Gradio modules that print a traceback for a failed request (gradio 5 and 6).
GRADIO_MODULES = ("gradio.queueing", "gradio.routes")


def refusal(exc: BaseException) -> str | None:
    """One line for an exception Gradio raised while preparing a request's inputs, else None."""
    frame = _preprocess_frame(exc.__traceback__)
    if frame is None:
        return None
    fn = frame.f_locals.get("block_fn")
    endpoint = getattr(fn, "api_name", None) or getattr(fn, "name", None) or "an endpoint"
    first = next((line for line in str(exc).splitlines() if line.strip()), "")
    if hasattr(exc, "errors") and callable(exc.errors):  # pydantic: "1 validation error for X", then the why
        try:
            first = f"{first}: {exc.errors()[0]['msg']}"
        except (IndexError, KeyError, TypeError):
            pass
    return f"request to {endpoint} refused by Gradio: {type(exc).__name__}: {first}"


def _preprocess_frame(tb):
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "preprocess_data" and "gradio" in code.co_filename:
            return tb.tb_frame
        tb = tb.tb_next
    return None


def _print_exc(limit=None, file=None, chain=True):
    """``traceback.print_exc`` for Gradio's modules: a refused request is one log line."""
    exc = sys.exc_info()[1]
    line = refusal(exc) if exc is not None else None
    if line is None:
        traceback.print_exc(limit=limit, file=file, chain=chain)
    else:
        log.warning(line)


def install() -> list[str]:
    """Give Gradio's request modules a ``traceback`` whose ``print_exc`` shortens refusals; returns the
    modules patched (none: this Gradio prints no traceback there, nothing to shorten)."""
    import importlib

    patched = []
    for name in GRADIO_MODULES:
        module = importlib.import_module(name)
        if isinstance(getattr(module, "traceback", None), types.ModuleType):
            quiet = types.ModuleType("traceback")
            quiet.__dict__.update(traceback.__dict__)
            quiet.print_exc = _print_exc
            module.traceback = quiet
            patched.append(name)
    return patched


install()
