"""What the H&M data is and on which terms it may be used: the words every card and export repeats."""
from __future__ import annotations

TERMS = """\
This is competition data of H&M Group, under the Kaggle competition rules: use it for the competition
and for non-commercial research and education only. The source repositories carry no licence of their
own. Do not redistribute it outside the fashrec project; fashrec's own MIT licence does not cover it."""


def dataset_name(source: str, n: int | None) -> str:
    """How the card names the training data: a Hub dataset id as is, else a description."""
    import re

    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", str(source)) and not __import__("os").path.exists(source):
        return str(source)
    what = "the fashrec embedded sample of" if source == "sample" else "a subset of"
    size = f", {n} photos" if n else ""
    return f"H&M product photos ({what} the Kaggle 'H&M Personalized Fashion Recommendations' images{size})"
