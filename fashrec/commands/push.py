"""``fashrec push DIR --repo-id ID``: publish a model (or dataset) folder to the Hugging Face Hub."""
from __future__ import annotations

import argparse
import sys

HELP = "publish a saved model (or dataset) folder to the Hugging Face Hub in one commit"
DESCRIPTION = """\
Publish a folder to the Hugging Face Hub in a single commit.

A model folder must hold config.json, model.safetensors and README.md (what model.save_pretrained and
the training script write); a dataset folder must hold README.md and data/. The folder is checked before
anything is created on the Hub. Temporary and checkpoint files (*.tmp, checkpoint/, *.pt, ...) stay behind.

A folder that holds H&M product photos or pictures of them (a dataset's data/, reconstructions.png,
neighbour grids; not the loss curve) goes up to a PRIVATE repo unless --public: the competition's rules
forbid redistributing the photos. Other folders get a public repo unless --private. An existing repo keeps
its visibility, and photos are not added to a public one without --public.

The token comes from HF_TOKEN or from 'hf auth login'; it needs write access. It is never printed.

examples:
  fashrec push runs/conv-ae --repo-id my-org/fashrec-conv-ae
  fashrec push exports/hm-5k --repo-id my-org/hm-fashion-5k --repo-type dataset     # private: H&M photos
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="the folder to publish")
    parser.add_argument("--repo-id", required=True, help="target repo, 'namespace/name' (created if missing)")
    parser.add_argument("--repo-type", choices=["model", "dataset"], default="model",
                        help="kind of repo (default: model)")
    add_visibility_arguments(parser)
    parser.add_argument("--message", default=None, help="commit message (default: a summary of the upload)")


def add_visibility_arguments(parser: argparse.ArgumentParser) -> None:
    """--public / --private, for every command that creates a repo (the default follows the content)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--public", dest="private", action="store_false", default=None,
                       help="create the repo public, even with H&M photos in it (prints their terms)")
    group.add_argument("--private", dest="private", action="store_true",
                       help="create the repo private (the default when it holds H&M photos)")


def say_visibility(private: bool | None, photos: list[str]) -> None:
    """What the repo's visibility will be and why; with photos going public, the data's terms."""
    from fashrec.data.terms import PUBLIC_WARNING
    from fashrec.hub.visibility import choose_private, describe

    print(f"visibility: {describe(choose_private(private, photos), photos)}")
    if photos and private is False:
        print(f"note: {PUBLIC_WARNING}")


def run(args: argparse.Namespace) -> int:
    from fashrec.hub.push import HubPushError, check_folder, push_folder
    from fashrec.hub.visibility import photo_files

    files = check_folder(args.folder, args.repo_type)  # fail before touching the network
    print(f"pushing {len(files)} files from {args.folder} to {args.repo_type} repo {args.repo_id} ...")
    say_visibility(args.private, photo_files(files, args.repo_type))
    try:
        url = push_folder(args.folder, args.repo_id, repo_type=args.repo_type, private=args.private,
                          commit_message=args.message)
    except HubPushError as exc:
        print(f"fashrec push: error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {url}")
    return 0
