"""A Hugging Face Space that deploys from its own folder: ``fashrec space build`` / ``fashrec space push``.

    build_space("runs/space")                                  # the Space of space/index, the default models
    push_space("runs/space", "org/fashrec-demo")              # one commit, replacing the Space's files

The folder holds everything the Space runs, so nothing it needs can move under it:

    app.py, recommender.py,    the app (copied from the checkout's space/: SPACE_SOURCES)
    inputs.py, captions.py, ...
    fashrec/                   fashrec itself, as source next to app.py, from a wheel built from this
                               checkout (or --wheel): fashrec.hub.space_vendor
    requirements.txt           registry packages only: fashrec's requirements, torch's CPU-only build
                               (fashrec.hub.space_requirements); the Hub installs it before the folder exists
    checkpoints/<name>/        the checkpoints it serves: config.json, model.safetensors, card
    index/                     the index those checkpoints made, with the photos it serves (index/photos/),
                               sealed; its catalogue.json names its model as ../checkpoints/<name>
    space.json                 which checkpoint recommends, which reconstructs (paths in this folder)
    README.md                  the Space card (YAML: sdk gradio, sdk_version, python_version, app_file: the
                               pins of fashrec.hub.space_requirements); space/README.md starts with the same YAML

The index is opened with ``fashrec.open_index`` (its seal, ids and photos checked, and the checkpoint
checked to make its vectors) before anything is written; the copy holds no path of this machine, and the
folder appears in one step (built beside it, then renamed).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

SPACE_SOURCES = ("app.py", "recommender.py", "inputs.py", "request_log.py", "captions.py", "catalogue_labels.py",
                 "status_lines.py")
CHECKPOINT_FILES = ("config.json", "model.safetensors", "README.md")
REQUIRED = (*SPACE_SOURCES, "requirements.txt", "README.md", "space.json", "index/index.json", "fashrec/__init__.py")
NO_MODEL = "none"
TITLE = "fashrec similar fashion products"  # the Space's title in its card


def source_space_dir() -> Path:
    """The ``space/`` folder of this checkout (or ``FASHREC_SPACE_DIR``): the app's source, not in the wheel."""
    candidates = [Path(os.environ["FASHREC_SPACE_DIR"])] if os.environ.get("FASHREC_SPACE_DIR") else []
    candidates.append(Path(__file__).resolve().parents[2] / "space")
    for folder in candidates:
        if (folder / "app.py").is_file():
            return folder
    raise FileNotFoundError(
        f"the Space app is not at {' or '.join(str(p / 'app.py') for p in candidates)}: run this from a source "
        "checkout of fashrec (git clone ...; pip install -e '.[space]'), or set FASHREC_SPACE_DIR to the space/ folder"
    )


def build_wheel(out_dir: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Build the fashrec wheel of the checkout ``source`` (default: this one) into ``out_dir``."""
    from fashrec.hub.space_vendor import build_wheel as build

    return build(out_dir, source or source_space_dir().parent)


def build_space(out: str | os.PathLike, *, index: str | os.PathLike | None = None, model: str | None = None,
                recon_model: str | None = None, wheel: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write a complete Space repo to ``out`` (see the module docstring) and return it.

    ``index``: an index made by ``fashrec embed`` (default: the checkout's ``space/index``); ``model``: the
    checkpoint that made it (default: the one its ``catalogue.json`` records); ``recon_model``: the one that
    reconstructs (default: ``model`` if it has a decoder, else the shipped ``paper-ae``; ``"none"``: none);
    ``wheel``: the fashrec wheel whose code the Space runs (default: built from this checkout).
    """
    from fashrec.atomic import replace_dir
    from fashrec.hub.space_requirements import requirements_txt
    from fashrec.index.folder import open_index

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; pass --overwrite to replace it with a new build")
    space_dir = source_space_dir()
    app = _recommender_module(space_dir)
    opened = open_index(Path(index) if index else space_dir / "index", model)  # checked, model included
    recon_ref = recon_model

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would stay on the finished folder
    try:
        loaded = opened.model  # loaded and checked first: an index that records no model stops here
        model_name = _copy_checkpoint(opened, staging / "checkpoints", app.short_name)
        if recon_ref is None:
            recon_ref = None if app.has_decoder(loaded) else app.RECON_DEFAULT
        recon_name = model_name if recon_ref is None else NO_MODEL if recon_ref == NO_MODEL else \
            _copy_checkpoint(recon_ref, staging / "checkpoints", app.short_name)
        ids = _copy_index(opened, staging / "index", model_name)
        for name in SPACE_SOURCES:
            shutil.copy2(space_dir / name, staging / name)
        recon_path = None if recon_name in (model_name, NO_MODEL) else f"checkpoints/{recon_name}"
        _write_json({"index": "index", "model": f"checkpoints/{model_name}",
                     "recon_model": NO_MODEL if recon_name == NO_MODEL else recon_path}, staging / "space.json")
        metadata = _vendor(wheel, staging)
        (staging / "requirements.txt").write_text(requirements_txt(metadata), encoding="utf-8")
        (staging / "README.md").write_text(_card(staging, app, loaded, model_name, recon_name, ids), encoding="utf-8")
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def check_space(folder: str | os.PathLike) -> list[str]:
    """Raise FileNotFoundError naming what a Space folder lacks; return its files (relative, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such Space folder (make one with 'fashrec space build')")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a built Space: missing {', '.join(missing)} "
                                "(make it with 'fashrec space build')")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def push_space(folder: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool | None = None,
               commit_message: str | None = None) -> str:
    """Create the Space ``repo_id`` (sdk gradio) if needed and make its files exactly ``folder``'s, in one
    commit (files of an earlier build that this one lacks are deleted). Returns the commit URL.

    A Space shows its catalogue's photos (``index/photos/``), so with ``private=None`` (the default) a new
    Space is private and an existing public one is refused; ``private=False`` asks for public
    (``fashrec.hub.visibility``)."""
    import warnings

    from huggingface_hub import HfApi

    from fashrec.hub.push import check_repo_id, hub_errors, resolve_token
    from fashrec.hub.visibility import choose_private, photo_files, refuse_public_repo

    check_repo_id(repo_id)
    files = check_space(folder)
    photos = photo_files(files, "space")
    api = HfApi(token=resolve_token(token))
    with hub_errors(repo_id, "space", api), warnings.catch_warnings():
        # huggingface_hub warns that index/metadata.parquet looks like a dataset: it is the app's index.
        warnings.filterwarnings("ignore", message="It seems that you are about to commit a data file")
        refuse_public_repo(api, repo_id, "space", photos, private=private)
        repo = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=choose_private(private, photos),
                               exist_ok=True)
        info = api.upload_folder(repo_id=repo.repo_id, repo_type="space", folder_path=str(folder),
                                 delete_patterns="*",
                                 commit_message=commit_message or f"fashrec space build ({len(files)} files)")
    return str(info.commit_url)


# ----- pieces ------------------------------------------------------------------------------------------

def _recommender_module(space_dir: Path):
    """The Space's ``recommender.py`` (not an installed module: it ships in the Space folder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fashrec_space_recommender", space_dir / "recommender.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _copy_checkpoint(ref, into: Path, short_name) -> str:
    """Copy a checkpoint into ``into/<name>``; return the name. ``ref``: the opened index's own model (the
    folder its reference names), a shipped name, a folder or a Hub id."""
    from fashrec.models import pretrained

    if not isinstance(ref, str):  # an opened index: its model, from where it was loaded
        ref = ref.model_ref
    if Path(ref).is_dir():
        folder = Path(ref)
    elif ref == "default" or ref in pretrained.names():
        folder = pretrained.path(ref)
    else:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref, allow_patterns=list(CHECKPOINT_FILES)))
    name = pretrained.DEFAULT if ref == "default" else short_name(ref).split("/")[-1]
    target = into / name
    if target.exists():
        return name
    target.mkdir(parents=True)
    for file in CHECKPOINT_FILES:
        if (folder / file).is_file():
            shutil.copy2(folder / file, target / file)
    return name


def _copy_index(opened, target: Path, model_name: str) -> list[str]:
    """The opened index as a new sealed folder: the same vectors and photos, its model named as the checkpoint
    beside it, and no path of this machine (provenance keeps the jobs and counts only)."""
    from fashrec.index.folder import writing_folder

    with writing_folder(target) as writer:
        writer.carry_photos(opened, opened.index.ids)
        sources = [{k: v for k, v in s.items() if k != "data" or v == "sample"} for s in opened.catalogue.sources]
        writer.finish(opened.index, model=None, model_ref=f"../checkpoints/{model_name}", sources=sources, skipped=[])
    return list(opened.index.ids)


def _vendor(wheel, into: Path) -> str:
    """fashrec's code into the Space folder, from ``wheel`` or a wheel built from this checkout; its METADATA."""
    from fashrec.hub.space_vendor import vendor

    if wheel is not None:
        return vendor(wheel, into)
    with tempfile.TemporaryDirectory(prefix="fashrec-space-wheel-") as tmp:
        return vendor(build_wheel(tmp), into)


def _card(folder: Path, app, model, model_name: str, recon_name: str, ids: list[str]) -> str:
    import fashrec
    from fashrec.hub.space_requirements import GRADIO_SDK, SPACE_PYTHON, TORCH_CPU
    from fashrec.hub_card import render_space_card
    from fashrec.index.focus import design_focus
    from fashrec.version import __version__

    space = json.loads((folder / "space.json").read_text())
    focuses = list(getattr(model, "focuses", ("overall",)))
    what = f"**`{model_name}`** (`{type(model).__name__}`, {model.embedding_dim}-d"
    what += f" per focus: {', '.join(focuses)})" if len(focuses) > 1 else ")"
    if recon_name == NO_MODEL:
        recon = "none (switched off)"
    elif recon_name == model_name:
        recon = "the same model"
    else:
        recon_model = fashrec.from_pretrained(folder / "checkpoints" / recon_name)
        recon = f"**`{recon_name}`** (`{type(recon_model).__name__}`, {recon_model.embedding_dim}-d)"
    checkpoints = sorted(p.name for p in (folder / "checkpoints").iterdir())
    example = app.Recommender.open(folder / space["index"], recon_model=NO_MODEL).featured()
    return render_space_card(title=TITLE, sdk_version=GRADIO_SDK, python_version=SPACE_PYTHON, n_items=len(ids),
                             model_description=what, recon_description=recon, checkpoints=checkpoints,
                             torch_requirement=f"torch {TORCH_CPU}", fashrec_version=__version__, example_id=example,
                             focuses=focuses, design_focus=design_focus(model, focuses))


def _write_json(value, path: Path) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
