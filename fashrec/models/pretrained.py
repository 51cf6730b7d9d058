"""Checkpoints shipped inside the package (``fashrec/checkpoints/<name>/``), usable with no network.

``fashrec.pretrained.path("paper-ae")`` gives a folder for ``fashrec.from_pretrained``; the name
``"default"`` resolves to ``DEFAULT``, the project's recommended model.
"""
from __future__ import annotations

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
DEFAULT = "multitask-cnn"  # label-trained steerable CNN (docs/embeddings.md); the paper's AE stays as "paper-ae"


def names() -> list[str]:
    return sorted(p.name for p in CHECKPOINT_DIR.iterdir() if (p / "config.json").is_file()) if CHECKPOINT_DIR.is_dir() else []


def path(name: str = "default") -> Path:
    """Folder of a shipped checkpoint; raises FileNotFoundError naming the ones that exist."""
    name = DEFAULT if name == "default" else name
    folder = CHECKPOINT_DIR / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no shipped checkpoint {name!r}; shipped: {names()}")
    return folder


def resolve(model: str | None) -> str:
    """A ``--model`` argument: None or 'default' or a shipped name -> its folder; else unchanged (folder / repo id)."""
    if model is None or model == "default" or (model in names() and not Path(model).exists()):
        return str(path(model or "default"))
    return model
