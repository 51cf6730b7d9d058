"""A label column of a loaded dataset as plain strings: the class names, ``None`` where the label is missing."""
from __future__ import annotations


def label_strings(ds, column: str) -> list:
    """``ds[column]`` as strings; ``ClassLabel`` ids become their names, -1 or None becomes ``None``."""
    import datasets

    feature = ds.features[column]
    values = ds[column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(int(v)) if v is not None and v >= 0 else None for v in values]
    return [None if v is None else str(v) for v in values]
