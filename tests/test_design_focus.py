""""Other colours of this design" as a focus name: the model, the index, `fashrec recommend` and `fashrec evaluate`.

Focus names are data (config.json), so a model with a ``design`` focus needs no code anywhere else;
these tests hold every consumer to that with a real checkpoint folder, a real index and the CLI.
"""
import json

import numpy as np
import pytest
import torch

import fashrec
from fashrec.cli import main
from fashrec.index import SimilarityIndex
from fashrec.jobs.catalogue_source import open_catalogue
from fashrec.models.multitask_cnn import MultiTaskCNN
from fashrec.training.multitask_run import FOCUS_COLUMNS

N = 48


@pytest.fixture(scope="module")
def design_model_dir(tmp_path_factory):
    ds = fashrec.load_hm("sample", split=False, progress=False)
    classes = {c: ds.features[c].names for c in set(FOCUS_COLUMNS.values())}
    torch.manual_seed(0)
    model = MultiTaskCNN(classes=classes, focus_columns=FOCUS_COLUMNS, widths=(8, 16), head_dim=8, stem_stride=2,
                         design_focus="design", design_head=True, representation={"design": "embedding+probabilities"},
                         overall_weights={"shape": 1.0, "colour": 0.7, "pattern": 0.5}, colour_histogram_bins=2,
                         preprocess={"pad_value": 1.0})
    folder = tmp_path_factory.mktemp("design-model")
    model.eval().save_pretrained(folder)
    return folder


def test_the_design_focus_is_its_own_embedding_and_overall_leaves_it_out(design_model_dir):
    model = fashrec.from_pretrained(design_model_dir)
    assert model.focuses == ("overall", "design", "shape", "colour", "pattern")
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    slices = model.focus_slices()
    design = model.embed(x, focus="design")
    with torch.no_grad():
        own = torch.nn.functional.normalize(model.design_embedding(model.features(x)), dim=1)
        mirrored = torch.nn.functional.normalize(model.design_embedding(model.features(torch.flip(x, dims=[3]))), dim=1)
    # the block's first head_dim values are the design head's (mirror-averaged) direction, at half the cosine
    expected = torch.nn.functional.normalize((own + mirrored) / 2, dim=1) / 2 ** 0.5
    assert torch.allclose(design[:, slices["design"]][:, :8], expected, atol=1e-5)
    assert torch.all(model.embed(x, focus="overall")[:, slices["design"]] == 0)  # overall: no design siblings


def test_recommend_and_evaluate_take_the_design_focus_from_the_model(design_model_dir, tmp_path, capsys):
    out = tmp_path / "index"
    assert main(["embed", "--model", str(design_model_dir), "--data", "sample", "--n", str(N), "--out", str(out),
                 "--batch-size", "16"]) == 0
    capsys.readouterr()
    index = SimilarityIndex.load(out)
    assert set(index.focuses) == {"overall", "design", "shape", "colour", "pattern"}
    model = fashrec.from_pretrained(design_model_dir)
    ds = open_catalogue("sample", n=N)
    x = fashrec.preprocess_batch(ds["image"], model.preprocess_config)
    with torch.no_grad():
        vectors = model.embed(x, focus="design").double().numpy()
    ids = list(ds["article_id"])
    item = ids[5]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit[5]
    sims[5] = -np.inf
    expected = [ids[i] for i in np.argsort(-sims, kind="stable")[:5]]
    assert main(["recommend", "--index", str(out), "--item", item, "--k", "5", "--focus", "design", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["focus"] == "design" and [n["id"] for n in got["neighbours"]] == expected
    assert main(["evaluate", "--data", "sample", "--model", str(design_model_dir), "--metrics", "cosine",
                 "--embeddings", "model", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {r["focus"] for r in result["retrieval"]} == {"overall", "design", "shape", "colour", "pattern"}


def test_evaluate_flip_tta_flags_override_the_models_setting(design_model_dir, capsys):
    import fashrec.eval.evaluation as evaluation

    runs = {}
    for flag in ("--flip-tta", "--no-flip-tta"):
        assert main(["evaluate", "--data", "sample", "--model", str(design_model_dir), "--metrics", "cosine",
                     "--embeddings", "model", "--labels", "colour_group_name", "--json", flag]) == 0
        runs[flag] = json.loads(capsys.readouterr().out)["retrieval"]
    model = fashrec.from_pretrained(design_model_dir, flip_tta=False)
    direct = evaluation.evaluate("sample", model=model, metrics=["cosine"], embeddings=["model"],
                                 labels=["colour_group_name"], progress=False)["retrieval"]
    assert runs["--no-flip-tta"] == direct
    assert runs["--flip-tta"] != runs["--no-flip-tta"]  # the mirror pass changes the vectors, hence the ranks
