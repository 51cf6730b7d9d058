"""What a tile of the page says: a product's name and labels, and why a result is in its row.

A result's caption reads, one line each::

    Woody(1)                          the product's name
    Hoodie · Purple                   its type and colour
    same design, other colour         why it is here (when the labels can say)
    0456163085 · d = 0.1234           its id and its distance to the query: always the last line

The last line is part of the API: clients read the id and the distance from it. "Same design" means what
the scoreboard's design hit means (``fashrec.eval.scores.DESIGN_COLUMN``: the same ``product_code``, i.e.
the same garment, as a colourway of it or the very article); for a photo upload nothing is known of the
query, so only the design row says why (the model finds the photo's design alike).
"""
from __future__ import annotations

from typing import Mapping

from fashrec.eval.scores import DESIGN_COLUMN

NAME_COLUMN = "prod_name"
TYPE_COLUMN = "product_type_name"
COLOUR_COLUMN = "colour_group_name"
PATTERN_COLUMN = "graphical_appearance_name"
# What a result of "Similar products" may share with the query, in the order a shopper reads it.
SHARED = (("type", TYPE_COLUMN), ("colour", COLOUR_COLUMN), ("pattern", PATTERN_COLUMN))
SIMILAR, DESIGN = "similar", "design"  # the recommend tab's two rows

Row = Mapping[str, str]  # a catalogue item's labels as strings ("" when missing)


def label(row: Row, article_id: str) -> str:
    """One line naming an item, for pickers: ``Box 4p Socks · Socks & Tights · 0156224002``."""
    return " · ".join(p for p in (row.get(NAME_COLUMN), row.get(TYPE_COLUMN), article_id) if p)


def caption(row: Row, article_id: str, distance: float | None = None, why: str | None = None) -> str:
    """Gallery caption: name, type and colour, why it is there, then the id (and the distance to the query)."""
    lines = [row.get(NAME_COLUMN) or article_id,
             " · ".join(p for p in (row.get(TYPE_COLUMN), row.get(COLOUR_COLUMN)) if p), why or ""]
    tail = article_id if distance is None else f"{article_id} · d = {distance:.4g}"
    return "\n".join([line for line in lines if line] + [tail])


def same_design(query: Row | None, row: Row) -> bool:
    """Whether ``row`` is an article of the query's design (another colourway of the same garment)."""
    code = (query or {}).get(DESIGN_COLUMN)
    return bool(code) and row.get(DESIGN_COLUMN) == code


def why(query: Row | None, row: Row, kind: str) -> str | None:
    """Why ``row`` is in the row ``kind`` (``SIMILAR`` or ``DESIGN``) of the query ``query`` (None: a photo).

    An article of the query's design says so, and whether its colour differs; else the design row says
    "similar design" (the design focus found it alike) and "Similar products" names the labels it
    shares with the query ("same type and colour"), or nothing when it shares none."""
    if same_design(query, row):
        colour = row.get(COLOUR_COLUMN)
        return f"same design, {'same' if colour and colour == query.get(COLOUR_COLUMN) else 'other'} colour"
    if kind == DESIGN:
        return "similar design"
    shared = [word for word, column in SHARED if query and _known(row.get(column)) and row[column] == query.get(column)]
    if not shared:
        return None
    return "same " + (shared[0] if len(shared) == 1 else f"{', '.join(shared[:-1])} and {shared[-1]}")


def _known(value: str | None) -> bool:
    return bool(value) and value != "Unknown"  # two products of type "Unknown" share nothing a shopper sees
