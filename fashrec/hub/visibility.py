"""Who may see a pushed repo: one that holds H&M product photos, or pictures of them, goes up private
unless the caller asks for a public one, because the competition's rules forbid redistributing them.

    photos = photo_files(files, "model")          # ["reconstructions.png", "examples/grid.png"]
    private = choose_private(None, photos)        # True: the default follows the content
    refuse_public_repo(api, repo_id, "model", photos, private=None)   # an existing public repo needs --public

``private`` is three-valued everywhere: ``None`` (the default: private exactly when photos are in the folder),
``True`` (private) and ``False`` (public, asked for explicitly: ``--public``).
"""
from __future__ import annotations

from typing import Iterable

from fashrec.hub.push_error import HubPushError

PICTURES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# Pictures fashrec writes that show no product photo (plots): they do not make a repo private.
PLOTS = ("loss_curve.png",)


class PublicRepoError(HubPushError):
    """Photos were about to go into an existing public repo without ``--public``."""


def photo_files(files: Iterable[str], repo_type: str) -> list[str]:
    """The files (relative paths) that hold product photos or show them: pictures other than plots (a
    Space's catalogue thumbnails, reconstructions, neighbour grids) and a dataset's ``data/`` shards."""
    out = []
    for rel in files:
        name = rel.rsplit("/", 1)[-1].lower()
        if (name.endswith(PICTURES) and name not in PLOTS) or (repo_type == "dataset" and rel.startswith("data/")):
            out.append(rel)
    return out


def choose_private(private: bool | None, photos: list[str]) -> bool:
    """Whether a new repo is created private: as asked, else exactly when it would hold photos."""
    return bool(photos) if private is None else private


def refuse_public_repo(api, repo_id: str, repo_type: str, photos: list[str], *, private: bool | None) -> None:
    """A repo that already exists keeps its visibility, so photos must not slip into a public one unasked."""
    from huggingface_hub.errors import RepositoryNotFoundError

    if private is not None or not photos:
        return
    try:
        info = api.repo_info(repo_id, repo_type=repo_type)
    except RepositoryNotFoundError:
        return  # created private below
    if not info.private:
        raise PublicRepoError(
            f"{repo_type} repo {repo_id!r} is public and this folder holds {len(photos)} H&M photo file(s) "
            f"(e.g. {photos[0]}): push them there only with --public, where the competition's rules allow it, "
            "or push to a private repo")


def describe(private: bool, photos: list[str]) -> str:
    """One line for the command line: which visibility a new repo gets, and why."""
    if photos and private:
        return (f"a new repo is created private: the folder holds {len(photos)} H&M photo file(s) (e.g. {photos[0]}); "
                "--public makes it public")
    if photos:
        return "PUBLIC, as asked (--public)"
    return "a new repo is created " + ("private" if private else "public")
