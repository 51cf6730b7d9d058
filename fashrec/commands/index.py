"""``fashrec index add | remove | replace | seal``: update an index folder in place, embedding only what is
new, or vouch for it as it is."""
from __future__ import annotations

HELP = "add, remove or replace products of an index in place (embeds only the new photos), or re-seal it"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Update an index made by 'fashrec embed' without rebuilding it:

  add      embed the photos of --data and append them (ids already in the index are refused)
  remove   drop the ids listed in --ids FILE (one a line; blank lines and # comments are skipped)
  replace  re-embed items already in the index from new photos of --data (same ids)
  seal     vouch for the folder as it is now: hash every file into integrity.json

An index folder is sealed: integrity.json holds the sha256 of every file in it (the vectors, ids,
metadata, index.json, catalogue.json and each photo it serves). Every update first checks the seal and
refuses a folder whose seal is missing or broken, naming the file: an update never launders a change.
If you changed the folder on purpose and vouch for it, 'fashrec index seal FOLDER' seals it again; it
checks everything else first (formats, ids, one photo per item) and prints what it trusted.

New photos are embedded with the model the index records (catalogue.json), built with the options it
was embedded with (e.g. --no-flip-tta); --model must name the same weights, class and preprocessing, or
the update is refused. Each new photo is also stored in the folder as a small thumbnail (photos/), the
file a Space serves for it. Photos that cannot be used (undecodable, decompression bombs) are skipped
and reported (and for 'add' recorded in index.json); --strict makes them an error.

Each update writes the whole folder beside the old one and swaps it in with one atomic rename: a crash
at any moment leaves the old index or the new one, and a full disk is one error line with the old index
untouched. The updated index answers exactly as a fresh 'fashrec embed' of the same items in the same
order; a Space serving the folder shows the update after a restart.

Examples:
    fashrec index add --index runs/hm-index --data new-photos/
    fashrec index remove --index runs/hm-index --ids discontinued.txt
    fashrec index replace --index runs/hm-index --data reshot/
    fashrec index seal runs/hm-index
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
    p = actions.add_parser("seal", help="vouch for an index folder as it is now (re-seal it)",
                           description="check an index folder (all but its seal) and seal every file as it is now")
    p.add_argument("folder", metavar="FOLDER", help="the index folder")


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

    if args.action == "seal":
        return _seal(args.folder)
    if args.action == "remove":
        done = index_update.remove_items(args.index, read_ids(args.ids))
        print(f"removed {len(done['removed'])} item(s) from {args.index} ({done['n_items']} now)", file=sys.stderr)
        return 0
    update = index_update.add_photos if args.action == "add" else index_update.replace_photos
    done = update(args.index, args.data, model=args.model, strict=args.strict, batch_size=args.batch_size,
                  workers=args.workers, device=args.device)
    verb = "added" if args.action == "add" else "replaced"
    print(f"{verb} {len(done[verb])} photo(s) in {args.index} ({done['n_items']} items now)", file=sys.stderr)
    report_skipped(done["skipped"])
    return 0


def _seal(folder) -> int:
    from fashrec.index.folder import seal_folder
    from fashrec.index.layout import PHOTOS_DIR

    trusted = seal_folder(folder)
    photos = {name: h for name, h in trusted.items() if name.startswith(PHOTOS_DIR + "/")}
    print(f"sealed {folder}: integrity.json now trusts these {len(trusted)} files as they are:")
    for name, digest in trusted.items():
        if name not in photos:
            print(f"  {name}  sha256 {digest[:16]}")
    print(f"  {PHOTOS_DIR}/: {len(photos)} photo(s), exactly the ones catalogue.json lists")
    return 0
