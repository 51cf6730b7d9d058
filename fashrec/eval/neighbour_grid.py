"""The picture of a recommendation: the query on the left, its neighbours rank 1..k on the right.

It is the figure the paper shows for each product of interest (Yang, Figures 4.2 A-C)::

    +-------+   +-------+-------+-----+-------+
    | query |   | rank1 | rank2 | ... | rankk |
    +-------+   +-------+-------+-----+-------+
    caption     captions (distance, name, colour)

Drawn with PIL only (no matplotlib), so it is fast and needs no display. Every photo is fitted into a
``tile`` box keeping its aspect ratio, centred on white; a missing image is drawn as a grey tile saying
so, never skipped, so rank ``i`` is always the ``i``-th tile.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

TILE = (96, 144)  # width x height of each photo box: 2:3 portrait, like the H&M photos
CAPTION_LINES = 3
LINE_HEIGHT = 12  # PIL's default bitmap font is 11 px high
PAD = 6  # space around every cell
GAP = 18  # extra space between the query and rank 1
_BACKGROUND = (255, 255, 255)
_MISSING = (200, 200, 200)
_TEXT = (20, 20, 20)
_QUERY_FRAME = (200, 30, 30)


def grid_size(n_neighbours: int, *, tile: tuple[int, int] = TILE) -> tuple[int, int]:
    """``(width, height)`` in pixels of the grid for ``n_neighbours`` ranks (plus the query)."""
    cell_w, cell_h = _cell(tile)
    return (n_neighbours + 1) * cell_w + GAP + PAD, cell_h + PAD


def neighbour_grid(query: Any, neighbours: Sequence[Any], *, query_caption: str | Sequence[str] = "query",
                   captions: Sequence[str | Sequence[str]] | None = None,
                   tile: tuple[int, int] = TILE) -> Image.Image:
    """Draw the query and its ranked neighbours side by side; returns an RGB PIL image of ``grid_size``.

    ``query`` and each neighbour may be anything ``fashrec.preprocess`` reads (path, PIL image, bytes,
    array) or ``None`` for a missing photo. A caption is a string (lines split on ``\\n``) or a list
    of lines; by default the neighbours are captioned ``rank 1`` ... ``rank k``. Long lines are cut.
    """
    captions = [f"rank {i + 1}" for i in range(len(neighbours))] if captions is None else list(captions)
    if len(captions) != len(neighbours):
        raise ValueError(f"neighbour_grid: {len(neighbours)} neighbours but {len(captions)} captions")
    width, height = grid_size(len(neighbours), tile=tile)
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    cell_w, _ = _cell(tile)
    cells = [(PAD, query, query_caption, True)]
    cells += [(PAD + (i + 1) * cell_w + GAP, im, cap, False) for i, (im, cap) in enumerate(zip(neighbours, captions))]
    for x, image, caption, is_query in cells:
        _paste_photo(canvas, draw, image, (x, PAD), tile)
        if is_query:
            draw.rectangle([x - 2, PAD - 2, x + tile[0] + 1, PAD + tile[1] + 1], outline=_QUERY_FRAME, width=2)
        lines = caption.split("\n") if isinstance(caption, str) else [str(c) for c in caption]
        for j, line in enumerate(lines[:CAPTION_LINES]):
            draw.text((x, PAD + tile[1] + 4 + j * LINE_HEIGHT), _fit(draw, line, font, tile[0] + PAD), fill=_TEXT, font=font)
    return canvas


def save_grid(image: Image.Image, path: str | os.PathLike) -> None:
    """Write the grid as PNG, atomically (a crash never leaves half a picture)."""
    from fashrec.atomic import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _cell(tile: tuple[int, int]) -> tuple[int, int]:
    tw, th = tile
    return tw + PAD, th + 4 + CAPTION_LINES * LINE_HEIGHT + PAD


def _paste_photo(canvas: Image.Image, draw: ImageDraw.ImageDraw, image: Any, at: tuple[int, int],
                 tile: tuple[int, int]) -> None:
    x, y = at
    tw, th = tile
    photo = None
    if image is not None:
        from fashrec.data.preprocess import ImageError, to_rgb

        try:
            photo = to_rgb(image)
        except ImageError:
            photo = None
    if photo is None:
        draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=_MISSING)
        draw.text((x + 4, y + th // 2 - 6), "no image", fill=_TEXT, font=ImageFont.load_default())
        return
    photo.thumbnail((tw, th), Image.Resampling.LANCZOS)
    if photo.width < tw and photo.height < th:  # small (e.g. 64x64 preprocessed) photos are scaled up to fit
        scale = min(tw / photo.width, th / photo.height)
        photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                             Image.Resampling.NEAREST)
    canvas.paste(photo, (x + (tw - photo.width) // 2, y + (th - photo.height) // 2))


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
