"""What a request may send the Space: an image must be an upload (or a catalogue photo), ``k`` a whole
number; and how an upload becomes what a model sees.

Served to the public, the Space reads no file a client names (``check_upload``): a path outside the
folders it was given (Gradio's upload cache, the catalogue's photos) gets the same ``NOT_UPLOADED`` error
whether or not it exists, so a client learns nothing about the server's files.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

NOT_UPLOADED = "not an uploaded image: send the photo with the request (gradio_client.handle_file)"


def check_upload(image: Any, roots: list[str] | None) -> Any:
    """``image`` unchanged when ``roots`` is None (no restriction) or when it names a file inside one of
    ``roots`` (real paths); else ``ImageError(NOT_UPLOADED)``, the one error for every refused input."""
    from fashrec.data.preprocess import ImageError

    if roots is None or image is None:
        return image
    path = image.get("path") if isinstance(image, Mapping) else image if isinstance(image, str) else None
    if not isinstance(path, str) or not path:
        raise ImageError(NOT_UPLOADED)
    real = os.path.realpath(path)
    if not any(os.path.commonpath([real, root]) == root for root in roots) or not os.path.isfile(real):
        raise ImageError(NOT_UPLOADED)
    return image


def whole_number(value: Any, name: str) -> int:
    """``value`` as an int when it is a whole number (``8``, ``8.0``), else ValueError: ``2.5`` is not
    rounded, and ``True`` is not 1 (as ``SimilarityIndex.search`` takes k)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{name} must be a whole number, got {value!r}")


def to_uint8(x) -> np.ndarray:
    """A ``(3, H, W)`` tensor in [0, 1] as an ``(H, W, 3)`` uint8 array (round to nearest)."""
    return (x.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def preprocess_upload(image: Any, config):
    """``fashrec.preprocess`` as a batch of one. Gradio hands uploads over as ``{"path", "orig_name"}``
    (the event skips Gradio's own decoding, so every bad file reaches ``preprocess`` and its clear
    message); errors then name the file the user sent, not the server's temporary copy."""
    from fashrec.data.preprocess import ImageError, preprocess

    if image is None:
        raise ImageError("no image: upload a photo or pick a catalogue item")
    if not isinstance(image, Mapping):
        return preprocess(image, config)[None]
    path = image.get("path")
    if not path:
        raise ImageError("the upload holds no file")
    try:
        return preprocess(path, config)[None]
    except ImageError as exc:
        name = image.get("orig_name") or Path(path).name
        raise ImageError(str(exc).replace(str(path), name)) from None


