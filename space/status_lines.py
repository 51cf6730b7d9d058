"""The status lines of the recommend tab: what a search found, in words, above each row of results.

    **8 nearest** to `0456163084` (Woody hoodie) by *cosine* distance, similar in *overall*. Click a result ...
    Nearest by *shape*, the focus trained to find the colourways of one garment. **1 of 1** other colour ...
"""
from __future__ import annotations

from catalogue_labels import ALL


def similar_status(query: str, n_hits: int, *, metric: str, k: int, product_group: str, product_type: str,
                   focus: str | None) -> str:
    """The query, the metric, the focus (None: the model has one focus, nothing to say) and the filters of
    "Similar products", and how many results came back when the filters left fewer than ``k``."""
    filters = [f"{what} *{value}*" for what, value in (("group", product_group), ("type", product_type))
               if value not in (None, "", ALL)]
    within = f", within product {' and '.join(filters)}" if filters else ""
    note = f" (only {n_hits} match)" if n_hits < int(k) else ""
    similar = "" if focus is None else f", weighted *{focus}*" if "=" in focus else f", similar in *{focus}*"
    return (f"**{n_hits} nearest**{note} to {query} by *{metric}* distance{similar}{within}. "
            "Click a result to search from it.")


def design_status(design_focus: str, found_ids: list[str], other_colours: list[str] | None) -> str:
    """What "Other colours of this design" is, and how many of the query's other colourways it found among
    ``other_colours`` (the catalogue's, within the filters; None: the query is a photo, its design unknown)."""
    why = f"Nearest by *{design_focus}*, the focus trained to find the colourways of one garment."
    if other_colours is None:
        return why
    if not other_colours:
        return f"{why} This catalogue holds no other colour of this design: these are the nearest designs."
    found, n = len(set(found_ids) & set(other_colours)), len(other_colours)
    return (f"{why} **{found} of {n}** other colour{'s' if n > 1 else ''} of this design in this catalogue "
            f"{'is' if found == 1 else 'are'} here.")
