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

The token comes from HF_TOKEN or from 'hf auth login'; it needs write access. It is never printed.

examples:
  fashrec push runs/conv-ae --repo-id my-org/fashrec-conv-ae
  fashrec push exports/hm-5k --repo-id my-org/hm-fashion-5k --repo-type dataset --private
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="the folder to publish")
    parser.add_argument("--repo-id", required=True, help="target repo, 'namespace/name' (created if missing)")
    parser.add_argument("--repo-type", choices=["model", "dataset"], default="model",
                        help="kind of repo (default: model)")
    parser.add_argument("--private", action="store_true", help="create the repo as private (if it does not exist)")
    parser.add_argument("--message", default=None, help="commit message (default: a summary of the upload)")


def run(args: argparse.Namespace) -> int:
    from fashrec.hub.push import HubPushError, check_folder, push_folder

    files = check_folder(args.folder, args.repo_type)  # fail before touching the network
    print(f"pushing {len(files)} files from {args.folder} to {args.repo_type} repo {args.repo_id} ...")
    try:
        url = push_folder(args.folder, args.repo_id, repo_type=args.repo_type, private=args.private,
                          commit_message=args.message)
    except HubPushError as exc:
        print(f"fashrec push: error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {url}")
    return 0
