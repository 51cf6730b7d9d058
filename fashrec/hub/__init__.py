"""Publishing to the Hugging Face Hub (the card templates live in the top-level ``hub_card/`` folder)."""
