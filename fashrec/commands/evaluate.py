"""``fashrec evaluate``: score a model's recommendations against H&M labels and baselines."""
from __future__ import annotations

import argparse

HELP = "score a model's recommendations (precision@k, mAP@k, design hit@k) against raw-pixel, PCA and random baselines"
EXTRA = "eval"  # what a missing optional package asks to install
DESCRIPTION = """\
How often do a model's k nearest neighbours share the query's product type, colour group or graphical
appearance, and how often is the same garment in another colourway (same product_code: the "design"
relevance) among them? Labels are measured with precision@k and mAP@k; design with hit@k (the share
of queries with at least one same-design item in the top k, over the queries whose design has another
article in the catalogue; their number is printed) and mAP@k. All under the paper's three metrics (cityblock, euclidean,
cosine), for the model and, in the same run, for three baselines:

  raw     the preprocessed 3x64x64 pixels, flattened (12,288 values)
  pca     sklearn PCA with as many components as the model's embedding, fitted on the train split
          (with --split all, on every image: there is no held-out data then)
  random  random neighbours: the exact expected scores (the class prior), identical for every metric

--split test (default): the held-out 20% query the whole catalogue (train + test); --split test-only:
they query each other (a smaller catalogue: harder); --split all: every image queries all the others. The query itself is never among its neighbours. Also reported:
reconstruction MSE (model, PCA of the same size, the mean train image) and k-means (k = number of
product types) of the model's embeddings scored with NMI and ARI against product_type_name.

The baselines do not depend on the model: computed once per data set (the images, split, k and seed),
they are kept in $FASHREC_CACHE (default ~/.cache/fashrec) under eval/, so a second model is scored
in a fraction of the time. --no-cache recomputes them and keeps nothing. Flip TTA (a model averaging
each photo with its mirror image, e.g. MultiTaskCNN) follows the model's config.json; --no-flip-tta /
--flip-tta override it, as they do for 'fashrec embed'.

Without --model, the project's default shipped checkpoint is scored. --json prints one JSON object on
stdout (progress goes to stderr); --out also writes it to a file.

--extra-train-data names other sources the model was trained on: the design rows are then repeated
over the queries whose design has no photo in any training data ("unseen"), a figure that memorised
designs cannot lift.

Example (the table in docs/evaluation.md):
    fashrec evaluate --data ../shared/data/hm --split test --k 10 --extra-train-data ../shared/data/hm-extra
"""


def add_arguments(parser) -> None:
    import argparse

    parser.add_argument("--data", required=True, help="labelled data: H&M folder, saved dataset, Hub id or 'sample'")
    parser.add_argument("--model", default=None,
                        help="checkpoint folder, Hub repo id or shipped name (default: the shipped default checkpoint)")
    parser.add_argument("--split", default="test", choices=["test", "test-only", "all"],
                        help="which images query which catalogue (default %(default)s)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (default %(default)s)")
    parser.add_argument("--metrics", default="cityblock,euclidean,cosine", help="comma-separated (default %(default)s)")
    parser.add_argument("--labels", default=None,
                        help="comma-separated relevances: label columns and 'design' (default: product_type_name, "
                             "colour_group_name, graphical_appearance_name and design, those the data has)")
    parser.add_argument("--extra-train-data", action="append", default=[], metavar="DIR",
                        help="another source the model was trained on (repeatable): adds design rows over the "
                             "queries whose design it never saw")
    parser.add_argument("--embeddings", default="model,pca,raw,random",
                        help="what to score, comma-separated (default %(default)s)")
    parser.add_argument("--n", type=int, default=None, help="use a seeded random subset of N images (default: all)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the subset, the split, PCA and k-means (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default %(default)s)")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                        help="average each photo with its mirror image, or not (--no-flip-tta); default: as the "
                             "model's config.json says (models with flip_tta)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the baselines and keep nothing on disk")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of markdown tables")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file (atomically)")


def _list(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"--{what} is empty")
    return items


def run(args) -> int:
    import json

    from fashrec.models.hub_model import load_model
    from fashrec.eval.evaluation import evaluate, markdown
    from fashrec.models.pretrained import DEFAULT

    if args.k < 1:
        raise ValueError(f"--k must be a positive integer, got {args.k}")
    options = None if args.flip_tta is None else {"flip_tta": args.flip_tta}
    model = load_model(args.model or DEFAULT, device=args.device, options=options)
    result = evaluate(args.data, model=model, model_name=args.model or DEFAULT, split=args.split, k=args.k,
                      metrics=_list(args.metrics, "metrics"), labels=_list(args.labels, "labels"),
                      embeddings=_list(args.embeddings, "embeddings"), n=args.n, seed=args.seed,
                      extra_train_data=args.extra_train_data, cache_dir=False if args.no_cache else None)
    if args.out:
        from fashrec.atomic import write_json_atomic

        write_json_atomic(result, args.out)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0
