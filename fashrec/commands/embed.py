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

Example:
    fashrec embed --model paper-ae --data ../shared/data/hm --out runs/hm-index
"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None,
                        help="checkpoint folder, Hub repo id or shipped name (default: the shipped default checkpoint)")
    parser.add_argument("--data", required=True, help="catalogue: H&M folder, saved dataset, Hub id, 'sample' or a folder of images")
    parser.add_argument("--out", required=True, help="folder to write the index to")
    parser.add_argument("--n", type=int, default=None, help="embed a seeded random subset of N photos (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="photos per forward pass (default %(default)s)")
    parser.add_argument("--shard-size", type=int, default=1024, help="photos per resumable shard (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default %(default)s)")
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

    from fashrec.jobs.embed_job import embed_catalogue
    from fashrec.models.hub_model import from_pretrained
    from fashrec.models.pretrained import resolve

    ref = model_reference(args.model)
    model = from_pretrained(resolve(ref), map_location=args.device)
    index = embed_catalogue(model=model, model_ref=ref, data=args.data, out=args.out, n=args.n,
                            batch_size=args.batch_size, shard_size=args.shard_size, restart=args.restart,
                            overwrite=args.overwrite)
    dims = ", ".join(f"{name} {dim}-d" for name, dim in index.dims.items())
    print(f"embedded {len(index)} photos with {ref} ({dims}) into {args.out}", file=sys.stderr)
    return 0
