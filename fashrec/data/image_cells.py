"""Encoded photos as a dataset holds them (``{"bytes": ..., "path": ...}`` cells of an ``Image(decode=False)``
column): a cheap integrity check before anything is decoded, the bytes, shrunk on request, and the small
JPEG an index folder serves for a photo."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path


def image_problem(cell: dict) -> str | None:
    """Why this image cannot be used, or None. Cheap: parses the header, never decodes the pixels.

    (A full decode of the 5,000 staged photos takes seconds; this takes ~50 ms. What slips through
    is caught when the tensors are made: ``fashrec.dataset_tensor`` names every image it cannot decode.)
    """
    from PIL import Image, UnidentifiedImageError

    from fashrec.data.preprocess import MAX_PIXELS

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is judged below
            with Image.open(head_source) as im:
                fmt, (w, h) = im.format, im.size
        if w < 1 or h < 1:
            return f"bad size {w}x{h}"
        if w * h > MAX_PIXELS:  # what the header claims: a few kB can claim gigabytes of pixels
            return f"refused as a possible decompression bomb ({w}x{h} = {w * h:,} pixels > {MAX_PIXELS:,})"
        if fmt == "JPEG" and b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)"
    except Image.DecompressionBombError as exc:
        return f"refused as a possible decompression bomb ({exc})"
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


def thumbnail(source, max_side: int, *, quality: int = 90) -> bytes:
    """A photo (a path or encoded bytes) as JPEG bytes whose longer side is at most ``max_side``.

    A JPEG that already fits is returned byte for byte (the sample's 85x128 photos stay as they are);
    anything else is decoded the way ``fashrec.preprocess`` decodes (decompression bombs refused, EXIF
    orientation applied, transparency on white; a large JPEG at a reduced scale), shrunk with its filter
    and encoded. ``ImageError`` names a
    photo that cannot be used.
    """
    from PIL import Image

    from fashrec.data.preprocess import RESAMPLE, ImageError, to_rgb

    data = Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # to_rgb judges the size
            with Image.open(io.BytesIO(data)) as im:
                fits = im.format == "JPEG" and max(im.size) <= max_side
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # to_rgb below names what is wrong
        fits = False
    if fits:
        to_rgb(data)  # decodes (and refuses) exactly as preprocess does, even a JPEG that fits
        return data
    rgb = to_rgb(data, draft=(max_side, max_side))
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), RESAMPLE)  # preprocess's own filter: antialiased, 2.5x Lanczos's speed
    buffer = io.BytesIO()
    try:
        rgb.save(buffer, format="JPEG", quality=quality)
    except OSError as exc:
        raise ImageError(f"cannot encode a thumbnail ({exc})") from exc
    return buffer.getvalue()
