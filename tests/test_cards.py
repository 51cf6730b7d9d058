"""Model and dataset cards: valid Hub metadata, the load snippet, and the numbers they were given."""
from __future__ import annotations

import pytest
from huggingface_hub import DatasetCard, ModelCard

import fashrec
from fashrec.data import terms
from fashrec.hub_card import for_repo, model as model_cards, render_dataset_card, render_model_card, template

CONFIG = {
    "channels": [16, 8], "latent_dim": None, "model_class": "ConvAE", "fashrec_version": "0.1.0",
    "embedding_dim": 2048,
    "preprocess": {"image_size": 64, "resize_height": 64, "resize_width": 43, "pad_value": 1.0},
}


def _full_card() -> str:
    return render_model_card(
        model_class="ConvAE", config=CONFIG, repo_id="fashrec/conv-ae-hm",
        metrics={"test_mse": 0.004213, "train_mse": 0.0039},
        retrieval=[{"label": "product_type_name", "precision@10": 0.612, "map@10": 0.501},
                   {"label": "colour_group_name", "precision@10": 0.377}],
        hyperparameters={"epochs": 20, "batch_size": 128, "learning_rate": 0.001},
        dataset="org/hm-photos", dataset_terms="Research use only (H&M Kaggle competition rules).",
        images={"loss curve": "loss_curve.png", "reconstructions": "reconstructions.png"},
        extra_sections="## Citation\n\nYang, 2018.",
    )


def test_model_card_metadata_parses_with_the_hub_client():
    card = ModelCard(_full_card())
    data = card.data
    assert data.library_name == "fashrec"
    assert data.pipeline_tag == "image-feature-extraction"
    # weights trained under the data's terms are not MIT: the Hub shows the terms' name and link
    assert (data.license, data.license_name, data.license_link) == ("other", terms.WEIGHTS_LICENSE_NAME, terms.RULES)
    assert data.datasets == ["org/hm-photos"]
    assert set(model_cards.MODEL_TAGS) <= set(data.tags)
    assert data.model_name == "conv-ae-hm"
    results = {(r.metric_type, r.metric_name, r.dataset_split): r.metric_value for r in data.eval_results}
    assert results[("mse", "reconstruction MSE (test)", "test")] == pytest.approx(0.004213)
    assert results[("mse", "train mse", "train")] == pytest.approx(0.0039)
    named = "precision@10 of same product_type_name (cosine, query excluded)"
    assert results[("precision@10", named, "test")] == pytest.approx(0.612)
    assert results[("map@10", "map@10 of same product_type_name (cosine, query excluded)", "test")] == pytest.approx(0.501)
    assert results[("precision@10", "precision@10 of same colour_group_name (cosine, query excluded)", "test")] == \
        pytest.approx(0.377)
    assert len(data.eval_results) == 5
    # the model-index survives a dump and re-parse (what the Hub reads)
    assert ModelCard(str(card)).data.eval_results == data.eval_results


def test_model_card_body_has_the_snippet_the_config_and_the_numbers():
    text = _full_card()
    body = ModelCard(text).text
    assert 'model = fashrec.from_pretrained("fashrec/conv-ae-hm")' in body
    assert "fashrec.preprocess_batch(" in body and "model.embed(x" in body and "fashrec.SimilarityIndex(" in body
    assert "(3, 2048)" in body
    for expected in ("| `channels` | `[16, 8]` |", "3 -> 16 -> 8", "64 x 43", "padded with white",
                     "| epochs | `20` |", "| learning_rate | `0.001` |", "0.004213", "| product_type_name | 0.612 | 0.501 |",
                     "Research use only", "![loss curve](loss_curve.png)", "![reconstructions](reconstructions.png)",
                     "## Intended use and limitations", "## Licence", terms.WEIGHTS_TERMS, "## Citation"):
        assert expected in body, expected
    assert "${" not in text  # every placeholder filled


def test_snippet_names_exist_in_fashrec():
    for name in ("from_pretrained", "preprocess_batch", "SimilarityIndex"):
        assert name in fashrec.__all__


def test_minimal_model_card_has_no_model_index_and_still_parses():
    text = render_model_card(model_class="ConvAE", config=CONFIG)
    card = ModelCard(text)
    assert card.data.eval_results is None and card.data.model_name is None
    assert card.data.license is None and "No licence was recorded for these weights" in card.text  # no claim
    assert "model-index" not in text
    assert "No scores were recorded" in card.text
    assert "Hyperparameters were not recorded" in card.text
    assert "loss_curve.png" not in text


def test_saved_model_carries_the_mixins_card_and_claims_no_licence(tmp_path):
    """A model in memory knows neither its data nor its scores: save_pretrained writes huggingface_hub's own
    card (library, tags, links), and no licence, since the weights' terms are their data's."""
    fashrec.ConvAE().save_pretrained(tmp_path)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "fashrec" and card.data.license is None
    assert "https://github.com/fashrec/fashrec" in card.text


def test_models_import_no_card_code():
    import subprocess
    import sys

    code = ("import sys, fashrec, torch, tempfile\n"
            "fashrec.ConvAE().save_pretrained(tempfile.mkdtemp())\n"
            "fashrec.from_pretrained('default')\n"
            "print(sorted(m for m in sys.modules if 'hub_card' in m or m.startswith('fashrec.hub')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_dataset_card_front_matter_and_fields(tmp_path, monkeypatch):
    (tmp_path / "dataset_card.md").write_text("---\n${front_matter}\n---\n# ${pretty_name}\n\n${num_rows} photos.\n\n${splits}\n")
    monkeypatch.setattr(template, "TEMPLATE_DIR", tmp_path)
    text = render_dataset_card(
        pretty_name="H&M fashion 5k", license="other", task_categories=["image-feature-extraction"],
        size_categories=["1K<n<10K"], tags=["hm"], num_rows="5,000", splits=["train 4,500", "test 500"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    card = DatasetCard(text)
    assert card.data.pretty_name == "H&M fashion 5k"
    assert card.data.license == "other"
    assert card.data.tags[:2] == ["fashrec", "fashion"] and "hm" in card.data.tags
    assert card.data.task_categories == ["image-feature-extraction"]
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*"
    assert "5,000 photos." in card.text and "- train 4,500\n- test 500" in card.text


def test_one_template_per_card_type_and_no_fallback(tmp_path, monkeypatch):
    """Each card type has one template beside the code; a missing template is an error, not a stale copy."""
    assert sorted(p.name for p in template.TEMPLATE_DIR.glob("*.md")) == ["dataset_card.md", "model_card.md",
                                                                         "space_card.md"]
    monkeypatch.setattr(template, "TEMPLATE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError):
        render_dataset_card(pretty_name="tiny", license="mit")


def test_dataset_card_needs_a_name():
    with pytest.raises(ValueError, match="pretty_name"):
        render_dataset_card(license="other")


def test_template_placeholder_without_value_is_named(tmp_path, monkeypatch):
    (tmp_path / "dataset_card.md").write_text("---\n${front_matter}\n---\n# ${pretty_name}\n${row_count_we_forgot}\n")
    monkeypatch.setattr(template, "TEMPLATE_DIR", tmp_path)
    with pytest.raises(ValueError, match="row_count_we_forgot"):
        render_dataset_card(pretty_name="x")


# ---------------------------------------------------------------------- the shipped cards, as users read them

SHIPPED = ["multitask-cnn", "paper-ae"]
# What no public card may show: a path of the machine that wrote it, a placeholder, a file the repo lacks.
NOT_ON_A_CARD = ("../", "/work/", "/tmp/", "/home/", "shared/data", "path/or/repo-id", "SOURCE.md")
PHOTOS = ["dress.jpg", "shirt.jpg", "skirt.jpg"]  # the files the cards' snippet names


def _python_blocks(text: str) -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _run_snippet(code: str, cwd, photos: list[str]) -> str:
    """Run ``code`` as written in a fresh interpreter in ``cwd``, beside copies of ``photos``."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import fashrec

    sample = [p for p in sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))][: len(photos)]
    for src, name in zip(sample, photos):
        shutil.copy(src, Path(cwd) / name)
    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo), "HOME": str(cwd)}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the card's snippet failed:\n{code}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_snippet_runs_as_written(name, tmp_path):
    import json
    from pathlib import Path

    card = (fashrec.pretrained.path(name) / "README.md").read_text(encoding="utf-8")
    (snippet,) = _python_blocks(card)
    assert f'model = fashrec.from_pretrained("{name}")' in snippet
    model_class = json.loads((fashrec.pretrained.path(name) / "config.json").read_text())["model_class"]
    checks = (f"\nassert type(model).__name__ == {model_class!r}\nassert vectors.shape == (3, model.embedding_dim)\n"
              "print(index.search(vectors[:1], k=3, metric='cosine')[0][0][0])")
    out = _run_snippet(snippet + checks, tmp_path, PHOTOS)
    assert out.strip() == "dress.jpg"  # the photo is its own nearest neighbour
    assert not list(Path(tmp_path).glob("*.safetensors"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_are_generated_from_their_folders(name):
    """The committed card is exactly what the card writer makes of the folder's files today: after a
    retrain or a new eval.json, run python -m fashrec.hub_card."""
    from fashrec.hub_card.checkpoint import shipped_card

    card = fashrec.pretrained.path(name) / "README.md"
    assert card.read_text(encoding="utf-8") == shipped_card(name), "stale card: python -m fashrec.hub_card"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_metadata_names_data_metric_and_baselines(name):
    import json

    folder = fashrec.pretrained.path(name)
    card = ModelCard((folder / "README.md").read_text(encoding="utf-8"))
    model_class = json.loads((folder / "config.json").read_text())["model_class"]
    mixin_tags = fashrec.HubModel._hub_mixin_info.model_card_data.tags
    assert {"model_hub_mixin", "pytorch_model_hub_mixin", "image-feature-extraction"} <= set(card.data.tags)
    assert set(mixin_tags) <= set(card.data.tags)
    assert ("autoencoder" in card.data.tags) == (model_class in ("ConvAE", "ConvVAE"))
    # the H&M photos have no public copy: the card describes its data and names no Hub dataset (a 404)
    assert card.data.datasets is None
    assert {r.dataset_type for r in card.data.eval_results} == {"custom"}
    assert (card.data.license, card.data.license_name, card.data.license_link) == \
        ("other", terms.WEIGHTS_LICENSE_NAME, terms.RULES)
    assert terms.COMPETITION in card.text
    names = {r.metric_name for r in card.data.eval_results}
    assert "precision@10 of same product_type_name (cosine, query excluded)" in names
    body = card.text
    assert "query itself excluded" in body and "cosine distance" in body
    evaluation = json.loads((folder / "eval.json").read_text())
    baselines = {r["embedding"]: r["precision_at_k"] for r in evaluation["retrieval"]
                 if r["metric"] == "cosine" and r["label"] == "product_type_name" and r.get("focus") in (None, "overall")}
    for row, embedding in (("raw pixels", "raw"), ("PCA", "pca"), ("random neighbour", "random")):
        line = next(line for line in body.splitlines() if line.startswith(f"| {row} |"))
        assert template.number(baselines[embedding]) in line, line
    if name != "paper-ae":
        paper = json.loads((fashrec.pretrained.path("paper-ae") / "eval.json").read_text())
        p10 = next(r["precision_at_k"] for r in paper["retrieval"] if r["embedding"] == "model"
                   and r["metric"] == "cosine" and r["label"] == "product_type_name")
        assert f"| `paper-ae` | 2,048 | {template.number(p10)} |" in body
    for text in NOT_ON_A_CARD:
        assert text not in str(card), text


def test_a_card_without_repo_loads_its_own_folder_and_push_names_the_repo(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    folder = tmp_path / "saved"
    fashrec.ConvAE().save_pretrained(folder)
    from fashrec.hub_card import write_model_card

    text = write_model_card(folder)
    assert 'fashrec.from_pretrained(".")' in text
    out = _run_snippet(_python_blocks(text)[0] + "\nprint(vectors.shape[1])", folder, PHOTOS)
    assert out.strip() == "2048"
    published = for_repo(text, "org/conv-ae")
    assert 'fashrec.from_pretrained("org/conv-ae")' in published and '"."' not in published
    for bad in NOT_ON_A_CARD:
        assert bad not in text


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_installs_what_a_stranger_can_get(name):
    """Until fashrec is on PyPI, a card must not say 'pip install fashrec' (it would find nothing, or whatever
    someone registers under the name): it installs from the repository."""
    from fashrec.version import ON_PYPI, REPOSITORY

    text = (fashrec.pretrained.path(name) / "README.md").read_text(encoding="utf-8")
    (install,) = [b for b in __import__("re").findall(r"```bash\n(.*?)```", text, flags=__import__("re").S)]
    commands = [line for line in install.splitlines() if line and not line.startswith("#")]
    if ON_PYPI:
        assert commands == ["pip install fashrec"]
    else:
        assert commands == [f'pip install "fashrec @ git+{REPOSITORY}"']


def test_the_recipe_on_a_card_names_no_folder_of_the_training_machine():
    def trained_with(recipe: str) -> str:
        text = render_model_card(model_class="ConvAE", config=CONFIG, recipe=recipe)
        return next(line for line in text.splitlines() if line.startswith("Trained with:"))

    assert trained_with("fashrec train --data /work/shared/data/hm --data-extra hm-extra --out runs/x") == \
        "Trained with: `fashrec train --data HM_DATA --data-extra HM_EXTRA --out runs/x`"
    assert trained_with("fashrec train --data ../shared/data/hm --out x") == "Trained with: `fashrec train --data HM_DATA --out x`"
    assert trained_with("fashrec train --data sample --out x") == "Trained with: `fashrec train --data sample --out x`"
    assert trained_with("fashrec train --data org/hm-photos --out x") == \
        "Trained with: `fashrec train --data org/hm-photos --out x`"
