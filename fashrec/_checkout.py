"""``fashrec.hub_card`` in a source checkout.

A wheel installs the repo's top-level ``hub_card/`` folder (the card templates) as ``fashrec/hub_card/``
(pyproject's ``package-dir``). Run from a checkout, the package has no such folder: this finder, consulted
after the normal ones, gives the name to the checkout's ``hub_card/`` instead. Nothing else is mapped.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

NAME = "fashrec.hub_card"
FOLDER = Path(__file__).resolve().parents[1] / "hub_card"


class CheckoutFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME or not (FOLDER / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(NAME, FOLDER / "__init__.py",
                                                      submodule_search_locations=[str(FOLDER)])


def install() -> None:
    if not any(isinstance(f, CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.append(CheckoutFinder())
