"""The model card (README.md of a model repo), rendered from ``model_card.md``.

A card is the checkpoint's documentation and its metadata at once: the YAML front matter tells the Hub
the library (``fashrec``), the task, the licence, the training data and the scores (``model-index``, which
the Hub shows as an evaluation widget); the body tells a person how to install fashrec and load the model,
what it expects as input, what it was trained on, on which terms, and how well it does.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import scores
from .template import (LOCAL_PATH, THIS_FOLDER, THIS_FOLDER_NOTE, fill, inline, install_lines, is_local_path,
                       is_number, is_repo_id)

# Every model card's tags: the library's, then the two that huggingface_hub's PyTorchModelHubMixin puts on
# the cards it writes itself (fashrec models are such mixins), then the class's own (CLASS_TAGS).
MODEL_TAGS = ["fashrec", "image-feature-extraction", "fashion", "model_hub_mixin", "pytorch_model_hub_mixin"]
CLASS_TAGS = {"ConvAE": ["autoencoder"], "ConvVAE": ["autoencoder", "vae"], "MultiTaskCNN": ["cnn", "multi-task"]}
# config.json keys that describe the checkpoint rather than its architecture.
_NOT_ARCHITECTURE = {"preprocess", "model_class", "fashrec_version"}


def render_model_card(*, model_class: str, config: Mapping[str, Any], repo_id: str | None = None,
                      name: str | None = None, metrics: Mapping[str, float] | None = None,
                      retrieval: list[Mapping[str, Any]] | None = None, evaluation: Mapping[str, Any] | None = None,
                      compare: Mapping[str, Mapping[str, Any]] | None = None,
                      hyperparameters: Mapping[str, Any] | None = None, recipe: str | None = None,
                      dataset: str | None = None, dataset_terms: str | None = None,
                      images: Mapping[str, str] | None = None, license: str | None = None,
                      license_name: str | None = None, license_link: str | None = None,
                      extra_sections: str = "") -> str:
    """The README.md of a model repo.

    The snippet loads ``repo_id`` (a Hub repo), else ``name`` (a checkpoint shipped with fashrec, e.g.
    ``"paper-ae"``), else ``"."``, the card's own folder (``for_repo`` rewrites that when publishing).
    ``config`` is the model's ``config.json`` content. ``metrics`` maps a name to a score on the test split
    (``{"test_mse": 0.0042}``). ``evaluation`` is a ``fashrec evaluate`` result (``eval.json``): its rows
    for the model give the retrieval scores, its raw / PCA / random rows and the model rows of each
    ``compare`` entry (``{"paper-ae": <its eval.json>}``) the baselines table, its rows per focus the
    steerable-similarity table. ``retrieval`` gives retrieval rows directly instead, one per label, e.g.
    ``{"label": "product_type_name", "precision@10": 0.61, "map@10": 0.52}``. Every score goes into the
    card's ``model-index``.

    ``dataset`` is the training data: a description, or a Hub dataset id, which then goes into the YAML's
    ``datasets:`` (name only a dataset a stranger can open: ``fashrec push`` drops one that is not public).
    ``dataset_terms`` are the data's terms of use (``fashrec.data.terms.TERMS`` for H&M photos): weights
    trained under them get ``license: other`` with the H&M name and link, unless ``license`` says otherwise.
    Without terms or ``license`` the card claims no licence for the weights (fashrec's code is MIT; the
    weights' terms are whoever trained them's to state).

    ``hyperparameters`` become a table (values that are local paths are left out: a card is public),
    ``recipe`` is the command that trained the model (local paths in it are replaced by ``HM_DATA``).
    ``images`` maps alt text to a picture's path inside the repo (``{"loss curve": "loss_curve.png"}``).
    ``extra_sections`` is markdown appended at the end.
    """
    from huggingface_hub import ModelCardData

    from fashrec.data import terms

    config = dict(config)
    metrics = dict(metrics or {})
    evaluation = dict(evaluation or {})
    retrieval = [dict(row) for row in retrieval or []] or scores.retrieval_rows(evaluation)
    images = dict(images or {})
    title = repo_id.split("/")[-1] if repo_id else name or model_class
    dataset_id = dataset if dataset and is_repo_id(dataset) else None
    if license is None and dataset_terms:
        license, license_name, license_link = "other", terms.WEIGHTS_LICENSE_NAME, terms.RULES

    results = scores.eval_results(metrics, retrieval, dataset_id=dataset_id, dataset_name=dataset or "unspecified")
    card_data = ModelCardData(
        library_name="fashrec", license=license, license_name=license_name, license_link=license_link,
        tags=[*MODEL_TAGS, *CLASS_TAGS.get(model_class, [])], pipeline_tag=scores.TASK,
        datasets=[dataset_id] if dataset_id else None, metrics=sorted({r.metric_type for r in results}) or None,
        model_name=title if results else None, eval_results=results or None,
    )
    preprocess = dict(config.get("preprocess") or {})
    load = repo_id or name or THIS_FOLDER
    return fill("model_card.md", {
        "front_matter": card_data.to_yaml(),
        "title": title,
        "summary": _summary(model_class, config.get("embedding_dim", "D")),
        "install": install_lines(),
        "repo_id": load,
        "load_note": THIS_FOLDER_NOTE if load == THIS_FOLDER else "",
        "model_class": model_class,
        "image_size": preprocess.get("image_size", 64),
        "embedding_dim": config.get("embedding_dim", "D"),
        "architecture": _architecture(model_class, config),
        "preprocessing": _preprocessing(preprocess),
        "training_data": _training_data(dataset, dataset_terms),
        "training": _training(hyperparameters, recipe, images),
        "evaluation": scores.evaluation_section(metrics, retrieval, evaluation, dict(compare or {}), title, images,
                                                raw_dim=3 * int(preprocess.get("image_size", 64)) ** 2),
        "limitations": _LIMITATIONS,
        "licence": _licence(license, license_name, license_link, dataset_terms),
        "extra_sections": ("\n" + extra_sections.strip() + "\n") if extra_sections.strip() else "",
    })


_LIMITATIONS = """\
- **Use it for** "similar products" suggestions in a fashion catalogue: embed every product photo once,
  then show the nearest neighbours of the product being viewed. Similarity is *visual* (silhouette,
  colour, pattern at 64 x 64 pixels), not semantic: two items of the same type in different colours may
  be far apart, and a dress and a top of the same colour may be close.
- **Photos like the training data work best**: one garment, centred, on a plain light studio background.
  Worn items, street photos, several items per picture or strong crops will give weaker neighbours.
- **Small input**: every photo is reduced to 64 x 64 pixels, so fine detail (small prints, logos, texture)
  is lost on purpose.
- **Not for** identifying or profiling people, or for any decision about a person."""

_MULTITASK_DESIGN = """\
A small CNN (BatchNorm, global average pooling) trained from scratch on the catalogue's own labels (product
type, colour group, graphical appearance; product group and perceived colour as auxiliary tasks) with cosine
classifiers. Each focus is the square root of its column's predicted class distribution (averaged with the
mirror image); the colour focus also holds a weight-free colour histogram of the garment's pixels; `overall`
is all blocks with equal weight. The full comparison with the paper's autoencoder, VAEs and PCA is in
fashrec's docs/embeddings.md."""


def _summary(model_class: str, embedding_dim: Any) -> str:
    from fashrec.version import REPOSITORY

    if is_number(embedding_dim):
        embedding_dim = f"{embedding_dim:,}"
    kind = {"ConvAE": "convolutional autoencoder", "ConvVAE": "convolutional variational autoencoder",
            "MultiTaskCNN": "label-trained CNN"}.get(model_class, model_class)
    return (
        f"A [fashrec]({REPOSITORY}) {kind} (`{model_class}`) that turns a fashion product "
        f"photo into a {embedding_dim}-value embedding for visual \"similar products\" recommendations. "
        "Nearest neighbours in this space look alike: same silhouette, colour and pattern."
    )


def _architecture(model_class: str, config: Mapping[str, Any]) -> str:
    rows = [(k, v) for k, v in config.items() if k not in _NOT_ARCHITECTURE]
    lines = [f"`{model_class}` built with these arguments (from `config.json`):", "",
             "| argument | value |", "|---|---|"]
    lines += [f"| `{k}` | `{inline(v)}` |" for k, v in rows]
    if model_class in ("ConvAE", "ConvVAE"):
        channels = config.get("channels")
        if channels:
            chain = " -> ".join(["3", *map(str, channels)])
            lines += ["", f"The encoder is a stack of stride-2 3 x 3 convolutions with channels {chain}; the decoder "
                      "mirrors it with transposed convolutions and ends in a sigmoid, so reconstructions are in "
                      "[0, 1]."]
        if config.get("latent_dim"):
            lines.append(f"A linear bottleneck gives a {config['latent_dim']}-value code.")
        lines.append("`model.embed(x)` returns the flattened latent code"
                     + (" (the mean `mu` for the VAE, never a sample)." if model_class == "ConvVAE" else "."))
    if model_class == "MultiTaskCNN":
        lines += ["", _MULTITASK_DESIGN]
    if "fashrec_version" in config:
        lines += ["", f"Saved with fashrec {config['fashrec_version']}."]
    return "\n".join(lines)


def _preprocessing(preprocess: Mapping[str, Any]) -> str:
    import json

    size = preprocess.get("image_size", 64)
    height = preprocess.get("resize_height", 64)
    width = preprocess.get("resize_width", 43)
    pad = preprocess.get("pad_value", 0.0)
    colour = {0.0: "black", 1.0: "white"}.get(float(pad), f"grey level {pad}")
    return (
        f"Each photo is converted to RGB, fitted inside a {height} x {width} (height x width) box keeping its "
        f"aspect ratio (bilinear, antialiased), then padded with {colour} to a centred {size} x {size} square, "
        "as a float tensor in [0, 1]. This configuration is stored in `config.json` (`preprocess`) and "
        "`fashrec.preprocess` / `model.embed_images` apply it for you: always embed with the model's own "
        "`model.preprocess_config`.\n\n"
        "```json\n" + json.dumps(dict(preprocess), indent=2) + "\n```"
    )


def _training_data(dataset: str | None, dataset_terms: str | None) -> str:
    from fashrec.data.terms import COMPETITION

    if not dataset:
        text = "Not recorded with this checkpoint."
    elif is_repo_id(dataset):
        text = f"[{dataset}](https://huggingface.co/datasets/{dataset})."
    else:
        text = f"{dataset}."
    if dataset_terms:
        text += (f" The photos and labels come from the Kaggle competition [H&M Personalized Fashion "
                 f"Recommendations]({COMPETITION}/data) (accept its rules to download them)."
                 f"\n\n**Terms of use of the data:** {dataset_terms.strip()}")
    return text


def _training(hyperparameters: Mapping[str, Any] | None, recipe: str | None, images: Mapping[str, str]) -> str:
    parts = []
    public = {k: v for k, v in (hyperparameters or {}).items() if not is_local_path(v)}
    if public:
        parts += ["| hyperparameter | value |", "|---|---|"]
        parts += [f"| {k} | `{inline(v)}` |" for k, v in public.items()]
    else:
        parts.append("Hyperparameters were not recorded with this checkpoint.")
    if recipe:
        command = _public_recipe(recipe)
        parts += ["", f"Trained with: `{command}`"]
        if "HM_" in command:
            parts.append("(`HM_DATA`, `HM_EXTRA`: folders of H&M photos in the Kaggle layout, `images/` and their "
                         "metadata; see Training data.)")
    for alt, path in images.items():
        if scores.is_loss_curve(alt, path):
            parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts)


def _public_recipe(recipe: str) -> str:
    """The training command as a stranger can run it: the data folders of the machine that trained (a local
    path, or a bare folder name like ``hm``) become ``HM_DATA`` / ``HM_EXTRA``; ``sample`` and Hub ids stay."""
    import re

    def data(match):
        flag, value = match[1], match[2]
        if value == "sample" or is_repo_id(value):
            return match[0]
        return f"{flag} {'HM_DATA' if flag == '--data' else 'HM_EXTRA'}"

    command = re.sub(r"(--data|--data-extra|--extra-train-data)\s+(\S+)", data, recipe.strip())
    return LOCAL_PATH.sub("HM_DATA", command)


def _licence(license: str | None, license_name: str | None, license_link: str | None,
             dataset_terms: str | None) -> str:
    from fashrec.data import terms
    from fashrec.version import REPOSITORY

    code = f"fashrec's code is MIT ([LICENSE]({REPOSITORY}/blob/main/LICENSE))."
    if license == "other" and license_name == terms.WEIGHTS_LICENSE_NAME:
        return terms.WEIGHTS_TERMS
    if license == "other":
        named = f"[{license_name}]({license_link})" if license_link else f"`{license_name or 'other'}`"
        return f"The weights: {named}. {code}"
    if license:
        return f"The weights: `{license}`. {code}"
    return (f"No licence was recorded for these weights: their terms are those of the data they were trained on "
            f"({'see above' if dataset_terms else 'not recorded'}). {code}")
