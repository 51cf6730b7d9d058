"""Ready for a first release: one version, a changelog entry for it, a release workflow that publishes a
tag with PyPI trusted publishing, and no instruction anywhere to 'pip install fashrec' while that finds
nothing (fashrec.version.ON_PYPI). ``make dist`` itself (build, twine check, a fresh-venv install running
the README's and a card's snippets) is run by hand and by the workflow: minutes, and the package index."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import fashrec
from fashrec.version import ON_PYPI, REPOSITORY, __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
INSTRUCTIONS = [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *(REPO_ROOT / "docs").glob("*.md"),
                *(REPO_ROOT / "hub_card").glob("*.md"), *(REPO_ROOT / "fashrec" / "checkpoints").glob("*/README.md")]


def test_one_version_and_one_repository():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["dynamic"] == ["version"] and "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fashrec.version.__version__"}
    assert fashrec.__version__ == __version__
    assert pyproject["project"]["urls"]["Repository"] == REPOSITORY
    assert fashrec.HubModel._hub_mixin_info.repo_url == REPOSITORY


def test_the_changelog_has_this_version():
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    entry = re.search(rf"^## \[{re.escape(__version__)}\] - (.+)$", changelog, flags=re.M)
    assert entry, f"CHANGELOG.md has no section for {__version__}"
    assert bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry[1])) == ON_PYPI, (
        "a released version has a date; an unreleased one says so")


def _commands(path: Path) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]


def test_nothing_tells_a_stranger_to_pip_install_fashrec_before_it_is_on_pypi():
    """``pip install 'fashrec[extra]'`` is fine (pip takes the installed fashrec and adds the extra); a bare
    ``pip install fashrec`` first install is not, until this version is on PyPI."""
    bare = re.compile(r"\bpip install (?:-U |--upgrade )?['\"]?fashrec(?:==[\w.]+)?['\"]?(?:\s|$)(?!\s*@)")
    found = [f"{p.relative_to(REPO_ROOT)}: {c}" for p in INSTRUCTIONS for c in _commands(p) if bare.search(c + " ")]
    if ON_PYPI:
        assert any("README.md" in f for f in found), "the README should say pip install fashrec once it works"
    else:
        assert not found, found


def test_the_readme_installs_from_the_repository_or_a_built_wheel_until_then():
    section = README[README.index("## Install\n"):README.index("\n## ", README.index("## Install\n") + 1)]
    commands = _commands(REPO_ROOT / "README.md")
    if ON_PYPI:
        assert "pip install fashrec" in section
        return
    assert "not on PyPI yet" in section
    assert f'pip install "fashrec @ git+{REPOSITORY}"' in commands
    assert f"make dist && pip install dist/fashrec-{__version__}-py3-none-any.whl" in commands


def test_the_release_workflow_publishes_a_checked_tag_with_trusted_publishing():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as True
    assert workflow["permissions"] == {}  # nothing by default; each job asks for what it needs
    dist, publish = workflow["jobs"]["dist"], workflow["jobs"]["publish"]
    runs = [step.get("run", "") for step in dist["steps"]]
    assert any(r.startswith("make dist") and "RELEASE_TAG=" in r for r in runs), runs
    assert publish["needs"] == "dist" and publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [step.get("uses", "") for step in publish["steps"]]
    assert "pypa/gh-action-pypi-publish@release/v1" in uses
    publish_step = next(s for s in publish["steps"] if s.get("uses", "").startswith("pypa/gh-action-pypi-publish"))
    assert "with" not in publish_step or not {"password", "user"} & set(publish_step["with"])  # no API token
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^dist:", makefile, flags=re.M) and "--release-tag $(RELEASE_TAG)" in makefile


def test_check_dist_refuses_a_tag_that_is_not_the_version(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "check_dist.py"), str(tmp_path),
                           "--release-tag", "v9.9.9"], capture_output=True, text=True)
    assert done.returncode == 1 and f"is not fashrec/version.py's version v{__version__}" in done.stderr
