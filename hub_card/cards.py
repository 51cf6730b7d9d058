"""Model and dataset cards (the README.md of a Hub repo), rendered from the templates beside this file.

A card is the checkpoint's documentation and its metadata at once: the YAML front matter tells the Hub
the library (``fashrec``), the task, the licence, the training data and the scores (``model-index``, which
the Hub shows as an evaluation widget); the body tells a person how to load the model, what it expects as
input, what it was trained on and how well it does.

Templates use ``string.Template`` placeholders (``${name}``), not Jinja: ``pip install fashrec`` alone
must be able to write a card, and Jinja is not one of its dependencies.
"""
from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Any, Mapping

TEMPLATE_DIR = Path(__file__).resolve().parent
MODEL_TEMPLATE = TEMPLATE_DIR / "model_card.md"
DATASET_TEMPLATE = TEMPLATE_DIR / "dataset_card.md"

MODEL_TAGS = ["fashrec", "image-feature-extraction", "fashion", "autoencoder", "pytorch_model_hub_mixin"]
TASK = "image-feature-extraction"
# config.json keys that describe the checkpoint rather than its architecture.
_NOT_ARCHITECTURE = {"preprocess", "model_class", "fashrec_version"}
_RETRIEVAL_KEY = re.compile(r"^(precision|map|mAP|recall|ndcg)@(\d+)$")


def render_model_card(*, model_class: str, config: Mapping[str, Any], repo_id: str | None = None,
                      metrics: Mapping[str, float] | None = None, retrieval: list[Mapping[str, Any]] | None = None,
                      hyperparameters: Mapping[str, Any] | None = None, dataset: str | None = None,
                      dataset_terms: str | None = None, images: Mapping[str, str] | None = None,
                      license: str = "mit", extra_sections: str = "") -> str:
    """The README.md of a model repo.

    ``config`` is the model's ``config.json`` content. ``metrics`` maps a name to a score on the test split
    (``{"test_mse": 0.0042}``); ``retrieval`` holds one row per relevance label, e.g.
    ``{"label": "product_type_name", "precision@10": 0.61, "map@10": 0.52}``. Every number in both goes into
    the card's ``model-index``. ``dataset`` is the training data (a Hub dataset id, e.g.
    ``"fashrec/hm-fashion-5k"``, or a plain name) and ``dataset_terms`` its licence/terms of use.
    ``images`` maps alt text to a picture's path inside the repo (``{"loss curve": "loss_curve.png"}``).
    ``extra_sections`` is markdown appended at the end.
    """
    from huggingface_hub import EvalResult, ModelCardData

    config = dict(config)
    metrics = dict(metrics or {})
    retrieval = [dict(row) for row in retrieval or []]
    images = dict(images or {})
    name = repo_id.split("/")[-1] if repo_id else model_class
    dataset_id = dataset if dataset and _is_repo_id(dataset) else None
    dataset_name = dataset or "unspecified"

    eval_results = []
    def result(metric_type: str, metric_name: str, value: float, split: str):
        return EvalResult(task_type=TASK, task_name="Image feature extraction", dataset_type=dataset_id or "custom",
                          dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                          metric_name=metric_name, metric_value=float(value))

    for key, value in metrics.items():
        if _is_number(value):
            eval_results.append(result(_metric_type(key), _metric_label(key), value, _split(key)))
    for row in retrieval:
        label = row.get("label")
        for key, value in row.items():
            if _RETRIEVAL_KEY.match(str(key)) and _is_number(value):
                metric_name = f"{key} (same {label})" if label else str(key)
                eval_results.append(result(str(key).lower(), metric_name, value, "test"))

    card_data = ModelCardData(
        library_name="fashrec", license=license, tags=list(MODEL_TAGS), pipeline_tag=TASK,
        datasets=[dataset_id] if dataset_id else None, metrics=sorted({r.metric_type for r in eval_results}) or None,
        model_name=name if eval_results else None, eval_results=eval_results or None,
    )
    preprocess = dict(config.get("preprocess") or {})
    embedding_dim = config.get("embedding_dim", "D")
    fields = {
        "front_matter": card_data.to_yaml(),
        "title": name,
        "summary": _summary(model_class, embedding_dim, repo_id),
        "repo_id": repo_id or "path/or/repo-id",
        "model_class": model_class,
        "image_size": preprocess.get("image_size", 64),
        "embedding_dim": embedding_dim,
        "architecture": _architecture(model_class, config),
        "preprocessing": _preprocessing(preprocess),
        "training_data": _training_data(dataset, dataset_terms),
        "training": _training(hyperparameters, images),
        "evaluation": _evaluation(metrics, retrieval, images),
        "limitations": _LIMITATIONS,
        "extra_sections": ("\n" + extra_sections.strip() + "\n") if extra_sections.strip() else "",
    }
    return _fill(MODEL_TEMPLATE, _MODEL_FALLBACK, fields)


def render_dataset_card(**fields: Any) -> str:
    """The README.md of a dataset repo, from ``hub_card/dataset_card.md``.

    Every keyword is available to the template as ``${name}`` (lists and dicts are written as markdown).
    The keywords that ``huggingface_hub.DatasetCardData`` knows (``license``, ``pretty_name``,
    ``task_categories``, ``size_categories``, ``tags``, ``language``, ``source_datasets``, ``configs``,
    ``dataset_info``, ...) also go into the YAML front matter, which the template places with
    ``${front_matter}``. ``pretty_name`` is required; ``tags`` always include ``fashrec`` and ``fashion``.
    A placeholder the template uses but the caller did not give is an error naming it.
    """
    from huggingface_hub import DatasetCardData

    if not fields.get("pretty_name"):
        raise ValueError("render_dataset_card: pretty_name is required")
    tags = list(dict.fromkeys(["fashrec", "fashion", *(fields.get("tags") or [])]))
    yaml_keys = {"license", "license_name", "license_link", "pretty_name", "task_categories", "task_ids",
                 "size_categories", "language", "source_datasets", "configs", "dataset_info", "annotations_creators",
                 "language_creators", "multilinguality", "paperswithcode_id", "viewer"}
    card_data = DatasetCardData(**{k: v for k, v in fields.items() if k in yaml_keys and v is not None}, tags=tags)
    values = {k: _markdown(v) for k, v in fields.items()}
    values["tags"] = ", ".join(tags)
    values["front_matter"] = card_data.to_yaml()
    values.setdefault("extra_sections", "")
    return _fill(DATASET_TEMPLATE, _DATASET_FALLBACK, values)


# ----- sections --------------------------------------------------------------------------------------------

_LIMITATIONS = """\
- **Use it for** "similar products" suggestions in a fashion catalogue: embed every product photo once,
  then show the nearest neighbours of the product being viewed. Similarity is *visual* (silhouette,
  colour, pattern at 64 x 64 pixels), not semantic: two items of the same type in different colours may
  be far apart, and a dress and a top of the same colour may be close.
- **Photos like the training data work best**: one garment, centred, on a plain light studio background.
  Worn items, street photos, several items per picture or strong crops will give weaker neighbours.
- **Small input**: every photo is reduced to 64 x 64 pixels, so fine detail (small prints, logos, texture)
  is lost on purpose.
- **Not for** identifying or profiling people, or for any decision about a person.
- The training photos come from a research dataset: check its terms (above) before any commercial use
  of these weights."""


def _summary(model_class: str, embedding_dim: Any, repo_id: str | None) -> str:
    if _is_number(embedding_dim):
        embedding_dim = f"{embedding_dim:,}"
    kind = {"ConvAE": "convolutional autoencoder", "ConvVAE": "convolutional variational autoencoder"}.get(
        model_class, model_class)
    return (
        f"A [fashrec](https://github.com/fashrec/fashrec) {kind} (`{model_class}`) that turns a fashion product "
        f"photo into a {embedding_dim}-value embedding for visual \"similar products\" recommendations. "
        "Nearest neighbours in this space look alike: same silhouette, colour and pattern."
    )


def _architecture(model_class: str, config: Mapping[str, Any]) -> str:
    rows = [(k, v) for k, v in config.items() if k not in _NOT_ARCHITECTURE]
    lines = [f"`{model_class}` built with these arguments (from `config.json`):", "",
             "| argument | value |", "|---|---|"]
    lines += [f"| `{k}` | `{_inline(v)}` |" for k, v in rows]
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
    if "fashrec_version" in config:
        lines += ["", f"Saved with fashrec {config['fashrec_version']}."]
    return "\n".join(lines)


def _preprocessing(preprocess: Mapping[str, Any]) -> str:
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
        "```json\n" + _json(dict(preprocess)) + "\n```"
    )


def _training_data(dataset: str | None, terms: str | None) -> str:
    if not dataset:
        text = "Not recorded with this checkpoint."
    elif _is_repo_id(dataset):
        text = f"[{dataset}](https://huggingface.co/datasets/{dataset})."
    else:
        text = f"{dataset}."
    if terms:
        text += f"\n\n**Terms of use of the data:** {terms.strip()}"
    return text


def _training(hyperparameters: Mapping[str, Any] | None, images: Mapping[str, str]) -> str:
    parts = []
    if hyperparameters:
        parts += ["| hyperparameter | value |", "|---|---|"]
        parts += [f"| {k} | `{_inline(v)}` |" for k, v in hyperparameters.items()]
    else:
        parts.append("Hyperparameters were not recorded with this checkpoint.")
    for alt, path in images.items():
        if _is_loss_curve(alt, path):
            parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts)


def _evaluation(metrics: Mapping[str, Any], retrieval: list[dict], images: Mapping[str, str]) -> str:
    parts = []
    if metrics:
        parts += ["| metric | split | value |", "|---|---|---|"]
        parts += [f"| {_metric_label(k)} | {_split(k)} | {_number(v)} |" for k, v in metrics.items()]
    if retrieval:
        keys = [k for k in dict.fromkeys(k for row in retrieval for k in row) if k != "label"]
        parts += ["", "Retrieval: a neighbour counts as relevant when it shares the query's label "
                  "(the query itself is excluded).", "",
                  "| label | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        parts += ["| " + str(row.get("label", "")) + " | " + " | ".join(_number(row.get(k, "")) for k in keys) + " |"
                  for row in retrieval]
    if not parts:
        parts.append("No scores were recorded with this checkpoint.")
    pictures = [(alt, path) for alt, path in images.items() if not _is_loss_curve(alt, path)]
    for alt, path in pictures:
        parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts).strip()


# ----- helpers ---------------------------------------------------------------------------------------------

def _fill(template_path: Path, fallback: str, values: Mapping[str, Any]) -> str:
    text = template_path.read_text(encoding="utf-8") if template_path.exists() else fallback
    try:
        out = Template(text).substitute({k: "" if v is None else v for k, v in values.items()})
    except KeyError as exc:
        raise ValueError(f"{template_path.name}: the template uses ${{{exc.args[0]}}} but no value was given "
                         f"(given: {sorted(values)})") from None
    except ValueError as exc:  # a stray "$" in the template
        raise ValueError(f"{template_path.name}: {exc} (write a literal dollar sign as $$)") from None
    return re.sub(r"\n{3,}", "\n\n", out).rstrip() + "\n"


def _is_repo_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_loss_curve(alt: str, path: str) -> bool:
    return "loss" in alt.lower() or "loss" in Path(path).name.lower()


def _metric_type(key: str) -> str:
    k = key.lower()
    if "mse" in k:
        return "mse"
    return re.sub(r"[^a-z0-9@]+", "_", k).strip("_") or "score"


def _split(key: str) -> str:
    k = key.lower()
    if k.startswith("train"):
        return "train"
    if k.startswith(("val", "valid")):
        return "validation"
    return "test"


def _metric_label(key: str) -> str:
    k = key.lower()
    if k in ("mse", "test_mse"):
        return "reconstruction MSE (test)"
    return key.replace("_", " ")


def _number(value: Any) -> str:
    if _is_number(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return str(value)


def _inline(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)


def _markdown(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {v}" for v in value)
    if isinstance(value, dict):
        return "\n".join(["| field | value |", "|---|---|"] + [f"| {k} | {_inline(v)} |" for k, v in value.items()])
    return value


_MODEL_FALLBACK = """---
${front_matter}
---

# ${title}

${summary}

```python
import fashrec

model = fashrec.from_pretrained("${repo_id}")
x = fashrec.preprocess_batch(["a.jpg", "b.jpg"], model.preprocess_config)
vectors = model.embed(x, normalize=True)        # (2, ${embedding_dim})
index = fashrec.SimilarityIndex(vectors, ids=["a", "b"])
index.search(vectors[:1], k=2, metric="cosine")
```

## Architecture

${architecture}

## Preprocessing

${preprocessing}

## Training data

${training_data}

## Training

${training}

## Evaluation

${evaluation}

## Intended use and limitations

${limitations}
${extra_sections}
"""

_DATASET_FALLBACK = """---
${front_matter}
---

# ${pretty_name}

Fashion product photos prepared for [fashrec](https://github.com/fashrec/fashrec).
${extra_sections}
"""
