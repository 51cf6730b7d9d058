"""The scores of a model card: its ``model-index`` entries and its Evaluation section.

Everything comes from what the caller measured: ``metrics`` (e.g. ``{"test_mse": 0.0042}``), retrieval
rows, and a ``fashrec evaluate`` result (``eval.json``) with its baselines and its scores per focus.
Nothing is recomputed here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from .template import is_number, number

TASK = "image-feature-extraction"
# The distance of the retrieval scores a card shows (``retrieval_rows`` keeps that distance's rows).
DISTANCE = "cosine"
# The baselines ``fashrec evaluate`` scores beside a model, as the card names them.
BASELINES = {"raw": "raw pixels", "pca": "PCA", "random": "random neighbour"}
RETRIEVAL_KEY = re.compile(r"^(precision|map|mAP|recall|ndcg|hit)@(\d+)$")


def retrieval_rows(evaluation: Mapping[str, Any], embedding: str = "model") -> list[dict]:
    """One row per label from a ``fashrec evaluate`` result: ``{"label", "precision@k", "map@k"}`` of
    ``embedding`` (the model, or a baseline: ``"raw"``, ``"pca"``, ``"random"``), cosine distance, the
    model's overall embedding (not a single focus)."""
    k = evaluation.get("k", 10)
    rows = []
    for row in evaluation.get("retrieval", []):
        if row.get("embedding", "model") != embedding or row.get("metric", DISTANCE) != DISTANCE:
            continue
        if row.get("focus") not in (None, "overall") or row.get("subset"):
            continue
        rows.append({"label": row.get("label"), **headline(row, k), f"map@{k}": row.get("map_at_k")})
    return rows


def headline(row: Mapping[str, Any], k: int) -> dict:
    """A row's main score: hit@k for the design relevance (the share of queries that find another article
    of their design in the top k), precision@k for a label."""
    if row.get("label") == "design":
        return {f"hit@{k}": row.get("design_hit_at_k")}
    return {f"precision@{k}": row.get("precision_at_k")}


def eval_results(metrics: Mapping[str, Any], retrieval: list[dict], *, dataset_id: str | None,
                 dataset_name: str) -> list:
    """``huggingface_hub.EvalResult`` entries (the card's ``model-index``) for every number given."""
    from huggingface_hub import EvalResult

    def result(metric_type: str, metric_name: str, value: float, split: str):
        return EvalResult(task_type=TASK, task_name="Image feature extraction", dataset_type=dataset_id or "custom",
                          dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                          metric_name=metric_name, metric_value=float(value))

    out = [result(metric_type(key), metric_label(key), value, split(key))
           for key, value in metrics.items() if is_number(value)]
    for row in retrieval:
        label = row.get("label")
        for key, value in row.items():
            if RETRIEVAL_KEY.match(str(key)) and is_number(value):
                out.append(result(str(key).lower(), retrieval_name(str(key), label), value, "test"))
    return out


def evaluation_section(metrics: Mapping[str, Any], retrieval: list[dict], evaluation: Mapping[str, Any],
                       compare: Mapping[str, Mapping[str, Any]], title: str, images: Mapping[str, str], *,
                       raw_dim: int) -> str:
    parts = []
    if metrics:
        parts += ["| metric | split | value |", "|---|---|---|"]
        parts += [f"| {metric_label(k)} | {split(k)} | {number(v)} |" for k, v in metrics.items()]
    if retrieval:
        keys = [k for k in dict.fromkeys(k for row in retrieval for k in row) if k != "label"]
        parts += ["", _metric_definition(keys, evaluation), "",
                  "| label | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        parts += ["| " + str(row.get("label", "")) + " | " + " | ".join(number(row.get(k, "")) for k in keys) + " |"
                  for row in retrieval]
        parts += _baselines(retrieval, evaluation, compare, title, raw_dim)
        parts += _focuses(evaluation)
    if not parts:
        parts.append("No scores were recorded with this checkpoint.")
    for alt, path in images.items():
        if not is_loss_curve(alt, path):
            parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts).strip()


def _metric_definition(keys: list[str], evaluation: Mapping[str, Any]) -> str:
    k = next((m[2] for m in map(RETRIEVAL_KEY.match, keys) if m), "k")
    queries = ""
    if evaluation.get("split") == "test" and evaluation.get("n_queries"):
        queries = (f" Queries: the {evaluation['n_queries']:,} photos of the held-out test split, each searching "
                   "the whole catalogue (train and test photos).")
    elif evaluation.get("n_queries"):
        queries = f" Queries: all {evaluation['n_queries']:,} photos, each searching all the others."
    design = ""
    if any(key.startswith("hit@") for key in keys):
        design = (f" The label `design` is the same product_code (the same garment, usually in another colour): "
                  f"hit@{k} is the share of queries with at least one such photo among their {k} nearest, over the "
                  f"queries whose design has another photo in the catalogue.")
    return (f"Retrieval: precision@{k} is the share of a query's {k} nearest catalogue photos ({DISTANCE} distance "
            f"between embeddings, the query itself excluded) that have the same value of the label as the query; "
            f"map@{k} is the mean average precision over the same {k}.{design}{queries}"
            + (" Scored by `fashrec evaluate`." if evaluation else ""))


def _baselines(retrieval: list[dict], evaluation: Mapping[str, Any], compare: Mapping[str, Mapping[str, Any]],
               title: str, raw_dim: int) -> list[str]:
    """The model beside the baselines of the same evaluation (and of the compared models), precision@k."""
    if not evaluation:
        return []
    k = evaluation.get("k", 10)
    key, hit = f"precision@{k}", f"hit@{k}"
    labels = [row["label"] for row in retrieval if row.get(key, row.get(hit)) is not None]
    dim = evaluation.get("embedding_dim", "")
    rows = [(f"**{title}** (this model)", dim, retrieval)]
    for other, result in compare.items():
        rows.append((f"`{other}`", result.get("embedding_dim", ""), retrieval_rows(result)))
    for embedding, text in BASELINES.items():
        size = {"raw": raw_dim, "pca": dim, "random": "–"}[embedding]
        rows.append((text, size, retrieval_rows(evaluation, embedding)))
    rows = [(who, size, {r["label"]: r.get(key, r.get(hit)) for r in found}) for who, size, found in rows if found]
    if len(rows) < 2:
        return []
    out = ["", f"Beside the baselines ({key}, same queries and distance; PCA is fitted on the train split with as "
           "many components as the model's embedding has values):", "",
           "| embedding | dim | " + " | ".join(f"{hit if label == 'design' else key} same {label}" for label in labels)
           + " |",
           "|---|---:|" + "---:|" * len(labels)]
    for who, size, scores in rows:
        size = f"{size:,}" if is_number(size) else size
        out.append(f"| {who} | {size} | " + " | ".join(number(scores.get(label, "")) for label in labels) + " |")
    return out


def _focuses(evaluation: Mapping[str, Any]) -> list[str]:
    """Scores per focus, for models whose similarity can be steered (a focus name or a mix of them)."""
    k = evaluation.get("k", 10)
    rows = [r for r in evaluation.get("retrieval", []) if r.get("embedding") == "model" and r.get("focus")
            and r.get("metric", DISTANCE) == DISTANCE]
    unseen = [r for r in rows if r.get("subset") == "unseen" and r.get("n_scored")]
    focuses = list(dict.fromkeys(r["focus"] for r in rows))
    if len(focuses) < 2:
        return []
    return ["", "### Steerable similarity", "",
            f"Focuses: {', '.join(focuses)}. `model.embed(x, focus=\"{focuses[-1]}\")` ranks by that focus only; "
            f"`SimilarityIndex.search(..., focus={{\"{focuses[1]}\": 0.7, \"{focuses[-1]}\": 0.3}})` mixes them. "
            "Same queries and distance as above:", "",
            f"| focus | label | precision@{k} (hit@{k} for design) | map@{k} |", "|---|---|---|---|"] + [
            f"| {r['focus']} | {r['label']}{' (designs never seen in training)' if r.get('subset') else ''} | "
            f"{number(list(headline(r, k).values())[0])} | {number(r['map_at_k'])} |" for r in rows] + (
            ["", f"Designs never seen in training: {unseen[0]['n_scored']} test queries whose design has no photo in "
                 "any training data; their figure cannot come from memorised designs."] if unseen else [])


def retrieval_name(key: str, label: Any) -> str:
    """``"precision@10 of same product_type_name (cosine, query excluded)"``."""
    return f"{key} of same {label} ({DISTANCE}, query excluded)" if label else f"{key} ({DISTANCE}, query excluded)"


def is_loss_curve(alt: str, path: str) -> bool:
    return "loss" in alt.lower() or "loss" in Path(path).name.lower()


def metric_type(key: str) -> str:
    k = key.lower()
    if "mse" in k:
        return "mse"
    return re.sub(r"[^a-z0-9@]+", "_", k).strip("_") or "score"


def split(key: str) -> str:
    k = key.lower()
    if k.startswith("train"):
        return "train"
    if k.startswith(("val", "valid")):
        return "validation"
    return "test"


def metric_label(key: str) -> str:
    k = key.lower()
    if k in ("mse", "test_mse"):
        return "reconstruction MSE (test)"
    return key.replace("_", " ")
