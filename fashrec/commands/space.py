"""``fashrec space build|push``: the Hugging Face Space as a folder that deploys by itself, and its upload."""
from __future__ import annotations

import sys

HELP = "build the Space as a self-contained folder (app, fashrec's code, checkpoints, index) and push it to the Hub"
EXTRA = "space"  # what a missing optional package asks to install (the card names this gradio)
DESCRIPTION = """\
fashrec space build OUT
    Write a complete Hugging Face Space repo to OUT: the app (app.py and its modules, from this checkout's
    space/), fashrec's own code in OUT/fashrec/ (from a wheel built from this checkout, or --wheel), a
    requirements.txt of registry packages only (fashrec's requirements, torch's CPU-only build: the Hub
    installs it before the folder exists), the checkpoints it serves in OUT/checkpoints/, the index they
    made in OUT/index/ with the photos it shows (its own, sealed), space.json, and the Space card README.md
    (sdk gradio, and the gradio and Python versions the Space runs: pins, the same on every machine; the
    checkout's space/requirements.txt and space/README.md's YAML are copies of these two files). The index is opened with fashrec.open_index (its
    seal, ids and photos, and the checkpoint's weights, preprocessing and options) before anything is
    written; OUT appears in one step.

fashrec space push OUT --repo-id ORG/NAME
    Create the Space (sdk gradio) if needed and make its files exactly OUT's, in one commit. The Space shows
    H&M product photos, so a new Space is PRIVATE unless --public (which prints the photos' terms), and
    an existing public Space is refused without --public. The token comes from HF_TOKEN or 'hf auth
    login'; it is never printed.

examples:
  fashrec space build runs/space                                   # space/index, multitask-cnn + paper-ae
  fashrec space build runs/space-hm --index runs/hm-index --overwrite
  fashrec space push runs/space --repo-id my-org/fashrec-demo
  cd runs/space && pip install -r requirements.txt "gradio[oauth,mcp]==<its card's sdk_version>" && python app.py
"""


def add_arguments(parser) -> None:
    from fashrec.commands.push import add_visibility_arguments

    sub = parser.add_subparsers(dest="space_command", metavar="build|push", required=True)
    build = sub.add_parser("build", help="write the Space repo to a folder", description=DESCRIPTION,
                           formatter_class=parser.formatter_class)
    build.add_argument("out", metavar="OUT", help="folder to write the Space to")
    build.add_argument("--index", default=None, help="index made by 'fashrec embed' (default: space/index, the sample)")
    build.add_argument("--model", default=None,
                       help="checkpoint that made the index: shipped name, folder or Hub id (default: the one the "
                            "index records)")
    build.add_argument("--recon-model", default=None,
                       help="checkpoint for reconstructions (default: --model if it has a decoder, else paper-ae; "
                            "'none' for none)")
    build.add_argument("--wheel", default=None,
                       help="take fashrec's code from this wheel (default: build one from this checkout)")
    build.add_argument("--overwrite", action="store_true", help="replace an earlier build in OUT")
    push = sub.add_parser("push", help="upload a built Space folder to the Hub", description=DESCRIPTION,
                          formatter_class=parser.formatter_class)
    push.add_argument("out", metavar="OUT", help="the folder 'fashrec space build' wrote")
    push.add_argument("--repo-id", required=True, help="the Space, 'namespace/name' (created if missing)")
    add_visibility_arguments(push)
    push.add_argument("--message", default=None, help="commit message")


def run(args) -> int:
    if args.space_command == "build":
        from fashrec.hub.space_build import build_space

        out = build_space(args.out, index=args.index, model=args.model, recon_model=args.recon_model,
                          wheel=args.wheel, overwrite=args.overwrite)
        from fashrec.hub.space_requirements import GRADIO_SDK

        print(f"built the Space in {out}; try it as the Hub runs it: cd {out} && pip install -r requirements.txt "
              f"'gradio[oauth,mcp]=={GRADIO_SDK}' && python app.py")
        return 0
    from fashrec.commands.push import say_visibility
    from fashrec.hub.push import HubPushError
    from fashrec.hub.space_build import check_space, push_space
    from fashrec.hub.visibility import photo_files

    say_visibility(args.private, photo_files(check_space(args.out), "space"))
    try:
        url = push_space(args.out, args.repo_id, private=args.private, commit_message=args.message)
    except HubPushError as exc:
        print(f"fashrec space push: error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed: {url}")
    return 0
