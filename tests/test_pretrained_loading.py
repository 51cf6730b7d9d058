"""Loading as a user of the mixin would: shipped names, the mixin's keywords, clear offline errors, and
``save_pretrained(config=)`` refused rather than dropped."""
from __future__ import annotations

import pytest
import torch

import fashrec
from fashrec.models.hub_model import weights_hash


@pytest.mark.parametrize("name, model_class", [("paper-ae", "ConvAE"), ("multitask-cnn", "MultiTaskCNN"),
                                               ("default", "MultiTaskCNN")])
def test_shipped_names_load_by_name(name, model_class):
    model = fashrec.from_pretrained(name)
    assert type(model).__name__ == model_class
    assert weights_hash(model) == weights_hash(fashrec.from_pretrained(fashrec.pretrained.path(name)))


def test_a_local_folder_named_like_a_shipped_checkpoint_wins(tmp_path, monkeypatch):
    torch.manual_seed(3)
    mine = fashrec.ConvAE(latent_dim=8)
    mine.save_pretrained(tmp_path / "paper-ae")
    monkeypatch.chdir(tmp_path)
    assert weights_hash(fashrec.from_pretrained("paper-ae")) == weights_hash(mine)


def test_the_mixin_keywords_pass_through(untrained_ae_dir):
    model = fashrec.ConvAE.from_pretrained(untrained_ae_dir, strict=False, map_location="cpu", revision=None,
                                           force_download=False, token=None, cache_dir=None, local_files_only=True)
    assert type(model) is fashrec.ConvAE and not model.training


def test_strict_false_tolerates_missing_weights_but_strict_refuses_them(tmp_path, untrained_ae_dir):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "config.json").write_bytes((untrained_ae_dir / "config.json").read_bytes())
    state = load_file(str(untrained_ae_dir / "model.safetensors"))
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=f"missing keys.*{dropped}"):
        fashrec.ConvAE.from_pretrained(folder)
    assert type(fashrec.ConvAE.from_pretrained(folder, strict=False)) is fashrec.ConvAE


def test_other_keywords_still_override_the_config(untrained_ae_dir):
    with pytest.raises(ValueError, match=r"does not take: \['colour'\]"):
        fashrec.from_pretrained(untrained_ae_dir, colour="red")


def test_a_repo_neither_cached_nor_reachable_says_so(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        fashrec.from_pretrained("someone/never-downloaded")
    message = str(err.value)
    assert "not in the local Hub cache" in message and "HF_HUB_OFFLINE" in message
    assert "has no config.json" not in message and "\n" not in message


def test_save_pretrained_refuses_a_config_it_would_not_write(tmp_path):
    model = fashrec.ConvAE()
    with pytest.raises(ValueError, match=r"differs .* in \['channels'\]"):
        model.save_pretrained(tmp_path / "a", config={"channels": [4, 2]})
    assert not (tmp_path / "a").exists()
    model.save_pretrained(tmp_path / "b", config={"channels": [16, 8]})  # what it writes anyway: fine
    assert type(fashrec.from_pretrained(tmp_path / "b")) is fashrec.ConvAE
