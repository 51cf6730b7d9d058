"""The requirements.txt of a built Space: what the Hub's builder installs before the Space's files exist.

The Hub builds a Gradio Space by running pip on ``requirements.txt`` alone (it is mounted into the image
before the repository is copied in), in the same pip call as ``gradio[oauth,mcp]==<sdk_version>``
(docs/space.md, "How the Hub builds it"). So every line names a registry package, never a file of the
folder: fashrec's own requirements, read from the wheel's metadata (the core and the ``data`` extra the
index needs), with torch pinned to PyTorch's CPU-only build. fashrec itself is no line: its code is in the
folder, next to ``app.py`` (``fashrec.hub.space_vendor``).
"""
from __future__ import annotations

from email.parser import Parser

# PyTorch's index of CPU-only wheels: a CPU Space downloads ~200 MB of torch instead of the CUDA build and
# its several GB of nvidia-* wheels, which plain `torch` from PyPI pulls on Linux.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The CPU build the Space installs. The local version label (+cpu) only exists on the index above, so a
# build that cannot reach it fails instead of quietly pulling CUDA. tests/test_space_build.py installs
# exactly this wheel for the Space's Python (SPACE_PYTHON, the card's python_version) in a fresh venv; when
# moving the pin, move it to a release that has a CPU wheel for that Python.
TORCH_CPU = "2.13.0+cpu"
# The fashrec extras a Space needs: `data` reads the index's metadata.parquet (pandas, pyarrow).
EXTRAS = ("data",)
# What the Space runs on, as its card says (sdk_version, python_version): pins, never the gradio or the
# Python of the machine that builds it, so a build (and the space/ copies of its requirements.txt and card
# YAML) is the same on every machine, and a developer's newer gradio changes nothing that deploys.
# tests/test_space_build.py checks that fashrec allows both (its `space` extra, requires-python), that the
# gradio tested here has the pin's major version, and (slow) installs exactly these in the Hub's order and
# serves the app. TORCH_CPU above needs a CPU wheel for SPACE_PYTHON: move them together.
GRADIO_SDK = "6.31.0"
SPACE_PYTHON = "3.11"


def requirements_txt(wheel_metadata: str) -> str:
    """``requirements.txt`` for a Space that vendors the fashrec whose wheel ``METADATA`` is given."""
    lines = registry_requirements(wheel_metadata)
    return (
        "# Installed by the Space's builder from this file alone, before the Space's files are copied in, so\n"
        "# every line is a package of a registry (docs/space.md). gradio comes from the card's sdk_version.\n"
        "# fashrec itself is the folder fashrec/ next to app.py; these are its requirements, with torch's\n"
        "# CPU-only build (no CUDA download on a CPU Space).\n"
        f"--extra-index-url {TORCH_CPU_INDEX}\n" + "\n".join(lines) + "\n"
    )


def registry_requirements(wheel_metadata: str) -> list[str]:
    """fashrec's requirements for a Space (core and ``EXTRAS``), torch pinned to ``TORCH_CPU``.

    Raises ValueError when the pin does not satisfy fashrec's own torch requirement."""
    from packaging.requirements import Requirement

    out = []
    for line in Parser().parsestr(wheel_metadata).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.name == "fashrec" or (req.marker and not any(req.marker.evaluate({"extra": e}) for e in EXTRAS)):
            continue
        if req.name == "torch":
            if not req.specifier.contains(TORCH_CPU, prereleases=True):
                raise ValueError(f"the Space's torch pin {TORCH_CPU} does not satisfy fashrec's 'torch{req.specifier}'")
            out.append(f"torch=={TORCH_CPU}")
            continue
        req.marker = None
        out.append(str(req))
    if not any(line.startswith("torch==") for line in out):
        raise ValueError("the wheel's metadata names no torch requirement: is it a fashrec wheel?")
    return out
