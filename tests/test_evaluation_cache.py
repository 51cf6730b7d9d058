"""Baselines kept on disk: a warm run prints the very scores of a cold one and of a run without a cache,
recomputes neither the raw / PCA searches nor the PCA fit, and other data never reads another's entries."""
import numpy as np
import pytest
import torch

import fashrec.eval.retrieval as retrieval
from fashrec.eval.evaluation import evaluate_tensors
from tests.test_evaluation import PointModel

LABELS = ["a", "b", "c"]


def data(seed=0, n_train=40, n_test=12):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.random((n_train + n_test, 3, 8, 8), dtype=np.float32))
    y = rng.choice(LABELS, size=n_train + n_test).tolist()
    return dict(train_images=x[:n_train], test_images=x[n_train:],
                train_labels={"product_type_name": y[:n_train]}, test_labels={"product_type_name": y[n_train:]})


def score(cache_dir, split="test", **kw):
    return evaluate_tensors(model=PointModel(dim=5), k=3, split=split, progress=False, cache_dir=cache_dir,
                            **{**data(), **kw})


class Counter:
    def __init__(self, monkeypatch):
        self.searches, self.fits = [], 0
        real_neighbours = retrieval.neighbour_positions

        def neighbours(index, matrix, query_rows, k, metric, progress, desc):
            self.searches.append(desc)
            return real_neighbours(index, matrix, query_rows, k, metric, progress, desc)

        from sklearn.decomposition import PCA

        real_fit = PCA.fit

        def fit(pca, *args, **kwargs):
            self.fits += 1
            return real_fit(pca, *args, **kwargs)

        monkeypatch.setattr(retrieval, "neighbour_positions", neighbours)
        monkeypatch.setattr(PCA, "fit", fit)


@pytest.mark.parametrize("split", ["test", "test-only", "all"])
def test_a_warm_run_gives_the_same_scores_without_recomputing_the_baselines(tmp_path, monkeypatch, split):
    reference = score(False, split=split)
    counter = Counter(monkeypatch)
    cold = score(tmp_path, split=split)
    assert cold == reference
    assert counter.fits == 1 and sorted(counter.searches) == sorted(
        f"{e} {m}" for e in ("model", "pca", "raw") for m in ("cityblock", "euclidean", "cosine"))
    counter.searches.clear()
    warm = score(tmp_path, split=split)
    assert warm == reference
    assert counter.fits == 1  # no PCA fit: neighbours and reconstruction errors came from the cache
    assert sorted(counter.searches) == ["model cityblock", "model cosine", "model euclidean"]


def test_other_data_or_settings_never_read_another_runs_entries(tmp_path, monkeypatch):
    score(tmp_path)
    counter = Counter(monkeypatch)
    changed = data()
    changed["test_images"] = changed["test_images"].clone()
    changed["test_images"][0, 0, 0, 0] += 0.5  # one value of one image
    assert score(tmp_path, **changed) == score(False, **changed)
    assert counter.fits >= 1 and any(s.startswith("raw") for s in counter.searches)
    counter.searches.clear()
    assert score(tmp_path, seed=7) == score(False, seed=7)  # another PCA seed: another entry
    assert any(s.startswith("pca") for s in counter.searches)
    assert len(list((tmp_path / "eval").iterdir())) == 3


def test_a_damaged_entry_is_recomputed(tmp_path):
    reference = score(tmp_path)
    for entry in (tmp_path / "eval").rglob("*.safetensors"):
        entry.write_bytes(b"not a safetensors file")
    assert score(tmp_path) == reference
