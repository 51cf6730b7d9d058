"""One call from photos to a finished default-model folder: ``fashrec train --model multitask`` runs it.

    train_default_model(data="../shared/data/hm", extra=["../shared/data/hm-extra"], out="runs/default")

1. the data (``multitask_data``): the train split of ``data`` minus a validation split, plus every
   ``extra`` photo; designs from ``product_code``;
2. the model: a ``MultiTaskCNN`` with two questions and two answers. ``overall`` ("similar products":
   same kind of garment, same colour, similar pattern) mixes the ``shape`` (product type), ``colour``
   and ``pattern`` focuses; ``design`` ("other colours of this design") is the product-type head's
   embedding, also trained with a contrastive loss over colourways, beside the type posterior (a head of
   its own, ``design_head=True``, scored lower on validation). Trained through the shared resumable loop
   (``train_multitask``), in bfloat16 on the CPU;
3. choices on the validation split only (``multitask_choices``): each validation photo queries the data's
   train split, scored by ``fashrec evaluate``'s own code; the ``overall`` weights and whether the
   mirror pass (``flip_tta``) pays are picked there;
4. the folder: ``config.json`` + ``model.safetensors``, ``metrics.json`` (history, validation scores,
   the label report), ``training_args.json``, ``loss_curve.png`` (loss and accuracies per epoch), and
   with ``evaluate=True`` ``eval.json`` from ``fashrec.evaluate`` on the test split, then ``README.md``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import torch

# Focus names are data: they go into config.json, and every consumer reads them from there.
FOCUS_COLUMNS = {"design": "product_type_name", "shape": "product_type_name", "colour": "colour_group_name",
                 "pattern": "graphical_appearance_name"}
# Perceived colour as auxiliary targets (aux_columns=AUX_COLUMNS) lifted colour accuracy but cost type,
# pattern and design on the validation split (docs/embeddings.md), so the recipe leaves them out.
AUX_COLUMNS = ("perceived_colour_master_name", "perceived_colour_value_name")


def train_default_model(*, data, out, extra: Sequence = (), epochs: int = 80, batch_size: int = 128, lr: float = 3e-3,
                        seed: int = 0, widths: Sequence[int] = (32, 64, 128, 256), head_dim: int = 64,
                        stem_stride: int = 2, contrastive_weight: float = 1.0, temperature: float = 0.1,
                        colour_jitter: float = 0.2, aux_columns: Sequence[str] = (), dropout: float = 0.0,
                        weight_decay: float = 5e-4, distill_weight: float = 0.0, bfloat16: bool = True,
                        design_head: bool = False, stem_channels: int = 16, channels_last: bool = True,
                        histogram_bins: int = 2,
                        histogram_weight: float = 0.5,
                        design_representation: str = "embedding+probabilities", val_size: int = 1000,
                        split_seed: int = 42, pad_value: float = 1.0, device: str = "cpu", threads: int | None = 2,
                        resume: bool = False, evaluate: bool = True, progress: bool = True, cache_dir=None,
                        recipe: str | None = None) -> dict:
    """Train, choose on validation, write the folder; returns the metrics written to ``metrics.json``."""
    from fashrec.atomic import write_json_atomic
    from fashrec.data.preprocess import PreprocessConfig
    from fashrec.models.multitask_cnn import MultiTaskCNN
    from fashrec.training.multitask_choices import (choose_flip_tta, choose_histogram_weight, choose_overall_weights,
                                                    validation_scores, with_config)
    from fashrec.training.multitask_data import load_multitask_data
    from fashrec.training.multitask_training import train_multitask

    if distill_weight:  # no teacher: say so now, not after the photos are decoded
        from fashrec.training.teacher import teacher_weights_path

        teacher_weights_path()
    if threads:
        torch.set_num_threads(int(threads))
    cfg = PreprocessConfig(pad_value=pad_value)
    ds = load_multitask_data(data, extra, columns=list(dict.fromkeys(FOCUS_COLUMNS.values())),
                             optional_columns=aux_columns, preprocess=cfg, split_seed=split_seed, val_size=val_size,
                             cache_dir=cache_dir, progress=progress)
    columns = list(ds.classes)
    for column, ids in ds.missing.items():
        print(f"{column}: {len(ids)} training photos have no usable label (missing or 'Unknown'); they train the "
              f"other heads only. First ids: {', '.join(ids[:5])}", flush=True)
    teacher = (_teacher_rows(data, extra, ds.ids, split_seed=split_seed, cache_dir=cache_dir, progress=progress)
               if distill_weight else None)
    torch.manual_seed(seed)
    model = MultiTaskCNN(classes=ds.classes, focus_columns=FOCUS_COLUMNS, widths=list(widths), head_dim=head_dim,
                         stem_stride=stem_stride, design_focus="design", design_head=design_head, stem_channels=stem_channels,
                         dropout=dropout,
                         representation={"design": design_representation}, colour_histogram_bins=histogram_bins,
                         histogram_weight=histogram_weight, preprocess=cfg)
    result = train_multitask(model, ds.images, ds.labels, designs=ds.designs, val_images=ds.val_images,
                             val_labels=ds.val_labels, val_designs=ds.val_designs, epochs=epochs,
                             batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                             colour_jitter_p=colour_jitter, contrastive_weight=contrastive_weight,
                             temperature=temperature, device=device, progress=progress, out_dir=out, resume=resume,
                             teacher=teacher, distill_weight=distill_weight, bfloat16=bfloat16,
                             channels_last=channels_last)
    flip, flip_table = choose_flip_tta(model, ds)
    model = with_config(model, flip_tta=flip)
    histogram_weight, histogram_table = choose_histogram_weight(model, ds)
    model = with_config(model, histogram_weight=histogram_weight)
    weights, table = choose_overall_weights(model, ds)
    model = with_config(model, overall_weights=weights)
    validation = validation_scores(model, ds)
    metrics = {**result, "validation": validation, "overall_weight_search": table, "flip_tta_choice": flip_table,
               "histogram_weight_search": histogram_table, "data": ds.report()}
    out = Path(out)
    model._save_pretrained(out)
    write_json_atomic(metrics, out / "metrics.json")
    args = {"model": "MultiTaskCNN", "recipe": recipe, "optimizer": "AdamW", "lr": lr, "weight_decay": weight_decay,
            "batch_size": batch_size, "epochs": epochs, "seed": seed, "widths": list(widths), "head_dim": head_dim,
            "stem_stride": stem_stride, "stem_channels": stem_channels, "dropout": dropout,
            "loss": f"cross-entropy per label ({', '.join(columns)}) + {contrastive_weight:g} x supervised "
                    f"contrastive over product_code (design head, temperature {temperature:g})"
                    + (f" + {distill_weight:g} x cosine distance to EfficientNet-Lite0 ImageNet features at 224 px "
                       "(a training-only head)" if distill_weight else ""),
            "colour_jitter": colour_jitter, "validation": f"{val_size} photos of the train split of the data; "
            "every choice was made on them, never on the test split", "overall_weights": weights, "flip_tta": flip,
            "histogram_weight": histogram_weight,
            "data": _source_name(data), "extra_data": [_source_name(e) for e in extra],
            "training_photos": int(ds.images.shape[0]), "device": device, "threads": threads,
            "bfloat16": bfloat16}
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


def _teacher_rows(data, extra: Sequence, ids: Sequence[str], *, split_seed: int, cache_dir,
                  progress: bool) -> torch.Tensor:
    """The teacher's features of every training photo, in the rows of the training tensor (by article id)."""
    from fashrec.data.hm_dataset import load_hm
    from fashrec.training.teacher import teacher_features

    row_of, parts = {}, []
    sources = [load_hm(data, seed=split_seed, progress=progress)["train"]]
    for ds in sources + [load_hm(e, split=False, progress=progress) for e in extra]:
        offset = sum(len(p) for p in parts)
        parts.append(teacher_features(ds, cache_dir=cache_dir, progress=progress))
        row_of.update({a: offset + i for i, a in enumerate(ds["article_id"])})
    return torch.cat(parts)[[row_of[a] for a in ids]]


def save_training_curves(path: str | os.PathLike, history: Mapping[str, Sequence[float]]) -> None:
    """Loss (train and validation) and each head's accuracy per epoch, in one picture."""
    from fashrec.training.figures import save_loss_curve

    series = {"train loss": history.get("train_loss", []), "validation loss": history.get("validation_loss", [])}
    series.update({f"validation accuracy {k.split('/', 1)[1]}": v for k, v in history.items()
                   if k.startswith("validation_acc/")})
    save_loss_curve(path, series, title="Loss and validation accuracy", ylabel="loss / accuracy", label_suffix="")


def _source_name(source) -> str:
    """A source as the card may show it: a Hub id as is, a local folder by its name only."""
    text = str(source)
    return text if "/" in text and not os.path.exists(text) else Path(text).name
