"""atomic.py: round-trips, and a failed write leaves the old file and no temporary file."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fashrec.atomic import (
    atomic_path,
    save_safetensors_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_json_round_trip_and_creates_parent(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"ü": "tëxt"}, "n": 3}
    path = tmp_path / "sub" / "dir" / "x.json"
    write_json_atomic(obj, path)
    assert json.loads(path.read_text("utf-8")) == obj
    assert leftovers(path.parent) == []


def test_text_and_bytes_round_trip(tmp_path):
    write_text_atomic("héllo\n", tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_text("utf-8") == "héllo\n"
    write_bytes_atomic(b"\x00\xff", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_safetensors_round_trip_with_metadata(tmp_path):
    tensors = {"w": torch.randn(4, 5), "t": torch.arange(6).view(2, 3).t(), "h": torch.ones(2, dtype=torch.float16)}
    path = tmp_path / "m.safetensors"
    save_safetensors_atomic(tensors, path, metadata={"format": "pt", "k": "v"})
    back = load_file(path)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(back[k], v) and back[k].dtype == v.dtype
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "pt", "k": "v"}
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_whole_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic({"long": "x" * 1000}, path)
    write_json_atomic({"s": 1}, path)
    assert json.loads(path.read_text()) == {"s": 1}


def test_failure_inside_atomic_path_keeps_old_file_and_no_temp(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic({"old": True}, path)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"old": True}
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_failure_while_serialising_keeps_old_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic({"old": True}, path)
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, path)
    with pytest.raises(Exception):
        save_safetensors_atomic({"x": "not a tensor"}, tmp_path / "m.safetensors")
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    path = tmp_path / "x.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_atomic_files_get_the_normal_mode_not_mkstemps_0600(tmp_path):
    import os

    from fashrec.atomic import write_text_atomic

    write_text_atomic("x", tmp_path / "card.md")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "card.md").stat().st_mode & 0o777 == 0o666 & ~mask


def test_replace_dir_swaps_a_complete_folder_and_keeps_the_old_one_on_failure(tmp_path, monkeypatch):
    import os

    import pytest

    import fashrec.atomic
    from fashrec.atomic import replace_dir

    target, staging = tmp_path / "index", tmp_path / "staging"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_dir(staging, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no backup left behind

    staging.mkdir()
    real_replace = os.replace
    # the fallback where the OS cannot swap two folders in one step (Linux swaps them: see test_embed_fast)
    monkeypatch.setattr(fashrec.atomic, "_exchange", lambda a, b: False)

    def failing(src, dst):
        if str(src) == str(staging):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        replace_dir(staging, target)
    assert (target / "new.txt").read_text() == "new"  # the old folder is back in place
