"""One call from photos to a finished default-model folder: ``fashrec train --model multitask`` runs it.

    train_default_model(data="../shared/data/hm", extra=["../shared/data/hm-extra"], out="runs/default")

1. the data (``multitask_data``): the train split of ``data`` minus a validation split, plus every
   ``extra`` photo; designs from ``product_code``;
2. the model: a ``MultiTaskCNN`` whose ``shape`` head also learns designs (contrastive over
   colourways), trained through the shared resumable loop (``train_multitask``);
3. choices on the validation split only: each validation photo queries the data's train split; the
   ``overall`` focus weights are picked there (``choose_overall_weights``);
4. the folder: ``config.json`` + ``model.safetensors``, ``metrics.json`` (history, validation scores,
   the label report), ``training_args.json``, ``loss_curve.png`` (loss and accuracies per epoch), and
   with ``evaluate=True`` ``eval.json`` from ``fashrec.evaluate`` on the test split, then ``README.md``.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

FOCUS_COLUMNS = {"shape": "product_type_name", "colour": "colour_group_name", "pattern": "graphical_appearance_name"}
# the goals the weights are chosen for (issue "looks, not just labels"): overall type, colour and design
OVERALL_TARGETS = {"product_type_name": 0.62, "colour_group_name": 0.62, "design": 0.40}
WEIGHT_GRID = {"shape": (1.0,), "colour": (0.3, 0.5, 0.7, 1.0), "pattern": (0.0, 0.25, 0.5)}


def train_default_model(*, data, out, extra: Sequence = (), epochs: int = 24, batch_size: int = 128, lr: float = 3e-3,
                        seed: int = 0, widths: Sequence[int] = (32, 64, 128, 256), head_dim: int = 64,
                        stem_stride: int = 2, contrastive_weight: float = 1.0, temperature: float = 0.1,
                        colour_jitter: float = 0.5, histogram_bins: int = 2, histogram_weight: float = 0.5,
                        shape_representation: str = "embedding+probabilities", val_size: int = 1000,
                        split_seed: int = 42, pad_value: float = 1.0, device: str = "cpu", threads: int | None = 2,
                        resume: bool = False, evaluate: bool = True, progress: bool = True, cache_dir=None,
                        recipe: str | None = None) -> dict:
    """Train, choose on validation, write the folder; returns the metrics written to ``metrics.json``."""
    from fashrec.atomic import write_json_atomic
    from fashrec.data.preprocess import PreprocessConfig
    from fashrec.models.multitask_cnn import MultiTaskCNN
    from fashrec.training.multitask_data import load_multitask_data
    from fashrec.training.multitask_training import train_multitask

    if threads:
        torch.set_num_threads(int(threads))
    cfg = PreprocessConfig(pad_value=pad_value)
    columns = list(FOCUS_COLUMNS.values())
    ds = load_multitask_data(data, extra, columns=columns, preprocess=cfg, split_seed=split_seed, val_size=val_size,
                             cache_dir=cache_dir, progress=progress)
    for column, ids in ds.missing.items():
        print(f"{column}: {len(ids)} training photos have no usable label (missing or 'Unknown'); they train the "
              f"other heads only. First ids: {', '.join(ids[:5])}", flush=True)
    torch.manual_seed(seed)
    model = MultiTaskCNN(classes=ds.classes, focus_columns=FOCUS_COLUMNS, widths=list(widths), head_dim=head_dim,
                         stem_stride=stem_stride, design_focus="shape", representation={"shape": shape_representation},
                         colour_histogram_bins=histogram_bins, histogram_weight=histogram_weight, preprocess=cfg)
    result = train_multitask(model, ds.images, ds.labels, designs=ds.designs, val_images=ds.val_images,
                             val_labels=ds.val_labels, val_designs=ds.val_designs, epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed, colour_jitter_p=colour_jitter,
                             contrastive_weight=contrastive_weight, temperature=temperature, device=device,
                             progress=progress, out_dir=out, resume=resume)
    weights, table = choose_overall_weights(model, ds)
    model = with_config(model, overall_weights=weights)
    validation = validation_scores(model, ds)
    metrics = {**{k: v for k, v in result.items()}, "validation": validation, "overall_weight_search": table,
               "data": ds.report()}
    out = Path(out)
    model._save_pretrained(out)
    write_json_atomic(metrics, out / "metrics.json")
    args = {"model": "MultiTaskCNN", "recipe": recipe, "optimizer": "AdamW", "lr": lr, "batch_size": batch_size,
            "epochs": epochs, "seed": seed, "widths": list(widths), "head_dim": head_dim, "stem_stride": stem_stride,
            "loss": f"cross-entropy per label + {contrastive_weight:g} x supervised contrastive over product_code "
                    f"(shape head, temperature {temperature:g})",
            "colour_jitter": colour_jitter, "validation": f"{val_size} photos of the train split of the data; "
            "every choice was made on them, never on the test split", "overall_weights": weights,
            "data": _source_name(data), "extra_data": [_source_name(e) for e in extra],
            "training_photos": int(ds.images.shape[0]), "device": device, "threads": threads}
    from fashrec.data.terms import TERMS, dataset_name

    write_json_atomic({**args, "dataset": dataset_name(str(data), None), "dataset_terms": TERMS},
                      out / "training_args.json")
    save_training_curves(out / "loss_curve.png", result["history"])
    if evaluate:
        from fashrec.eval.evaluation import evaluate as run_evaluate

        scores = run_evaluate(data, model=model, model_name=out.name, split="test", k=10, metrics=("cosine",),
                              seed=split_seed, progress=progress, extra_train_data=list(extra), cache_dir=cache_dir)
        write_json_atomic(scores, out / "eval.json")
    from fashrec.training.trainer import write_card

    write_card(out)
    return metrics


def with_config(model, **changes):
    """The same weights in a model built with some constructor arguments changed (embedding settings
    such as ``overall_weights``, ``histogram_weight`` or a focus's representation: nothing trained)."""
    config = {k: v for k, v in model.config_dict().items() if k not in ("model_class", "fashrec_version",
                                                                         "embedding_dim")}
    rebuilt = type(model)(**{**config, **changes})
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt.eval()


def choose_overall_weights(model, ds) -> tuple[dict[str, float], list[dict]]:
    """The ``overall`` weights of the grid that best meets ``OVERALL_TARGETS`` on the validation split
    (the largest worst ratio score / target), and every candidate's scores."""
    blocks = {f: _embed(model, ds.catalogue_images, f) for f in FOCUS_COLUMNS}
    table = []
    for values in itertools.product(*WEIGHT_GRID.values()):
        weights = dict(zip(WEIGHT_GRID, values))
        vectors = sum(w * blocks[f] for f, w in weights.items())
        scores = _validation_rows(vectors, ds)
        worst = min(scores[k] / t for k, t in OVERALL_TARGETS.items())
        table.append({"weights": weights, **scores, "worst_ratio_to_target": round(worst, 4)})
    best = max(table, key=lambda row: row["worst_ratio_to_target"])
    return dict(best["weights"]), table


def validation_scores(model, ds) -> dict[str, dict]:
    """Per focus: P@10 of each label and design hit@10 of validation photos querying the train split."""
    return {f: _validation_rows(_embed(model, ds.catalogue_images, f), ds) for f in model.focuses}


def _validation_rows(vectors: np.ndarray, ds, k: int = 10) -> dict[str, float]:
    from fashrec.eval.retrieval_metrics import hit_rate_at_k, precision_at_k

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows = np.asarray(ds.val_rows)
    sims = unit[rows] @ unit.T
    sims[np.arange(len(rows)), rows] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    out = {}
    for column, values in ds.catalogue_labels.items():
        labels = np.array(["\x00" if v is None else v for v in values], dtype=object)
        q, neighbours = labels[rows], labels[top]
        if column == "design":
            counts = {v: c for v, c in zip(*np.unique(labels, return_counts=True))}
            has = np.array([counts[v] > 1 for v in q])
            out["design"] = round(hit_rate_at_k(q[has], neighbours[has], k).mean, 4)
        else:
            has = q != "\x00"
            out[column] = round(precision_at_k(q[has], neighbours[has], k).mean, 4)
    return out


@torch.no_grad()
def _embed(model, images: torch.Tensor, focus: str, batch_size: int = 500) -> np.ndarray:
    from fashrec.training.augment import as_float_images

    model.eval()
    return torch.cat([model.embed(as_float_images(images[i:i + batch_size]), focus=focus)
                      for i in range(0, images.shape[0], batch_size)]).numpy().astype(np.float64)


def save_training_curves(path: str | os.PathLike, history: Mapping[str, Sequence[float]]) -> None:
    """Loss (train and validation) and each head's accuracy per epoch, in one picture."""
    from fashrec.training.figures import save_loss_curve

    series = {"train loss": history.get("train_loss", []), "validation loss": history.get("test_loss", [])}
    series.update({f"validation accuracy {k.split('/', 1)[1]}": v for k, v in history.items()
                   if k.startswith("test_acc/")})
    save_loss_curve(path, series, title="Loss and validation accuracy", ylabel="loss / accuracy", label_suffix="")


def _source_name(source) -> str:
    """A source as the card may show it: a Hub id as is, a local folder by its name only."""
    text = str(source)
    return text if "/" in text and not os.path.exists(text) else Path(text).name
