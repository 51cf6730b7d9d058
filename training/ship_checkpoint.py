"""Turn trained MultiTaskCNN weights into a shipped checkpoint folder: config, weights, eval, metrics, card.

    python training/ship_checkpoint.py runs/experiments/cnn-white-aux-120ep.safetensors \\
        --out fashrec/checkpoints/multitask-cnn --data ../shared/data/hm

``weights`` is either a checkpoint folder written by ``fashrec train --model multitask`` or a
``<variant>.safetensors`` from ``training/experiments.py`` (its config.json is in the file's metadata).
The shipped model keeps only the heads its focuses use (auxiliary training heads are dropped: they shape
the trunk during training, not the embedding) and takes the embedding settings given here. Then
``fashrec.evaluate`` scores it on the test split of ``load_hm(data, seed=42, test_size=0.2)`` -> eval.json,
whose model rows become metrics.json and the card (``fashrec.hub_card.write_model_card``, the writer of every model card).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INFO_KEYS = ("model_class", "fashrec_version", "embedding_dim")


def load_trained(weights: str):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(weights)
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    else:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "config" not in meta:
            raise ValueError(f"{path}: no 'config' in the safetensors metadata (not a training/experiments.py file)")
        config = json.loads(meta["config"])
        state = load_file(str(path))
    return {k: v for k, v in config.items() if k not in INFO_KEYS}, state


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="checkpoint folder or experiments <variant>.safetensors")
    p.add_argument("--out", required=True, help="folder to write (e.g. fashrec/checkpoints/multitask-cnn)")
    p.add_argument("--data", default=None, help="H&M data for eval.json (skip evaluation when omitted)")
    p.add_argument("--representation", default="probabilities", choices=("probabilities", "embedding"))
    p.add_argument("--histogram-weight", type=float, default=0.5)
    p.add_argument("--recipe", default="", help="the command that trained the weights (for the card)")
    args = p.parse_args(argv)

    import fashrec
    from fashrec.atomic import write_json_atomic
    from fashrec.models.multitask_cnn import MultiTaskCNN

    config, state = load_trained(args.weights)
    focus_columns = config.get("focus_columns") or {"shape": "product_type_name", "colour": "colour_group_name",
                                                    "pattern": "graphical_appearance_name"}
    keep = set(focus_columns.values())
    config["classes"] = {c: n for c, n in config["classes"].items() if c in keep}
    config.update(representation=args.representation, histogram_weight=args.histogram_weight,
                  focus_columns=focus_columns)
    model = MultiTaskCNN(**config)
    wanted = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=True)
    out = Path(args.out)
    model.eval().save_pretrained(out)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out}: {sum(t.numel() for t in model.state_dict().values()):,} values, {size:,} bytes")
    if args.data:
        result = fashrec.evaluate(args.data, model=str(out), split="test", k=10, metrics=("cosine",),
                                  model_name=out.name)
        write_json_atomic(result, out / "eval.json")
        print(fashrec.eval.evaluation.markdown(result))
    if (out / "eval.json").is_file():
        write_card(model, out, json.loads((out / "eval.json").read_text()), args.recipe)
    return 0


def write_card(model, out: Path, result: dict, recipe: str) -> None:
    """metrics.json (the model's scores per focus), training_args.json (the recipe and the data) and the
    card, by the one card writer (fashrec.hub_card): a shipped folder gets the shipped card."""
    from fashrec.atomic import write_json_atomic
    from fashrec.data.terms import TERMS
    from fashrec.hub_card.checkpoint import shipped_name, write_model_card, write_shipped_cards

    rows = [r for r in result["retrieval"] if r["embedding"] == "model" and r["metric"] == "cosine"]
    metrics = {f"{r.get('focus', 'overall')}/{r['label']}/{key}": r[src] for r in rows
               for key, src in (("precision@10", "precision_at_k"), ("map@10", "map_at_k"))}
    write_json_atomic({"split": result["split"], "k": result["k"], "n_queries": result["n_queries"],
                       "metric": "cosine", "scores": metrics}, out / "metrics.json")
    args = {"dataset": "H&M Personalized Fashion Recommendations (5,000-image subset)", "dataset_terms": TERMS}
    if recipe:
        args["recipe"] = recipe
    write_json_atomic(args, out / "training_args.json")
    if shipped_name(out):
        write_shipped_cards([shipped_name(out)])
    else:
        write_model_card(out)


if __name__ == "__main__":
    raise SystemExit(main())
