"""``fashrec space build`` / ``push``: a Space folder that deploys by itself, as the Hub would run it.

The slow test copies only the built folder elsewhere, makes a fresh virtual environment there, runs
``pip install -r requirements.txt`` (which installs the vendored wheel), starts ``python app.py`` and
answers all three endpoints through gradio_client. The environment reuses this interpreter's torch and
gradio (a ``.pth`` line pointing at its site-packages, where ``--system-site-packages`` would point at a
bare base interpreter) so that nothing is downloaded; fashrec itself must come from the wheel, which the
test checks (``fashrec.__file__``), and the checkout is on no path of the child.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]


def _fake_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"fashrec-{fashrec.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fashrec/__init__.py", "")
    return wheel


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    """The default Space (space/index, multitask-cnn + paper-ae) with a stand-in wheel: for what does not
    install it."""
    from fashrec.hub.space_build import build_space

    root = tmp_path_factory.mktemp("quick")
    return build_space(root / "space", wheel=_fake_wheel(root / "wheel"))


def test_the_folder_holds_everything_it_serves(quick_build):
    out = quick_build
    space = json.loads((out / "space.json").read_text())
    assert space == {"index": "index", "model": "checkpoints/multitask-cnn", "recon_model": "checkpoints/paper-ae"}
    for name in ("multitask-cnn", "paper-ae"):
        assert (out / "checkpoints" / name / "model.safetensors").read_bytes() == \
            (fashrec.pretrained.path(name) / "model.safetensors").read_bytes()
    opened = fashrec.open_index(out / "index")  # sealed, and it names the checkpoint beside it
    assert opened.catalogue.model == "../checkpoints/multitask-cnn"
    assert Path(opened.model_ref).resolve() == (out / "checkpoints" / "multitask-cnn").resolve()
    assert type(opened.model).__name__ == "MultiTaskCNN"
    source = fashrec.open_index(REPO_ROOT / "space" / "index")
    assert opened.index.ids == source.index.ids
    assert all(opened.photos[i].read_bytes() == source.photos[i].read_bytes() for i in source.index.ids)
    text = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".json", ".md", ".txt"))
    for local in (str(REPO_ROOT), "/work/", "/tmp/"):
        assert local not in text, local


def test_requirements_resolve_without_the_repository(quick_build):
    lines = [line.strip() for line in (quick_build / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == [f"./wheels/fashrec-{fashrec.__version__}-py3-none-any.whl[data]"]
    assert (quick_build / lines[0].removeprefix("./").removesuffix("[data]")).is_file()
    assert not any(word in line for line in lines for word in ("git+", "@", "-e ", "..", "/work"))


def test_the_space_card_is_a_gradio_space(quick_build):
    import gradio
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(quick_build / "README.md")
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py"
    assert "800" in card.text and "multitask-cnn" in card.text and "paper-ae" in card.text


def test_a_space_build_refuses_an_index_of_other_weights(tmp_path):
    from fashrec.hub.space_build import build_space

    with pytest.raises(ValueError, match="weights_hash.*it records the model 'multitask-cnn'"):
        build_space(tmp_path / "space", model="paper-ae", wheel=_fake_wheel(tmp_path / "w"))
    assert not (tmp_path / "space").exists() and not list(tmp_path.glob(".space.*"))


def test_push_makes_the_space_exactly_the_folder(hub_server, quick_build, tmp_path, monkeypatch):
    from fashrec.cli import main

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    repo_id = hub_server.repo_id("fashrec-demo")
    folder = tmp_path / "space"
    shutil.copytree(quick_build, folder)
    (folder / "stale.txt").write_text("from an earlier build")
    assert main(["space", "push", str(folder), "--repo-id", repo_id]) == 0
    assert "stale.txt" in hub_server.files(repo_id, repo_type="space")
    (folder / "stale.txt").unlink()
    assert main(["space", "push", str(folder), "--repo-id", repo_id, "--message", "rebuild"]) == 0
    files = hub_server.files(repo_id, repo_type="space")
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local
    assert [c.title for c in hub_server.commits(repo_id, repo_type="space")][-1] == "rebuild"


def test_push_refuses_a_folder_that_is_not_a_built_space(hub_server, tmp_path, monkeypatch, capsys):
    from fashrec.cli import main

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    (tmp_path / "app.py").write_text("print('hi')")
    assert main(["space", "push", str(tmp_path), "--repo-id", hub_server.repo_id("nope")]) == 1
    err = capsys.readouterr().err
    assert "is not a built Space: missing" in err and "requirements.txt" in err and len(err.splitlines()) == 1
    assert not hub_server.has_repo(hub_server.repo_id("nope"), repo_type="space")


# ---------------------------------------------------------------------- deployed from the folder alone


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The built Space, copied alone to a new folder with a fresh venv that installed its requirements."""
    from fashrec.hub.space_build import build_space

    root = tmp_path_factory.mktemp("deploy")
    built = build_space(root / "build")
    space = shutil.copytree(built, root / "elsewhere" / "space")
    shutil.rmtree(built)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p, "torch").is_dir()]
    Path(venv_site, "zz_torch_and_gradio.pth").write_text("\n".join(ours) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], cwd=space,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import fashrec; print(fashrec.__file__)"], cwd=root, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the Space runs {where}, not the vendored wheel"
    return space, python


@pytest.mark.slow
def test_the_built_space_deploys_from_its_folder_alone(deployed, tmp_path):
    import torch
    from gradio_client import Client, handle_file

    from fashrec.data.preprocess import preprocess
    from fashrec.index import SimilarityIndex
    from space.local_server import running_space

    space, python = deployed
    with zipfile.ZipFile(next(space.glob("wheels/*.whl"))) as z:
        assert not [n for n in z.namelist() if n.endswith((".jpg", ".jpeg"))]
    model = fashrec.from_pretrained(space / "checkpoints" / "multitask-cnn")
    recon = fashrec.from_pretrained(space / "checkpoints" / "paper-ae")
    index = SimilarityIndex.load(space / "index", model=model)
    photo = str(next((space / "index" / "photos").rglob("*.jpg")))
    env = {"PYTHONPATH": "", "FASHREC_INDEX": "", "FASHREC_MODEL": "", "FASHREC_RECON_MODEL": ""}
    with running_space(app=space / "app.py", python=python, env=env, log=tmp_path / "app.log") as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        gallery = client.predict(article_id=index.ids[5], metric="cosine", k=4, api_name="/recommend_item")
        assert [g["caption"].splitlines()[-1].split(" · ")[0] for g in gallery] == \
            index.search_ids([index.ids[5]], k=4, metric="cosine")[0][0]
        gallery = client.predict(image=handle_file(photo), k=3, api_name="/recommend_image")
        expected = index.search(model.embed(preprocess(photo, model.preprocess_config)[None]).numpy(), k=3)[0][0]
        assert [g["caption"].splitlines()[-1].split(" · ")[0] for g in gallery] == expected
        _, _, mse = client.predict(image=handle_file(photo), api_name="/reconstruct")
        x = preprocess(photo, recon.preprocess_config)[None]
        with torch.no_grad():
            assert mse == pytest.approx(float(torch.mean((recon.reconstruct(x).clamp(0, 1) - x) ** 2)), rel=1e-4)
    log = (tmp_path / "app.log").read_text()
    assert "fashrec Space: 800 products" in log and str(REPO_ROOT) not in log


@pytest.mark.slow
def test_a_space_keeps_serving_its_own_checkpoint_when_the_shipped_one_changes(deployed, tmp_path):
    """A Space built from a retrained 'paper-ae' (other weights than the one the wheel ships) serves its
    own copy: the index and the checkpoint that made it travel together."""
    import torch
    from gradio_client import Client

    from fashrec.hub.space_build import build_space
    from fashrec.jobs.embed_job import embed_catalogue
    from fashrec.models.hub_model import weights_hash
    from space.local_server import running_space

    _, python = deployed
    retrained = tmp_path / "retrained" / "paper-ae"
    model = fashrec.from_pretrained("paper-ae")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    model.save_pretrained(retrained)
    assert weights_hash(model) != weights_hash(fashrec.from_pretrained("paper-ae"))
    index_dir = tmp_path / "index"
    embed_catalogue(model=model, model_ref=str(retrained), data="sample", out=index_dir, n=60, progress=False)
    space = build_space(tmp_path / "space", index=index_dir, model=str(retrained),
                        wheel=next(deployed[0].glob("wheels/*.whl")))
    assert json.loads((space / "space.json").read_text()) == {"index": "index", "model": "checkpoints/paper-ae",
                                                              "recon_model": None}
    env = {"PYTHONPATH": "", "FASHREC_INDEX": "", "FASHREC_MODEL": "", "FASHREC_RECON_MODEL": ""}
    with running_space(app=space / "app.py", python=python, env=env, log=tmp_path / "app.log") as url:
        gallery = Client(url, verbose=False).predict(k=3, api_name="/recommend_item")
        assert len(gallery) == 3
    assert "60 products" in (tmp_path / "app.log").read_text()
