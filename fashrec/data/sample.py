"""The embedded H&M sample: ~800 downscaled product photos with their labels, shipped in the package.

It lets tests, docs and the Space run without the full data: ``fashrec.load_hm("sample")``.
It is made by ``fashrec make-sample`` (see ``fashrec/data/hm_sample/README.md`` for the exact command,
the source and the terms of use: Kaggle competition data from H&M Group, research use only).
"""
from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "hm_sample"


def sample_path() -> Path:
    """``SAMPLE_DIR``, after checking that the sample is really there (an install may have left it out)."""
    if not (SAMPLE_DIR / "metadata.csv").exists():
        raise FileNotFoundError(
            f"the embedded H&M sample is missing from {SAMPLE_DIR}; reinstall fashrec or rebuild it with "
            "'fashrec make-sample --src PATH/TO/hm --out fashrec/data/hm_sample'"
        )
    return SAMPLE_DIR
