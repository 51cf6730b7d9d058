"""Hub repo cards for fashrec, installed as ``fashrec.hub_card``: one template per card type beside this
file (``model_card.md``, ``dataset_card.md``, ``space_card.md``) and the code that fills them.

    render_model_card(...)        a model card from given scores      (model.py; scores.py: its Evaluation)
    write_model_card(folder)      a checkpoint folder's card from its own files   (checkpoint.py)
    render_dataset_card(...)      a dataset card                      (dataset.py)
    render_space_card(...)        the card of a built Space           (space.py)
    for_repo(text, repo_id)       a card whose snippet loads repo_id  (template.py)
    python -m fashrec.hub_card    rewrite the shipped checkpoints' cards
"""
from .checkpoint import model_card, write_model_card, write_shipped_cards
from .dataset import render_dataset_card
from .model import render_model_card
from .space import render_space_card
from .template import THIS_FOLDER, for_repo

__all__ = ["render_model_card", "render_dataset_card", "render_space_card", "write_model_card", "model_card",
           "write_shipped_cards", "for_repo", "THIS_FOLDER"]
