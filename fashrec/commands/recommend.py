"""``fashrec recommend``: the k most similar products of a catalogue item or of a new photo."""
from __future__ import annotations

HELP = "print the k most similar products of a catalogue item (--item) or a photo (--image)"
EXTRA = "data"  # what a missing optional package asks to install
DESCRIPTION = """\
Search an index made by 'fashrec embed' and print the neighbours as a table: rank, id, distance, name,
product type and colour.

  --item ARTICLE_ID   a product of the catalogue; it is left out of its own results.
  --image PATH        any photo; it is preprocessed the way the model expects and embedded. The model is
                      --model, else the one recorded in the index (with the options it recorded, e.g.
                      no flip TTA); a model that would not make the index's vectors is refused.
  --where COL=VALUE   only recommend products whose metadata column COL equals VALUE; repeat it for
                      more conditions (the same COL twice means either value).
  --focus NAME        for models with several focuses: what "similar" means (the index lists its focuses);
                      or weights, --focus "shape=2, colour=1" (the weighted sum of each focus's distance).
  --grid out.png      also draw the query and rank 1..k side by side (as in the paper's Figure 4.2), with
                      the photos the index folder carries.

The index folder is opened with fashrec.open_index: a folder changed since it was sealed is refused,
naming the file (see 'fashrec index seal').

Metrics are the paper's: cityblock (L1), euclidean (L2), cosine (1 - cosine similarity).

Examples:
    fashrec recommend --index runs/hm-index --item 0456163084 --k 5 --metric cosine
    fashrec recommend --index runs/hm-index --image ../shared/data/hm/images/045/0456163084.jpg --where product_group_name="Garment Upper body" --grid out.png
"""

from fashrec.index.distances import METRICS

COLUMNS = (("name", "prod_name"), ("type", "product_type_name"), ("colour", "colour_group_name"))


def add_arguments(parser) -> None:
    parser.add_argument("--index", required=True, help="index folder written by 'fashrec embed'")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--item", help="article_id of a catalogue product to find neighbours of")
    query.add_argument("--image", help="path of a photo to find neighbours of")
    parser.add_argument("--k", type=int, default=10, help="number of neighbours (default %(default)s)")
    parser.add_argument("--metric", default="cosine", choices=list(METRICS), help="distance (default %(default)s)")
    parser.add_argument("--where", action="append", default=[], metavar="COL=VALUE",
                        help="metadata filter, repeatable, e.g. --where colour_group_name=Black")
    parser.add_argument("--focus", default=None,
                        help="which embedding of a multi-focus model, or weights 'shape=2, colour=1' (default: the "
                             "index's first focus, overall)")
    parser.add_argument("--model", default=None, help="model for --image (default: the one recorded in the index)")
    parser.add_argument("--grid", default=None, metavar="PNG", help="also write a picture of the query and its neighbours")
    parser.add_argument("--json", action="store_true", help="print the neighbours as JSON instead of a table")


def parse_where(items: list[str]) -> dict:
    """``["a=1", "a=2", "b=x"]`` -> ``{"a": ["1", "2"], "b": "x"}``; ValueError naming a malformed item."""
    where: dict = {}
    for item in items:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column:
            raise ValueError(f"--where expects COLUMN=VALUE (e.g. colour_group_name=Black), got {item!r}")
        if column in where:
            previous = where[column]
            where[column] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            where[column] = value
    return where


def recommend(*, index_dir, item: str | None = None, image=None, k: int = 10, metric: str = "cosine",
              where: dict | None = None, focus: str | None = None, model=None) -> dict:
    """The search behind the command, as data: ``{"query": {...}, "neighbours": [{rank, id, distance, ...}]}``.
    ``index_dir`` is a folder or an opened one (``fashrec.open_index``)."""
    from fashrec.index.focus import check_focus_name, parse_focus
    from fashrec.index.folder import OpenedIndex, open_index

    if (item is None) == (image is None):
        raise ValueError("give exactly one of item= and image=")
    opened = index_dir if isinstance(index_dir, OpenedIndex) else open_index(index_dir, model)
    index = opened.index
    weights = parse_focus(focus, default=index.focuses[0])  # focus names are the index's, never a fixed list
    meta = index.metadata
    if item is not None:
        ids, dist = index.search_ids([item], k=k, metric=metric, where=where or None, focus=weights)
        query = {"id": item, **_describe(meta, index.position(item))}
    else:
        from fashrec.data.preprocess import preprocess

        model = opened.model
        x = preprocess(image, model.preprocess_config)[None]
        needed = [weights] if isinstance(weights, str) else list(weights)
        for name in needed:
            check_focus_name(name, index.focuses)
        vectors = {f: model.embed(x, focus=f).cpu().numpy() for f in needed}
        ids, dist = index.search(vectors[weights] if isinstance(weights, str) else vectors, k=k, metric=metric,
                                 where=where or None, focus=weights)
        query = {"image": str(image)}
    neighbours = [
        {"rank": r + 1, "id": i, "distance": float(d), **_describe(meta, index.position(i))}
        for r, (i, d) in enumerate(zip(ids[0], dist[0]))
    ]
    return {"query": query, "metric": metric, "focus": focus or index.focuses[0], "neighbours": neighbours}


def run(args) -> int:
    import json

    from fashrec.index.folder import open_index

    where = parse_where(args.where)
    if args.k < 1:
        raise ValueError(f"--k must be a positive integer, got {args.k}")
    opened = open_index(args.index, args.model)
    result = recommend(index_dir=opened, item=args.item, image=args.image, k=args.k, metric=args.metric,
                       where=where, focus=args.focus)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    if args.grid:
        _draw_grid(args, opened, result)
    return 0


# --------------------------------------------------------------------------- pieces


def _describe(meta, position: int) -> dict:
    out = {}
    for key, column in COLUMNS:
        value = meta[column].iloc[position] if meta is not None and column in meta.columns else None
        out[key] = None if value is None or value != value else str(value)  # NaN -> None
    return out


def _table(result: dict) -> str:
    q = result["query"]
    head = (f"query {q['id']}: " + " | ".join(q.get(key) or "-" for key, _ in COLUMNS)) if "id" in q else f"query image {q['image']}"
    rows = [("rank", "id", "distance", "name", "type", "colour")]
    for n in result["neighbours"]:
        rows.append((str(n["rank"]), n["id"], f"{n['distance']:.6g}", n["name"] or "-", n["type"] or "-", n["colour"] or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [head, f"{result['metric']} distance, focus {result['focus']}", ""]
    for j, r in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if c in (0, 2) else cell.ljust(w) for c, (cell, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _draw_grid(args, opened, result: dict) -> None:
    import sys

    from fashrec.eval.neighbour_grid import neighbour_grid, save_grid

    photos = opened.photos
    if args.item is not None:
        query_image = photos[args.item]
        query_caption = ["query", args.item, result["query"].get("name") or ""]
    else:
        query_image, query_caption = args.image, ["query", "(your photo)", ""]
    captions = [[f"rank {n['rank']}  d={n['distance']:.4g}", n["name"] or n["id"], n["colour"] or ""]
                for n in result["neighbours"]]
    save_grid(neighbour_grid(query_image, [photos[n["id"]] for n in result["neighbours"]],
                             query_caption=query_caption, captions=captions), args.grid)
    print(f"wrote {args.grid}", file=sys.stderr)
