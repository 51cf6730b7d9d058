"""The training data of the default model: labelled photos from one or more sources, designs, a validation split.

    data = load_multitask_data("../shared/data/hm", extra=["../shared/data/hm-extra"], columns=COLUMNS)

- ``data`` is split as every fashrec tool splits it (``load_hm``, 80/20, ``split_seed``): its *test*
  split is never touched here, so ``fashrec evaluate --split test`` scores photos the model never saw.
- ``val_size`` photos of its *train* split are held out as the validation split: every choice (epochs,
  focus weights, the representation of a focus) is made on them. They are scored the way the test
  split is: each validation photo queries the data's whole train split, itself excluded.
- every photo of each ``extra`` source is training data. An extra source must have the same label
  columns and ``product_code``; one that lacks any is refused with the missing names.
- ``optional_columns`` (auxiliary targets) are used when every source has them, and left out (with a
  printed line naming them) when one does not: ``classes`` says which were used.
- labels: the class names are the union over all sources (sorted). A missing label or the class
  ``"Unknown"`` becomes -1 (ignored by that column's loss, the photo still trains the others); each
  is counted and reported by article id, never dropped silently.
- designs: ``product_code`` factorised over all sources, so two colourways of one design share an id
  whichever source they come from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from fashrec.data.labels import label_strings

UNKNOWN_LABELS = frozenset({"Unknown", ""})
DESIGN_COLUMN = "product_code"


@dataclass
class MultitaskData:
    classes: dict[str, list[str]]
    images: torch.Tensor  # (N, 3, S, S) uint8: training photos (data's train split minus validation, + extras)
    labels: dict[str, torch.Tensor]  # column -> (N,) class ids, -1 = missing
    designs: torch.Tensor  # (N,) design ids
    val_images: torch.Tensor
    val_labels: dict[str, torch.Tensor]
    val_designs: torch.Tensor
    catalogue_images: torch.Tensor  # the data's train split: what validation photos query
    catalogue_labels: dict[str, list]  # main label strings (None = missing) + "design" (product codes)
    catalogue_ids: list[str]
    val_rows: list[int]  # positions of the validation photos in the catalogue
    ids: list[str] = field(default_factory=list)  # article id of each training photo (rows of ``images``)
    missing: dict[str, list[str]] = field(default_factory=dict)  # column -> article ids with no usable label
    sources: dict[str, int] = field(default_factory=dict)  # source -> photos used for training

    def report(self) -> dict:
        return {"training_photos": int(self.images.shape[0]), "validation_photos": int(self.val_images.shape[0]),
                "photos_per_source": dict(self.sources),
                "labels_missing_or_unknown": {c: {"count": len(ids), "article_ids": ids}
                                              for c, ids in self.missing.items()}}


def load_multitask_data(data, extra: Sequence = (), *, columns: Sequence[str], optional_columns: Sequence[str] = (),
                        preprocess=None, split_seed: int = 42, test_size: float = 0.2, val_size: int = 1000,
                        val_seed: int = 0, cache_dir=None, progress: bool = True) -> MultitaskData:
    from fashrec.data.hm_dataset import load_hm
    from fashrec.data.tensor_cache import dataset_tensor

    required = [*columns, DESIGN_COLUMN, "article_id"]
    train = load_hm(data, seed=split_seed, test_size=test_size, progress=progress)["train"]
    _require(train, required, data)
    extras = []
    for source in extra:
        ds = load_hm(source, split=False, progress=progress)
        _require(ds, required, source, reference=data)
        extras.append((str(source), ds))
    sources = [train] + [ds for _, ds in extras]
    absent = [c for c in optional_columns if c not in columns and any(c not in ds.column_names for ds in sources)]
    if absent:
        print(f"auxiliary column(s) {absent} left out: not in every source", flush=True)
    scored = list(columns)  # what validation scores against: the main columns, not the auxiliary ones
    columns = scored + [c for c in optional_columns if c not in scored and c not in absent]
    required = [*columns, DESIGN_COLUMN, "article_id"]
    if not 0 < val_size < len(train):
        raise ValueError(f"--val-size must be between 1 and {len(train) - 1} (the train split of {data}), got {val_size}")

    parts = [(str(data), train)] + extras
    strings = {name: {c: label_strings(ds, c) for c in required} for name, ds in parts}
    classes = {c: sorted({v for name, _ in parts for v in strings[name][c]
                          if v is not None and v not in UNKNOWN_LABELS}) for c in columns}
    codes = sorted({v for name, _ in parts for v in strings[name][DESIGN_COLUMN] if v is not None})
    code_id = {v: i for i, v in enumerate(codes)}

    val_rows = sorted(torch.randperm(len(train), generator=torch.Generator().manual_seed(val_seed))[:val_size].tolist())
    is_val = torch.zeros(len(train), dtype=torch.bool)
    is_val[val_rows] = True
    catalogue = _as_uint8(dataset_tensor(train, preprocess, cache_dir=cache_dir, progress=progress))

    missing: dict[str, list[str]] = {c: [] for c in columns}
    images, labels, designs, sources, train_ids = [], {c: [] for c in columns}, [], {}, []
    for name, ds in parts:
        s = strings[name]
        keep = ~is_val if name == str(data) else torch.ones(len(ds), dtype=torch.bool)
        x = catalogue if name == str(data) else _as_uint8(dataset_tensor(ds, preprocess, cache_dir=cache_dir,
                                                                          progress=progress))
        images.append(x[keep])
        ids = [i for i, k in zip(s["article_id"], keep.tolist()) if k]
        train_ids += ids
        for c in columns:
            values = [v for v, k in zip(s[c], keep.tolist()) if k]
            missing[c] += [i for i, v in zip(ids, values) if v is None or v in UNKNOWN_LABELS]
            labels[c].append(_ids(values, classes[c]))
        designs.append(torch.tensor([code_id[v] if v is not None else -1
                                     for v, k in zip(s[DESIGN_COLUMN], keep.tolist()) if k], dtype=torch.long))
        sources[name] = int(keep.sum())
    own = strings[str(data)]
    return MultitaskData(
        classes=classes, images=torch.cat(images), labels={c: torch.cat(v) for c, v in labels.items()},
        designs=torch.cat(designs), val_images=catalogue[is_val],
        val_labels={c: _ids([own[c][i] for i in val_rows], classes[c]) for c in columns},
        val_designs=torch.tensor([code_id.get(own[DESIGN_COLUMN][i], -1) for i in val_rows], dtype=torch.long),
        catalogue_images=catalogue, catalogue_ids=list(own["article_id"]),
        catalogue_labels={**{c: own[c] for c in scored}, "design": own[DESIGN_COLUMN]},
        val_rows=val_rows, ids=train_ids, missing={c: ids for c, ids in missing.items() if ids}, sources=sources)


def _require(ds, required: Sequence[str], source, reference=None) -> None:
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        against = f" (unlike {reference})" if reference is not None else ""
        raise ValueError(f"{source}: missing column(s) {missing}{against}; the default model trains on "
                         f"{list(required)}")


def _ids(values: Sequence, names: Sequence[str]) -> torch.Tensor:
    index = {v: i for i, v in enumerate(names)}
    return torch.tensor([index.get(v, -1) if v is not None else -1 for v in values], dtype=torch.long)


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] as uint8 (the preprocessed values are k/255 up to rounding): 4x less memory."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8)
