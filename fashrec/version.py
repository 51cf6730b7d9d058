"""The one place fashrec's version is written: the package face, ``pyproject.toml`` (setuptools reads it
from here), config.json, index.json and the cards all take it from this module.

``ON_PYPI`` says whether this version is on PyPI. Until the first release it is False, and every card and
the README send people to the repository (or a built wheel) instead of ``pip install fashrec``, which would
find nothing, or someone else's package. The release commit sets it (docs/releasing.md).
"""
__version__ = "0.1.0"
ON_PYPI = False
# Where the code lives (pyproject's [project.urls] Repository says the same; tests/test_release.py checks it).
REPOSITORY = "https://github.com/fashrec/fashrec"
