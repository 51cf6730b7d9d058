"""``fashrec index add | remove | replace``: update an index folder in place, embedding only what is new."""
from __future__ import annotations

HELP = "add, remove or replace products of an index in place (embeds only the new photos)"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Update an index made by 'fashrec embed' without rebuilding it:

  add      embed the photos of --data and append them (ids already in the index are refused)
  remove   drop the ids listed in --ids FILE (one a line; blank lines and # comments are skipped)
  replace  re-embed items already in the index from new photos of --data (same ids)

New photos are embedded with the model the index records (catalogue.json), with the options it was
embedded with (e.g. --no-flip-tta); --model must name the same weights, class and preprocessing, or the
update is refused. Photos that cannot be decoded are skipped and reported (and for 'add' recorded in
index.json); --strict makes them an error.

Each update writes the whole folder beside the old one and swaps it in with one atomic rename: a crash
at any moment leaves the old index or the new one, and a full disk is one error line with the old index
untouched. The updated index answers exactly as a fresh 'fashrec embed' of the same items in the same
order; a Space serving the folder shows the update after a restart.

Examples:
    fashrec index add --index runs/hm-index --data new-photos/
    fashrec index remove --index runs/hm-index --ids discontinued.txt
    fashrec index replace --index runs/hm-index --data reshot/
"""


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (("add", "embed new photos and append them"),
                            ("replace", "re-embed items of the index from new photos")):
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--index", required=True, help="index folder written by 'fashrec embed'")
        p.add_argument("--data", required=True, help="the photos: H&M folder, saved dataset, Hub id or folder of images")
        p.add_argument("--model", default=None, help="the model the index was built with (default: the one it records)")
        p.add_argument("--strict", action="store_true", help="a photo that cannot be decoded is an error")
        p.add_argument("--batch-size", type=int, default=256, help="photos per forward pass (default %(default)s)")
        p.add_argument("--workers", type=int, default=None, help="decoding threads (default: one per CPU)")
        p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    p = actions.add_parser("remove", help="drop products by id", description="drop products by id")
    p.add_argument("--index", required=True, help="index folder written by 'fashrec embed'")
    p.add_argument("--ids", required=True, metavar="FILE", help="ids to remove, one a line")


def read_ids(path) -> list[str]:
    """The ids of a file, one a line; blank lines and ``#`` comments skipped; an empty list is an error."""
    from pathlib import Path

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"--ids {path}: cannot read it ({exc.strerror or exc})") from None
    ids = [line.split("#", 1)[0].strip() for line in lines]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"--ids {path} lists no ids")
    return ids


def run(args) -> int:
    import sys

    from fashrec.commands.embed import report_skipped
    from fashrec.jobs import index_update

    if args.action == "remove":
        done = index_update.remove_items(args.index, read_ids(args.ids))
        print(f"removed {len(done['removed'])} item(s) from {args.index} ({done['n_items']} now)", file=sys.stderr)
        return 0
    model = None
    if args.model is not None or args.device != "cpu":
        from fashrec.jobs.embed_job import read_catalogue
        from fashrec.jobs.index_folder import apply_embed_options, load_model

        ref = args.model or read_catalogue(args.index).get("model")
        if not ref:
            raise ValueError(f"{args.index} records no model: pass --model")
        model = apply_embed_options(load_model(ref, device=args.device), args.index)
    update = index_update.add_photos if args.action == "add" else index_update.replace_photos
    done = update(args.index, args.data, model=model, strict=args.strict, batch_size=args.batch_size,
                  workers=args.workers)
    verb = "added" if args.action == "add" else "replaced"
    print(f"{verb} {len(done[verb])} photo(s) in {args.index} ({done['n_items']} items now)", file=sys.stderr)
    report_skipped(done["skipped"])
    return 0
