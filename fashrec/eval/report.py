"""The scoreboard as markdown for humans: the label table, the design table, reconstruction, clustering."""
from __future__ import annotations

from typing import Any, Mapping

from fashrec.eval.scores import DESIGN


def markdown(result: Mapping[str, Any]) -> str:
    """One label table (metrics side by side), one design table, then reconstruction and clustering."""
    k = result["k"]
    metrics = list(dict.fromkeys(r["metric"] for r in result["retrieval"]))
    labels = [r for r in result["retrieval"] if r["label"] != DESIGN]
    designs = [r for r in result["retrieval"] if r["label"] == DESIGN]
    lines = [
        f"model `{result['model']}` (embedding {result['embedding_dim']}-d), split `{result['split']}`, "
        f"{result['n_queries']} queries, k = {k}",
        "",
    ]
    if labels:
        lines += _table(labels, metrics, ("label",), (("precision_at_k", f"P@{k}"), ("map_at_k", f"mAP@{k}")))
    if designs:
        counts = sorted({(r.get("subset") or "all", r["n_scored"]) for r in designs if r["embedding"] == "random"}
                        or {(r.get("subset") or "all", r["n_scored"]) for r in designs})
        scored = "; ".join(f"{n} queries ({subset})" if subset != "all" else f"{n} queries" for subset, n in counts)
        lines += ["", f"Same design (same `product_code`, another article): scored over the queries whose design "
                      f"has another article in the catalogue: {scored}.", ""]
        lines += _table(designs, metrics, ("subset",),
                        (("design_hit_at_k", f"hit@{k}"), ("map_at_k", f"mAP@{k}")))
    rec = result["reconstruction"]
    lines += ["", "| reconstruction MSE (per value, query images) | |", "|---|---:|"]
    for key, title in (("model_mse", "model"), ("pca_mse", "PCA (same size as the embedding)"),
                       ("mean_image_mse", "mean image")):
        value = rec.get(key)
        lines.append(f"| {title} | {'n/a' if value is None else f'{value:.5f}'} |")
    cl = result["clustering"]
    if cl:
        lines += ["", f"k-means of the model embeddings of the query images (k = number of `{cl['label']}` values "
                      f"among them) vs `{cl['label']}`: NMI {cl['nmi']:.3f}, ARI {cl['ari']:.3f}"]
    fit = "the train split" if result["split"] != "all" else "all images (split all: no held-out data)"
    lines += ["", f"PCA and the mean image are fitted on {fit}; random = exact expectation (the class prior)."]
    return "\n".join(lines) + "\n"


def _table(rows, metrics, key_fields, values) -> list[str]:
    first = "label" if key_fields == ("label",) else "queries"
    lines = [f"| {first} | embedding | " + " | ".join(f"{m} {title}" for m in metrics for _, title in values) + " |",
             "|---|---|" + "---:|" * (len(metrics) * len(values))]
    grouped: dict[tuple, dict] = {}
    for r in rows:
        name = r["embedding"] + (f" ({r['focus']})" if r.get("focus") else "")
        key = r["label"] if key_fields == ("label",) else (r.get("subset") or "all")
        grouped.setdefault((key, name), {})[r["metric"]] = r
    for (key, name), by_metric in grouped.items():
        cells = []
        for m in metrics:
            r = by_metric.get(m)
            cells += [f"{r[field]:.3f}" for field, _ in values] if r else [""] * len(values)
        lines.append(f"| {key} | {name} | " + " | ".join(cells) + " |")
    return lines
