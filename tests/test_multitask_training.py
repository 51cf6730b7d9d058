"""The default model's training path: `fashrec train --model multitask` with the AE path's guarantees."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from fashrec.models.contrastive import supervised_contrastive_loss
from fashrec.training.design_batches import DesignBatches
from fashrec.training.loop import CHECKPOINT
from fashrec.training.multitask_data import load_multitask_data
from fashrec.training.train_state import load_train_state
from tests.test_training import _child, _sigkill, _wait_for

COLUMNS = ["product_type_name", "colour_group_name", "graphical_appearance_name"]
FLAGS = ["--model", "multitask", "--data", "sample", "--widths", "8,16,16,16", "--head-dim", "8", "--val-size", "100",
         "--batch-size", "64", "--epochs", "5", "--seed", "3", "--threads", "1", "--no-progress", "--no-evaluate"]


def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(tmp_path, capsys):
    from fashrec.cli import main

    cache = ["--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "killed"
    with _child(["-m", "fashrec.cli", "train", *FLAGS, *cache, "--out", str(out)]) as proc:
        _wait_for((out / CHECKPOINT).exists, timeout=300, what="the first epoch's checkpoint", proc=proc)
        _sigkill(proc)
    done = load_train_state(out / CHECKPOINT).epoch
    assert 1 <= done < 5 and not (out / "metrics.json").exists()
    # changed flags are refused, in one line naming the flag
    assert main(["train", *FLAGS, *cache, "--out", str(out), "--resume", "--lr", "0.01"]) == 1
    assert "cannot resume, the run differs from the checkpoint in ['lr']" in capsys.readouterr().err
    assert main(["train", *FLAGS, *cache, "--out", str(out), "--resume"]) == 0
    assert main(["train", *FLAGS, *cache, "--out", str(tmp_path / "straight")]) == 0
    resumed, straight = (load_file(str(p / "model.safetensors")) for p in (out, tmp_path / "straight"))
    assert resumed.keys() == straight.keys()
    for key in resumed:
        assert torch.equal(resumed[key], straight[key]), key
    history = [json.loads((p / "metrics.json").read_text())["history"] for p in (out, tmp_path / "straight")]
    assert history[0] == history[1] and len(history[0]["train_loss"]) == 5
    assert "train_supcon" in history[0] and "validation_acc/product_type_name" in history[0]
    assert not any(k.startswith("test") for k in history[0])  # the held-out split here is validation, not test
    args = json.loads((out / "training_args.json").read_text())
    assert str(tmp_path) not in json.dumps(args)  # no local path on what the card shows
    assert (out / "loss_curve.png").stat().st_size > 0 and (out / "README.md").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["validation"]) == {"overall", "design", "shape", "colour", "pattern"}
    assert metrics["overall_weight_search"] and metrics["data"]["validation_photos"] == 100


def test_missing_and_unknown_labels_are_reported_by_id_not_dropped():
    import fashrec

    data = load_multitask_data("sample", columns=COLUMNS, val_size=100, progress=False)
    train = fashrec.load_hm("sample", progress=False)["train"]
    names = train.features["product_type_name"].names
    val = set(data.catalogue_ids[i] for i in data.val_rows)
    unknown = sorted(a for a, t in zip(train["article_id"], train["product_type_name"])
                     if a not in val and (t < 0 or names[t] == "Unknown"))
    assert unknown and sorted(data.missing["product_type_name"]) == unknown
    assert data.images.shape[0] == len(train) - 100  # every training photo kept
    assert int((data.labels["product_type_name"] == -1).sum()) == len(unknown)
    assert "Unknown" not in data.classes["product_type_name"]
    report = data.report()["labels_missing_or_unknown"]["product_type_name"]
    assert report["count"] == len(unknown) and sorted(report["article_ids"]) == unknown


def test_extra_data_with_another_column_layout_is_refused_naming_the_columns(tmp_path):
    import fashrec
    import pandas as pd

    sample = fashrec.SAMPLE_DIR
    meta = pd.read_csv(sample / "metadata.csv", dtype=str).head(4)
    for name in meta["file_name"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / name, tmp_path / name)
    meta.drop(columns=["colour_group_name", "product_code"]).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['colour_group_name', 'product_code'\]"):
        load_multitask_data("sample", [tmp_path], columns=COLUMNS, val_size=100, progress=False)


def test_supervised_contrastive_loss_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g)
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    t = 0.5
    unit = torch.nn.functional.normalize(z, dim=1)
    total, anchors = 0.0, 0
    for a in range(6):
        positives = [p for p in range(6) if p != a and groups[p] == groups[a]]
        if not positives:
            continue
        denominator = sum(torch.exp(unit[a] @ unit[b] / t) for b in range(6) if b != a)
        total += -sum(torch.log(torch.exp(unit[a] @ unit[p] / t) / denominator) for p in positives) / len(positives)
        anchors += 1
    assert supervised_contrastive_loss(z, groups, t) == pytest.approx(float(total / anchors), rel=1e-5)
    assert float(supervised_contrastive_loss(z, torch.arange(6), t)) == 0.0  # no pairs, no loss


def test_design_batches_hold_distinct_colourway_pairs():
    designs = torch.tensor([0, 0, 0, 1, 2, 2, 3, -1, -1])
    sampler = DesignBatches(designs, pair_fraction=0.5)
    assert sampler.n_designs_with_pairs == 2  # designs 0 and 2 (unknown ids never pair)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        batch = sampler.batch(g, 8)
        assert batch.shape == (8,)
        first, second = batch[:2], batch[2:4]  # the pairs' first members, then their second members
        assert (first != second).all() and (designs[first] == designs[second]).all()
        assert set(designs[first].tolist()) <= {0, 2}
