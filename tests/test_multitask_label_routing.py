"""Each head of the default model learns from its own label column, and the design loss from product_code.

A colour head fed the pattern column trains without crashing, and nothing else in the suite would see it.
Here every image carries its truth, read independently of the training code (``metadata.csv`` through
pandas, each photo through ``fashrec.preprocess``), and two checks run on the real data path
(``load_multitask_data`` -> ``train_multitask`` -> ``MultiTaskCNN.loss``):

- what reaches ``loss``: for every image of every step, each column's label is that image's own label of
  that column, and two images share a design id exactly when they share a ``product_code``;
- what each head is scored on: the heads are replaced by oracles that answer each image's true class of
  *their* column, so each head's training and validation accuracy is 1.0 when it gets its own column,
  and far from it when it gets another's.

The swapped runs prove that the check bites: exchanging two columns' labels anywhere fails it.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch

import fashrec
from fashrec.data.preprocess import PreprocessConfig
from fashrec.models.multitask_cnn import CosineClassifier, MultiTaskCNN
from fashrec.training.multitask_data import UNKNOWN_LABELS, load_multitask_data
from fashrec.training.multitask_training import train_multitask

FOCUS_COLUMNS = {"design": "product_type_name", "shape": "product_type_name", "colour": "colour_group_name",
                 "pattern": "graphical_appearance_name"}
COLUMNS = ["product_type_name", "colour_group_name", "graphical_appearance_name"]
AUX = ["perceived_colour_master_name"]
CFG = PreprocessConfig(pad_value=1.0)


def _key(x: torch.Tensor) -> str:
    """One image's identity: its pixels as uint8 (what the training tensors hold)."""
    pixels = (x.float() * 255).round().clamp(0, 255).to(torch.uint8).contiguous()
    return hashlib.sha1(pixels.numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def truth():
    """pixel key -> that photo's metadata row (label strings by column), independent of the training code."""
    meta = pd.read_csv(fashrec.SAMPLE_DIR / "metadata.csv", dtype=str, keep_default_na=False)
    rows = {}
    for row in meta.to_dict("records"):
        key = _key(fashrec.preprocess(fashrec.SAMPLE_DIR / row["file_name"], CFG))
        rows.setdefault(key, []).append(row)
    # two articles with the very same photo cannot be told apart by their pixels: leave them out
    return {k: v[0] for k, v in rows.items() if len(v) == 1}


def _oracle(model: MultiTaskCNN, truth, seen: list):
    """Make each column's head answer its own column's true class of the image, and record what loss gets."""
    model.features = lambda x: x  # the heads below look at the pixels themselves
    for column, names in model.classes.items():
        classifier = CosineClassifier(len(names), len(names), 16.0)
        with torch.no_grad():
            classifier.weight.copy_(torch.eye(len(names)))
        model.classifiers[column.replace(".", "_")] = classifier

    def heads(x):
        out = {}
        for column, names in model.classes.items():
            one_hot = torch.full((x.shape[0], len(names)), 1e-3)
            for i, img in enumerate(x):
                label = truth.get(_key(img), {}).get(column)
                if label in names:
                    one_hot[i, names.index(label)] = 1.0
            out[column] = one_hot.requires_grad_()
        return out, torch.randn(x.shape[0], 4, requires_grad=True)

    model._heads = heads
    real_loss = model.loss

    def loss(x, *, labels, designs=None, **kw):
        seen.append((x.detach().clone(), {c: y.clone() for c, y in labels.items()},
                     None if designs is None else designs.clone()))
        return real_loss(x, labels=labels, designs=designs, **kw)

    model.loss = loss


def _train(data, truth, *, swap: tuple[str, str] | None = None):
    labels = dict(data.labels)
    val_labels = dict(data.val_labels)
    if swap:  # what a routing mistake looks like: one column's ids where another's belong (same class count)
        a, b = swap
        labels[a], labels[b] = labels[b], labels[a]
        val_labels[a], val_labels[b] = val_labels[b], val_labels[a]
    model = MultiTaskCNN(classes=data.classes, focus_columns=FOCUS_COLUMNS, widths=(4, 4), head_dim=4,
                         design_focus="design", design_head=True, preprocess=CFG)
    seen: list = []
    _oracle(model, truth, seen)
    history = train_multitask(model, data.images, labels, designs=data.designs, val_images=data.val_images,
                              val_labels=val_labels, val_designs=data.val_designs, epochs=1, batch_size=64,
                              lr=1e-5, max_shift=0, flip=False, colour_jitter_p=0.0, seed=0, device="cpu",
                              progress=False)["history"]
    return model, history, seen


@pytest.fixture(scope="module")
def data():
    return load_multitask_data("sample", columns=COLUMNS, optional_columns=AUX, preprocess=CFG, val_size=100,
                               progress=False)


def test_each_head_is_trained_and_validated_on_its_own_column(data, truth):
    assert set(data.classes) == {*COLUMNS, *AUX}
    model, history, seen = _train(data, truth)
    for column in data.classes:
        assert history[f"train_acc/{column}"] == [1.0], column
        assert history[f"validation_acc/{column}"] == [1.0], column
    checked = 0
    for x, labels, designs in seen:
        if x.shape[0] == data.val_images.shape[0] or designs is None:
            continue
        codes = []
        for i, img in enumerate(x):
            row = truth.get(_key(img))
            if row is None:
                codes.append(None)
                continue
            for column, names in model.classes.items():
                y = int(labels[column][i])
                expected = row[column]
                if expected in UNKNOWN_LABELS or expected not in names:
                    assert y == -1, (column, expected, y)
                else:
                    assert names[y] == expected, (column, names[y], expected)
                    checked += 1
            codes.append(row["product_code"])
        for i in range(len(codes)):
            for j in range(i + 1, len(codes)):
                if codes[i] is not None and codes[j] is not None:
                    assert (codes[i] == codes[j]) == (int(designs[i]) == int(designs[j]))
    assert checked > 1000  # every training step's images, every column


@pytest.mark.parametrize("swap", [("colour_group_name", "perceived_colour_master_name"),
                                  ("graphical_appearance_name", "product_type_name")])
def test_a_swap_of_two_columns_fails_the_check(data, truth, swap):
    a, b = swap
    # make the swapped ids valid for both heads (clamped into range), so the mistake does not crash
    data = type(data)(**{**data.__dict__})
    for target in ("labels", "val_labels"):
        labels = dict(getattr(data, target))
        na, nb = len(data.classes[a]), len(data.classes[b])
        labels[a] = labels[a].clamp(max=nb - 1)
        labels[b] = labels[b].clamp(max=na - 1)
        setattr(data, target, labels)
    _, history, _ = _train(data, truth, swap=swap)
    for column in swap:
        assert history[f"train_acc/{column}"][0] < 0.5, column
        assert history[f"validation_acc/{column}"][0] < 0.5, column
