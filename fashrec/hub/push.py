"""Publish a finished folder (a trained model, or a dataset) to the Hugging Face Hub in one commit.

The folder is checked first, so a half-written model never reaches the Hub: a model repo needs
``config.json``, ``model.safetensors`` and ``README.md``; a dataset repo needs ``README.md`` and a
``data/`` folder. Temporary and checkpoint files (``*.tmp``, ``checkpoint/``, ``checkpoints/``, ...) are
left behind. Everything else goes up in a single commit, so the repo never shows a mix of old and new files.
The card goes up with its load snippet naming the repo (``fashrec.hub_card.for_repo``): a card
written before the repo id was known says ``from_pretrained(".")``, which only works beside the files.
A folder that holds H&M photos (or pictures of them) goes up to a private repo unless public is asked for
(``fashrec.hub.visibility``); a model card's ``datasets:`` keeps only datasets that are public.

The token comes from the ``token`` argument, else ``HF_TOKEN``, else ``hf auth login``; it is never
printed, logged or written anywhere by this module.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from pathlib import Path
from typing import Iterator

from fashrec.hub.push_error import HubPushError  # noqa: F401  (raised here; callers import it from push too)

REQUIRED = {
    "model": ("config.json", "model.safetensors", "README.md"),
    "dataset": ("README.md", "data/"),
}
# Never uploaded: training state, partial writes, caches and editor litter. The pickle-based formats
# (*.pt, *.pth, *.bin, *.pkl, *.pickle, *.ckpt) are only matched here, to keep them OFF the Hub: nothing in
# fashrec reads them; weights travel as model.safetensors alone.
IGNORE_PATTERNS = [
    "*.tmp", "**/*.tmp", "*.part", "*.lock", "*.pt", "*.pth", "*.bin", "*.pkl", "*.pickle", "*.ckpt",
    "checkpoint/*", "checkpoints/*", "**/checkpoint/*", "**/checkpoints/*", "optimizer*", "trainer_state*",
    "__pycache__/*", "**/__pycache__/*", ".ipynb_checkpoints/*", ".DS_Store", "**/.DS_Store", ".cache/*", ".git/*",
]


def files_to_push(folder: str | os.PathLike) -> list[str]:
    """The files (relative POSIX paths) ``push_folder`` would upload from ``folder``, sorted."""
    root = Path(folder)
    out = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if not any(fnmatch.fnmatch(rel, pattern) for pattern in IGNORE_PATTERNS):
                out.append(rel)
    return sorted(out)


def check_folder(folder: str | os.PathLike, repo_type: str = "model") -> list[str]:
    """Raise ``FileNotFoundError`` naming every missing piece; return the files that would be pushed."""
    if repo_type not in REQUIRED:
        raise ValueError(f"repo_type must be one of {sorted(REQUIRED)}, got {repo_type!r}")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder to push")
    files = files_to_push(root)
    missing = []
    for name in REQUIRED[repo_type]:
        if name.endswith("/"):
            if not any(f.startswith(name) for f in files):
                missing.append(f"{name} (with at least one file)")
        elif name not in files:
            missing.append(name)
    if missing:
        what = "a model" if repo_type == "model" else "a dataset"
        hint = (" Save the model with model.save_pretrained(folder) and write its card (fashrec.hub_card.write_model_card(folder))."
                if repo_type == "model" else " Export the dataset first (its parquet files under data/ and a card).")
        raise FileNotFoundError(f"{root} is not {what} ready to push: missing {', '.join(missing)}.{hint}")
    if repo_type == "model":
        _check_config(root / "config.json")
    return files


def _check_config(path: Path) -> None:
    import json

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "model_class" not in config:
        raise ValueError(f"{path}: not a fashrec config (no \"model_class\"); save it with model.save_pretrained")


def check_repo_id(repo_id: str) -> None:
    if not re.fullmatch(r"([A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*", repo_id or ""):
        raise ValueError(f"repo_id must look like 'namespace/name' (or 'name' for your own namespace), got {repo_id!r}")


def resolve_token(token: str | None = None) -> str:
    """The token to push with: the argument, else ``HF_TOKEN``, else the stored Hub login."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubPushError(
            "no Hugging Face token: set HF_TOKEN or run 'hf auth login' with a token that has write access "
            "(https://huggingface.co/settings/tokens)"
        )
    return token


def push_folder(folder: str | os.PathLike, repo_id: str, *, repo_type: str = "model", token: str | None = None,
                private: bool | None = None, commit_message: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it in one commit; return the commit URL.

    ``private=None`` (the default) creates the repo private exactly when the folder holds H&M photos or
    pictures of them (``fashrec.hub.visibility``), and refuses to add them to an existing public repo;
    ``False`` asks for public. A model card goes up naming the repo in its snippet, and its ``datasets:``
    keeps only datasets a stranger can open (public on the Hub). Nothing is created on the Hub when the
    folder is incomplete or the token is missing.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from fashrec.hub.visibility import choose_private, photo_files, refuse_public_repo

    check_repo_id(repo_id)
    files = check_folder(folder, repo_type)
    photos = photo_files(files, repo_type)
    api = HfApi(token=resolve_token(token))
    root = Path(folder)
    message = commit_message or f"Upload {repo_type} with fashrec push ({len(files)} files)"
    with hub_errors(repo_id, repo_type, api):
        refuse_public_repo(api, repo_id, repo_type, photos, private=private)
        repo_url = api.create_repo(repo_id, repo_type=repo_type, private=choose_private(private, photos), exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=rel,
                                         path_or_fileobj=_content(root / rel, rel, repo_url.repo_id, repo_type, api))
                      for rel in files]
        info = api.create_commit(repo_id=repo_url.repo_id, repo_type=repo_type, operations=operations,
                                 commit_message=message)
    return str(info.commit_url)


@contextlib.contextmanager
def hub_errors(repo_id: str, repo_type: str, api) -> Iterator[None]:
    """Turn what the Hub or the network answers into a HubPushError that says what to do (no token in it)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        yield
    except RepositoryNotFoundError as exc:
        raise HubPushError(
            f"cannot write to {repo_type} repo {repo_id!r}: it does not exist or the token cannot write to it "
            f"(HTTP {exc.response.status_code})"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HubPushError(
                f"the Hub refused the token for {repo_id!r} (HTTP {status}): check it is valid and has write access"
            ) from None
        raise HubPushError(f"pushing to {repo_id!r} failed: {_first_line(exc)}") from None
    except _transport_errors() as exc:
        raise HubPushError(f"cannot reach the Hub at {api.endpoint}: {type(exc).__name__}: {exc}") from None


def _content(path: Path, rel: str, repo_id: str, repo_type: str, api) -> str | bytes:
    """What goes up for one file: the file itself, or for the card, the card loading ``repo_id`` (and, for a
    model, naming only public datasets)."""
    if rel != "README.md":
        return str(path)
    from fashrec.hub_card import for_repo

    text = for_repo(path.read_text(encoding="utf-8"), repo_id)
    return (public_datasets_only(text, api) if repo_type == "model" else text).encode("utf-8")


def public_datasets_only(text: str, api) -> str:
    """A model card whose ``datasets:`` (and model-index) name only datasets that are public on the Hub: a
    private or missing one is a 404 for everyone else, so it becomes a plain description."""
    from huggingface_hub import ModelCard
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    card = ModelCard(text)
    named = list(card.data.datasets or [])
    hidden = []
    for dataset in named:
        try:
            if api.dataset_info(dataset).private:
                hidden.append(dataset)
        except (RepositoryNotFoundError, HfHubHTTPError):
            hidden.append(dataset)
    if not hidden:
        return text
    card.data.datasets = [d for d in named if d not in hidden] or None
    for result in card.data.eval_results or []:
        if result.dataset_type in hidden:
            result.dataset_type = "custom"
    return str(card)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of whichever HTTP client this huggingface_hub uses (httpx2, httpx or requests)."""
    errors: list[type[BaseException]] = [ConnectionError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
