"""``python -m fashrec.hub_card``: rewrite the cards of the shipped checkpoints from their folders' files."""
from .checkpoint import write_shipped_cards

for card in write_shipped_cards():
    print(f"wrote {card}")
