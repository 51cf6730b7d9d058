"""The README as a reader uses it: its Python snippet runs as written, and every id, path and flag of its
command lines exists (the flags are parsed by the real parsers; the ids are in the data the line names)."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
DOCS_WITH_COMMANDS = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "evaluation.md"]


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _command_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a trailing backslash continues the line
            line = line.split("  #")[0].strip()
            if line.startswith(("fashrec ", "python ")):
                lines.append(line)
    return lines


def test_the_python_snippet_runs_as_written(tmp_path):
    (snippet,) = re.findall(r"```python\n(.*?)```", _section(README, "Python usage"), flags=re.S)
    photos = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))[:3]
    for photo, name in zip(photos, ("a.jpg", "b.jpg", "c.jpg")):
        shutil.copy(photo, tmp_path / name)
    check = "\nassert len(ids[0]) == 2 and 'a' not in ids[0]\nprint(type(model).__name__)"
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "MultiTaskCNN"


def test_the_commands_say_where_they_run_and_where_the_data_comes_from():
    assert ".venv/bin/" in README and "source .venv/bin/activate" in README
    assert "H&M Personalized Fashion Recommendations" in README and "kaggle.com/competitions" in README
    assert "make demo" in README and "make test" in README
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_every_flag_path_and_id_of_the_command_lines_exists(doc, hm_dir):
    import pandas as pd

    from fashrec.cli import build_parser

    produced: set[str] = set()
    ids_of = {"sample": set(pd.read_csv(fashrec.SAMPLE_DIR / "metadata.csv", dtype=str)["article_id"])}
    ids_of[str(hm_dir)] = set(pd.read_csv(hm_dir / "metadata.csv", dtype=str)["article_id"])
    index_data: dict[str, str] = {}
    lines = _command_lines(doc.read_text(encoding="utf-8"))
    assert lines
    for line in lines:
        words = shlex.split(line)
        if words[0] == "python":
            if words[1] == "-m":  # python -m training.train: the flags of fashrec train
                args = vars(build_parser().parse_args(["train", *words[3:]]))
            else:
                assert (REPO_ROOT / words[1]).is_file(), line
                continue
        else:
            args = vars(build_parser().parse_args(words[1:]))  # an unknown flag exits: the test fails
        for key in ("data", "src"):
            if args.get(key) and args[key] != "sample":
                assert (REPO_ROOT / args[key]).exists(), f"{line}: {args[key]} does not exist"
        for key in ("image",):
            if args.get(key):
                assert (REPO_ROOT / args[key]).is_file(), f"{line}: {args[key]} does not exist"
        for extra in args.get("data_extra") or []:
            assert (REPO_ROOT / extra).exists(), f"{line}: {extra} does not exist"
        # fashrec train's --model is a kind (ae, vae, multitask), which argparse's choices already check
        if args.get("model") and words[0] == "fashrec" and args.get("command") != "train":
            assert args["model"] in ("default", *fashrec.pretrained.names()) or (REPO_ROOT / args["model"]).exists()
        if args.get("command") == "embed":
            produced.add(args["out"])
            index_data[args["out"]] = "sample" if args["data"] == "sample" else str((REPO_ROOT / args["data"]).resolve())
        if args.get("index"):
            assert args["index"] in produced or (REPO_ROOT / args["index"]).is_dir(), f"{line}: no index {args['index']}"
        if args.get("item"):
            data = index_data.get(args["index"], "sample")
            assert args["item"] in ids_of.get(data, ids_of["sample"]), f"{line}: {args['item']} is not in {data}"
            assert args["item"] in ids_of["sample"], f"{line}: {args['item']} is not in the sample either"


def test_recommend_help_examples_use_ids_that_exist(hm_dir):
    import pandas as pd

    from fashrec.commands import recommend

    ids = set(pd.read_csv(hm_dir / "metadata.csv", dtype=str)["article_id"])
    for item in re.findall(r"--item (\d{10})", recommend.DESCRIPTION):
        assert item in ids
    for image in re.findall(r"^ *fashrec recommend .*--image (\S+)", recommend.DESCRIPTION, flags=re.M):
        assert (REPO_ROOT / image).is_file(), image
