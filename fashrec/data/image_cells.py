"""Encoded photos as a dataset holds them (``{"bytes": ..., "path": ...}`` cells of an ``Image(decode=False)``
column): a cheap integrity check before anything is decoded, and the bytes, shrunk on request."""
from __future__ import annotations

import io
import os
from pathlib import Path


def image_problem(cell: dict) -> str | None:
    """Why this image cannot be used, or None. Cheap: parses the header, never decodes the pixels.

    (A full decode of the 5,000 staged photos takes seconds; this takes ~50 ms. What slips through
    is caught when the tensors are made: ``fashrec.dataset_tensor`` names every image it cannot decode.)
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if cell.get("bytes") is not None:
            data = cell["bytes"]
            head_source, tail = io.BytesIO(data), data[-64:]
        else:
            path = cell["path"]
            size = os.path.getsize(path)
            if size == 0:
                return "empty file"
            with open(path, "rb") as f:
                f.seek(max(0, size - 64))
                tail = f.read()
            head_source = path
        with Image.open(head_source) as im:
            fmt, (w, h) = im.format, im.size
        if w < 1 or h < 1:
            return f"bad size {w}x{h}"
        if fmt == "JPEG" and b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def image_bytes(cell: dict, *, max_side: int | None = None, quality: int = 90) -> bytes:
    """The encoded image of an ``Image(decode=False)`` cell, shrunk so its longer side is ``<= max_side``.

    Unshrunk images are returned byte for byte; shrunk ones are re-encoded as JPEG (Lanczos, ``quality``).
    """
    from PIL import Image

    data = cell["bytes"] if cell.get("bytes") is not None else Path(cell["path"]).read_bytes()
    if max_side is None:
        return data
    with Image.open(io.BytesIO(data)) as im:
        if max(im.size) <= max_side:
            return data
        scale = max_side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        small = im.convert("RGB").resize(size, Image.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()
