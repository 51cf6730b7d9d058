"""The fashrec code a Space runs, placed in its folder: ``fashrec/`` next to ``app.py``.

A Space's builder installs ``requirements.txt`` before the folder exists, so nothing there can point at a
file of the folder. Instead the package travels as source: ``python app.py`` imports ``fashrec`` from the
folder it runs in, which is the very code the index and checkpoints were checked with. It is taken from a
wheel (built from this checkout, or one given), so the Space gets exactly what a release installs: the same
files, ``fashrec/hub_card`` in place, no photos. The wheel's shipped checkpoints stay out: the Space serves
its own copies in ``checkpoints/``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# What a wheel is built from: the package, the card templates it installs as fashrec.hub_card, the metadata.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "fashrec", "hub_card")
# Wheel members a Space does not need: the shipped checkpoints (it serves its own copies).
LEFT_OUT = ("fashrec/checkpoints/",)


def build_wheel(out_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Build the fashrec wheel of the checkout ``source`` into ``out_dir``.

    Built from a clean copy of the package's sources, so nothing stale in the checkout (``build/``) and
    nothing the wheel must not carry gets in; no network (``--no-build-isolation``).
    """
    source = Path(source)
    missing = [name for name in WHEEL_SOURCES if not (source / name).exists()]
    if missing:
        raise FileNotFoundError(f"{source} is not a fashrec checkout (no {', '.join(missing)}): pass --wheel")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fashrec-wheel-") as tmp:
        for name in WHEEL_SOURCES:
            src = source / name
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "hm_sample"))
            else:
                shutil.copy2(src, Path(tmp) / name)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                               "--wheel-dir", str(out_dir), tmp], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the fashrec wheel failed:\n{done.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("fashrec-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheels[-1]


def vendor(wheel: str | os.PathLike, into: str | os.PathLike) -> str:
    """Unpack the wheel's ``fashrec/`` package (less ``LEFT_OUT``) into ``into``; return the wheel's METADATA."""
    wheel = Path(wheel)
    if not (wheel.is_file() and wheel.name.startswith("fashrec-") and wheel.suffix == ".whl"):
        raise FileNotFoundError(f"--wheel {wheel}: not a fashrec wheel file (fashrec-*.whl)")
    into = Path(into)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if metadata is None or "fashrec/__init__.py" not in names:
            raise FileNotFoundError(f"--wheel {wheel}: not a fashrec wheel (no fashrec/__init__.py or METADATA)")
        for name in names:
            if name.startswith("fashrec/") and not name.endswith("/") and not name.startswith(LEFT_OUT):
                target = into / name
                if ".." in Path(name).parts:
                    raise ValueError(f"--wheel {wheel}: member {name!r} points outside the package")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
        return z.read(metadata).decode("utf-8")
