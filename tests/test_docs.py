"""Docs that cannot drift: every module path they name imports, every repo file they name exists, and the
figures they quote for the shipped checkpoints are the ones in those checkpoints' own files.

The figures are read from ``fashrec/checkpoints/<name>/`` (``config.json``, ``metrics.json``,
``eval.json``) each run, never written here: retrain or re-score a checkpoint and the docs that quote it
fail until they say the new numbers. A line about an earlier model says so ("previous", "earlier",
"then-shipped", "before"), and is left alone.
"""
from __future__ import annotations

import importlib
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

import fashrec

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", REPO_ROOT / "space" / "README.md",
               *(REPO_ROOT / "docs").glob("*.md"), *(REPO_ROOT / "hub_card").glob("*.md"),
               *(REPO_ROOT / "fashrec" / "checkpoints").glob("*/README.md")])
# Source files whose docstrings quote figures too.
SOURCES_WITH_FIGURES = sorted((REPO_ROOT / "space").glob("*.py"))
# Source files whose docstrings and help texts name modules.
SOURCES = sorted(p for folder in ("fashrec", "hub_card", "training", "space", "benchmarks", "tools")
                 for p in (REPO_ROOT / folder).rglob("*.py"))
HISTORICAL = re.compile(r"\b(previous|earlier|then-shipped|before|old)\b", re.I)


def _rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


# ---------------------------------------------------------------------- names and paths


def _resolves(dotted: str) -> bool:
    """``fashrec.a.b.c``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS + SOURCES, ids=_rel)
def test_every_module_path_a_doc_names_imports(doc):
    text = doc.read_text(encoding="utf-8")
    names = set(re.findall(r"`(?:python -m )?((?:fashrec|hub_card)(?:\.[A-Za-z_]\w*)+)[`(\[]", text))
    wrong = [n for n in sorted(names) if not _resolves(n if n.startswith("fashrec") else f"fashrec.{n}")]
    assert not wrong, f"{_rel(doc)} names what does not import: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_repo_file_a_doc_names_exists(doc):
    text = doc.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:fashrec|hub_card|space|training|tools|benchmarks|tests|docs)/[\w./-]*\.(?:py|md|json))`",
                           text))
    wrong = [p for p in sorted(paths) if not (REPO_ROOT / p).exists() and not (REPO_ROOT / "fashrec" / p).exists()]
    assert not wrong, f"{_rel(doc)} names files that do not exist: {wrong}"


# ---------------------------------------------------------------------- figures of the shipped checkpoints


@lru_cache(maxsize=None)
def _checkpoint(name: str) -> dict:
    folder = fashrec.pretrained.path(name)
    read = lambda f: json.loads((folder / f).read_text()) if (folder / f).is_file() else {}  # noqa: E731
    return {"config": read("config.json"), "metrics": read("metrics.json"), "eval": read("eval.json")}


SHIPPED = fashrec.pretrained.names()
NAME = re.compile(r"`(" + "|".join(map(re.escape, SHIPPED)) + r")`")
DIM = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})*)-d\b")
# "10M x 253 (the default model's size)", "the default model's 4,900 x 253": sizes quoted without a name.
DEFAULT_SIZE = re.compile(r"x (\d[\d,]*)[ ,(]+the default model's size|(?<!previous )default model's [\d,]+ x (\d+)")


def _segments(line: str):
    """(shipped name, text) pieces of a line: each figure belongs to the name written before it. A name
    preceded by a word like 'previous' is about another model."""
    marks = list(NAME.finditer(line))
    for i, mark in enumerate(marks):
        start = mark.start()
        end = marks[i + 1].start() if i + 1 < len(marks) else len(line)
        lead = line[max(0, mark.start() - 30):mark.start()]
        if not HISTORICAL.search(lead):
            yield mark[1], line[start:end]


def _quoted_equal(quoted: str, value: float) -> bool:
    """``quoted`` (as written, e.g. "0.00045", "0.671") is ``value`` rounded to the digits it shows."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return round(value, decimals) == float(quoted)


def _lines(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each paragraph or list item, joined into one line (a figure may follow
    its name on the next line); each table row on its own."""
    out, start, lines = [], None, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines() + [""], start=1):
        if lines and re.match(r"\s*(?:[-*]|\d+\.) ", line):  # a new list item ends the previous one
            out.append((start, " ".join(lines)))
            start, lines = None, []
        if line.strip() and not line.startswith("|"):
            start = start or number
            lines.append(line.strip())
            continue
        if lines:
            out.append((start, " ".join(lines)))
            start, lines = None, []
        if line.startswith("|"):
            out.append((number, line))
    return out


@pytest.mark.parametrize("doc", DOCS + SOURCES_WITH_FIGURES, ids=_rel)
def test_dimensions_and_test_mse_quoted_for_a_shipped_checkpoint_are_its_own(doc):
    wrong = []
    for number, line in _lines(doc):
        for name, text in _segments(line):
            config, metrics = _checkpoint(name)["config"], _checkpoint(name)["metrics"]
            for dim in DIM.findall(text) + re.findall(r"\*\*(\d[\d,]*)\*\* for `" + re.escape(name), line):
                if int(dim.replace(",", "")) != config["embedding_dim"]:
                    wrong.append(f"{_rel(doc)}:{number}: {name} is {config['embedding_dim']}-d, not {dim}")
            for mse in re.findall(r"test MSE (0\.\d+)", text):
                if not _quoted_equal(mse, metrics["test_mse"]):
                    wrong.append(f"{_rel(doc)}:{number}: {name}'s test MSE is {metrics['test_mse']:.6f}, not {mse}")
        default = _checkpoint(fashrec.pretrained.DEFAULT)["config"]["embedding_dim"]
        for size in (a or b for a, b in DEFAULT_SIZE.findall(line)):
            if int(size.replace(",", "")) != default:
                wrong.append(f"{_rel(doc)}:{number}: the default model's size is {default}, not {size}")
    assert not wrong, "\n".join(wrong)


# README's scoreboard: which eval.json row each column quotes.
COLUMNS = {"same type": ("product_type_name", None), "same colour": ("colour_group_name", None),
           "same pattern": ("graphical_appearance_name", None), "same design": ("design", None),
           "unseen designs": ("design", "unseen")}
BASELINE_ROWS = {"raw pixels": "raw", "PCA": "pca", "random neighbour": "random"}


def _score(evaluation: dict, embedding: str, focus: str | None, label: str, subset: str | None) -> float | None:
    for row in evaluation["retrieval"]:
        if (row["embedding"], row.get("focus"), row["label"], row.get("subset"), row["metric"]) == \
                (embedding, focus, label, subset, "cosine"):
            return row["design_hit_at_k"] if label == "design" else row["precision_at_k"]
    return None


def _table(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[at].strip("|").split("|")]
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return header, rows


def test_the_readmes_scoreboard_is_the_shipped_checkpoints_eval_json():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    header, rows = _table(readme, "| embedding | dim |")
    columns = {i: next(v for k, v in COLUMNS.items() if k in h) for i, h in enumerate(header) if i >= 2}
    default = fashrec.pretrained.DEFAULT
    checked = 0
    for row in rows:
        who = row[0].replace("**", "")
        if HISTORICAL.search(who):
            continue
        shipped = NAME.match(who)
        if shipped:
            name = shipped[1]
            focus = re.search(r"focus (\w+)", who)
            focus = focus[1] if focus else ("overall" if "overall" in who else None)
            if name != default:
                focus = None  # a baseline checkpoint's own eval.json, scored without focuses
            source, embedding = _checkpoint(name), "model"
        elif any(who.startswith(b) for b in BASELINE_ROWS):
            source = _checkpoint(default)
            embedding = next(v for k, v in BASELINE_ROWS.items() if who.startswith(k))
            focus = None
        else:
            pytest.fail(f"README scoreboard row {who!r}: no source file for it (a shipped name, a baseline, or "
                        "say it is about an earlier model)")
        dim = {"raw": 3 * 64 * 64, "random": None}.get(embedding, source["eval"].get("embedding_dim"))
        if dim is not None:
            assert int(row[1].replace(",", "")) == dim, (who, row[1], dim)
        for i, (label, subset) in columns.items():
            cell = row[i].replace("**", "")
            if cell in ("–", "-", ""):
                continue
            value = _score(source["eval"], embedding, focus, label, subset)
            assert value is not None and _quoted_equal(cell, value), (who, header[i], cell, value)
            checked += 1
    assert checked >= 10, "the README's scoreboard no longer quotes the shipped checkpoints"


def test_the_readmes_goal_sentence_quotes_the_focus_scores():
    """'the colour focus at 0.63': the focus's own label (config.json's focus_columns), from eval.json."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    default = fashrec.pretrained.DEFAULT
    source = _checkpoint(default)
    quotes = re.findall(r"the (\w+) focus at (0\.\d+)", readme)
    assert quotes, "the README no longer quotes a focus against the goals"
    for focus, quoted in quotes:
        label = source["config"]["focus_columns"][focus]
        assert _quoted_equal(quoted, _score(source["eval"], "model", focus, label, None)), (focus, quoted)


def test_the_embeddings_page_quotes_the_shipped_seed():
    """docs/embeddings.md's goal table: the 'shipped' column is the default checkpoint's eval.json."""
    text = (REPO_ROOT / "docs" / "embeddings.md").read_text(encoding="utf-8")
    header, rows = _table(text, "| focus | figure | goal |")
    shipped = next(i for i, h in enumerate(header) if "shipped" in h)
    figures = {"design hit@10, designs never seen": ("design", "unseen"), "design hit@10": ("design", None),
               "product type P@10": ("product_type_name", None), "colour P@10": ("colour_group_name", None),
               "pattern P@10": ("graphical_appearance_name", None)}
    source = _checkpoint(fashrec.pretrained.DEFAULT)
    for row in rows:
        label, subset = next(v for k, v in figures.items() if row[1].startswith(k))
        value = _score(source["eval"], "model", row[0], label, subset)
        assert value is not None and _quoted_equal(row[shipped].replace("**", ""), value), row


def test_the_evaluation_page_quotes_paper_aes_eval_json():
    """docs/evaluation.md's scoreboard of the shipped paper-ae: every P@10 / mAP@10 cell, every metric."""
    text = (REPO_ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    header, rows = _table(text, "| label | embedding | cityblock P@10 |")
    evaluation = _checkpoint("paper-ae")["eval"]
    checked = 0
    for row in rows:
        for column, cell in zip(header[2:], row[2:]):
            metric, kind = column.split()
            key = "precision_at_k" if kind == "P@10" else "map_at_k"
            value = next(r[key] for r in evaluation["retrieval"] if (r["label"], r["embedding"], r["metric"])
                         == (row[0], row[1], metric) and not r.get("subset"))
            assert _quoted_equal(cell, value), (row[0], row[1], column, cell, value)
            checked += 1
    assert checked == len(rows) * 6 > 0
    _, rows = _table(text, "| reconstruction MSE")
    quoted = dict((r[0], r[1]) for r in rows)
    reconstruction = evaluation["reconstruction"]
    for row, key in (("model", "model_mse"), ("PCA (same size as the embedding)", "pca_mse"), ("mean image", "mean_image_mse")):
        assert _quoted_equal(quoted[row], reconstruction[key]), (row, quoted[row], reconstruction[key])
