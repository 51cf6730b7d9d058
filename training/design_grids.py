"""Pictures a person can judge: 6 fixed test queries and their neighbours, one grid per embedding.

    python training/design_grids.py --data ../shared/data/hm --before runs/multitask-cnn-before \\
        --after default --out docs/images
    python training/design_grids.py --data ../shared/data/hm --before previous --after default --focus colour \\
        --mark colour --ids 0395127012 --prefix colour --no-raw --out docs/images

Writes ``<prefix>_raw.png`` (raw pixels), ``<prefix>_before.png`` and ``<prefix>_after.png`` (the ``--focus``
of each model, default ``shape``; ``--before-focus`` if the earlier model calls it otherwise): one row per
query, each row the query and its ``--k`` nearest catalogue items (cosine, the query excluded), captioned
with the product type and colour, and ``SAME DESIGN`` (``--mark design``, the default) where the neighbour
is another article of the query's design (same ``product_code``), or ``SAME COLOUR`` / ``SAME TYPE``.
The queries are ``--ids`` (test photos), then test photos drawn with a fixed seed (for ``--mark design``
only those whose design has another article in the catalogue), so every run shows the same ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="labelled H&M data (its test split gives the queries)")
    p.add_argument("--before", required=True, help="model folder / shipped name / Hub id: the earlier model")
    p.add_argument("--after", required=True, help="model folder / shipped name / Hub id: the new model")
    p.add_argument("--focus", default="shape", help="the focus to compare (default %(default)s)")
    p.add_argument("--before-focus", default=None, help="the earlier model's name for that focus (default: --focus)")
    p.add_argument("--mark", choices=["design", "colour", "type"], default="design",
                   help="what a neighbour shares with the query to be marked (default %(default)s)")
    p.add_argument("--ids", default="", help="comma-separated test article ids to show first (default: none)")
    p.add_argument("--prefix", default="design", help="file name prefix (default %(default)s)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw-pixel grid")
    p.add_argument("--out", required=True, help="folder for the three PNGs")
    p.add_argument("--k", type=int, default=6, help="neighbours per query (default %(default)s)")
    p.add_argument("--queries", type=int, default=6, help="how many queries (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the query draw (default %(default)s)")
    args = p.parse_args(argv)

    import datasets
    import numpy as np
    import torch
    from PIL import Image

    import fashrec
    from fashrec.eval.neighbour_grid import neighbour_grid, save_grid
    from fashrec.models.pretrained import resolve

    dd = fashrec.load_hm(args.data, progress=False)
    train, test = dd["train"], dd["test"]
    ids = list(train["article_id"]) + list(test["article_id"])
    codes = list(train["product_code"]) + list(test["product_code"])
    types = [train.features["product_type_name"].int2str(v) for v in list(train["product_type_name"]) + list(test["product_type_name"])]
    colours = [train.features["colour_group_name"].int2str(v) for v in list(train["colour_group_name"]) + list(test["colour_group_name"])]
    cells = [c for split in (train, test) for c in split.cast_column("image", datasets.Image(decode=False))["image"]]
    count = {c: codes.count(c) for c in set(codes)}
    fixed = [ids.index(a) for a in args.ids.split(",") if a]
    if any(q < len(train) for q in fixed):
        raise SystemExit("--ids must be test photos: the train split is what the models learned from")
    candidates = [i for i in range(len(train), len(ids)) if i not in fixed and (args.mark != "design" or count[codes[i]] > 1)]
    drawn = np.random.default_rng(args.seed).choice(candidates, size=args.queries - len(fixed), replace=False)
    queries = fixed + sorted(drawn.tolist())
    same = {"design": codes, "colour": colours, "type": types}[args.mark]
    marker = f"SAME {args.mark.upper()}"

    def photo(i):
        cell = cells[i]
        return cell["bytes"] if cell.get("bytes") else cell["path"]

    position = {a: i for i, a in enumerate(ids)}

    def rows_for(vectors: np.ndarray) -> tuple[list, int, int]:
        """One grid per query, how many queries have a marked neighbour, and how many neighbours are marked."""
        index = fashrec.SimilarityIndex(vectors, ids)
        found, _ = index.search(vectors[queries], k=args.k, metric="cosine", exclude=[[ids[q]] for q in queries])
        rows, same_count, marked = [], 0, 0
        for q, row in zip(queries, found):
            hits = [position[a] for a in row]
            same_count += any(same[h] == same[q] for h in hits)
            marked += sum(same[h] == same[q] for h in hits)
            captions = [[types[h], colours[h], marker if same[h] == same[q] else ""] for h in hits]
            rows.append(neighbour_grid(photo(q), [photo(h) for h in hits], captions=captions,
                                       query_caption=["query", types[q], colours[q]]))
        return rows, same_count, marked

    x = torch.cat([fashrec.dataset_tensor(train, progress=False), fashrec.dataset_tensor(test, progress=False)])
    embeddings = {} if args.no_raw else {"raw": x.reshape(len(x), -1).numpy()}
    for name, ref, focus in (("before", args.before, args.before_focus or args.focus), ("after", args.after, args.focus)):
        model = fashrec.from_pretrained(resolve(ref)).eval()
        xs = torch.cat([fashrec.dataset_tensor(train, model.preprocess_config, progress=False),
                        fashrec.dataset_tensor(test, model.preprocess_config, progress=False)])
        with torch.no_grad():
            embeddings[name] = torch.cat([model.embed(xs[i:i + 500], focus=focus)
                                          for i in range(0, len(xs), 500)]).numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, vectors in embeddings.items():
        rows, found, marked = rows_for(vectors)
        sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
        y = 0
        for r in rows:
            sheet.paste(r, (0, y))
            y += r.height
        save_grid(sheet, out / f"{args.prefix}_{name}.png")
        print(f"{out / f'{args.prefix}_{name}.png'}: {found} of {len(queries)} queries have a neighbour of the same "
              f"{args.mark} in the top {args.k}; {marked} of {len(queries) * args.k} neighbours are")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
