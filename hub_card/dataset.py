"""The dataset card (README.md of a dataset repo), rendered from ``dataset_card.md``."""
from __future__ import annotations

from typing import Any

from .template import THIS_FOLDER, THIS_FOLDER_NOTE, fill, markdown

# The keywords huggingface_hub.DatasetCardData knows: they also go into the card's YAML header.
YAML_KEYS = {"license", "license_name", "license_link", "pretty_name", "task_categories", "task_ids",
             "size_categories", "language", "source_datasets", "configs", "dataset_info", "annotations_creators",
             "language_creators", "multilinguality", "paperswithcode_id", "viewer"}


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
    card_data = DatasetCardData(**{k: v for k, v in fields.items() if k in YAML_KEYS and v is not None}, tags=tags)
    values = {k: markdown(v) for k, v in fields.items()}
    values["tags"] = ", ".join(tags)
    values["front_matter"] = card_data.to_yaml()
    values.setdefault("extra_sections", "")
    values.setdefault("load_note", THIS_FOLDER_NOTE if fields.get("load_id") == THIS_FOLDER else "")
    return fill("dataset_card.md", values)
