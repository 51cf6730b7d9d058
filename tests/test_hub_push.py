"""Publishing to the Hub, against the local fake Hub (tests/hub_server.py): nothing leaves the machine."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from huggingface_hub import HfApi, ModelCard

import fashrec
from fashrec.models.hub_model import weights_hash
from fashrec.cli import main
from fashrec.hub.push import HubPushError, check_folder, files_to_push, push_folder
from fashrec.hub_card import render_model_card


def _batch(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _trained_looking_model() -> fashrec.ConvAE:
    torch.manual_seed(1)
    model = fashrec.ConvAE(latent_dim=32)
    with torch.no_grad():  # move away from the default init so a silent re-init would be caught
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _model_folder(tmp_path, model) -> "pathlib.Path":  # noqa: F821
    folder = tmp_path / "run"
    model.save_pretrained(folder)
    card = render_model_card(model_class="ConvAE", config=model.config_dict(), repo_id="fashrec-tester/pushed",
                             metrics={"test_mse": 0.0123}, images={"loss curve": "loss_curve.png"})
    (folder / "README.md").write_text(card, encoding="utf-8")
    (folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\nfake-loss-curve")
    (folder / "examples").mkdir()
    (folder / "examples" / "grid.png").write_bytes(b"\x89PNG\r\n\x1a\nfake-grid")
    # training leftovers that must stay behind
    (folder / ".model.safetensors.abc.tmp").write_bytes(b"half a file")
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "state.safetensors").write_bytes(b"optimizer state")
    return folder


def test_push_to_hub_then_from_pretrained_gives_identical_outputs(hub_server):
    model = _trained_looking_model()
    repo_id = hub_server.repo_id("conv-ae")
    url = model.push_to_hub(repo_id, token=hub_server.token)
    assert url.startswith(hub_server.endpoint)

    loaded = fashrec.from_pretrained(repo_id)
    assert type(loaded) is fashrec.ConvAE
    x = _batch()
    assert torch.equal(loaded.embed(x), model.embed(x))
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    assert weights_hash(loaded) == weights_hash(model)

    files = hub_server.files(repo_id)
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert json.loads(files["config.json"])["model_class"] == "ConvAE"
    card = ModelCard(files["README.md"].decode())
    # straight from memory: the mixin's own card (a model knows neither its data nor its scores)
    assert card.data.library_name == "fashrec" and card.data.license is None


def test_push_folder_makes_one_commit_with_every_file(hub_server, tmp_path):
    model = _trained_looking_model()
    folder = _model_folder(tmp_path, model)
    repo_id = hub_server.repo_id("pushed")

    url = push_folder(folder, repo_id, token=hub_server.token, commit_message="first release")

    commits = hub_server.commits(repo_id)
    assert [c.title for c in commits] == ["initial commit", "first release"]  # the Hub's own, then exactly one
    assert url.endswith(commits[-1].oid)
    pushed = hub_server.files(repo_id)
    expected = {"config.json", "model.safetensors", "README.md", "loss_curve.png", "examples/grid.png"}
    assert set(pushed) == expected | {".gitattributes"}
    for name in expected:
        assert pushed[name] == (folder / name).read_bytes(), name
    # the pushed model loads back to the same weights, and the card shows its score
    loaded = fashrec.from_pretrained(repo_id, token=hub_server.token)  # private: it shows a grid of photos
    assert torch.equal(loaded.embed(_batch()), model.embed(_batch()))
    info = HfApi(token=hub_server.token).model_info(repo_id)
    assert info.library_name == "fashrec" and info.pipeline_tag == "image-feature-extraction"
    assert info.card_data.eval_results[0].metric_value == pytest.approx(0.0123)


def test_second_push_adds_one_commit_and_replaces_files(hub_server, tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    repo_id = hub_server.repo_id("twice")
    push_folder(folder, repo_id, token=hub_server.token)
    (folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\nnew curve")
    push_folder(folder, repo_id, token=hub_server.token)
    assert len(hub_server.commits(repo_id)) == 3
    assert hub_server.files(repo_id)["loss_curve.png"].endswith(b"new curve")


def test_missing_config_is_a_clear_error_and_creates_nothing(hub_server, tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing config\.json"):
        push_folder(folder, hub_server.repo_id("broken"), token=hub_server.token)
    assert not hub_server.has_repo(hub_server.repo_id("broken"))
    assert hub_server.state.requests == []  # checked before any network call


def test_config_that_is_not_fashrec_is_refused(hub_server, tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    (folder / "config.json").write_text('{"hidden_size": 3}')
    with pytest.raises(ValueError, match="model_class"):
        push_folder(folder, hub_server.repo_id("foreign"), token=hub_server.token)
    assert hub_server.state.requests == []


def test_dataset_folder_needs_data(hub_server, tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: other\n---\n# data\n")
    with pytest.raises(FileNotFoundError, match="data/"):
        check_folder(folder, "dataset")
    (folder / "data").mkdir()
    (folder / "data" / "train-00000.parquet").write_bytes(b"PAR1 not really PAR1")
    push_folder(folder, hub_server.repo_id("ds"), repo_type="dataset", token=hub_server.token)
    assert set(hub_server.files(hub_server.repo_id("ds"), "dataset")) == {".gitattributes", "README.md",
                                                                          "data/train-00000.parquet"}


def test_files_to_push_leaves_training_litter_behind(tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    (folder / "optimizer.pt").write_bytes(b"pickle!")
    (folder / "sub").mkdir()
    (folder / "sub" / ".x.tmp").write_bytes(b"")
    assert files_to_push(folder) == ["README.md", "config.json", "examples/grid.png", "loss_curve.png",
                                     "model.safetensors"]


def test_no_token_and_bad_token_are_clear_errors(hub_server, tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    with pytest.raises(HubPushError, match="HF_TOKEN"):
        push_folder(folder, hub_server.repo_id("nope"), token=None)
    assert hub_server.state.requests == []
    with pytest.raises(HubPushError, match="refused the token") as info:
        push_folder(folder, hub_server.repo_id("nope"), token="hf_wrongWRONGwrong")
    assert "hf_wrongWRONGwrong" not in str(info.value)
    assert not hub_server.has_repo(hub_server.repo_id("nope"))


def test_private_repo_is_private(hub_server, tmp_path):
    folder = _model_folder(tmp_path, _trained_looking_model())
    repo_id = hub_server.repo_id("secret")
    push_folder(folder, repo_id, token=hub_server.token, private=True)
    assert hub_server.state.repo(repo_id).private
    with pytest.raises(Exception, match=r"(?i)no such hub repo|repository not found"):
        fashrec.from_pretrained(repo_id, token=False)
    loaded = fashrec.from_pretrained(repo_id, token=hub_server.token)
    assert loaded.embedding_dim == 32


def test_cli_push_never_shows_or_uploads_the_token(hub_server, tmp_path, monkeypatch, capsys, caplog):
    folder = _model_folder(tmp_path, _trained_looking_model())
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    caplog.set_level(logging.DEBUG)
    repo_id = hub_server.repo_id("from-cli")

    assert main(["push", str(folder), "--repo-id", repo_id]) == 0

    out = capsys.readouterr()
    assert repo_id in out.out and hub_server.endpoint in out.out  # says where it went
    for text in (out.out, out.err, caplog.text):
        assert hub_server.token not in text
    pushed = hub_server.files(repo_id)
    assert len(hub_server.commits(repo_id)) == 2
    for name, data in pushed.items():
        assert hub_server.token.encode() not in data, name


def test_cli_push_reports_missing_files_without_traceback(hub_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["push", str(folder), "--repo-id", hub_server.repo_id("x")]) == 1
    err = capsys.readouterr().err
    assert "missing config.json, model.safetensors, README.md" in err and "Traceback" not in err
    assert hub_server.state.requests == []


def test_cli_push_bad_token_exit_code(hub_server, tmp_path, monkeypatch, capsys):
    folder = _model_folder(tmp_path, _trained_looking_model())
    monkeypatch.setenv("HF_TOKEN", "hf_notTheRightOne000")
    assert main(["push", str(folder), "--repo-id", hub_server.repo_id("y")]) == 1
    err = capsys.readouterr().err
    assert "refused the token" in err and "hf_notTheRightOne000" not in err


@pytest.fixture
def datasets_module():
    """`datasets` imported before hub_server, so that the fixture can point its own config at the fake Hub."""
    return pytest.importorskip("datasets")


def test_fake_hub_round_trips_a_datasets_push(datasets_module, hub_server, tmp_path):
    """The server speaks enough of the Hub for `datasets` too (LFS uploads of parquet shards, tree listing)."""
    datasets = datasets_module
    repo_id = hub_server.repo_id("tiny-ds")
    datasets.Dataset.from_dict({"article_id": ["0108775015", "0108775044"], "label": [3, 1]}).push_to_hub(
        repo_id, token=hub_server.token)
    files = hub_server.files(repo_id, "dataset")
    assert any(p.startswith("data/") and p.endswith(".parquet") for p in files)
    back = datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "cache"))
    assert back["article_id"] == ["0108775015", "0108775044"] and back["label"] == [3, 1]


def test_pushed_card_loads_the_repo_it_is_in(hub_server, tmp_path, monkeypatch):
    """A card written before the repo id was known (save_pretrained: ``from_pretrained(".")``) goes up
    naming the repo; the folder's own README is left as it was."""
    from fashrec.hub_card import write_model_card

    folder = tmp_path / "saved"
    _trained_looking_model().save_pretrained(folder)
    write_model_card(folder)
    local = (folder / "README.md").read_text(encoding="utf-8")
    assert 'fashrec.from_pretrained(".")' in local
    repo_id = hub_server.repo_id("from-folder")
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    assert main(["push", str(folder), "--repo-id", repo_id]) == 0
    card = hub_server.files(repo_id)["README.md"].decode()
    assert f'fashrec.from_pretrained("{repo_id}")' in card and 'from_pretrained(".")' not in card
    assert (folder / "README.md").read_text(encoding="utf-8") == local


# ----- data terms: photos stay private unless asked, cards name only datasets a stranger can open ---------

def test_a_folder_with_photos_goes_up_private_and_one_without_public(hub_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    folder = _model_folder(tmp_path, _trained_looking_model())  # examples/grid.png: a picture of photos
    with_photos = hub_server.repo_id("with-photos")
    assert main(["push", str(folder), "--repo-id", with_photos]) == 0
    assert hub_server.state.repo(with_photos, "model").private
    assert "private: the folder holds 1 H&M photo file(s) (e.g. examples/grid.png)" in capsys.readouterr().out
    (folder / "examples" / "grid.png").unlink()  # the loss curve is a plot, not a photo
    plain = hub_server.repo_id("weights-only")
    assert main(["push", str(folder), "--repo-id", plain]) == 0
    assert not hub_server.state.repo(plain, "model").private


def test_public_is_asked_for_and_prints_the_terms(hub_server, tmp_path, monkeypatch, capsys):
    from fashrec.data.terms import TERMS

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    folder = _model_folder(tmp_path, _trained_looking_model())
    repo_id = hub_server.repo_id("asked-public")
    assert main(["push", str(folder), "--repo-id", repo_id, "--public"]) == 0
    assert not hub_server.state.repo(repo_id, "model").private
    assert TERMS in capsys.readouterr().out


def test_photos_are_not_added_to_an_existing_public_repo_unasked(hub_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    repo_id = hub_server.repo_id("already-public")
    HfApi(token=hub_server.token).create_repo(repo_id, private=False)
    folder = _model_folder(tmp_path, _trained_looking_model())
    assert main(["push", str(folder), "--repo-id", repo_id]) == 1
    err = capsys.readouterr().err
    assert "is public and this folder holds 1 H&M photo file(s)" in err and len(err.splitlines()) == 1
    assert set(hub_server.files(repo_id)) == {".gitattributes"}  # nothing went up


def test_a_pushed_card_names_only_public_datasets(hub_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    api = HfApi(token=hub_server.token)
    public, private = hub_server.repo_id("public-data"), hub_server.repo_id("private-data")
    api.create_repo(public, repo_type="dataset", private=False)
    api.create_repo(private, repo_type="dataset", private=True)
    model = _trained_looking_model()
    cards = {}
    for dataset in (public, private, "nobody/missing-data"):
        folder = tmp_path / dataset.replace("/", "_")
        model.save_pretrained(folder)
        (folder / "README.md").write_text(render_model_card(
            model_class="ConvAE", config=model.config_dict(), metrics={"test_mse": 0.01}, dataset=dataset))
        repo_id = hub_server.repo_id("m-" + dataset.split("/")[1])
        push_folder(folder, repo_id, token=hub_server.token)
        cards[dataset] = ModelCard(hub_server.files(repo_id)["README.md"].decode())
    assert cards[public].data.datasets == [public]
    assert {r.dataset_type for r in cards[public].data.eval_results} == {public}
    for hidden in (private, "nobody/missing-data"):  # a 404 for a stranger: a description, not a link
        assert cards[hidden].data.datasets is None
        assert {r.dataset_type for r in cards[hidden].data.eval_results} == {"custom"}
