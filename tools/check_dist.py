"""Check a built release the way a stranger would use it: ``make dist`` runs this after ``python -m build``
and ``twine check``.

    python tools/check_dist.py dist                       # the sdist and wheel in dist/
    python tools/check_dist.py dist --release-tag v0.1.0  # in the release workflow: the tag is the version

1. The sdist and the wheel carry no H&M photo, the wheel has ``fashrec/hub_card`` and no top-level
   ``hub_card``, and both are this version (``fashrec/version.py``).
2. A fresh venv (nothing of this one) installs torch's CPU build, then the wheel from the file.
3. The README's Python snippet (section "Python usage") and the shipped default checkpoint's card snippet
   run there verbatim, beside three product photos of the embedded sample, from a folder outside the
   checkout: they must import the installed fashrec.

Standard library only: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# torch for the fresh venv: the CPU build (the wheel only says torch>=...; on Linux plain torch is CUDA).
TORCH = ["torch", "--extra-index-url", "https://download.pytorch.org/whl/cpu"]
PHOTO = (".jpg", ".jpeg")


def version() -> tuple[str, bool]:
    """``__version__`` and ``ON_PYPI`` of fashrec/version.py, read without importing fashrec."""
    tree = ast.parse((REPO / "fashrec" / "version.py").read_text(encoding="utf-8"))
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    return values["__version__"], values["ON_PYPI"]


def check_archives(dist: Path, want: str) -> tuple[Path, Path]:
    wheels, sdists = sorted(dist.glob("fashrec-*.whl")), sorted(dist.glob("fashrec-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        sys.exit(f"{dist}: want one wheel and one sdist, found {[p.name for p in wheels + sdists]}")
    wheel, sdist = wheels[0], sdists[0]
    if not wheel.name.startswith(f"fashrec-{want}-") or sdist.name != f"fashrec-{want}.tar.gz":
        sys.exit(f"{dist}: built {wheel.name}, {sdist.name}, but fashrec/version.py says {want}")
    names = zipfile.ZipFile(wheel).namelist()
    members = tarfile.open(sdist).getnames()
    photos = [n for n in names + members if n.lower().endswith(PHOTO) or "hm_sample" in n]
    if photos:
        sys.exit(f"H&M photos in the release (the competition's rules forbid it): {photos[:5]}")
    if "fashrec/hub_card/model_card.md" not in names or any(n.startswith("hub_card/") for n in names):
        sys.exit(f"{wheel.name}: the card templates must be installed as fashrec/hub_card/")
    if not any(m.endswith("/hub_card/model_card.md") for m in members):
        sys.exit(f"{sdist.name}: no hub_card/model_card.md: a wheel built from it would have no card templates")
    print(f"archives: {wheel.name}, {sdist.name}: this version, no photos, card templates in place")
    return wheel, sdist


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python usage\n"):]
    return python_blocks(section[: section.find("\n## ", 1)])[0]


def run_in(venv: Path, code: str, cwd: Path, photos: list[str]) -> str:
    sample = sorted((REPO / "fashrec" / "data" / "hm_sample" / "images").rglob("*.jpg"))[: len(photos)]
    for src, name in zip(sample, photos):
        shutil.copy(src, cwd / name)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"this snippet failed in a fresh venv:\n{code}\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote")
    parser.add_argument("--release-tag", default=None, help="the git tag being released: must be v<version>, on PyPI")
    args = parser.parse_args(argv)
    want, on_pypi = version()
    if args.release_tag is not None:
        if args.release_tag != f"v{want}":
            sys.exit(f"tag {args.release_tag} is not fashrec/version.py's version v{want}")
        if not on_pypi:
            sys.exit("fashrec/version.py says ON_PYPI = False: the release commit sets it (docs/releasing.md), so that "
                     "the README and the cards tell people to pip install fashrec")
    wheel, _ = check_archives(args.dist, want)
    with tempfile.TemporaryDirectory(prefix="fashrec-dist-") as tmp:
        venv, work = Path(tmp) / "venv", Path(tmp) / "work"
        work.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.setdefault("PIP_RETRIES", "1")
        for step in (TORCH, [str(wheel.resolve())]):
            done = subprocess.run(pip + step, env=env, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                sys.exit(f"pip install {' '.join(step)} failed in a fresh venv:\n{done.stderr[-3000:]}")
        where = run_in(venv, "import fashrec; print(fashrec.__file__, fashrec.__version__)", work, [])
        if not where.startswith(str(venv)) or not where.strip().endswith(want):
            sys.exit(f"the fresh venv imports {where.strip()}, not the installed wheel {want}")
        readme = readme_snippet()
        run_in(venv, readme + "\nassert len(ids[0]) == 2 and 'a' not in ids[0]", work, ["a.jpg", "b.jpg", "c.jpg"])
        print("README's Python snippet: ran verbatim against the installed wheel")
        card_file = Path(where.split()[0]).parent / "checkpoints" / "multitask-cnn" / "README.md"
        card = python_blocks(card_file.read_text(encoding="utf-8"))[0]
        out = run_in(venv, card + "\nprint(index.search(vectors[:1], k=3, metric='cosine')[0][0][0])", work,
                     ["dress.jpg", "shirt.jpg", "skirt.jpg"])
        if out.strip() != "dress.jpg":
            sys.exit(f"the card's snippet ran but dress.jpg is not its own nearest neighbour: {out!r}")
        print("the default checkpoint's card snippet: ran verbatim against the installed wheel")
    print(f"dist OK: {wheel.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
