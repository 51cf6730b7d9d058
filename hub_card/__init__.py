"""Hub repo cards for fashrec: ``render_model_card`` and ``render_dataset_card`` (templates beside this file)."""
from hub_card.cards import render_dataset_card, render_model_card

__all__ = ["render_model_card", "render_dataset_card"]
