"""``fashrec space build`` / ``push``: a Space folder that deploys by itself, as the Hub would run it.

The slow tests build the Space the way the Hub's Gradio builder does (docs/space.md, "How the Hub builds
it"): a fresh venv installs ``requirements.txt`` from a folder that holds nothing else, in one pip call with
``gradio[oauth,mcp]==<sdk_version>``; only then is the whole folder copied in and ``python app.py`` started,
with no fashrec installed in that venv: it imports the ``fashrec/`` beside ``app.py``. All three endpoints
answer through gradio_client.

What differs from the Hub here: this machine cannot reach download.pytorch.org, so pip (told to give up on
an unreachable host at once: ``PIP_RETRIES=0``) takes ``torch==<pin>+cpu`` from this machine's local copy of
that very CPU wheel (pip's configured find-links); everything else comes from PyPI or pip's cache.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from fashrec.hub.space_build import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"), REPO_ROOT)


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory, wheel):
    """The default Space (space/index, multitask-cnn + paper-ae), fashrec's code from this checkout's wheel."""
    from fashrec.hub.space_build import build_space

    return build_space(tmp_path_factory.mktemp("quick") / "space", wheel=wheel)


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


def test_the_build_copies_every_module_the_app_imports():
    """app.py imports its siblings by name (the folder is on its path): each one it reaches is copied."""
    import ast

    from fashrec.hub.space_build import SPACE_SOURCES, source_space_dir

    folder = source_space_dir()
    reached, todo = set(), ["app.py"]
    while todo:
        name = todo.pop()
        reached.add(name)
        for node in ast.walk(ast.parse((folder / name).read_text(encoding="utf-8"))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            todo += [f"{m}.py" for m in modules if (folder / f"{m}.py").is_file() and f"{m}.py" not in reached]
    assert reached == set(SPACE_SOURCES), reached ^ set(SPACE_SOURCES)


def test_requirements_name_only_registry_packages_and_cpu_torch(quick_build, wheel):
    """The Hub installs requirements.txt before the folder exists: no line may point at a file, a path or a
    git URL; torch is the CPU-only build; fashrec's requirements are all there, fashrec itself is not."""
    from email.parser import Parser
    import zipfile

    from packaging.requirements import Requirement

    from fashrec.hub.space_requirements import TORCH_CPU, TORCH_CPU_INDEX

    lines = [line.strip() for line in (quick_build / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == f"--extra-index-url {TORCH_CPU_INDEX}" and TORCH_CPU.endswith("+cpu")
    requirements = [Requirement(line) for line in lines[1:]]
    assert all(r.url is None and not r.marker and not r.extras for r in requirements), lines
    assert not any(word in line for line in lines for word in ("./", "..", "/work", "git+", "-e ", ".whl", "file:"))
    by_name = {r.name: str(r.specifier) for r in requirements}
    assert by_name["torch"] == f"=={TORCH_CPU}" and "fashrec" not in by_name and "gradio" not in by_name
    with zipfile.ZipFile(wheel) as z:
        metadata = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode())
    needed = {Requirement(r).name for r in metadata.get_all("Requires-Dist")
              if "extra" not in r or 'extra == "data"' in r}
    assert needed == set(by_name), (needed, set(by_name))


def test_fashrec_travels_as_source_next_to_app_py(quick_build, wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        packaged = {n for n in z.namelist() if n.startswith("fashrec/") and not n.startswith("fashrec/checkpoints/")}
    vendored = {p.relative_to(quick_build).as_posix() for p in (quick_build / "fashrec").rglob("*") if p.is_file()}
    assert vendored == packaged  # exactly the release's code: hub_card in place, no photos
    assert "fashrec/hub_card/model_card.md" in vendored and not list((quick_build / "fashrec").rglob("*.jpg"))
    assert (quick_build / "fashrec" / "version.py").read_text() == (REPO_ROOT / "fashrec" / "version.py").read_text()


def test_the_space_card_is_a_gradio_space(quick_build):
    from huggingface_hub import SpaceCard

    from fashrec.data import terms
    from fashrec.hub.space_requirements import GRADIO_SDK, SPACE_PYTHON

    card = SpaceCard.load(quick_build / "README.md")
    assert card.data.sdk == "gradio" and card.data.sdk_version == GRADIO_SDK
    assert card.data.app_file == "app.py" and card.data.python_version == SPACE_PYTHON
    assert "800" in card.text and "multitask-cnn" in card.text and "paper-ae" in card.text
    design = fashrec.open_index(quick_build / "index").design_focus  # the model's, as data
    assert f"**other colours of the same design**: the nearest by the `{design}` focus" in card.text
    assert "similar, design = client.predict(" in card.text
    # the Space shows H&M photos: not MIT, the competition's rules
    assert (card.data.license, card.data.license_name, card.data.license_link) == \
        ("other", terms.DATA_LICENSE_NAME, terms.RULES)
    assert "pip install fashrec" not in card.text


def test_space_holds_the_requirements_and_the_card_yaml_the_build_writes(quick_build):
    """The project's fixed layout: space/ holds requirements.txt and a README.md that starts with the Space
    YAML. 'fashrec space build' makes both (from pyproject.toml, through the wheel's metadata, and the pins
    of fashrec.hub.space_requirements); space/'s files are copies, and must be exactly what it writes."""
    from huggingface_hub import SpaceCard

    built = (quick_build / "requirements.txt").read_text(encoding="utf-8")
    assert (REPO_ROOT / "space" / "requirements.txt").read_text(encoding="utf-8") == built, \
        f"space/requirements.txt is not what 'fashrec space build' writes; make it exactly:\n{built}"
    card, source = SpaceCard.load(quick_build / "README.md"), SpaceCard.load(REPO_ROOT / "space" / "README.md")
    assert source.content.startswith("---\n") and source.data.to_dict() == card.data.to_dict(), \
        f"space/README.md must start with the YAML 'fashrec space build' writes:\n---\n{card.data.to_yaml()}\n---"
    assert source.text.lstrip().startswith("# space/: the source of the fashrec Space")  # then its own text


def test_the_space_runs_a_gradio_and_a_python_that_fashrec_allows(wheel):
    """The card's sdk_version and python_version are pins (the same build on every machine), not this
    machine's versions. fashrec must allow both; the app is tested here on the pin's major gradio version
    (a newer minor is fine: the deploy test below installs exactly the pin)."""
    import zipfile
    from email.parser import Parser

    import gradio
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from fashrec.hub.space_requirements import GRADIO_SDK, SPACE_PYTHON

    with zipfile.ZipFile(wheel) as z:
        metadata = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode())
    space = [Requirement(r) for r in metadata.get_all("Requires-Dist") if 'extra == "space"' in r]
    assert next(r for r in space if r.name == "gradio").specifier.contains(GRADIO_SDK)
    assert SpecifierSet(metadata["Requires-Python"]).contains(f"{SPACE_PYTHON}.0")
    assert Version(gradio.__version__).major == Version(GRADIO_SDK).major, \
        f"gradio {gradio.__version__} here, the Space runs {GRADIO_SDK}: move GRADIO_SDK to the major tested"


def test_a_space_build_refuses_an_index_of_other_weights(tmp_path):
    from fashrec.hub.space_build import build_space

    with pytest.raises(ValueError, match="weights_hash.*it records the model 'multitask-cnn'"):
        build_space(tmp_path / "space", model="paper-ae", wheel=tmp_path / "not-built.whl")
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
    assert hub_server.state.repo(repo_id, "space").private  # it shows H&M photos: private unless --public
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


def test_space_push_is_public_only_when_asked_and_says_the_terms(hub_server, quick_build, tmp_path, monkeypatch,
                                                                 capsys):
    from huggingface_hub import HfApi

    from fashrec.cli import main
    from fashrec.data.terms import TERMS

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    public = hub_server.repo_id("public-demo")
    HfApi(token=hub_server.token).create_repo(public, repo_type="space", space_sdk="gradio", private=False)
    assert main(["space", "push", str(quick_build), "--repo-id", public]) == 1  # photos into a public Space
    err = capsys.readouterr().err
    assert "is public and this folder holds" in err and "--public" in err and len(err.splitlines()) == 1
    assert set(hub_server.files(public, repo_type="space")) == {".gitattributes"}
    assert main(["space", "push", str(quick_build), "--repo-id", public, "--public"]) == 0
    assert TERMS in capsys.readouterr().out
    assert "index/index.json" in hub_server.files(public, repo_type="space")


# ---------------------------------------------------------------------- built as the Hub builds it


def space_interpreter() -> str:
    """A Python of the version the Space runs (its card's python_version), as the builder would use."""
    from fashrec.hub.space_requirements import SPACE_PYTHON

    if "%d.%d" % sys.version_info[:2] == SPACE_PYTHON:
        return sys.executable
    found = shutil.which(f"python{SPACE_PYTHON}")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"CI must have Python {SPACE_PYTHON}, the Space's python_version, to build it the Hub's way")
    pytest.skip(f"no python{SPACE_PYTHON} (the Space's python_version) to build it the Hub's way")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, quick_build):
    """The Hub's order: a fresh venv, pip on requirements.txt alone (with the card's gradio), then the folder."""
    from huggingface_hub import SpaceCard

    root = tmp_path_factory.mktemp("hub")
    venv = root / "venv"
    subprocess.run([space_interpreter(), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    app_dir = root / "home" / "user" / "app"
    app_dir.mkdir(parents=True)
    shutil.copy2(quick_build / "requirements.txt", app_dir / "requirements.txt")  # all the builder mounts
    sdk = SpaceCard.load(quick_build / "README.md").data.sdk_version
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_RETRIES="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt",
                           f"gradio[oauth,mcp]=={sdk}"], cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in app_dir.iterdir()] == ["requirements.txt"]
    shutil.copytree(quick_build, app_dir, dirs_exist_ok=True)  # then the repository
    return app_dir, python, env


@pytest.mark.slow
def test_the_builder_installed_cpu_torch_and_no_fashrec(deployed, tmp_path):
    from fashrec.hub.space_requirements import SPACE_PYTHON, TORCH_CPU

    app_dir, python, env = deployed
    probe = ("import sys, importlib.metadata as md, torch\n"
             "print(torch.__version__, torch.version.cuda, '%d.%d' % sys.version_info[:2])\n"
             "print(sorted(d.metadata['Name'] for d in md.distributions() if d.metadata['Name'].lower().startswith"
             "(('nvidia', 'fashrec'))))")
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    versions, installed = done.stdout.splitlines()
    assert versions == f"{TORCH_CPU} None {SPACE_PYTHON}"  # the pin, CPU-only, for the card's Python
    assert installed == "[]"  # no CUDA libraries, and no fashrec installed in the venv
    done = subprocess.run([str(python), "-c", "import fashrec"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "No module named 'fashrec'" in done.stderr
    done = subprocess.run([str(python), "-c", "import fashrec; print(fashrec.__file__)"], cwd=app_dir, env=env,
                          capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()) == app_dir / "fashrec" / "__init__.py"


@pytest.mark.slow
def test_the_built_space_deploys_from_its_folder_alone(deployed, tmp_path):
    import torch
    from gradio_client import Client, handle_file

    from fashrec.data.preprocess import preprocess
    from fashrec.index import SimilarityIndex
    from space.local_server import running_space

    space, python, _ = deployed
    model = fashrec.from_pretrained(space / "checkpoints" / "multitask-cnn")
    recon = fashrec.from_pretrained(space / "checkpoints" / "paper-ae")
    index = SimilarityIndex.load(space / "index", model=model)
    photo = str(next((space / "index" / "photos").rglob("*.jpg")))
    env = {"PYTHONPATH": "", "FASHREC_INDEX": "", "FASHREC_MODEL": "", "FASHREC_RECON_MODEL": ""}
    with running_space(app=space / "app.py", python=python, env=env, log=tmp_path / "app.log") as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        gallery, design = client.predict(article_id=index.ids[5], metric="cosine", k=4, api_name="/recommend_item")
        assert [g["caption"].splitlines()[-1].split(" · ")[0] for g in gallery] == \
            index.search_ids([index.ids[5]], k=4, metric="cosine")[0][0]
        assert [g["caption"].splitlines()[-1].split(" · ")[0] for g in design] == \
            index.search_ids([index.ids[5]], k=4, metric="cosine", focus=model.design_focus)[0][0]
        gallery, _ = client.predict(image=handle_file(photo), k=3, api_name="/recommend_image")
        expected = index.search(model.embed(preprocess(photo, model.preprocess_config)[None]).numpy(), k=3)[0][0]
        assert [g["caption"].splitlines()[-1].split(" · ")[0] for g in gallery] == expected
        _, _, mse = client.predict(image=handle_file(photo), api_name="/reconstruct")
        x = preprocess(photo, recon.preprocess_config)[None]
        with torch.no_grad():
            assert mse == pytest.approx(float(torch.mean((recon.reconstruct(x).clamp(0, 1) - x) ** 2)), rel=1e-4)
    log = (tmp_path / "app.log").read_text()
    assert "fashrec Space: 800 products" in log and str(REPO_ROOT) not in log


@pytest.mark.slow
def test_a_space_keeps_serving_its_own_checkpoint_when_the_shipped_one_changes(deployed, wheel, tmp_path):
    """A Space built from a retrained 'paper-ae' (other weights than the one the wheel ships) serves its
    own copy: the index and the checkpoint that made it travel together."""
    import torch
    from gradio_client import Client

    from fashrec.hub.space_build import build_space
    from fashrec.jobs.embed_job import embed_catalogue
    from fashrec.models.hub_model import weights_hash
    from space.local_server import running_space

    _, python, _ = deployed
    retrained = tmp_path / "retrained" / "paper-ae"
    model = fashrec.from_pretrained("paper-ae")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    model.save_pretrained(retrained)
    assert weights_hash(model) != weights_hash(fashrec.from_pretrained("paper-ae"))
    index_dir = tmp_path / "index"
    embed_catalogue(model=model, model_ref=str(retrained), data="sample", out=index_dir, n=60, progress=False)
    space = build_space(tmp_path / "space", index=index_dir, model=str(retrained), wheel=wheel)
    assert json.loads((space / "space.json").read_text()) == {"index": "index", "model": "checkpoints/paper-ae",
                                                              "recon_model": None}
    env = {"PYTHONPATH": "", "FASHREC_INDEX": "", "FASHREC_MODEL": "", "FASHREC_RECON_MODEL": ""}
    with running_space(app=space / "app.py", python=python, env=env, log=tmp_path / "app.log") as url:
        gallery, design = Client(url, verbose=False).predict(k=3, api_name="/recommend_item")
        assert len(gallery) == 3 and design == []  # the paper's AE was taught no designs: no second row
    assert "60 products" in (tmp_path / "app.log").read_text()
