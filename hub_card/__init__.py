"""Hub repo cards for fashrec, installed as ``fashrec.hub_card``: ``render_model_card``,
``render_dataset_card`` and ``render_space_card`` (templates beside this file)."""
from .cards import render_dataset_card, render_model_card, render_space_card

__all__ = ["render_model_card", "render_dataset_card", "render_space_card"]
