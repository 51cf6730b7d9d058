"""Filling a card template, and the markdown helpers every card type shares.

Templates use ``string.Template`` placeholders (``${name}``), not Jinja: ``pip install fashrec`` alone
must be able to write a card. A placeholder the caller gives no value for is an error that names it; there
is no fallback text, so the template beside this file is the only one of its kind.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any, Mapping

TEMPLATE_DIR = Path(__file__).resolve().parent
# What a card's snippet loads when the card names no repo and no shipped checkpoint: the folder the card is
# in. ``for_repo`` (what ``fashrec push`` uploads) puts the repo id in its place.
THIS_FOLDER = "."
THIS_FOLDER_NOTE = '# "." is the folder of this card; once published, the Hub repo id goes here (fashrec push does it)\n'
# A local file-system path inside a string: absolute, home-relative or parent-relative.
LOCAL_PATH = re.compile(r"(?<![\w.])(?:~|\.\.|/)/?[\w.~-]*(?:/[\w.~-]+)+")


def fill(template: str | Path, values: Mapping[str, Any]) -> str:
    """The template (a file name beside this module, or a path) with every ``${name}`` replaced."""
    path = TEMPLATE_DIR / template if isinstance(template, str) else Path(template)
    text = path.read_text(encoding="utf-8")
    try:
        out = Template(text).substitute({k: "" if v is None else v for k, v in values.items()})
    except KeyError as exc:
        raise ValueError(f"{path.name}: the template uses ${{{exc.args[0]}}} but no value was given "
                         f"(given: {sorted(values)})") from None
    except ValueError as exc:  # a stray "$" in the template
        raise ValueError(f"{path.name}: {exc} (write a literal dollar sign as $$)") from None
    return re.sub(r"\n{3,}", "\n\n", out).rstrip() + "\n"


def for_repo(text: str, repo_id: str) -> str:
    """A card (model or dataset) whose snippet loads ``repo_id``: what a folder's README becomes on the Hub."""
    text = text.replace(THIS_FOLDER_NOTE, "")
    return re.sub(r'\b(from_pretrained|load_hm|load_dataset)\("[^"\n]*"\)', lambda m: f'{m[1]}("{repo_id}")', text)


def install_lines() -> str:
    """How a card tells a stranger to install fashrec: PyPI once this version is there, else the repository."""
    from fashrec.version import ON_PYPI, REPOSITORY

    if ON_PYPI:
        return "pip install fashrec"
    return (f"# fashrec is not on PyPI yet: install it from its repository ({REPOSITORY})\n"
            f"pip install \"fashrec @ git+{REPOSITORY}\"")


def is_repo_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name))


def is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(LOCAL_PATH.fullmatch(value.strip()))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value: Any) -> str:
    if is_number(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return str(value)


def inline(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def markdown(value: Any) -> Any:
    """Lists as bullet lists, dicts as a two-column table, anything else as is."""
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {v}" for v in value)
    if isinstance(value, dict):
        return "\n".join(["| field | value |", "|---|---|"] + [f"| {k} | {inline(v)} |" for k, v in value.items()])
    return value
