"""The default model's validation figures against a brute-force reference, and the choices made from them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashrec.data.preprocess import PreprocessConfig
from fashrec.models.multitask_cnn import MultiTaskCNN
from fashrec.training.multitask_choices import (GOALS, choose_flip_tta, choose_overall_weights, validation_scores,
                                                with_config)
from fashrec.training.multitask_data import load_multitask_data
from fashrec.training.multitask_run import FOCUS_COLUMNS

COLUMNS = ["product_type_name", "colour_group_name", "graphical_appearance_name"]
CFG = PreprocessConfig(pad_value=1.0)


@pytest.fixture(scope="module")
def data():
    return load_multitask_data("sample", columns=COLUMNS, preprocess=CFG, val_size=120, progress=False)


@pytest.fixture(scope="module")
def model(data):
    torch.manual_seed(0)
    m = MultiTaskCNN(classes=data.classes, focus_columns=FOCUS_COLUMNS, widths=(8, 16, 16, 16), head_dim=8,
                     stem_stride=2, design_focus="design", design_head=True, colour_histogram_bins=2,
                     representation={"design": "embedding+probabilities"}, preprocess=CFG)
    return m.eval()


def brute_force(model, data, focus, k=10):
    """float64 cosine, the query left out, P@k per label over queries that have one; design hit@k over the
    queries whose design has another article in the catalogue."""
    with torch.no_grad():
        v = model.embed(data.catalogue_images.float() / 255, focus=focus).double().numpy()
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    rows = np.array(data.val_rows)
    sims = v[rows] @ v.T
    sims[np.arange(len(rows)), rows] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    out = {}
    for column, values in data.catalogue_labels.items():
        hits = []
        for q, neighbours in zip(rows, top):
            mine = values[q]
            if mine is None:
                continue
            same = [values[n] == mine for n in neighbours]
            if column == "design":
                if sum(values[i] == mine for i in range(len(values)) if i != q) == 0:
                    continue
                hits.append(float(any(same)))
            else:
                hits.append(sum(same) / k)
        out[column] = float(np.mean(hits))
    return out


def test_validation_scores_equal_a_brute_force_reference(model, data):
    scores = validation_scores(model, data)
    assert set(scores) == set(model.focuses) == {"overall", "design", "shape", "colour", "pattern"}
    for focus in model.focuses:
        reference = brute_force(model, data, focus)
        assert set(scores[focus]) == set(reference)
        for label, value in reference.items():
            # one neighbour swapped by float rounding moves a figure by 1/(k x queries) at most per tie
            assert scores[focus][label] == pytest.approx(value, abs=0.011), (focus, label)
    # counting the query as its own design hit would give 1.0 to every focus
    assert max(scores[f]["design"] for f in model.focuses) < 0.9


def test_the_chosen_overall_weights_are_the_best_row_and_what_the_model_then_scores(model, data):
    weights, table = choose_overall_weights(model, data)
    assert set(weights) == set(model.focus_columns) and weights["shape"] == 1.0
    best = max(table, key=lambda r: r["worst_ratio_to_target"])
    assert {f: weights[f] for f in best["weights"]} == best["weights"]
    chosen = validation_scores(with_config(model, overall_weights=weights), data)["overall"]
    for label in ("product_type_name", "colour_group_name", "graphical_appearance_name"):
        assert chosen[label] == pytest.approx(best[label], abs=1e-4)


def test_flip_tta_is_kept_only_where_it_pays(model, data):
    keep, table = choose_flip_tta(model, data)
    gains = [table["with_flip"][f][label] - table["without_flip"][f][label] for f, label in GOALS]
    assert keep == (max(gains) > 0.01)
    keep_strict, _ = choose_flip_tta(model, data, min_gain=1.0)
    assert keep_strict is False
