"""Thin command-line shells over ``fashrec.training.trainer``: ``python -m training.train``, ``training.sweep``,
``training.benchmark``. The library does the work; these only parse flags and print figures."""
