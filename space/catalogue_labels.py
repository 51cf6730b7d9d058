"""A catalogue's labels as the page uses them: each item's labels as strings, the filter choices and what
they leave, pages to browse, the product the page opens on, and the other colourways of a design.

Built once from the index's metadata, so that a caption or a filter is a dictionary look-up or one
comparison over an array. A catalogue without metadata has no labels: one filter choice (``ALL``), no
captions beyond the id, and no designs.
"""
from __future__ import annotations

import numpy as np

from captions import DESIGN_COLUMN, TYPE_COLUMN

ALL = "All"  # the "no filter" choice of the product group / type dropdowns
GROUP_COLUMN = "product_group_name"


class CatalogueLabels:
    """The labels of the items ``ids`` (in catalogue order), from ``metadata`` (a DataFrame or None)."""

    def __init__(self, ids: list[str], metadata) -> None:
        self.ids = list(ids)
        self._position = {i: n for n, i in enumerate(self.ids)}
        self._rows: dict[str, dict[str, str]] = {}
        if metadata is not None:
            text = metadata.astype(object).where(metadata.notna(), "").astype(str)
            self._rows = dict(zip(self.ids, text.to_dict("records")))
        self._columns = {c: (np.array([self._rows[i][c] for i in self.ids], dtype=object)
                             if metadata is not None and c in metadata else None)
                         for c in (GROUP_COLUMN, TYPE_COLUMN, DESIGN_COLUMN)}
        self._groups = [ALL] + _by_count(self._columns[GROUP_COLUMN])
        self._all_types = [ALL] + _by_count(self._columns[TYPE_COLUMN])

    def row(self, article_id: str) -> dict[str, str]:
        """The item's labels as strings (``""`` when missing; ``{}`` without metadata). Not a copy."""
        return self._rows.get(article_id, {})

    def groups(self) -> list[str]:
        """Filter choices for the product group: ``All`` then the groups, most common first."""
        return list(self._groups)

    def types(self, product_group: str = ALL) -> list[str]:
        """Filter choices for the product type, within ``product_group``."""
        types = self._columns[TYPE_COLUMN]
        if types is None:
            return [ALL]
        if product_group in (None, "", ALL):
            return list(self._all_types)
        if self._columns[GROUP_COLUMN] is not None:
            types = types[self._columns[GROUP_COLUMN] == product_group]
        return [ALL] + _by_count(types)

    def filters(self, product_group: str, product_type: str, *, exclude: str | None = None) -> tuple[dict, int]:
        """``(where, left)``: the ``where=`` filter of a search for these choices, and how many items it leaves
        besides ``exclude``. ValueError for a choice the catalogue does not have, or when none is left."""
        where = {}
        for column, value, choices in ((GROUP_COLUMN, product_group, self._groups),
                                       (TYPE_COLUMN, product_type, self._all_types)):
            if value in (None, "", ALL):
                continue
            if value not in choices:
                raise ValueError(f"no {column.removesuffix('_name').replace('_', ' ')} {value!r} in this catalogue")
            where[column] = value
        mask = self.mask(product_group, product_type)
        left = len(self.ids) if mask is None else int(mask.sum())
        if exclude is not None and (mask is None or mask[self._position[exclude]]):
            left -= 1
        if left < 1:
            filters = ", ".join(f"{c}={v!r}" for c, v in where.items())
            raise ValueError(f"no {'other ' if exclude else ''}catalogue item matches the filters ({filters})")
        return where, left

    def mask(self, product_group: str, product_type: str) -> np.ndarray | None:
        """Which items the filters keep (a bool array), or None when they keep every item."""
        mask = None
        for column, value in ((GROUP_COLUMN, product_group), (TYPE_COLUMN, product_type)):
            if value in (None, "", ALL) or self._columns[column] is None:
                continue
            m = self._columns[column] == value
            mask = m if mask is None else mask & m
        return mask

    def browse(self, *, product_group: str = ALL, product_type: str = ALL, page: int = 0, per_page: int = 24) -> list[str]:
        """A page of catalogue ids (catalogue order) matching the filters; pages wrap around."""
        mask = self.mask(product_group, product_type)
        ids = [i for i, keep in zip(self.ids, mask) if keep] if mask is not None else self.ids
        if not ids:
            return []
        start = (page * per_page) % len(ids)
        return (ids[start:] + ids[:start])[:per_page]

    def featured(self) -> str:
        """The product the page opens on: the first of the most common product group whose type is known
        (the first catalogue item may be a close-up of socks of type "Unknown")."""
        groups, types = self._columns[GROUP_COLUMN], self._columns[TYPE_COLUMN]
        if groups is None or types is None:
            return self.ids[0]
        common = self._groups[1] if len(self._groups) > 1 else None
        for i, (group, ptype) in enumerate(zip(groups, types)):
            if group == common and ptype not in ("", "Unknown"):
                return self.ids[i]
        return self.ids[0]

    def other_colours(self, article_id: str, *, product_group: str = ALL, product_type: str = ALL) -> list[str]:
        """The catalogue's other articles of the item's design (its other colourways), within the filters:
        what "Other colours of this design" can find. [] when the catalogue records no designs."""
        codes = self._columns[DESIGN_COLUMN]
        code = self.row(article_id).get(DESIGN_COLUMN)
        if codes is None or not code:
            return []
        mask = codes == code
        filters = self.mask(product_group, product_type)
        mask = mask if filters is None else mask & filters
        return [i for i, keep in zip(self.ids, mask) if keep and i != article_id]


def _by_count(values) -> list[str]:
    if values is None:
        return []
    names, counts = np.unique(values, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    return [str(names[i]) for i in order]
