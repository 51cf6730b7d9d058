"""What docs/ARCHITECTURE.md claims about the code, checked on the code: data flows one way through the
layers, nothing inside the package reads the version from the package face, and every model has the verbs
the page lists (the autoencoders, and only they, reconstruct)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
# The layers, upstream first (docs/ARCHITECTURE.md, "Library"); hub_card/ is installed as fashrec.hub_card,
# part of hub/; cli.py sits with commands/. atomic, extras and version are used by all.
LAYERS = ["data", "models", "index", "eval", "jobs", "hub", "training", "commands"]
CROSS_CUTTING = {"atomic", "extras", "version"}


def _package_modules() -> dict[str, Path]:
    """Every module of the installed package, by name, from the source tree (hub_card/ as fashrec.hub_card)."""
    modules = {}
    for path in (REPO_ROOT / "fashrec").rglob("*.py"):
        modules["fashrec." + ".".join(path.relative_to(REPO_ROOT / "fashrec").with_suffix("").parts)] = path
    for path in (REPO_ROOT / "hub_card").glob("*.py"):
        modules[f"fashrec.hub_card.{path.stem}"] = path
    return modules


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "fashrec" or len(parts) < 2:
        return None
    return {"hub_card": "hub", "cli": "commands"}.get(parts[1], parts[1])


def _imports(path: Path, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import, relative ones resolved against ``module``."""
    out = []
    package = module.rsplit(".", 1)[0] if not path.name == "__init__.py" else module.removesuffix(".__init__")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base, [alias.name for alias in node.names]))
    return out


def test_nothing_downstream_reaches_back_upstream():
    wrong = []
    for module, path in _package_modules().items():
        mine = _layer(module)
        if mine not in LAYERS:
            continue
        for line, imported, names in _imports(path, module):
            for target in [imported] + [f"{imported}.{n}" for n in names]:
                theirs = _layer(target)
                if theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
                    wrong.append(f"{path.relative_to(REPO_ROOT)}:{line} ({mine}) imports {target} ({theirs})")
                    break
    assert not wrong, "\n".join(wrong)


def test_the_version_comes_from_fashrec_version_not_the_package_face():
    wrong = []
    for module, path in _package_modules().items():
        text = path.read_text(encoding="utf-8")
        for line, imported, names in _imports(path, module):
            if imported == "fashrec" and "__version__" in names:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{line}")
        wrong += [f"{path.relative_to(REPO_ROOT)}: fashrec.__version__" for _ in re.findall(r"\bfashrec\.__version__", text)
                  if module != "fashrec.__init__"]
    assert not wrong, wrong


def _models():
    models = {name: fashrec.from_pretrained(name) for name in fashrec.pretrained.names()}
    models["ConvVAE"] = fashrec.ConvVAE().eval()
    return models


def test_every_model_class_is_covered():
    from fashrec.models.hub_model import _REGISTRY

    import importlib
    import pkgutil

    import fashrec.models

    for module in pkgutil.iter_modules(fashrec.models.__path__):  # every model module: every class registered
        importlib.import_module(f"fashrec.models.{module.name}")
    covered = {type(m).__name__ for m in _models().values()}
    ours = {name for name, cls in _REGISTRY.items() if cls.__module__.startswith("fashrec.models.")}  # not tests'
    assert covered == ours - {"HubModel"}


@pytest.mark.parametrize("name", [*fashrec.pretrained.names(), "ConvVAE"])
def test_every_model_has_the_embedding_verbs(name, tmp_path):
    from PIL import Image

    model = _models()[name]
    size = model.preprocess_config.image_size
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert model.embed(x).shape == (2, model.embedding_dim)
        assert model.embed(x, normalize=True, focus=model.focuses[0]).shape == (2, model.embedding_dim)
        code = model.encode(x)
        assert (code[0] if isinstance(code, tuple) else code).shape[0] == 2 and model(x) is not None
    Image.new("RGB", (43, 64), "red").save(tmp_path / "a.png")
    assert model.embed_images([tmp_path / "a.png"]).shape == (1, model.embedding_dim)


def test_only_the_autoencoders_the_page_names_reconstruct():
    named = set(re.findall(r"`(\w+)`", re.search(r"Only the autoencoders \(([^)]*)\)", ARCHITECTURE)[1]))
    reconstructs = set()
    for model in _models().values():
        size = model.preprocess_config.image_size
        x = torch.rand(1, 3, size, size)
        try:
            assert model.reconstruct(x).shape == x.shape
            reconstructs.add(type(model).__name__)
        except NotImplementedError as exc:
            assert "does not reconstruct" in str(exc)
    assert reconstructs == named
