"""``fashrec embed``: embed a catalogue of product photos into a saved SimilarityIndex (resumable)."""
from __future__ import annotations

HELP = "embed a catalogue of photos with a model into a searchable index (batched, resumable)"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Embed every photo of --data with --model and save a SimilarityIndex to --out, for 'fashrec recommend'
and the Space.

--data is anything fashrec.load_hm reads: an H&M folder (metadata.csv + images/), a saved or exported
dataset, a Hub dataset id, 'sample' (the photos shipped with fashrec), or a plain folder of images
(ids = file stems, no labels). Metadata columns (article_id, prod_name, product_type_name,
colour_group_name, ...) go into the index as strings, for 'recommend --where'. A model with several
focuses (e.g. shape / colour / pattern) gets every focus embedded.

Large catalogues: photos are embedded in shards of --shard-size images, each written atomically to
OUT.partial/shards/ as soon as it is done. If the job dies, run the same command again: finished shards
are skipped. The finished index is moved to --out in one step, and records the model (its weights hash,
so loading the index with another model is refused, and its folder or Hub id, so 'recommend --image'
can reload it) and where each photo lives (for 'recommend --grid').

Speed: threads decode the next batches (--workers, default one per CPU) while the model runs on half
the CPUs (--threads; more threads per operator only wait for each other on a busy machine). The model's BatchNorms are folded into its convolutions, every focus
comes from one pass of the network, and the network runs in channels-last layout (--backend torch) or
on ONNX Runtime (--backend onnx, pip install 'fashrec[onnx]'; the same vectors to float32 rounding).
--device cuda runs the model on a GPU. Flip TTA (averaging each photo with its mirror image, models with
a flip_tta option such as MultiTaskCNN) follows the model's config.json; --no-flip-tta / --flip-tta
override it (one view is about half the forward cost, at the quality cost measured in docs/scale.md).
The choice is recorded in the index, and image queries and updates reuse it.

Photos that cannot be used (undecodable, truncated, decompression bombs) are skipped: their ids and
the reason are printed and recorded in the index's index.json ("skipped_images"). --strict makes them
an error instead.

The index folder carries its own photos, as small thumbnails (photos/), and a seal (integrity.json)
over every file: 'fashrec recommend', 'fashrec index', 'fashrec space build' and the Space open it with
fashrec.open_index, which refuses a folder changed since it was sealed.

Beyond one machine: --engine ray embeds with Ray Data, the model in a pool of actors (--ray-actors, GPU
actors with --device cuda), on the cluster at --address (default: a local Ray). Same index format. The
photos must be readable from every node (a shared file system, or a dataset whose images are bytes).
See docs/scale.md.

Example:
    fashrec embed --model paper-ae --data ../shared/data/hm --out runs/hm-index
"""


def add_arguments(parser) -> None:
    import argparse

    parser.add_argument("--model", default=None,
                        help="checkpoint folder, Hub repo id or shipped name (default: the shipped default checkpoint)")
    parser.add_argument("--data", required=True, help="catalogue: H&M folder, saved dataset, Hub id, 'sample' or a folder of images")
    parser.add_argument("--out", required=True, help="folder to write the index to")
    parser.add_argument("--n", type=int, default=None, help="embed a seeded random subset of N photos (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="photos per forward pass (default %(default)s)")
    parser.add_argument("--shard-size", type=int, default=1024, help="photos per resumable shard (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default %(default)s)")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                        help="average each photo with its mirror image, or not (--no-flip-tta); default: as the "
                             "model's config.json says (models with flip_tta)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding threads (default: one per CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="the model's intra-op threads (default: half the CPUs, at least one)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="what runs the network: torch, or ONNX Runtime (pip install 'fashrec[onnx]'; "
                             "CPU only) (default %(default)s)")
    parser.add_argument("--strict", action="store_true", help="a photo that cannot be decoded is an error, not skipped")
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="local: this process; ray: Ray Data with the model in an actor pool (default %(default)s)")
    parser.add_argument("--address", default=None, help="Ray cluster address for --engine ray (default: a local Ray)")
    parser.add_argument("--ray-actors", type=int, default=None,
                        help="model actors for --engine ray (default: one per CPU, or per GPU)")
    parser.add_argument("--restart", action="store_true", help="discard an unfinished job's shards and start over")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index at --out")


def model_reference(model_arg: str | None) -> str:
    """What the index records as its model: a shipped name as is, a folder as an absolute path, else the Hub id."""
    from pathlib import Path

    from fashrec import pretrained

    if model_arg is None or model_arg == "default":
        return pretrained.DEFAULT
    if Path(model_arg).expanduser().exists():
        return str(Path(model_arg).expanduser().resolve())
    return model_arg


def run(args) -> int:
    import sys

    from fashrec.index.folder import open_index
    from fashrec.jobs.embed_job import embed_catalogue
    from fashrec.models.hub_model import load_model

    ref = model_reference(args.model)
    model = load_model(ref, device=args.device, options=None if args.flip_tta is None else {"flip_tta": args.flip_tta})
    index = embed_catalogue(model=model, model_ref=ref, data=args.data, out=args.out, n=args.n,
                            batch_size=args.batch_size, shard_size=args.shard_size, restart=args.restart,
                            overwrite=args.overwrite, strict=args.strict, workers=args.workers,
                            threads=args.threads, backend=args.backend, engine=args.engine,
                            ray_address=args.address, ray_actors=args.ray_actors)
    dims = ", ".join(f"{name} {dim}-d" for name, dim in index.dims.items())
    print(f"embedded {len(index)} photos with {ref} ({dims}) into {args.out}", file=sys.stderr)
    report_skipped(open_index(args.out).skipped)
    return 0


def report_skipped(skipped: list[dict]) -> None:
    """Print the photos that could not be used (all ids on one line, the first reasons below)."""
    import sys

    if not skipped:
        return
    print(f"skipped {len(skipped)} photo(s) that cannot be used (listed in index.json): "
          + " ".join(s["id"] for s in skipped), file=sys.stderr)
    for s in skipped[:5]:
        print(f"  {s['id']}: {s['reason']}", file=sys.stderr)
