"""The model card (README.md) of a checkpoint folder, written from the folder's own files.

    write_model_card("runs/paper-ae")                        # after training, or after fashrec evaluate --out
    write_model_card("runs/paper-ae", repo_id="org/name")   # what the Hub repo shows
    write_shipped_cards()                                    # fashrec/checkpoints/*/README.md
    python -m fashrec.hub_card                               # the same, from the shell

A folder holds ``config.json`` (required), and what training and scoring left beside it: ``metrics.json``
(reconstruction MSE), ``training_args.json`` (hyperparameters, the training data and its terms, the
``recipe`` that trained it), ``eval.json`` (``fashrec evaluate --out``: retrieval scores, baselines, scores
per focus), ``loss_curve.png`` and ``reconstructions.png``. Each present file adds its part to the card;
nothing is recomputed. Re-run after any of them changes (a retrained checkpoint, a new ``eval.json``).

The snippet loads the Hub ``repo_id`` when given, else the shipped name of a checkpoint in
``fashrec/checkpoints/``, else ``"."`` (the folder itself; ``fashrec push`` writes the repo id there).
Weights whose ``training_args.json`` records the data's terms (the H&M photos) get ``license: other``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from .model import render_model_card

# The shipped checkpoint every other shipped card compares itself with (the paper's autoencoder).
BASELINE_CHECKPOINT = "paper-ae"
# {alt text: file}; {held_out} is what the curve's second line was measured on, as metrics.json's history
# names it ("validation" for a model whose choices were made on a validation split, else "test").
PICTURES = {"loss curve (train and {held_out}, per epoch)": "loss_curve.png",
            "test images (top) and their reconstructions (bottom)": "reconstructions.png"}
# training_args.json keys that say where the data came from rather than how the model was trained.
_DATA_KEYS = ("dataset", "dataset_terms", "recipe")


def write_model_card(folder: str | os.PathLike, **options) -> str:
    """(Re)write ``folder/README.md`` from the folder's files; returns the text (options: ``model_card``)."""
    from fashrec.atomic import write_text_atomic

    text = model_card(folder, **options)
    write_text_atomic(text, Path(folder) / "README.md")
    return text


def model_card(folder: str | os.PathLike, *, repo_id: str | None = None,
               compare: Mapping[str, Mapping[str, Any]] | None = None, dataset: str | None = None,
               dataset_terms: str | None = None) -> str:
    """The card of ``folder`` from its files (see the module docstring).

    ``compare`` adds other models' ``fashrec evaluate`` results to the baselines table
    (``{"paper-ae": <its eval.json>}``); ``dataset`` / ``dataset_terms`` override what
    ``training_args.json`` says about the training data.
    """
    out = Path(folder)
    config = _read_json(out / "config.json")
    metrics = _read_json(out / "metrics.json", {})
    args = _read_json(out / "training_args.json", {})
    evaluation = _read_json(out / "eval.json", None)
    card_metrics = {k: v for k, v in metrics.items()
                    if k.endswith(("_mse", "_loss", "_kl")) and isinstance(v, (int, float))}
    hyper = {k: v for k, v in args.items() if k not in _DATA_KEYS and v is not None}
    if metrics.get("train_seconds"):
        hyper["training time (s)"] = metrics["train_seconds"]
    return render_model_card(
        model_class=config.get("model_class", "model"), config=config, repo_id=repo_id, name=shipped_name(out),
        metrics=card_metrics, evaluation=evaluation, compare=compare, hyperparameters=hyper,
        recipe=args.get("recipe"), dataset=dataset or args.get("dataset"),
        dataset_terms=dataset_terms or args.get("dataset_terms"),
        images={alt.format(held_out=_held_out(metrics)): name for alt, name in PICTURES.items()
                if (out / name).exists()},
    )


def write_shipped_cards(names: list[str] | None = None) -> list[Path]:
    """Rewrite the cards of the shipped checkpoints (all, or ``names``): see ``shipped_card``."""
    from fashrec.atomic import write_text_atomic
    from fashrec.models import pretrained

    written = []
    for name in names or pretrained.names():
        card = pretrained.path(name) / "README.md"
        write_text_atomic(shipped_card(name), card)
        written.append(card)
    return written


def shipped_card(name: str) -> str:
    """The card of the shipped checkpoint ``name``: it loads by that name and compares itself with the
    paper's autoencoder. Its training data is described, never named as a Hub dataset: the H&M photos may
    not be redistributed, so there is no public copy to point at."""
    from fashrec.models import pretrained

    baseline = pretrained.CHECKPOINT_DIR / BASELINE_CHECKPOINT / "eval.json"
    compare = {BASELINE_CHECKPOINT: _read_json(baseline)} if name != BASELINE_CHECKPOINT and baseline.is_file() else None
    return model_card(pretrained.path(name), compare=compare)


def shipped_name(folder: str | os.PathLike) -> str | None:
    """The shipped name of a checkpoint folder inside ``fashrec/checkpoints/``, else None."""
    from fashrec.models import pretrained

    folder = Path(folder).resolve()
    return folder.name if folder.parent == pretrained.CHECKPOINT_DIR.resolve() else None


def _read_json(path: Path, default: Any = ...) -> Any:
    if not path.is_file():
        if default is ...:
            raise FileNotFoundError(f"{path} not found (is {path.parent} a fashrec checkpoint folder?)")
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def _held_out(metrics: Mapping[str, Any]) -> str:
    """What a training history's held-out curve was measured on: ``validation`` or ``test``."""
    history = metrics.get("history") or {}
    return "validation" if any(str(key).startswith("validation") for key in history) else "test"
