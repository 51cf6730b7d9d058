"""Catalogue jobs that run the layers end to end: photos -> model -> embeddings -> index folder."""
