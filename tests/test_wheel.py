"""The wheel as PyPI would ship it, and ``pip install fashrec`` without extras in a fresh venv.

The venv test is slow: it installs torch (the CPU build this machine keeps on disk when it has it) and the
core requirements into an environment that sees nothing of this one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from fashrec.hub.space_build import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"), REPO_ROOT)


def test_the_wheel_carries_no_photos_and_a_licence(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    assert not [n for n in names if n.lower().endswith((".jpg", ".jpeg"))]
    assert not [n for n in names if "hm_sample" in n or n.endswith("reconstructions.png")]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3" in classifiers and len(classifiers) >= 5
    requires = metadata.get_all("Requires-Dist")
    assert not [r for r in requires if r.startswith("torchvision")]
    # the shipped checkpoints, loadable by name from an install
    for name in fashrec.pretrained.names():
        assert f"fashrec/checkpoints/{name}/model.safetensors" in names


def test_every_package_is_in_the_wheel_and_hub_card_is_fashrecs(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    packages = sorted(p.parent.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "fashrec").rglob("__init__.py"))
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert {"fashrec/hub_card/__init__.py", "fashrec/hub_card/model.py", "fashrec/hub_card/model_card.md"} <= names
    assert not [n for n in names if n.startswith("hub_card/")]


@pytest.fixture(scope="module")
def bare_venv(wheel, tmp_path_factory):
    """A venv with the wheel and its core requirements only (no extras, no system site-packages)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # torch first: the CPU build on this machine's disk when there is one (a few hundred MB, no download)
    if subprocess.run(pip + ["torch==2.13.0"], env=env, capture_output=True).returncode != 0:
        subprocess.run(pip + ["torch==2.14.1"], env=env, check=True, capture_output=True)
    done = subprocess.run(pip + [str(wheel)], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pip_install_fashrec_alone_embeds_and_names_the_missing_extras(bare_venv, tmp_path):
    python = str(bare_venv / "bin" / "python")
    done = _run(bare_venv, python, "-c", "import datasets", cwd=tmp_path)
    assert done.returncode != 0  # really without extras
    done = _run(bare_venv, python, "-c", (
        "import fashrec, torch\n"
        "model = fashrec.from_pretrained('paper-ae')\n"
        "print(fashrec.__file__)\n"
        "print(model.embed(torch.rand(2, 3, 64, 64)).shape)\n"
        "import fashrec.hub_card\n"
        "try:\n    import hub_card\nexcept ImportError:\n    print('no top-level hub_card')\n"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, shape, hub_card = done.stdout.split("\n")[:3]
    assert Path(where).is_relative_to(bare_venv)
    assert shape == "torch.Size([2, 2048])" and hub_card == "no top-level hub_card"

    fashrec_cli = str(bare_venv / "bin" / "fashrec")
    for command, extra in ((["embed", "--data", "sample", "--out", "idx"], "data"),
                           (["evaluate", "--data", "sample"], "eval"),
                           (["train", "--data", "sample", "--out", "run", "--epochs", "1"], "train"),
                           (["export-dataset", "--data", "sample", "--out", "exp"], "data")):
        done = _run(bare_venv, fashrec_cli, *command, cwd=tmp_path)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"pip install 'fashrec[{extra}]'" in done.stderr, done.stderr

    done = _run(bare_venv, python, "-c", "import fashrec; from fashrec.models.inference import Embedder; "
                "Embedder(fashrec.from_pretrained('paper-ae'), backend='onnx')", cwd=tmp_path)
    assert ("the ONNX Runtime backend (--backend onnx) needs the 'onnx' extra: pip install 'fashrec[onnx]'"
            in done.stderr.splitlines()[-1]), done.stderr
    done = _run(bare_venv, python, "-c", "import fashrec; fashrec.load_hm('sample')", cwd=tmp_path)
    assert "fashrec.load_hm needs the 'data' extra: pip install 'fashrec[data]'" in done.stderr.splitlines()[-1]
    done = _run(bare_venv, python, "-c", "import fashrec; fashrec.sample_path()", cwd=tmp_path)
    last = done.stderr.splitlines()[-1]
    assert "not part of the fashrec package" in last and "H&M Personalized Fashion Recommendations" in last
