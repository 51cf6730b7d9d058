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
SPACE_TEMPLATE = TEMPLATE_DIR / "space_card.md"

# Every model card's tags: the library's, then the two that huggingface_hub's PyTorchModelHubMixin puts on
# the cards it writes itself (fashrec models are such mixins), then the class's own (CLASS_TAGS).
MODEL_TAGS = ["fashrec", "image-feature-extraction", "fashion", "model_hub_mixin", "pytorch_model_hub_mixin"]
CLASS_TAGS = {"ConvAE": ["autoencoder"], "ConvVAE": ["autoencoder", "vae"], "MultiTaskCNN": ["cnn", "multi-task"]}
TASK = "image-feature-extraction"
# What a card's snippet loads when the card names no repo and no shipped checkpoint: the folder the card is
# in. ``for_repo`` (what ``fashrec push`` uploads) puts the repo id in its place.
THIS_FOLDER = "."
_THIS_FOLDER_NOTE = '# "." is the folder of this card; once published, the Hub repo id goes here (fashrec push does it)\n'
# The distance of the retrieval scores a card shows (``retrieval_rows`` keeps that distance's rows).
DISTANCE = "cosine"
# The baselines ``fashrec evaluate`` scores beside a model, as the card names them.
BASELINES = {"raw": "raw pixels", "pca": "PCA", "random": "random neighbour"}
# config.json keys that describe the checkpoint rather than its architecture.
_NOT_ARCHITECTURE = {"preprocess", "model_class", "fashrec_version"}
_RETRIEVAL_KEY = re.compile(r"^(precision|map|mAP|recall|ndcg|hit)@(\d+)$")


def render_model_card(*, model_class: str, config: Mapping[str, Any], repo_id: str | None = None,
                      name: str | None = None, metrics: Mapping[str, float] | None = None,
                      retrieval: list[Mapping[str, Any]] | None = None, evaluation: Mapping[str, Any] | None = None,
                      compare: Mapping[str, Mapping[str, Any]] | None = None,
                      hyperparameters: Mapping[str, Any] | None = None, recipe: str | None = None,
                      dataset: str | None = None, dataset_terms: str | None = None,
                      images: Mapping[str, str] | None = None, license: str = "mit", extra_sections: str = "") -> str:
    """The README.md of a model repo.

    The snippet loads ``repo_id`` (a Hub repo), else ``name`` (a checkpoint shipped with fashrec, e.g.
    ``"paper-ae"``), else ``"."``, the card's own folder (``for_repo`` rewrites that when publishing).
    ``config`` is the model's ``config.json`` content. ``metrics`` maps a name to a score on the test split
    (``{"test_mse": 0.0042}``). ``evaluation`` is a ``fashrec evaluate`` result (``eval.json``): its rows
    for the model give the retrieval scores, its raw / PCA / random rows and the model rows of each
    ``compare`` entry (``{"paper-ae": <its eval.json>}``) the baselines table, its rows per focus the
    steerable-similarity table. ``retrieval`` gives retrieval rows directly instead, one per label, e.g.
    ``{"label": "product_type_name", "precision@10": 0.61, "map@10": 0.52}``. Every score goes into the
    card's ``model-index``. ``dataset`` is the training data (a Hub dataset id, e.g.
    ``"fashrec/hm-fashion-5k"``, or a plain name) and ``dataset_terms`` its licence/terms of use.
    ``hyperparameters`` become a table (values that are local paths are left out: a card is public),
    ``recipe`` is the command that trained the model (local paths in it are replaced by ``HM_DATA``).
    ``images`` maps alt text to a picture's path inside the repo (``{"loss curve": "loss_curve.png"}``).
    ``extra_sections`` is markdown appended at the end.
    """
    from huggingface_hub import EvalResult, ModelCardData

    config = dict(config)
    metrics = dict(metrics or {})
    evaluation = dict(evaluation or {})
    retrieval = [dict(row) for row in retrieval or []] or retrieval_rows(evaluation)
    distance = DISTANCE
    images = dict(images or {})
    title = repo_id.split("/")[-1] if repo_id else name or model_class
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
                eval_results.append(result(str(key).lower(), _retrieval_name(str(key), label, distance), value, "test"))

    card_data = ModelCardData(
        library_name="fashrec", license=license, tags=[*MODEL_TAGS, *CLASS_TAGS.get(model_class, [])],
        pipeline_tag=TASK, datasets=[dataset_id] if dataset_id else None,
        metrics=sorted({r.metric_type for r in eval_results}) or None,
        model_name=title if eval_results else None, eval_results=eval_results or None,
    )
    preprocess = dict(config.get("preprocess") or {})
    embedding_dim = config.get("embedding_dim", "D")
    load = repo_id or name or THIS_FOLDER
    fields = {
        "front_matter": card_data.to_yaml(),
        "title": title,
        "summary": _summary(model_class, embedding_dim, repo_id),
        "repo_id": load,
        "load_note": _THIS_FOLDER_NOTE if load == THIS_FOLDER else "",
        "model_class": model_class,
        "image_size": preprocess.get("image_size", 64),
        "embedding_dim": embedding_dim,
        "architecture": _architecture(model_class, config),
        "preprocessing": _preprocessing(preprocess),
        "training_data": _training_data(dataset, dataset_terms),
        "training": _training(hyperparameters, recipe, images),
        "evaluation": _evaluation(metrics, retrieval, evaluation, dict(compare or {}), distance, title, images,
                                  raw_dim=3 * int(preprocess.get("image_size", 64)) ** 2),
        "limitations": _LIMITATIONS,
        "extra_sections": ("\n" + extra_sections.strip() + "\n") if extra_sections.strip() else "",
    }
    return _fill(MODEL_TEMPLATE, _MODEL_FALLBACK, fields)


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
        rows.append({"label": row.get("label"), **_headline(row, k), f"map@{k}": row.get("map_at_k")})
    return rows


def _headline(row: Mapping[str, Any], k: int) -> dict:
    """A row's main score: hit@k for the design relevance (the share of queries that find another article
    of their design in the top k), precision@k for a label."""
    if row.get("label") == "design":
        return {f"hit@{k}": row.get("design_hit_at_k")}
    return {f"precision@{k}": row.get("precision_at_k")}


def for_repo(text: str, repo_id: str) -> str:
    """A card (model or dataset) whose snippet loads ``repo_id``: what a folder's README becomes on the Hub."""
    text = text.replace(_THIS_FOLDER_NOTE, "")
    return re.sub(r'\b(from_pretrained|load_hm|load_dataset)\("[^"\n]*"\)', lambda m: f'{m[1]}("{repo_id}")', text)


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
    values.setdefault("load_note", _THIS_FOLDER_NOTE if fields.get("load_id") == THIS_FOLDER else "")
    return _fill(DATASET_TEMPLATE, _DATASET_FALLBACK, values)


def render_space_card(*, title: str, sdk_version: str, n_items: int, model_description: str,
                      recon_description: str, checkpoints: list[str], wheel: str, fashrec_version: str,
                      example_id: str, focuses: list[str] | None = None, python_version: str = "3.11",
                      license: str = "mit") -> str:
    """The README.md of a Space repo made by ``fashrec space build``, from ``hub_card/space_card.md``: the
    Space's YAML (sdk gradio, its version, ``app.py``) and what the folder serves."""
    from huggingface_hub import SpaceCardData

    card_data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=sdk_version, python_version=python_version, app_file="app.py",
        license=license, tags=["fashion", "image-similarity", "recommendation", "fashrec"],
        emoji="👗", colorFrom="pink", colorTo="indigo", pinned=False,
        short_description="Visual similar-product search by shape, colour or pattern",
    )
    others = [f for f in focuses or [] if f != "overall"]
    values = {
        "front_matter": card_data.to_yaml(), "n_items": f"{n_items:,}", "model_description": model_description,
        "recon_description": recon_description, "checkpoints": ", ".join(f"`{c}`" for c in checkpoints),
        "wheel": wheel, "fashrec_version": fashrec_version, "example_id": example_id,
        "gradio_version": sdk_version,
        "focus_phrase": f" or in **{', '.join(others)}** (or a weighted mix)" if others else "",
    }
    return _fill(SPACE_TEMPLATE, "---\n${front_matter}\n---\n\n# fashrec\n", values)


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


_MULTITASK_DESIGN = """\
A small CNN (BatchNorm, global average pooling) trained from scratch on the catalogue's own labels (product
type, colour group, graphical appearance; product group and perceived colour as auxiliary tasks) with cosine
classifiers. Each focus is the square root of its column's predicted class distribution (averaged with the
mirror image); the colour focus also holds a weight-free colour histogram of the garment's pixels; `overall`
is all blocks with equal weight. The full comparison with the paper's autoencoder, VAEs and PCA is in
fashrec's docs/embeddings.md."""


def _summary(model_class: str, embedding_dim: Any, repo_id: str | None) -> str:
    if _is_number(embedding_dim):
        embedding_dim = f"{embedding_dim:,}"
    kind = {"ConvAE": "convolutional autoencoder", "ConvVAE": "convolutional variational autoencoder",
            "MultiTaskCNN": "label-trained CNN"}.get(model_class, model_class)
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
    if model_class == "MultiTaskCNN":
        lines += ["", _MULTITASK_DESIGN]
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


def _training(hyperparameters: Mapping[str, Any] | None, recipe: str | None, images: Mapping[str, str]) -> str:
    parts = []
    public = {k: v for k, v in (hyperparameters or {}).items() if not _is_local_path(v)}
    if public:
        parts += ["| hyperparameter | value |", "|---|---|"]
        parts += [f"| {k} | `{_inline(v)}` |" for k, v in public.items()]
    else:
        parts.append("Hyperparameters were not recorded with this checkpoint.")
    if recipe:
        command = _LOCAL_PATH.sub("HM_DATA", recipe.strip())
        parts += ["", f"Trained with: `{command}`"]
        if command != recipe.strip():
            parts.append("(`HM_DATA`: a folder of the H&M data in the Kaggle layout; see Training data.)")
    for alt, path in images.items():
        if _is_loss_curve(alt, path):
            parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts)


def _evaluation(metrics: Mapping[str, Any], retrieval: list[dict], evaluation: Mapping[str, Any],
                compare: Mapping[str, Mapping[str, Any]], distance: str, title: str, images: Mapping[str, str],
                *, raw_dim: int) -> str:
    parts = []
    if metrics:
        parts += ["| metric | split | value |", "|---|---|---|"]
        parts += [f"| {_metric_label(k)} | {_split(k)} | {_number(v)} |" for k, v in metrics.items()]
    if retrieval:
        keys = [k for k in dict.fromkeys(k for row in retrieval for k in row) if k != "label"]
        parts += ["", _metric_definition(keys, distance, evaluation), "",
                  "| label | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        parts += ["| " + str(row.get("label", "")) + " | " + " | ".join(_number(row.get(k, "")) for k in keys) + " |"
                  for row in retrieval]
        parts += _baselines(retrieval, evaluation, compare, title, raw_dim)
        parts += _focuses(evaluation, distance)
    if not parts:
        parts.append("No scores were recorded with this checkpoint.")
    pictures = [(alt, path) for alt, path in images.items() if not _is_loss_curve(alt, path)]
    for alt, path in pictures:
        parts += ["", f"![{alt}]({path})"]
    return "\n".join(parts).strip()


def _metric_definition(keys: list[str], distance: str, evaluation: Mapping[str, Any]) -> str:
    k = next((m[2] for m in map(_RETRIEVAL_KEY.match, keys) if m), "k")
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
    return (f"Retrieval: precision@{k} is the share of a query's {k} nearest catalogue photos ({distance} distance "
            f"between embeddings, the query itself excluded) that have the same value of the label as the query; "
            f"map@{k} is the mean average precision over the same {k}.{design}{queries}"
            + (" Scored by `fashrec evaluate`." if evaluation else ""))


def _baselines(retrieval: list[dict], evaluation: Mapping[str, Any], compare: Mapping[str, Mapping[str, Any]],
               title: str, raw_dim: int) -> list[str]:
    """The model beside the baselines of the same evaluation (and of the compared models), precision@k."""
    if not evaluation:
        return []
    k = evaluation.get("k", 10)
    key = f"precision@{k}"
    labels = [row["label"] for row in retrieval if row.get(key, row.get(f"hit@{k}")) is not None]
    dim = evaluation.get("embedding_dim", "")
    rows = [(f"**{title}** (this model)", dim, retrieval)]
    for other, result in compare.items():
        rows.append((f"`{other}`", result.get("embedding_dim", ""), retrieval_rows(result)))
    for embedding, text in BASELINES.items():
        size = {"raw": raw_dim, "pca": dim, "random": "–"}[embedding]
        rows.append((text, size, retrieval_rows(evaluation, embedding)))
    hit = f"hit@{k}"
    rows = [(who, size, {r["label"]: r.get(key, r.get(hit)) for r in found}) for who, size, found in rows if found]
    if len(rows) < 2:
        return []
    out = ["", f"Beside the baselines ({key}, same queries and distance; PCA is fitted on the train split with as "
           "many components as the model's embedding has values):", "",
           "| embedding | dim | " + " | ".join(f"{hit if label == 'design' else key} same {label}" for label in labels)
           + " |",
           "|---|---:|" + "---:|" * len(labels)]
    for who, size, scores in rows:
        size = f"{size:,}" if _is_number(size) else size
        out.append(f"| {who} | {size} | " + " | ".join(_number(scores.get(label, "")) for label in labels) + " |")
    return out


def _focuses(evaluation: Mapping[str, Any], distance: str) -> list[str]:
    """Scores per focus, for models whose similarity can be steered (a focus name or a mix of them)."""
    k = evaluation.get("k", 10)
    rows = [r for r in evaluation.get("retrieval", []) if r.get("embedding") == "model" and r.get("focus")
            and r.get("metric", distance) == distance]
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
            f"{_number(list(_headline(r, k).values())[0])} | {_number(r['map_at_k'])} |" for r in rows] + (
            ["", f"Designs never seen in training: {unseen[0]['n_scored']} test queries whose design has no photo in "
                 "any training data; their figure cannot come from memorised designs."] if unseen else [])


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


# A local file-system path inside a string: absolute, home-relative or parent-relative.
_LOCAL_PATH = re.compile(r"(?<![\w.])(?:~|\.\.|/)/?[\w.~-]*(?:/[\w.~-]+)+")


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(_LOCAL_PATH.fullmatch(value.strip()))


def _retrieval_name(key: str, label: Any, distance: str) -> str:
    """``"precision@10 of same product_type_name (cosine, query excluded)"``."""
    return f"{key} of same {label} ({distance}, query excluded)" if label else f"{key} ({distance}, query excluded)"


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

${load_note}model = fashrec.from_pretrained("${repo_id}")
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
