"""The embedded H&M sample: ~800 downscaled product photos with their labels, kept in the source repo.

It lets tests, docs and the Space run without the full data: ``fashrec.load_hm("sample")``. It is made
by ``fashrec make-sample`` (see ``fashrec/data/hm_sample/README.md`` for the exact command, the source and
the terms of use: Kaggle competition data from H&M Group, research use only). Those terms forbid
redistributing the photos, so the fashrec wheel does not carry them: an installed fashrec reads the data
from a copy of the Kaggle competition's files.
"""
from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "hm_sample"
KAGGLE_URL = "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations/data"


def sample_path() -> Path:
    """``SAMPLE_DIR``, after checking that the sample is really there (only a source checkout has it)."""
    if not (SAMPLE_DIR / "metadata.csv").exists():
        raise FileNotFoundError(
            "the H&M sample is not part of the fashrec package (H&M's terms forbid redistributing the photos): "
            "download the Kaggle competition 'H&M Personalized Fashion Recommendations' "
            f"({KAGGLE_URL}) and pass its folder instead of 'sample', or use a source checkout of fashrec"
        )
    return SAMPLE_DIR
