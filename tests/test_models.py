"""Models: the paper's shapes, save/load round trips, class dispatch and strict loading."""
import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import fashrec
from fashrec.models.hub_model import weights_hash
from fashrec import ConvAE, ConvVAE, HubModel

MODELS = [ConvAE, ConvVAE]


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g)


def test_default_convae_is_table_3_3():
    m = ConvAE()
    convs = [l for l in m.encoder if isinstance(l, torch.nn.Conv2d)]
    deconvs = [l for l in m.decoder if isinstance(l, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 16, (3, 3), (2, 2), (1, 1)), (16, 8, (3, 3), (2, 2), (1, 1))]
    assert [(d.in_channels, d.out_channels, d.kernel_size, d.stride, d.padding, d.output_padding) for d in deconvs] == [
        (8, 16, (3, 3), (2, 2), (1, 1), (1, 1)), (16, 3, (3, 3), (2, 2), (1, 1), (1, 1))]
    acts = [type(l).__name__ for l in list(m.encoder) + list(m.decoder) if not isinstance(l, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert acts == ["ReLU", "Sigmoid", "ReLU", "Sigmoid"]
    x = _batch()
    assert m.encode(x).shape == (4, 8, 16, 16)
    assert m.embedding_dim == 2048


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("kwargs,dim", [({}, 2048), ({"channels": [32, 64, 128], "latent_dim": 128}, 128),
                                        ({"channels": [8, 8, 4]}, 256)])
def test_shapes(cls, kwargs, dim):
    m = cls(**kwargs).eval()
    x = _batch()
    with torch.no_grad():
        out = m(x)
    recon = out[0] if isinstance(out, tuple) else out
    assert recon.shape == x.shape
    assert m.reconstruct(x).shape == x.shape
    assert float(recon.min()) >= 0 and float(recon.max()) <= 1
    e = m.embed(x)
    assert e.shape == (4, dim) and m.embedding_dim == dim and e.dtype == torch.float32
    en = m.embed(x, normalize=True)
    assert torch.allclose(en.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(en, e / e.norm(dim=1, keepdim=True), atol=1e-6)
    losses = m.loss(x)
    assert losses["loss"].requires_grad and torch.isfinite(losses["loss"])


def test_vae_embeds_mu_not_a_sample():
    m = ConvVAE().train()  # even in training mode, embed must be deterministic and equal mu
    x = _batch()
    mu, logvar = m.encode(x)
    assert torch.equal(m.embed(x), mu.flatten(1))
    assert torch.equal(m.embed(x), m.embed(x))
    assert torch.equal(m.reconstruct(x), m.decode(mu))
    torch.manual_seed(0)
    r1, _, _ = m(x)
    torch.manual_seed(1)
    r2, _, _ = m(x)
    assert not torch.equal(r1, r2), "training forward must sample z"


def _set_vae_heads(m, *, mu_bias, logvar_bias):
    """Zero both heads' weights and set their biases: mu and logvar become known constants for any input."""
    with torch.no_grad():
        for head, bias in ((m.mu, mu_bias), (m.logvar, logvar_bias)):
            head.weight.zero_()
            head.bias.fill_(bias)


@pytest.mark.parametrize("kwargs", [{}, {"channels": [8, 8, 4], "latent_dim": 16}])
def test_vae_forward_returns_mu_then_logvar_from_their_own_heads(kwargs):
    """forward is (recon, mu, logvar): with the heads set by hand, each output must be its own head's value."""
    m = ConvVAE(**kwargs).eval()
    _set_vae_heads(m, mu_bias=0.25, logvar_bias=-1.5)
    x = _batch()
    recon, mu, logvar = m(x)
    assert torch.all(mu == 0.25) and torch.all(logvar == -1.5)
    assert torch.equal(m.embed(x), mu.flatten(1))  # the embedding is mu, not logvar
    assert torch.equal(recon, m.decode(mu))  # eval mode decodes mu itself
    assert mu.shape == logvar.shape and mu.flatten(1).shape[1] == m.embedding_dim


def test_vae_samples_with_standard_deviation_exp_half_logvar():
    """z = mu + exp(logvar / 2) * eps: logvar = log 4 gives sigma = 2 around mu."""
    m = ConvVAE()
    mu = torch.full((4000,), 3.0)
    logvar = torch.full((4000,), float(np.log(4.0)))
    torch.manual_seed(0)
    z = m.sample(mu, logvar)
    assert abs(float(z.mean()) - 3.0) < 0.1 and abs(float(z.std()) - 2.0) < 0.1
    m.train()
    _set_vae_heads(m, mu_bias=0.0, logvar_bias=-30.0)  # sigma = exp(-15): a sample is mu up to 1e-6
    x = _batch()
    recon, mu_out, _ = m(x)
    assert torch.allclose(recon, m.decode(mu_out), atol=1e-5)


@pytest.mark.parametrize("mu_value,logvar_value", [(0.0, 0.0), (0.5, 0.0), (0.0, -2.0), (1.0, 0.7)])
def test_vae_kl_is_the_closed_form_of_known_mu_and_logvar(mu_value, logvar_value):
    """KL(N(mu, sigma) || N(0, 1)) summed over z, per image, from heads set by hand: independent of the
    model's own outputs, so a swapped (mu, logvar) or a wrong sign is seen."""
    m = ConvVAE(channels=[8, 4])
    _set_vae_heads(m, mu_bias=mu_value, logvar_bias=logvar_value)
    x = _batch()
    parts = m.loss(x, beta=2.0)
    per_value = 0.5 * (mu_value**2 + np.exp(logvar_value) - 1.0 - logvar_value)
    expected_kl = per_value * m.embedding_dim
    assert float(parts["kl"]) == pytest.approx(expected_kl, rel=1e-5, abs=1e-6)
    assert float(parts["loss"].detach()) == pytest.approx(float(parts["mse"]) + 2.0 * expected_kl / (3 * 64 * 64), rel=1e-5, abs=1e-7)


def test_vae_loss_matches_formula():
    m = ConvVAE()
    x = _batch()
    torch.manual_seed(3)
    parts = m.loss(x, beta=0.5)
    torch.manual_seed(3)
    recon, mu, logvar = m(x)
    mse = ((recon - x) ** 2).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum() / x.shape[0]
    assert torch.allclose(parts["mse"], mse, atol=1e-7)
    assert torch.allclose(parts["kl"], kl, rtol=1e-5)
    assert torch.allclose(parts["loss"], mse + 0.5 * kl / (3 * 64 * 64), rtol=1e-5)


def test_embed_rejects_unpreprocessed_input():
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        ConvAE().embed(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown focus"):
        ConvAE().embed(_batch(), focus="colour")


@pytest.mark.parametrize("cls", MODELS)
def test_save_load_round_trip_offline(cls, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = cls(channels=[16, 32, 8], preprocess={"pad_value": 1.0}).eval()
    m.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_class"] == cls.__name__
    assert config["channels"] == [16, 32, 8]
    assert config["preprocess"]["pad_value"] == 1.0
    loaded = fashrec.from_pretrained(tmp_path)  # generic loader dispatches on model_class
    assert type(loaded) is cls
    assert loaded.preprocess_config == m.preprocess_config
    assert loaded.config_dict() == m.config_dict()
    x = _batch()
    assert torch.equal(loaded.embed(x), m.embed(x))
    assert torch.equal(loaded.reconstruct(x), m.reconstruct(x))
    assert type(cls.from_pretrained(tmp_path)) is cls
    assert weights_hash(loaded) == weights_hash(m)


def test_class_dispatch_refuses_wrong_class(tmp_path):
    ConvVAE().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is a ConvVAE, not a ConvAE"):
        ConvAE.from_pretrained(tmp_path)
    assert isinstance(HubModel.from_pretrained(tmp_path), ConvVAE)


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path):
    ConvAE().save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state.pop("decoder.2.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as info:
        fashrec.from_pretrained(tmp_path)
    assert "missing keys ['decoder.2.bias']" in str(info.value)
    assert "unexpected keys ['extra.weight']" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "unexpected"])
def test_strict_loading_refuses_each_kind_of_key_error_on_its_own(tmp_path, kind):
    """Missing keys alone (or unexpected keys alone) are refused: a loader that only checks one kind, or
    that needs both before it complains, would load a half-initialised model."""
    ConvAE().save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    if kind == "missing":
        state.pop("decoder.2.bias")
    else:
        state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as info:
        fashrec.from_pretrained(tmp_path)
    message = str(info.value)
    if kind == "missing":
        assert "missing keys ['decoder.2.bias']" in message and "unexpected" not in message
    else:
        assert "unexpected keys ['extra.weight']" in message and "missing" not in message


def test_strict_loading_names_shape_mismatch(tmp_path):
    ConvAE(channels=[16, 8]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["channels"] = [16, 4]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"shape mismatches .*encoder.2.weight"):
        fashrec.from_pretrained(tmp_path)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(depth=3), r"does not take: \['depth'\]"),
    (lambda c: c.update(model_class="ResNet50"), "unknown model_class 'ResNet50'"),
    (lambda c: c.update(channels=[16, 8, 4, 2, 1, 1, 1]), "cannot take"),
    (lambda c: c["preprocess"].update(mean=0.5), r"unknown keys \['mean'\]"),
    (lambda c: c.update(latent_dim=-3), "cannot take"),
])
def test_wrong_config_is_refused_with_a_clear_error(tmp_path, mutate, message):
    ConvAE().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    mutate(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        fashrec.from_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        fashrec.from_pretrained(tmp_path)
    ConvAE().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        fashrec.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="could not be read as safetensors"):
        fashrec.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        fashrec.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        fashrec.from_pretrained(tmp_path / "nope")


def test_pickled_weights_are_never_loaded(tmp_path):
    """Only model.safetensors is read: a pytorch_model.bin beside a missing safetensors file is ignored."""
    ConvAE().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        fashrec.from_pretrained(tmp_path)


def test_embed_images_uses_the_models_preprocessing(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (360, 540), (200, 30, 30))
    m = ConvAE(preprocess={"pad_value": 1.0}).eval()
    x = fashrec.preprocess_batch([img], m.preprocess_config)
    assert torch.equal(m.embed_images([img]), m.embed(x))
    assert float(x[0, :, 0, 0].min()) == 1.0  # white padding from the model's own config


def test_preprocess_stays_the_function_after_submodule_imports():
    import importlib

    importlib.import_module("fashrec.data.tensor_cache")
    importlib.import_module("fashrec.data.preprocess")
    assert callable(fashrec.preprocess) and fashrec.preprocess.__name__ == "preprocess"


def test_weights_hash_handles_0d_buffers_and_sees_every_change():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))  # num_batches_tracked is 0-d
    h = weights_hash(m)
    m[1].num_batches_tracked += 1
    assert weights_hash(m) != h
    m[1].num_batches_tracked -= 1
    assert weights_hash(m) == h
    with torch.no_grad():
        m[0].weight[0, 0, 0, 0] += 1e-6
    assert weights_hash(m) != h


def test_compact_convae_code_is_linear_and_trains_away_from_the_mean_image():
    """A sigmoid on the linear code saturated within ~20 steps (every code equal); the code must stay linear."""
    torch.manual_seed(0)
    m = ConvAE(channels=[8, 16], latent_dim=16)
    assert not any(isinstance(layer, torch.nn.Sigmoid) for layer in m.to_code)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(32, 3, 64, 64, generator=g) * torch.rand(32, 1, 1, 1, generator=g)  # varied brightness
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        m.loss(x)["loss"].backward()
        opt.step()
    codes = m.embed(x)
    assert float(codes.std(0).mean()) > 1e-3, "codes collapsed to one point"
    mean_image_mse = float(((x - x.mean(0, keepdim=True)) ** 2).mean())
    assert float(m.loss(x)["mse"]) < mean_image_mse


# ----- contracts pinned by mutation testing (docs/testing.md) ------------------------------------------


def test_input_check_names_the_model_the_shape_and_the_fix():
    m = ConvAE()
    with pytest.raises(ValueError) as info:
        m.embed(torch.rand(2, 3, 32, 32))
    assert str(info.value) == (
        "ConvAE expects a preprocessed batch of shape (N, 3, 64, 64); got (2, 3, 32, 32). "
        "Use fashrec.preprocess_batch(images, model.preprocess_config) or model.embed_images(images).")
    with pytest.raises(ValueError, match=r"^ConvAE expects .*; got ndarray\. Use"):
        m.embed(np.zeros((2, 3, 64, 64), np.float32))  # right shape, but not a tensor


class _TwoFocusAE(ConvAE):
    """A ConvAE with a second focus that doubles the code: enough to see which focus was used."""

    focuses = ("overall", "double")

    def _embed(self, x, focus):
        return self._code(x) * (2 if focus == "double" else 1)


def test_embed_images_batches_preprocesses_and_passes_every_option(monkeypatch, capsys):
    import fashrec.data.preprocess as preprocess_module
    from PIL import Image

    m = _TwoFocusAE(channels=[8, 4]).eval()
    assert m.embed_images([]).shape == (0, m.embedding_dim)
    images = [Image.new("RGB", (6, 9), (i, 100, 200 - i)) for i in range(300)]
    calls = []
    real = preprocess_module.preprocess_batch

    def spy(batch, config=None, *, progress=False):
        calls.append(len(batch))
        return real(batch, config, progress=progress)

    monkeypatch.setattr(preprocess_module, "preprocess_batch", spy)
    out = m.embed_images(images)
    assert calls == [256, 44]  # the default batch size
    x = real(images, m.preprocess_config)
    assert torch.equal(out, m.embed(x))
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    assert torch.allclose(m.embed_images(images, batch_size=100, normalize=True, focus="double"),
                          m.embed(x, normalize=True, focus="double"))
    assert calls[2:] == [100, 100, 100]
    assert torch.equal(m.embed_images(images[:3], focus="double"), 2 * m.embed(x[:3]))
    m.embed_images(images[:3], progress=True)
    assert "preprocess" in capsys.readouterr().err


def test_config_json_and_weights_file_carry_what_readers_expect(tmp_path):
    from safetensors import safe_open

    ConvAE(channels=[8, 4]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["fashrec_version"] == fashrec.__version__ and config["embedding_dim"] == 4 * 16 * 16
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    card = (tmp_path / "README.md").read_text()
    assert "library_name: fashrec" in card


def test_weights_hash_is_the_documented_digest():
    """sha256 over sorted names: 'name|dtype|shape|' then the raw bytes (none for an empty tensor). The
    digest is stored in saved indexes, so it must not drift."""
    import hashlib

    state = {"b": torch.arange(3, dtype=torch.float32), "a": torch.zeros(0), "c": torch.tensor(7)}
    module = torch.nn.Module()
    for name, value in state.items():
        module.register_buffer(name, value)
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    assert weights_hash(module) == h.hexdigest()


def test_load_messages_start_with_the_source(tmp_path):
    from fashrec.models.hub_model import load_state_strict

    ConvAE().save_pretrained(tmp_path)
    src = re.escape(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    state = load_file(str(tmp_path / "model.safetensors"))
    state.pop("decoder.2.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"^{src}: weights do not match ConvAE: missing keys \['decoder.2.bias'\]; "
                                         r"unexpected keys \['extra.weight'\]$"):
        fashrec.from_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: weights do not match ConvAE: missing"):
        load_state_strict(ConvAE(), weights)  # no source given: the file names itself
    for mutate, message in ((lambda c: c.update(model_class="Nope"), "unknown model_class 'Nope'"),
                            (lambda c: c.update(depth=2), r"config.json has keys ConvAE does not take: \['depth'\]"),
                            (lambda c: c.update(self=1), r"config.json has keys ConvAE does not take: \['self'\]")):
        changed = dict(config)
        mutate(changed)
        (tmp_path / "config.json").write_text(json.dumps(changed))
        with pytest.raises(ValueError, match=rf"^{src}: {message}"):
            fashrec.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"^{src}: config.json must hold a JSON object$"):
        fashrec.from_pretrained(tmp_path)


def test_a_config_without_model_class_needs_the_class(tmp_path):
    m = ConvAE(channels=[8, 4])
    m.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["model_class"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}: config.json has no 'model_class'; "
                                         "load it with the model class itself$"):
        fashrec.from_pretrained(tmp_path)
    assert weights_hash(ConvAE.from_pretrained(tmp_path)) == weights_hash(m)


def test_map_location_reaches_the_loaded_model(tmp_path):
    ConvAE(channels=[8, 4]).save_pretrained(tmp_path)
    loaded = fashrec.from_pretrained(tmp_path, map_location="meta")
    assert {p.device.type for p in loaded.parameters()} == {"meta"} and not loaded.training


@pytest.mark.parametrize("source", ["./nope", ".nope", "/nope", "~nope", "a/b/c"])
def test_what_is_not_a_repo_id_never_reaches_the_hub(source, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: pytest.fail(f"asked the Hub for {kw}"))
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(source)}: not a checkpoint folder, and not a Hub repo id"):
        fashrec.from_pretrained(source)


def test_hub_downloads_pass_every_option(monkeypatch, tmp_path):
    import huggingface_hub

    folder = tmp_path / "ckpt"
    ConvAE(channels=[8, 4]).save_pretrained(folder)
    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        return str(folder / kwargs["filename"])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    fashrec.from_pretrained("org/name")
    options = dict(revision=None, cache_dir=None, force_download=False, token=None, local_files_only=False)
    assert calls == [dict(repo_id="org/name", filename=f, **options) for f in ("config.json", "model.safetensors")]
    calls.clear()
    options = dict(revision="v1", cache_dir=str(tmp_path), force_download=True, token="t", local_files_only=True)
    ConvAE.from_pretrained("org/name", **options)
    assert calls == [dict(repo_id="org/name", filename=f, **options) for f in ("config.json", "model.safetensors")]


def test_push_and_load_through_a_fake_hub(hub_server, tmp_path):
    """The Hub path for real: push, load by id into a cache, a past revision,
    and the errors for a missing repo and a missing file."""
    import huggingface_hub
    from tests.hub_server import USER

    repo = f"{USER}/tiny-ae"
    first = ConvAE(channels=[8, 4]).eval()
    first.push_to_hub(repo, token=hub_server.token)
    api = huggingface_hub.HfApi(token=hub_server.token)
    card = open(huggingface_hub.hf_hub_download(repo, "README.md", token=hub_server.token)).read()
    assert "library_name: fashrec" in card
    revision = api.list_repo_commits(repo)[0].commit_id
    torch.manual_seed(1)
    second = ConvAE(channels=[8, 4]).eval()
    second.push_to_hub(repo, token=hub_server.token)
    cache = tmp_path / "cache"
    loaded = fashrec.from_pretrained(repo, cache_dir=cache, token=hub_server.token)
    assert weights_hash(loaded) == weights_hash(second) and any(cache.rglob("model.safetensors"))
    assert weights_hash(fashrec.from_pretrained(repo, revision=revision, token=hub_server.token)) == weights_hash(first)
    with pytest.raises(FileNotFoundError, match=f"^{USER}/nothing-here: no such Hub repo \\(or no access to it\\)$"):
        fashrec.from_pretrained(f"{USER}/nothing-here", token=hub_server.token)
    api.delete_file("model.safetensors", repo)
    with pytest.raises(FileNotFoundError, match=f"^{repo}: the Hub repo has no model.safetensors$"):
        fashrec.from_pretrained(repo, token=hub_server.token, force_download=True)


def test_from_pretrained_imports_the_model_module_it_needs(tmp_path, monkeypatch):
    """A checkpoint whose class is not registered yet (its module not imported) still loads: the model
    modules are imported on demand, and one that fails to import does not stop the others."""
    import sys

    import fashrec.models
    from fashrec.models import hub_model

    ConvVAE(channels=[8, 4]).save_pretrained(tmp_path)
    monkeypatch.delitem(hub_model._REGISTRY, "ConvVAE")
    monkeypatch.delitem(sys.modules, "fashrec.models.conv_vae")
    monkeypatch.setattr(fashrec.models, "conv_vae", None)  # the import rebinds it; restored afterwards
    monkeypatch.setitem(sys.modules, "fashrec.models.conv_ae", None)  # an earlier module that fails to import
    loaded = fashrec.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "ConvVAE" and type(loaded) is not ConvVAE  # from a fresh import
