"""Training: the output folder, reproducibility, resume after a real SIGKILL, atomic checkpoints, push.

Everything trains on 40 photos of the embedded sample (32 train / 8 test) for a few epochs, on one
thread (two threads on a shared, busy machine spend most of their time waiting for each other).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from fashrec.training.figures import LOSS_CURVE_SIZE, reconstructions_size
from fashrec.models.hub_model import from_pretrained, weights_hash
from fashrec.training.train_state import load_train_state, save_train_state
from fashrec.training.trainer import CHECKPOINT, N_RECONSTRUCTIONS, load_tensors, make_model, train, write_card

REPO_ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 40
OUTPUT_FILES = {"config.json", "model.safetensors", "README.md", "metrics.json", "training_args.json",
                "loss_curve.png", "reconstructions.png"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tensor-cache")


@pytest.fixture(scope="module")
def data(cache_dir):
    return load_tensors("sample", n=N_IMAGES, cache_dir=cache_dir, progress=False)


def _train(data, out=None, *, epochs=2, seed=0, kind="ae", resume=False, **kw):
    model = make_model(kind, seed=seed)
    metrics = train(model, *data, lr=0.01, batch_size=8, epochs=epochs, seed=seed, out_dir=out, resume=resume,
                    progress=False, threads=1, **kw)
    return model, metrics


def _mse(model, x):
    with torch.no_grad():
        return float(((model.reconstruct(x) - x) ** 2).mean())


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_run_writes_a_complete_loadable_folder(data, tmp_path, kind):
    from huggingface_hub import ModelCard
    from PIL import Image

    out = tmp_path / "run"
    model, metrics = _train(data, out, kind=kind, beta=0.1)
    assert OUTPUT_FILES <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("train_mse", "test_mse"):
        assert isinstance(saved[key], float) and math.isfinite(saved[key]) and 0 < saved[key] < 1
    assert len(saved["history"]["train_loss"]) == len(saved["history"]["test_mse"]) == 2

    # The folder loads as the same model, and the recorded MSEs are those of its weights on each split
    # (eval mode, whole split; for the VAE: decoding mu).
    loaded = from_pretrained(out)
    assert type(loaded) is type(model) and weights_hash(loaded) == weights_hash(model)
    assert saved["train_mse"] == pytest.approx(_mse(loaded, data[0]), rel=1e-5)
    assert saved["test_mse"] == pytest.approx(_mse(loaded, data[1]), rel=1e-5)

    assert Image.open(out / "loss_curve.png").size == LOSS_CURVE_SIZE
    assert Image.open(out / "reconstructions.png").size == reconstructions_size(min(N_RECONSTRUCTIONS, len(data[1])))

    card = ModelCard.load(out / "README.md")
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "mse")] == pytest.approx(saved["test_mse"])
    assert results[("train", "mse")] == pytest.approx(saved["train_mse"])
    assert "loss_curve.png" in card.text and "fashrec.from_pretrained" in card.text
    assert "non-commercial" not in card.text  # terms come from the CLI; the library call gave none
    args = json.loads((out / "training_args.json").read_text())
    assert (args["lr"], args["batch_size"], args["epochs"], args["optimizer"]) == (0.01, 8, 2, "Adam")


def test_same_seed_same_result_other_seed_differs(data):
    a, ma = _train(data, seed=3)
    b, mb = _train(data, seed=3)
    c, mc = _train(data, seed=4)
    assert weights_hash(a) == weights_hash(b)
    assert (ma["train_mse"], ma["test_mse"], ma["history"]) == (mb["train_mse"], mb["test_mse"], mb["history"])
    assert weights_hash(a) != weights_hash(c)
    # The NCHW layout computes the same thing up to float rounding.
    _, md = _train(data, seed=3, channels_last=False)
    assert md["test_mse"] == pytest.approx(ma["test_mse"], rel=1e-3)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_resume_equals_uninterrupted(data, tmp_path, kind):
    straight, m_straight = _train(data, tmp_path / "straight", epochs=4, kind=kind)
    _train(data, tmp_path / "split", epochs=2, kind=kind)
    resumed, m_resumed = _train(data, tmp_path / "split", epochs=4, kind=kind, resume=True)
    assert weights_hash(resumed) == weights_hash(straight)
    assert m_resumed["history"] == m_straight["history"]
    assert (m_resumed["train_mse"], m_resumed["test_mse"]) == (m_straight["train_mse"], m_straight["test_mse"])


def test_resume_refuses_a_different_run_and_an_existing_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    _train(data, out, epochs=1)
    with pytest.raises(ValueError, match="--resume"):
        _train(data, out, epochs=2)
    model = make_model("ae", seed=0)
    with pytest.raises(ValueError, match="lr"):
        train(model, *data, lr=0.1, batch_size=8, epochs=2, seed=0, out_dir=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="different images"):
        train(model, data[0].flip(0), data[1], lr=0.01, batch_size=8, epochs=2, seed=0, out_dir=out, resume=True,
              progress=False)


def test_ema_is_the_moving_average_of_the_iterates_and_becomes_the_model(data, monkeypatch):
    """``ema_decay`` writes avg = d * avg + (1 - d) * weights after every step (from the first step's
    weights) as the model; checked against the iterates recorded step by step, averaged in float64."""
    import fashrec.training.trainer as trainer

    decay, iterates = 0.7, []
    plain_adam = trainer._adam

    def recording_adam(model, lr):
        optimizer = plain_adam(model, lr)
        optimizer.register_step_post_hook(
            lambda opt, args, kwargs: iterates.append([p.detach().double().clone() for p in model.parameters()]))
        return optimizer

    monkeypatch.setattr(trainer, "_adam", recording_adam)
    model, metrics = _train(data, epochs=2, ema_decay=decay)
    assert len(iterates) == 2 * math.ceil(data[0].shape[0] / 8)
    expected = iterates[0]
    for weights in iterates[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for param, want, last in zip(model.parameters(), expected, iterates[-1]):
        assert torch.allclose(param.double(), want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(param.double(), last, rtol=1e-5, atol=1e-6)  # not the last iterate
    # Metrics and history describe the average; the raw weights' test MSE is kept beside it.
    assert metrics["test_mse"] == pytest.approx(_mse(model, data[1]), rel=1e-5)
    assert metrics["history"]["test_mse"][-1] == pytest.approx(metrics["test_mse"], rel=1e-5)
    assert len(metrics["history"]["test_raw_mse"]) == 2
    assert metrics["history"]["test_raw_mse"][-1] != metrics["history"]["test_mse"][-1]


def test_ema_resumes_exactly_and_is_part_of_the_run(data, tmp_path):
    straight, m_straight = _train(data, tmp_path / "straight", epochs=3, ema_decay=0.9)
    _train(data, tmp_path / "split", epochs=1, ema_decay=0.9)
    assert load_train_state(tmp_path / "split" / CHECKPOINT).averaged_state  # the average is checkpointed
    with pytest.raises(ValueError, match="ema_decay"):  # resuming with another (or no) average is refused
        _train(data, tmp_path / "split", epochs=3, resume=True)
    resumed, m_resumed = _train(data, tmp_path / "split", epochs=3, ema_decay=0.9, resume=True)
    assert weights_hash(resumed) == weights_hash(straight)
    assert m_resumed["history"] == m_straight["history"]
    args = json.loads((tmp_path / "straight" / "training_args.json").read_text())
    assert args["ema_decay"] == 0.9
    assert "| ema_decay | `0.9` |" in (tmp_path / "straight" / "README.md").read_text()
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="ema_decay must be in"):
            _train(data, epochs=1, ema_decay=bad)


def test_device_is_checked_first_and_the_model_comes_back_on_the_cpu(data, tmp_path, monkeypatch, capsys):
    model, metrics = _train(data, epochs=1, device="cpu")
    reference, _ = _train(data, epochs=1)
    assert weights_hash(model) == weights_hash(reference)
    assert all(p.device.type == "cpu" for p in model.parameters())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in (("cuda", "no CUDA GPU"), ("tpu", "unknown device"), ("meta", "not supported")):
        with pytest.raises(ValueError, match=message):
            _train(data, epochs=1, device=device)
    # The command refuses before decoding any image (nothing is written either).
    from fashrec.cli import main

    code = main(["train", "--data", str(tmp_path / "no-such-folder"), "--device", "cuda", "--out", str(tmp_path / "o")])
    assert code == 1
    assert "no CUDA GPU" in capsys.readouterr().err  # not the missing data folder: the device came first
    assert not (tmp_path / "o").exists()


def test_he_init_draws_he_normal_weights_and_zero_biases():
    model = make_model("ae", seed=3, channels=(64, 32), latent_dim=16, init="he")
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    assert len(layers) == 6  # 2 convs, 2 transposed convs, the bottleneck's 2 linear layers
    for layer in layers:
        fan_in = torch.nn.init._calculate_correct_fan(layer.weight, "fan_in")
        weight = layer.weight.detach()
        assert float(weight.std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.1)  # >= 1,728 draws each
        assert float(weight.mean()) == pytest.approx(0.0, abs=0.1 * math.sqrt(2.0 / fan_in))
        assert torch.count_nonzero(layer.bias) == 0


def test_init_is_seeded_and_torch_keeps_pytorchs_defaults():
    from fashrec.models.conv_ae import ConvAE
    from fashrec.models.weight_init import init_weights

    def state(model):
        return {k: v.clone() for k, v in model.state_dict().items()}

    he_a, he_b = state(make_model("ae", seed=5)), state(make_model("ae", seed=5, init="he"))  # he is the default
    assert all(torch.equal(he_a[k], he_b[k]) for k in he_a)
    assert not torch.equal(he_a["encoder.0.weight"], state(make_model("ae", seed=6))["encoder.0.weight"])
    torch.manual_seed(5)
    plain = state(ConvAE())
    assert all(torch.equal(plain[k], v) for k, v in state(make_model("ae", seed=5, init="torch")).items())
    assert not torch.equal(plain["encoder.0.weight"], he_a["encoder.0.weight"])
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        make_model("ae", init="xavier")
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        init_weights(ConvAE(), "xavier")


def test_sweep_records_the_init_and_refuses_to_mix_inits(data, tmp_path):
    from fashrec.training.trainer import save_split_tensors
    from training.sweep import main as sweep

    tensors = tmp_path / "split.safetensors"
    save_split_tensors(tensors, *data)
    flags = ["--data", str(tensors), "--out", str(tmp_path / "runs"), "--epochs", "1", "--only", "ae-lr0.01-bs256"]
    assert sweep([*flags, "--table", str(tmp_path / "sweep.md")]) == 0
    args = json.loads((tmp_path / "runs" / "ae-lr0.01-bs256" / "training_args.json").read_text())
    assert args["init"] == "he" and args["batch_size"] == 256
    table = (tmp_path / "sweep.md").read_text()
    assert "He-normal weights and zero biases (`--init he`)" in table
    row = next(line for line in table.splitlines() if line.startswith("| `ae-lr0.01-bs256`"))
    metrics = json.loads((tmp_path / "runs" / "ae-lr0.01-bs256" / "metrics.json").read_text())
    assert f"| {metrics['test_mse']:.4f} |" in row and "| 0.0030 |" in row  # ours beside the paper's
    with pytest.raises(SystemExit, match="trained with --init he, not torch"):
        sweep([*flags, "--init", "torch", "--table", str(tmp_path / "other.md")])
    assert not (tmp_path / "other.md").exists()


def test_train_state_round_trip_is_exact(tmp_path):
    model = make_model("vae", seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.rand(4, 3, 64, 64)
    for _ in range(2):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    save_train_state(tmp_path / "s.safetensors", model=model, optimizer=opt, epoch=7, info={"history": [1.5]})
    state = load_train_state(tmp_path / "s.safetensors")
    assert state.epoch == 7 and state.info == {"history": [1.5]}
    model2 = make_model("vae", seed=2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.01)
    state.restore(model2, opt2)
    assert weights_hash(model2) == weights_hash(model)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key, value in a["state"][i].items():
            assert torch.equal(value, b["state"][i][key])
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_train_state(tmp_path / "bad.safetensors")


def _tiny_state(tmp_path, *, seed=0):
    """A small model + Adam after one step, saved; returns (model, optimizer, path)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.rand(5, 3)).sum().backward()
    opt.step()
    path = tmp_path / "tiny.safetensors"
    save_train_state(path, model=model, optimizer=opt, epoch=1)
    return model, opt, path


def test_restore_puts_back_the_rng_state_it_saved_and_only_when_asked(tmp_path):
    """The draws after a restore are the draws that followed the save: resume continues the same stream."""
    torch.manual_seed(123)
    torch.rand(7)  # somewhere mid-stream, not at a seed
    model, opt, path = _tiny_state(tmp_path)
    at_save = torch.get_rng_state()  # _tiny_state draws nothing after saving
    expected = torch.rand(16)  # what comes right after the checkpoint
    state = load_train_state(path)
    assert torch.equal(state.rng_state, at_save)
    torch.manual_seed(999)  # move the global RNG elsewhere
    state.restore(model, opt)
    assert torch.equal(torch.rand(16), expected)
    torch.manual_seed(999)
    before = torch.get_rng_state()
    state.restore(model, opt, rng=False)
    assert torch.equal(torch.get_rng_state(), before), "rng=False must leave the global RNG alone"


@pytest.mark.parametrize("kind", ["missing", "unexpected"])
def test_restore_refuses_weights_with_only_missing_or_only_unexpected_keys(tmp_path, kind):
    model, opt, path = _tiny_state(tmp_path)
    state = load_train_state(path)
    if kind == "missing":
        state.model_state.pop("2.bias")
    else:
        state.model_state["3.weight"] = torch.zeros(1)
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"^checkpoint weights do not match Sequential: missing \['2.bias'\], unexpected \[\]$"
                       if kind == "missing" else r"^checkpoint weights do not match Sequential: missing \[\], unexpected \['3.weight'\]$"):
        state.restore(other)


def test_restore_of_the_average_is_strict_and_refuses_a_checkpoint_without_one(tmp_path):
    from torch.optim.swa_utils import AveragedModel

    model, opt, path = _tiny_state(tmp_path)
    with pytest.raises(ValueError, match=r"^checkpoint holds no weight average to resume \(it was written without one\)$"):
        load_train_state(path).restore(model, opt, averaged=AveragedModel(model))
    averaged = AveragedModel(model)
    averaged.update_parameters(model)
    save_train_state(path, model=model, optimizer=opt, epoch=2, averaged=averaged)
    fresh = AveragedModel(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    load_train_state(path).restore(model, opt, averaged=fresh)
    for key, value in averaged.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_average_with_a_missing_key_is_refused(tmp_path):
    from torch.optim.swa_utils import AveragedModel

    model, opt, path = _tiny_state(tmp_path)
    averaged = AveragedModel(model)
    save_train_state(path, model=model, optimizer=opt, epoch=2, averaged=averaged)
    state = load_train_state(path)
    state.averaged_state.pop("module.2.bias")
    with pytest.raises(RuntimeError, match="module.2.bias"):
        state.restore(model, opt, averaged=AveragedModel(model))


def test_optimizer_state_round_trips_unused_parameters_scalars_and_keys_with_slashes(tmp_path):
    """A parameter the optimizer never stepped has no state; non-tensor entries travel as JSON; a state key
    may itself contain '/' (the tensor names are 'optimizer/<index>/<key>')."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model[0](torch.rand(5, 3)).sum().backward()  # only the first layer gets gradients
    opt.step()
    first = model[0].weight
    opt.state[first]["note"] = 3
    opt.state[first]["ema/slow"] = torch.full((4, 3), 0.5)
    path = tmp_path / "s.safetensors"
    save_train_state(path, model=model, optimizer=opt, epoch=1)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["format"] == "pt"  # what safetensors readers expect of a torch file
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt2 = torch.optim.Adam(other.parameters(), lr=0.01)
    load_train_state(path).restore(other, opt2)
    state = opt2.state[other[0].weight]
    assert state["note"] == 3 and torch.equal(state["ema/slow"], torch.full((4, 3), 0.5))
    assert torch.equal(state["exp_avg"], opt.state[first]["exp_avg"])
    assert other[1].weight not in opt2.state and other[0].bias in opt2.state


def test_foreign_and_future_checkpoints_are_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(ValueError, match=rf"^{plain}: safetensors file without fashrec training state metadata$"):
        load_train_state(plain)
    for fmt, version in (("fashrec-train-state", 2), ("other-format", 1)):
        path = tmp_path / f"{fmt}-{version}.safetensors"
        save_file({"x": torch.zeros(1)}, str(path), metadata={"train_state": json.dumps({"format": fmt, "version": version})})
        with pytest.raises(ValueError, match=rf"^{path}: unsupported checkpoint format '{fmt}' version {version} "
                                             r"\(expected 'fashrec-train-state' 1\)$"):
            load_train_state(path)


def test_a_checkpoint_without_info_loads_with_empty_info(tmp_path):
    from safetensors.torch import save_file

    structure = {"format": "fashrec-train-state", "version": 1, "epoch": 3,
                 "optimizer": {"param_groups": [], "state_indices": [], "scalars": {}}}
    path = tmp_path / "s.safetensors"
    save_file({"model/w": torch.ones(2)}, str(path), metadata={"train_state": json.dumps(structure)})
    state = load_train_state(path)
    assert state.info == {} and state.epoch == 3 and state.rng_state is None and state.averaged_state == {}


# ----- crashes --------------------------------------------------------------------------------------

def _wait_for(condition, *, timeout: float, what: str, proc=None) -> None:
    """Poll ``condition`` every 20 ms (no sleep: Event.wait) until true; fail after ``timeout`` seconds."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{proc.stderr.read()}")
        tick.wait(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


@contextlib.contextmanager
def _child(args):
    """A Python child process with the repo on its path; killed and reaped however the block ends."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _sigkill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(cache_dir, tmp_path):
    from training.train import main

    epochs = 30
    flags = ["--data", "sample", "--n", str(N_IMAGES), "--cache-dir", str(cache_dir), "--epochs", str(epochs),
             "--batch-size", "8", "--seed", "5", "--threads", "1", "--no-progress"]
    out = tmp_path / "killed"
    with _child(["-m", "training.train", *flags, "--out", str(out)]) as proc:
        _wait_for((out / CHECKPOINT).exists, timeout=300, what="the first epoch's checkpoint", proc=proc)
        _sigkill(proc)
    done = load_train_state(out / CHECKPOINT).epoch  # the last checkpoint is complete and readable
    assert 1 <= done < epochs and not (out / "metrics.json").exists()

    assert main([*flags, "--out", str(out), "--resume"]) == 0
    assert main([*flags, "--out", str(tmp_path / "straight")]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert resumed["history"]["test_mse"] == pytest.approx(straight["history"]["test_mse"], rel=1e-6)
    assert resumed["test_mse"] == pytest.approx(straight["test_mse"], rel=1e-6)
    assert resumed["train_mse"] == pytest.approx(straight["train_mse"], rel=1e-6)
    assert not list(out.rglob("*.tmp"))  # a write cut by the kill leaves no temporary file behind resume
    from_pretrained(out)


_WRITER = """
import sys, torch
from fashrec.training.train_state import save_train_state
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 64))
opt = torch.optim.Adam(model.parameters())
model(torch.ones(1, 64)).sum().backward(); opt.step()
print("ready", flush=True)
k = 0
while True:
    k += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(k)
        for s in opt.state.values():
            s["exp_avg"].fill_(k)
    save_train_state(sys.argv[1], model=model, optimizer=opt, epoch=k, info={"k": k})
"""


def test_killed_checkpoint_writes_never_leave_a_torn_file(tmp_path):
    """Kill a process that rewrites the checkpoint in a tight loop, at several moments: the file left
    behind is always one whole checkpoint (every tensor and the JSON from the same write)."""
    path = tmp_path / "state.safetensors"
    rng = torch.Generator().manual_seed(0)
    for attempt in range(3):
        with _child(["-c", _WRITER, str(path)]) as proc:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            _wait_for(path.exists, timeout=60, what="a checkpoint", proc=proc)
            threading.Event().wait(float(torch.rand(1, generator=rng)) * 0.2)  # a random moment mid-loop
            _sigkill(proc)
        state = load_train_state(path)
        k = state.info["k"]
        assert state.epoch == k >= 1
        assert all(bool((t == k).all()) for t in state.model_state.values())
        assert all(bool((s["exp_avg"] == k).all()) for s in state.optimizer_state["state"].values())


# ----- card and Hub ---------------------------------------------------------------------------------

def test_card_picks_up_eval_json(data, tmp_path):
    out = tmp_path / "run"
    _train(data, out, epochs=1)
    evaluation = {"k": 10, "retrieval": [
        {"embedding": "model", "metric": "cosine", "label": "product_type_name", "precision_at_k": 0.4321, "map_at_k": 0.3},
        {"embedding": "pca", "metric": "cosine", "label": "product_type_name", "precision_at_k": 0.1111, "map_at_k": 0.1},
    ]}
    (out / "eval.json").write_text(json.dumps(evaluation))
    text = write_card(out)
    from huggingface_hub import ModelCard

    scores = [r.metric_value for r in ModelCard(text).data.eval_results]
    assert 0.4321 in scores and 0.1111 not in scores  # the model-index holds the model's own scores only...
    assert "| PCA | " in text and "0.1111" in text.split("| PCA | ")[1].splitlines()[0]  # ...the baselines a table
    assert (out / "README.md").read_text() == text


def test_cli_model_flags_reach_the_config_and_push(cache_dir, tmp_path, hub_server, monkeypatch):
    from training.train import main

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    out = tmp_path / "vae"
    repo_id = hub_server.repo_id("tiny-vae")
    assert main(["--data", "sample", "--n", str(N_IMAGES), "--cache-dir", str(cache_dir), "--model", "vae",
                 "--channels", "8,4", "--latent-dim", "16", "--pad-value", "1", "--beta", "0.5", "--epochs", "1",
                 "--init", "torch",
                 "--threads", "1", "--no-progress", "--out", str(out), "--push-to-hub", repo_id]) == 0
    model = from_pretrained(out)
    assert type(model).__name__ == "ConvVAE" and model.embedding_dim == 16 and model.channels == [8, 4]
    assert model.preprocess_config.pad_value == 1.0
    args = json.loads((out / "training_args.json").read_text())
    assert args["beta"] == 0.5 and args["init"] == "torch"
    assert "| init | `torch` |" in (out / "README.md").read_text()  # the card says how the weights were drawn
    files = hub_server.files(repo_id)
    assert files["config.json"] == (out / "config.json").read_bytes()
    assert "non-commercial" in files["README.md"].decode()  # the CLI records the H&M terms on the card
    monkeypatch.delenv("HF_TOKEN")
    assert main(["--data", "sample", "--n", str(N_IMAGES), "--cache-dir", str(cache_dir), "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "nope"), "--push-to-hub", repo_id]) == 1
    assert not (tmp_path / "nope").exists()  # no token: refused before any training


def test_push_to_hub_uploads_the_folder_in_one_commit(data, tmp_path, hub_server, monkeypatch):
    from fashrec.training.trainer import push_to_hub

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    out = tmp_path / "run"
    _train(data, out, epochs=1)
    repo_id = hub_server.repo_id("tiny-ae")
    before = len(hub_server.commits(repo_id)) if hub_server.has_repo(repo_id) else 0
    push_to_hub(out, repo_id)
    files = hub_server.files(repo_id)
    assert OUTPUT_FILES <= set(files)
    assert not any("checkpoint" in f or f.endswith(".tmp") for f in files)
    assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert f'from_pretrained("{repo_id}")' in files["README.md"].decode()
    assert len(hub_server.commits(repo_id)) - max(before, 1) == 1  # the repo's initial commit, then one
    assert hub_server.token not in "".join(f.read_text(errors="ignore") for f in out.rglob("*") if f.is_file())
