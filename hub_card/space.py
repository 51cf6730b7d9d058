"""The Space card (README.md of a Space repo made by ``fashrec space build``), rendered from ``space_card.md``."""
from __future__ import annotations

from .template import fill


def render_space_card(*, title: str, sdk_version: str, python_version: str, n_items: int, model_description: str,
                      recon_description: str, checkpoints: list[str], torch_requirement: str, fashrec_version: str,
                      example_id: str, focuses: list[str] | None = None, design_focus: str | None = None) -> str:
    """The Space's YAML (sdk gradio, its version, the Python it runs, ``app.py``, the photos' licence) and what
    the folder serves; ``design_focus``: the focus that finds other colours of a design (None: the Space
    answers one question). The Space shows H&M product photos, so its licence is the competition's rules, not MIT."""
    from huggingface_hub import SpaceCardData

    from fashrec.data import terms

    card_data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=sdk_version, python_version=python_version, app_file="app.py",
        license="other", license_name=terms.DATA_LICENSE_NAME, license_link=terms.RULES,
        tags=["fashion", "image-similarity", "recommendation", "fashrec"],
        emoji="👗", colorFrom="pink", colorTo="indigo", pinned=False,
        short_description="Visual similar-product search by shape, colour or pattern",
    )
    others = [f for f in focuses or [] if f != "overall"]
    return fill("space_card.md", {
        "front_matter": card_data.to_yaml(), "n_items": f"{n_items:,}", "model_description": model_description,
        "recon_description": recon_description, "checkpoints": ", ".join(f"`{c}`" for c in checkpoints),
        "torch_requirement": torch_requirement, "fashrec_version": fashrec_version, "example_id": example_id,
        "gradio_version": sdk_version, "terms": terms.TERMS, "rules": terms.RULES,
        "focus_phrase": f" or in **{', '.join(others)}** (or a weighted mix)" if others else "",
        "design_phrase": (f". In a row of its own, **other colours of the same design**: the nearest by the "
                          f"`{design_focus}` focus, trained to find a garment's colourways") if design_focus else "",
        "design_output": ("`design`, other colours of its design" if design_focus else
                          "`design`, empty: this model was taught no designs"),
    })
