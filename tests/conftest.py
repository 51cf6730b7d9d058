"""Shared test set-up. The environment variables must be set before huggingface_hub, datasets or
gradio are imported anywhere: without them every hub call retries for ~23 s before failing."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tests.hub_server import hub_server  # noqa: F401,E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_HM = REPO_ROOT.parent / "shared" / "data" / "hm"


@pytest.fixture(scope="session", autouse=True)
def _temp_files_stay_in_the_session(tmp_path_factory):
    """This process's ``tempfile`` folder is one of pytest's own for the session, which pytest prunes.

    gradio_client's downloader (``Endpoint._download_file``, gradio_client 2.x) leaves an empty
    ``<tempdir>/<40 hex>`` folder behind on every download; a full run made ~1,000 of them in /tmp."""
    import tempfile

    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = before


@pytest.fixture(scope="session")
def hm_dir() -> Path:
    """The 5,000-image H&M subset beside the checkout (CI has it; a user machine may not)."""
    if not (SHARED_HM / "metadata.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared H&M data at {SHARED_HM}")
        pytest.skip(f"shared H&M data not found at {SHARED_HM}")
    return SHARED_HM


@pytest.fixture(scope="session")
def untrained_ae_dir(tmp_path_factory) -> Path:
    """A saved ConvAE() with seeded random weights: a real checkpoint folder, no training needed."""
    import torch

    import fashrec

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("untrained-ae")
    fashrec.ConvAE().save_pretrained(folder)
    return folder
