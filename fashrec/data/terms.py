"""What the H&M data is and on which terms it may be used: the words every card, export and push repeats."""
from __future__ import annotations

COMPETITION = "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations"
RULES = f"{COMPETITION}/rules"  # the licence link of every card of H&M photos, or of weights trained on them

TERMS = """\
This is competition data of H&M Group, under the Kaggle competition rules: use it for the competition
and for non-commercial research and education only. The source repositories carry no licence of their
own. Do not redistribute it outside the fashrec project; fashrec's own MIT licence does not cover it."""

# The Hub's `license: other` needs a name and a link: one for the photos (dataset repos, Spaces that show
# them), one for weights trained on them, which inherit the photos' terms.
DATA_LICENSE_NAME = "kaggle-hm-competition-rules"
WEIGHTS_LICENSE_NAME = "hm-data-non-commercial-research"
WEIGHTS_TERMS = (
    "These weights were trained on H&M product photos, competition data of H&M Group under the rules of the "
    f"Kaggle competition [H&M Personalized Fashion Recommendations]({COMPETITION}): use them, as the photos, for "
    f"non-commercial research and education only ([the rules]({RULES})). fashrec's own MIT licence covers its "
    "code, not these weights and not the photos."
)
PUBLIC_WARNING = (
    f"this repo holds H&M product photos and goes up PUBLIC, as asked. Their terms ({RULES}):\n{TERMS}\n"
    "Make it public only where those terms allow it."
)

def dataset_name(source: str, n: int | None) -> str:
    """How the card names the training data: a Hub dataset id as is, else a description."""
    import re

    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", str(source)) and not __import__("os").path.exists(source):
        return str(source)
    what = "the fashrec embedded sample of" if source == "sample" else "a subset of"
    size = f", {n} photos" if n else ""
    return f"H&M product photos ({what} the Kaggle 'H&M Personalized Fashion Recommendations' images{size})"
