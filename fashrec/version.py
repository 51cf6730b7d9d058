"""The one place fashrec's version is written: the package face, ``pyproject.toml`` (setuptools reads it
from here), config.json, index.json and the cards all take it from this module."""
__version__ = "0.1.0"
