"""Measuring recommendations: retrieval metrics, the scoreboard, and the neighbour-grid picture."""
