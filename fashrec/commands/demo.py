"""``fashrec demo``: serve the Gradio Space (``space/app.py``) locally, by default on the embedded sample."""
from __future__ import annotations

import os
from pathlib import Path

HELP = "launch the Gradio demo (the Space) locally: similar-product search and reconstructions"
EXTRA = "space"  # what a missing optional package asks to install
DESCRIPTION = """\
Serve the fashrec Space on this machine and print its local URL (default http://127.0.0.1:7860).

With no options it needs no network and no data: it loads the shipped default checkpoint (multitask-cnn,
which recommends), the paper's autoencoder (paper-ae, which reconstructs: multitask-cnn has no decoder)
and the precomputed index of the photos shipped with fashrec (space/index). Nothing is embedded at start-up;
to serve another catalogue, build its index first and pass it with --index:

    fashrec embed --data ../shared/data/hm --out runs/hm-index
    fashrec demo --index runs/hm-index

The Space has two tabs (Recommend, Reconstruction) and three API endpoints for gradio_client
(/recommend_item, /recommend_image, /reconstruct); see docs/space.md. Stop it with Ctrl+C.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None,
                        help="checkpoint folder, Hub repo id or shipped name (default: the model the index was "
                             "built with, else the shipped default); sets FASHREC_MODEL")
    parser.add_argument("--recon-model", default=None,
                        help="model for the Reconstruction tab and /reconstruct (default: --model if it has a "
                             "decoder, else the shipped paper-ae; 'none' for no reconstructions); sets FASHREC_RECON_MODEL")
    parser.add_argument("--index", default=None,
                        help="index folder made by 'fashrec embed' (default: space/index, the embedded sample); "
                             "sets FASHREC_INDEX")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT, else 7860)")


def run(args) -> int:
    import importlib.util

    from fashrec.hub.space_build import source_space_dir

    app_file = source_space_dir() / "app.py"
    if args.model:
        os.environ["FASHREC_MODEL"] = args.model
    if args.recon_model:
        os.environ["FASHREC_RECON_MODEL"] = args.recon_model
    if args.index:
        if not Path(args.index).is_dir():
            raise FileNotFoundError(f"--index {args.index}: no such folder (build one with 'fashrec embed --out ...')")
        os.environ["FASHREC_INDEX"] = str(Path(args.index).resolve())
    if args.host:
        os.environ["GRADIO_SERVER_NAME"] = args.host
    if args.port:
        os.environ["GRADIO_SERVER_PORT"] = str(args.port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    spec = importlib.util.spec_from_file_location("fashrec_space_app", app_file)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return int(app.main() or 0)
