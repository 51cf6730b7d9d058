"""MultiTaskCNN: focus shapes and block structure, the colour histogram, save/load and config round trips,
loss values, and a short training run that lowers the loss."""
import json

import pytest
import torch
import torch.nn.functional as F

import fashrec
from fashrec.models.multitask_cnn import MultiTaskCNN
from fashrec.training.augment import augment_batch
from fashrec.training.multitask_training import train_multitask

CLASSES = {
    "product_type_name": ["Dress", "Trousers", "T-shirt"],
    "colour_group_name": ["Black", "Red", "White", "Blue"],
    "graphical_appearance_name": ["Solid", "Stripe"],
    "product_group_name": ["Garment Upper body", "Garment Lower body"],
}


def tiny(**kw):
    kw.setdefault("widths", (4, 8, 8, 8))
    kw.setdefault("head_dim", 8)
    return MultiTaskCNN(classes=CLASSES, **kw)


def batch(n=6, seed=0):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("representation,dims", [("embedding", (8, 8 + 8, 8)), ("probabilities", (3, 4 + 8, 2))])
def test_focuses_share_one_space_of_orthogonal_blocks(representation, dims):
    m = tiny(colour_histogram_bins=2, representation=representation).eval()
    assert m.focuses == ("overall", "shape", "colour", "pattern")
    assert m.embedding_dim == sum(dims)
    assert [s.stop - s.start for s in m.focus_slices().values()] == list(dims)
    slices = m.focus_slices()
    x = batch()
    overall = m.embed(x, focus="overall")
    for focus, sl in slices.items():
        e = m.embed(x, focus=focus)
        assert e.shape == (6, m.embedding_dim)
        outside = torch.ones(m.embedding_dim, dtype=torch.bool)
        outside[sl] = False
        assert torch.all(e[:, outside] == 0), f"{focus} leaks outside its block"
        assert torch.allclose(e[:, sl].norm(dim=1), torch.ones(6), atol=1e-5)
        assert torch.allclose(overall[:, sl], e[:, sl], atol=1e-6)  # overall = all blocks, weight 1
    # a weighted mix of per-focus cosine similarities equals the cosine of the weighted block sum / norms
    q, c = overall[:2], overall[2:]
    per_focus = sum((q[:, sl] @ c[:, sl].T) for sl in slices.values())
    assert torch.allclose(q @ c.T, per_focus, atol=1e-5)


def test_overall_weights_scale_blocks_and_unknown_focus_is_refused():
    m = tiny(overall_weights={"shape": 2.0, "colour": 1.0, "pattern": 0.0}).eval()
    x = batch()
    e = m.embed(x)
    sl = m.focus_slices()
    assert torch.allclose(e[:, sl["shape"]].norm(dim=1), torch.full((6,), 2.0), atol=1e-5)
    assert torch.all(e[:, sl["pattern"]] == 0)
    with pytest.raises(ValueError, match="unknown focus"):
        m.embed(x, focus="texture")
    with pytest.raises(ValueError, match="not in classes"):
        MultiTaskCNN(classes=CLASSES, focus_columns={"shape": "department_name"})
    with pytest.raises(ValueError, match="unknown focuses"):
        tiny(overall_weights={"texture": 1.0})


@pytest.mark.parametrize("representation", ["embedding", "probabilities"])
def test_flip_tta_makes_embeddings_mirror_invariant(representation):
    m = tiny(flip_tta=True, representation=representation).eval()
    x = batch()
    for focus in m.focuses:
        assert torch.allclose(m.embed(x, focus=focus), m.embed(torch.flip(x, dims=[3]), focus=focus), atol=1e-5)


def test_colour_histogram_ignores_padding_and_background():
    m = tiny(colour_histogram_bins=4, preprocess={"pad_value": 1.0}).eval()
    x = torch.ones(2, 3, 64, 64)  # white padding + light background
    x[:, :, :, 10:53] = 0.9  # the photo's background
    x[0, :, 20:40, 20:40] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a red garment
    x[1, :, 25:30, 25:30] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a much smaller red garment
    h = m.colour_histogram(x)
    assert h.shape == (2, 64)
    assert torch.allclose(h.norm(dim=1), torch.ones(2), atol=1e-5)
    red_bin = 3 * 16 + 0 * 4 + 0  # r in the top bin, g and b in the bottom one
    assert h[0].argmax() == red_bin and h[1].argmax() == red_bin  # the garment, not the background, dominates
    assert F.cosine_similarity(h[0], h[1], dim=0) > 0.95  # size matters little: colour is what is compared


def test_save_load_round_trip_keeps_config_and_embeddings(tmp_path):
    m = tiny(colour_histogram_bins=2, overall_weights={"shape": 1.0, "colour": 0.5, "pattern": 0.25},
             preprocess={"pad_value": 1.0}).eval()
    m.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_class"] == "MultiTaskCNN"
    assert cfg["classes"] == CLASSES
    assert cfg["embedding_dim"] == m.embedding_dim
    loaded = fashrec.from_pretrained(tmp_path)
    assert type(loaded) is MultiTaskCNN
    assert loaded.config_dict() == m.config_dict()
    assert loaded.preprocess_config.pad_value == 1.0
    x = batch()
    for focus in m.focuses:
        assert torch.allclose(loaded.embed(x, focus=focus), m.embed(x, focus=focus), atol=1e-6)
    assert loaded.predict(x, "colour_group_name") == m.predict(x, "colour_group_name")
    assert set(loaded.predict(x, "product_type_name")) <= set(CLASSES["product_type_name"])


def test_loss_is_sum_of_cross_entropies_and_ignores_missing_labels():
    m = tiny().train()
    torch.manual_seed(0)
    x = batch(4)
    labels = {c: torch.tensor([0, 1, -1, 0]) for c in CLASSES}
    m.eval()  # deterministic (dropout off, BN running stats) for the reference
    out = m.loss(x, labels=labels, label_smoothing=0.0)
    logits = m(x)
    ref = sum(F.cross_entropy(logits[c][[0, 1, 3]], labels[c][[0, 1, 3]]) for c in CLASSES)
    assert torch.allclose(out["loss"], ref, atol=1e-5)
    assert set(out) >= {f"ce/{c}" for c in CLASSES} | {f"acc/{c}" for c in CLASSES}


def test_augment_batch_shifts_and_flips_exactly():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    same = augment_batch(x, pad_value=0.0, max_shift=0, flip=False)
    assert torch.equal(same, x)
    g = torch.Generator().manual_seed(1)
    y = augment_batch(x, pad_value=-1.0, max_shift=2, flip=True, generator=g)
    assert y.shape == x.shape
    for i in range(2):  # every output is x[i] or its mirror, shifted by at most 2 px, filled with -1
        found = False
        for img in (x[i], torch.flip(x[i], dims=[2])):
            padded = F.pad(img, (2, 2, 2, 2), value=-1.0)
            for dy in range(5):
                for dx in range(5):
                    found |= torch.equal(padded[:, dy:dy + 8, dx:dx + 8], y[i])
        assert found


def test_training_lowers_the_loss_and_learns_a_separable_task():
    g = torch.Generator().manual_seed(0)
    n = 48
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 64, 64, generator=g) * 0.2
    x[y == 1, 0] += 0.7  # class 1 is red: learnable by every head from colour alone
    labels = {c: y.clone() for c in CLASSES}
    torch.manual_seed(0)  # the init: 24 steps leave BatchNorm's running statistics sensitive to it
    m = tiny(dropout=0.0)
    history = train_multitask(m, x, labels, epochs=8, batch_size=16, lr=1e-2, seed=0, device="cpu", progress=False,
                              colour_jitter_p=0.0)["history"]
    assert len(history["train_loss"]) == 8
    assert history["train_loss"][-1] < 0.7 * history["train_loss"][0]
    assert m.training is False
    pred = m.predict(x, "colour_group_name")
    assert sum(p == CLASSES["colour_group_name"][int(t)] for p, t in zip(pred, y)) >= 0.9 * n


def test_training_refuses_missing_or_misaligned_labels():
    m = tiny()
    x = batch(4)
    with pytest.raises(ValueError, match="missing for columns"):
        train_multitask(m, x, {"product_type_name": torch.zeros(4, dtype=torch.long)}, epochs=1, device="cpu",
                        progress=False)
    labels = {c: torch.zeros(3, dtype=torch.long) for c in CLASSES}
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        train_multitask(m, x, labels, epochs=1, device="cpu", progress=False)


def test_no_reconstruction():
    m = tiny().eval()
    with pytest.raises(NotImplementedError):
        m.reconstruct(batch(2))


def test_probability_blocks_are_sqrt_of_mean_class_posteriors():
    m = tiny(representation="probabilities").eval()
    x = batch(3)
    with torch.no_grad():
        p = (m(x)["product_type_name"].softmax(1) + m(torch.flip(x, dims=[3]))["product_type_name"].softmax(1)) / 2
    ref = F.normalize(p.sqrt(), dim=1)
    assert torch.allclose(m.embed(x, focus="shape")[:, m.focus_slices()["shape"]], ref, atol=1e-6)


def test_memo_returns_fresh_results_after_weights_or_input_change():
    m = tiny(representation="probabilities").eval()
    x = batch(4)
    first = m.embed(x, focus="colour")
    assert torch.equal(m.embed(x, focus="colour"), first)  # remembered
    key = next(iter(m._memo))
    m.eval()  # evaluate() calls eval() before each focus: the memo must survive it
    assert key in m._memo
    assert torch.equal(m.embed(x, focus="shape"), m.embed(x, focus="shape"))
    x[0] = 1 - x[0]  # in place: a new version of the same storage
    changed = m.embed(x, focus="colour")
    assert not torch.allclose(changed[0], first[0])
    assert torch.allclose(changed[1:], first[1:], atol=1e-6)
    with torch.no_grad():
        m.heads["colour_group_name"].weight.mul_(-1)  # in-place weight edit, still in eval mode
    assert not torch.allclose(m.embed(x, focus="colour"), changed)


# Issue 20's goals (test split, 1,000 queries over the 5,000, cosine, k = 10), one source:
# fashrec.training.multitask_choices.GOALS. The shipped seed meets all but one; for that one (the colour
# focus's colour P@10, 0.673 against 0.72: see docs/embeddings.md) a floor at its measured level. A change
# that loses ground on any of them fails here.
UNMET_FLOORS = {("colour", "colour_group_name"): 0.67}


def _score(row):
    return row["design_hit_at_k"] if row["label"] == "design" else row["precision_at_k"]


def test_shipped_default_checkpoint_is_small_steerable_and_knows_designs():
    from fashrec import pretrained

    folder = pretrained.path("default")
    assert (folder / "model.safetensors").stat().st_size < 5_500_000
    m = fashrec.from_pretrained(folder)
    assert type(m) is MultiTaskCNN and m.embedding_dim <= 400
    # "Similar products" (overall) and "Other colours of this design" (design): two questions, two focuses
    assert m.focuses == ("overall", "design", "shape", "colour", "pattern") and m.design_focus == "design"
    assert m.preprocess_config.pad_value == 1.0
    e = m.embed(batch(2), focus="overall", normalize=True)
    assert e.shape == (2, m.embedding_dim) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)


def test_shipped_default_scores_are_re_measured_and_meet_the_goals(hm_dir):
    """The recorded eval.json cannot drift from the code: the model rows are measured again here."""
    from fashrec import pretrained
    from fashrec.training.multitask_choices import GOALS

    folder = pretrained.path("default")
    recorded = json.loads((folder / "eval.json").read_text())
    assert recorded["split"] == "test" and recorded["k"] == 10 and recorded["n_queries"] == 1000
    measured = fashrec.evaluate(hm_dir, model=folder, split="test", k=10, metrics=["cosine"], embeddings=["model"],
                                progress=False)
    rows = {(r.get("focus"), r["label"]): r for r in measured["retrieval"]}
    for r in recorded["retrieval"]:
        if r["embedding"] == "model" and r["metric"] == "cosine" and not r.get("subset"):
            mine = rows[(r.get("focus"), r["label"])]
            assert _score(mine) == pytest.approx(_score(r), abs=2e-3), (r.get("focus"), r["label"])
    recorded = {(r.get("focus"), r["label"]): _score(r) for r in recorded["retrieval"]
                if r["embedding"] == "model" and r["metric"] == "cosine" and not r.get("subset")}
    for key, goal in GOALS.items():  # judged on the recorded figure, which the loop above re-measured
        assert recorded[key] >= UNMET_FLOORS.get(key, goal), (key, recorded[key], goal)
    assert all(recorded[key] < GOALS[key] for key in UNMET_FLOORS), "a goal is met now: move it out of the floors"


def test_shipped_default_card_shows_the_figures_of_its_eval_json():
    import yaml

    from fashrec import pretrained

    folder = pretrained.path("default")
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    values = [m["value"] for result in meta["model-index"][0]["results"] for m in result["metrics"]]
    recorded = json.loads((folder / "eval.json").read_text())
    figures = {round(r[key], 6) for r in recorded["retrieval"] for key in ("precision_at_k", "map_at_k", "design_hit_at_k")
               if key in r}
    assert values and all(round(v, 6) in figures for v in values)
    design = next(r for r in recorded["retrieval"] if r["embedding"] == "model" and r.get("focus") == "design"
                        and r["label"] == "design" and r["metric"] == "cosine" and not r.get("subset"))
    assert f"{design['design_hit_at_k']:.4g}" in card  # the card's own 4 significant digits
