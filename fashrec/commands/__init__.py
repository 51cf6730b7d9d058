"""Subcommands of the ``fashrec`` console script, one module each (see ``fashrec/cli.py``)."""
