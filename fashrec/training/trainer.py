"""The training loop of fashrec's autoencoders: Adam on the model's own ``loss``, resumable, reproducible.

    model = fashrec.training.trainer.make_model("ae", seed=0)           # seeded He-normal init (fashrec.models.weight_init)
    metrics = fashrec.train(model, x_train, x_test, lr=0.01, batch_size=16, epochs=30, seed=0, out_dir="runs/ae")

``x_train`` / ``x_test`` are preprocessed tensors ``(N, 3, S, S)`` in [0, 1] (``fashrec.dataset_tensor``):
images are decoded once, and the loop only slices a tensor. The model supplies ``loss(x, beta=...)``
returning ``{"loss", "mse", ...}`` (per-pixel MSE for the AE; MSE + beta * KL per value for the VAE).

Reproducible and resumable by construction:

- The shuffle of epoch ``e`` comes from a fresh ``torch.Generator`` seeded from ``(seed, e)``, and the
  global RNG (the VAE's sampling noise) is reseeded the same way at the start of every epoch, so an epoch
  depends only on the weights and optimizer state it starts from — nothing mid-epoch needs saving.
- After every epoch, weights + Adam state + epoch + loss history + RNG state go to
  ``out_dir/checkpoint/train_state.safetensors`` (one file, written atomically: see ``train_state.py``).
  ``resume=True`` continues from the last complete epoch; the result equals an uninterrupted run's.

``out_dir`` finally holds ``config.json`` + ``model.safetensors`` (loadable with ``fashrec.from_pretrained``),
``metrics.json`` (``train_mse`` / ``test_mse``: per-value MSE of the final model over each whole split, in
eval mode — the VAE's mean, not a sample), ``training_args.json``, ``loss_curve.png``,
``reconstructions.png`` and ``README.md`` (the model card, rebuilt by :func:`write_card`, which also
picks up an ``eval.json`` written by ``fashrec evaluate --out``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from fashrec.models.weight_init import DEFAULT_INIT, init_weights
from fashrec.training.loop import CHECKPOINT, fingerprint, run_epochs

PUSHED_FILES = ("config.json", "model.safetensors", "README.md", "metrics.json", "training_args.json",
                "loss_curve.png", "reconstructions.png", "eval.json")
N_RECONSTRUCTIONS = 6
EVAL_BATCH = 500


def make_model(kind: str = "ae", *, seed: int = 0, channels=(16, 8), latent_dim: int | None = None,
               preprocess: Mapping | None = None, init: str = DEFAULT_INIT):
    """A freshly initialised ``ConvAE`` (``kind="ae"``) or ``ConvVAE`` (``"vae"``); the init is seeded.

    ``init`` is how the weights are drawn (``fashrec.models.weight_init``): ``"he"`` (default) or ``"torch"``.
    """
    from fashrec.models.conv_ae import ConvAE
    from fashrec.models.conv_vae import ConvVAE

    classes = {"ae": ConvAE, "vae": ConvVAE}
    if kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(classes)}")
    torch.manual_seed(seed)
    model = classes[kind](channels=list(channels), latent_dim=latent_dim, preprocess=preprocess)
    return init_weights(model, init)


def load_tensors(source, *, n: int | None = None, seed: int = 42, test_size: float | int = 0.2,
                 preprocess=None, cache_dir=None, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_x, test_x)``: ``fashrec.load_hm(source)`` split as every fashrec tool splits it, decoded once
    (``fashrec.dataset_tensor`` caches the tensors on disk) with ``preprocess`` (a ``PreprocessConfig``).

    ``source`` may also be a ``.safetensors`` file written by :func:`save_split_tensors` (for machines
    without the data or the ``datasets`` library); ``n`` then keeps a prefix of each split.
    """
    if str(source).endswith(".safetensors") and Path(source).is_file():
        return load_split_tensors(source, n=n)
    from fashrec.data.hm_dataset import load_hm
    from fashrec.data.tensor_cache import dataset_tensor

    dd = load_hm(source, n=n, seed=seed, test_size=test_size, progress=progress)
    return tuple(dataset_tensor(dd[split], preprocess, cache_dir=cache_dir, progress=progress)
                 for split in ("train", "test"))


def save_split_tensors(path: str | os.PathLike, train_x: torch.Tensor, test_x: torch.Tensor) -> None:
    """Store both splits in one safetensors file, as uint8 when that is exact (``u8 / 255`` == the floats)."""
    from fashrec.atomic import save_safetensors_atomic

    tensors = {}
    for name, x in (("train", train_x), ("test", test_x)):
        u8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
        tensors[name] = u8 if torch.equal(u8.float() / 255, x) else x.float()
    save_safetensors_atomic(tensors, path, metadata={"format": "fashrec-split-tensors"})


def load_split_tensors(path: str | os.PathLike, *, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    data = load_file(str(path))
    if set(data) != {"train", "test"}:
        raise ValueError(f"{path}: not a split-tensor file (expected tensors 'train' and 'test', got {sorted(data)})")
    out = []
    for name in ("train", "test"):
        x = data[name]
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        out.append(x[: max(1, round(n * x.shape[0] / (data["train"].shape[0] + data["test"].shape[0])))] if n else x)
    return out[0], out[1]


def train(model, train_x: torch.Tensor, test_x: torch.Tensor, *, lr: float = 0.01, batch_size: int = 16,
          epochs: int = 30, seed: int = 0, beta: float = 1.0, out_dir: str | os.PathLike | None = None,
          resume: bool = False, progress: bool = True, threads: int | None = 1, channels_last: bool = True,
          ema_decay: float | None = None, device: str | torch.device = "cpu", dataset: str | None = None,
          dataset_terms: str | None = None, extra_args: Mapping | None = None) -> dict:
    """Train ``model`` in place with Adam and return the metrics dict (also written to ``out_dir``).

    ``beta`` weighs the VAE's KL term (ignored by the AE). ``threads`` sets ``torch.set_num_threads``
    (None leaves it; 1 is the default because two threads on a shared, busy machine mostly wait for each
    other — see docs/training.md). ``channels_last`` runs the convolutions on NHWC tensors (faster with
    oneDNN on CPU; the result differs from NCHW only by float rounding, so it is part of what a resumed
    run must match). ``ema_decay`` (e.g. 0.99) keeps an exponential moving average of the weights after
    every step (``torch.optim.swa_utils``) and makes it the result: the written model, the per-epoch
    ``test_*`` history (the raw weights' test MSE is kept as ``test_raw_mse``) and the final metrics.
    At lr 0.01 / batch 16 it rides over Adam's loss spikes (docs/training.md); ``None`` (default) keeps
    the paper's last iterate. ``device`` (e.g. ``"cuda"``) holds the model, the optimizer and the training
    split during training; the model is back on the CPU when this returns (a run resumes on the device it
    started on: float rounding differs between devices). ``dataset`` / ``dataset_terms`` describe the
    data on the model card; ``extra_args`` are recorded beside the hyperparameters (e.g. the data source
    and split seed).
    Without ``out_dir`` nothing is written and nothing can be resumed.
    """
    _check_images("train_x", train_x, model)
    _check_images("test_x", test_x, model)
    for name, value, low in (("lr", lr, 0.0), ("batch_size", batch_size, 0), ("epochs", epochs, 0)):
        if not value > low:
            raise ValueError(f"train: {name} must be > {low}, got {value}")
    if ema_decay is not None and not 0.0 <= float(ema_decay) < 1.0:
        raise ValueError(f"train: ema_decay must be in [0, 1) (e.g. 0.99), got {ema_decay}")
    device = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)  # tiny gradients near sigmoid saturation otherwise crawl on x86

    out = Path(out_dir) if out_dir is not None else None
    settings = {
        "model_class": type(model).__name__,
        "model_config": model.config_dict(),
        "lr": float(lr), "batch_size": int(batch_size), "seed": int(seed), "beta": float(beta),
        "train_images": int(train_x.shape[0]), "test_images": int(test_x.shape[0]),
        "train_fingerprint": fingerprint(train_x), "test_fingerprint": fingerprint(test_x),
        "channels_last": bool(channels_last),
        **({"ema_decay": float(ema_decay)} if ema_decay is not None else {}),
        **({"device": device.type} if device.type != "cpu" else {}),
    }
    settings["model_config"].pop("fashrec_version", None)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=layout)  # before the optimizer exists: Adam's moments follow
    optimizer = _adam(model, lr)
    averaged = _averaged_model(model, ema_decay) if ema_decay is not None else None
    # Rows stored as (N, H, W, C) for channels_last: a gathered batch is then contiguous, and viewing it
    # as (B, C, H, W) costs nothing. The test split is converted once.
    rows = (train_x.permute(0, 2, 3, 1) if channels_last else train_x).to(device).contiguous()
    test_in = test_x.to(device).contiguous(memory_format=layout)
    hooks = _grad_layout_hooks(model) if channels_last else []
    model.train()
    n = train_x.shape[0]

    def train_epoch(epoch: int, epoch_seed: int) -> dict:
        return _train_epoch(model, optimizer, rows, batch_size=batch_size, beta=beta, epoch_seed=epoch_seed,
                            nhwc=channels_last, averaged=averaged)

    def evaluate() -> dict:
        stats = evaluate_split(model if averaged is None else averaged.module, test_in, beta=beta)
        if averaged is not None:
            stats["raw_mse"] = evaluate_split(model, test_in, beta=beta)["mse"]
        return stats

    # Same seed, same result on a GPU too: cuDNN's deterministic kernels, no autotuning (restored after).
    cudnn_flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        history, train_seconds, cpu_seconds = run_epochs(
            model, optimizer, train_epoch=train_epoch, evaluate=evaluate, epochs=epochs, seed=seed,
            settings=settings, out_dir=out, resume=resume, progress=progress, averaged=averaged,
            held_out="test")  # the paper's curve: the test split, after every epoch
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_flags
        for hook in hooks:
            hook.remove()
        model.to(device="cpu", memory_format=torch.contiguous_format)

    if averaged is not None:  # the average is the result
        with torch.no_grad():
            for target, source in zip(model.parameters(), averaged.module.parameters()):
                target.copy_(source)
    metrics = final_metrics(model, train_x, test_x, beta=beta)
    metrics.update({
        "epochs": int(epochs), "train_images": int(n), "test_images": int(test_x.shape[0]),
        "train_seconds": round(train_seconds, 3),
        "train_cpu_seconds": round(cpu_seconds, 3),  # CPU time of this process: less sensitive to a busy machine
        "images_per_second": round(n * epochs / train_seconds, 1) if train_seconds > 0 else None,
        "history": history,
    })
    if out is not None:
        args = {
            "model": settings["model_class"], "optimizer": "Adam", "lr": float(lr), "batch_size": int(batch_size),
            "epochs": int(epochs), "seed": int(seed), "loss": _loss_name(model, beta),
            "train_images": int(n), "test_images": int(test_x.shape[0]),
            **({"beta": float(beta)} if "beta" in _loss_name(model, beta) else {}),
            **({"ema_decay": float(ema_decay)} if ema_decay is not None else {}),
            **dict(extra_args or {}),
        }
        write_outputs(out, model, metrics, test_x, training_args=args, dataset=dataset, dataset_terms=dataset_terms)
    return metrics


# ----- one epoch, evaluation ---------------------------------------------------------------------------

def _train_epoch(model, optimizer, rows: torch.Tensor, *, batch_size: int, beta: float, epoch_seed: int,
                 nhwc: bool, averaged=None) -> dict[str, float]:
    """One pass over ``rows`` in a fresh seeded order; returns the image-weighted mean of each loss term.

    The loop is kept lean for small models, where per-step overhead matters: each batch is one gather
    from the resident tensor (``rows`` is ``(N, H, W, C)`` when ``nhwc``, viewed as ``(B, C, H, W)`` at no
    cost), losses are summed on-tensor (one ``.item()`` per epoch, not per step), and gradients are
    dropped with ``set_to_none`` rather than zeroed.
    """
    n = rows.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed)).to(rows.device)
    model.train()
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, n, batch_size):
        batch = rows.index_select(0, order[start:start + batch_size])
        if nhwc:
            batch = batch.permute(0, 3, 1, 2)
        terms = model.loss(batch, beta=beta)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(model)
        weight = batch.shape[0]
        for key, value in terms.items():
            total = sums.get(key)
            if total is None:
                sums[key] = value.detach() * weight
            else:
                total.add_(value.detach(), alpha=weight)
    return {k: v.item() / n for k, v in sums.items()}


def _grad_layout_hooks(model) -> list:
    """Keep gradients in the layout of the activations they flow into.

    ``mse_loss``'s backward returns an NCHW gradient even for channels_last tensors; the elementwise
    backward of the activation it reaches (sigmoid) then takes a strided path many times slower than the
    contiguous one. A hook on each activation's output converts the incoming gradient (a no-op when it
    already matches). Returns the handles, to be removed after training.
    """
    def convert(grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last) if grad.ndim == 4 else grad

    def on_forward(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad and output.ndim == 4:
            output.register_hook(convert)

    return [m.register_forward_hook(on_forward) for m in model.modules()
            if isinstance(m, (torch.nn.Sigmoid, torch.nn.ReLU))]


@torch.inference_mode()
def evaluate_split(model, x: torch.Tensor, *, beta: float = 1.0, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """Mean of each loss term over all of ``x`` in eval mode (deterministic: the VAE decodes its mean)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    try:
        for start in range(0, x.shape[0], batch_size):
            batch = x[start:start + batch_size]
            for key, value in model.loss(batch, beta=beta).items():
                sums[key] = sums.get(key, 0.0) + float(value) * batch.shape[0]
    finally:
        model.train(was_training)
    return {k: v / x.shape[0] for k, v in sums.items()}


def final_metrics(model, train_x: torch.Tensor, test_x: torch.Tensor, *, beta: float = 1.0) -> dict[str, float]:
    """``train_mse`` / ``test_mse`` (and ``*_loss``, ``*_kl`` for a VAE) of the model as it is now."""
    metrics = {}
    for split, x in (("train", train_x), ("test", test_x)):
        stats = evaluate_split(model, x, beta=beta)
        metrics[f"{split}_mse"] = stats["mse"]
        for key, value in stats.items():
            if key != "mse" and (key != "loss" or "kl" in stats):
                metrics[f"{split}_{key}"] = value
    return metrics


# ----- outputs -----------------------------------------------------------------------------------------

def write_outputs(out_dir: str | os.PathLike, model, metrics: Mapping, test_x: torch.Tensor, *,
                  training_args: Mapping, dataset: str | None = None, dataset_terms: str | None = None) -> None:
    """Write the finished model folder: weights, config, metrics, pictures, card (each file atomically)."""
    from fashrec.atomic import write_json_atomic
    from fashrec.training.figures import save_loss_curve, save_reconstructions

    out = Path(out_dir)
    model.eval()
    model._save_pretrained(out)  # config.json + model.safetensors, atomic
    write_json_atomic(dict(metrics), out / "metrics.json")
    write_json_atomic({**training_args, "dataset": dataset, "dataset_terms": dataset_terms}, out / "training_args.json")
    history = metrics.get("history", {})
    curves = {"train": history.get("train_loss", []), "test": history.get("test_loss", [])}
    if "test_raw_mse" in history:  # --ema: the test curve is the average's; show the raw weights' beside it
        curves = {"train": curves["train"], "EMA weights test": curves["test"],
                  "raw weights test": history["test_raw_mse"]}
    save_loss_curve(out / "loss_curve.png", curves,
                    ylabel="MSE per pixel value" if "train_kl" not in history else "MSE + beta * KL per value")
    picks = torch.randperm(test_x.shape[0], generator=torch.Generator().manual_seed(0))[:N_RECONSTRUCTIONS]
    originals = test_x[picks.sort().values]
    save_reconstructions(out / "reconstructions.png", originals, model.reconstruct(originals))
    write_card(out)


def write_card(out_dir: str | os.PathLike, *, repo_id: str | None = None) -> str:
    """(Re)write ``out_dir/README.md`` from the folder's config, metrics, training args and ``eval.json``
    (``fashrec.hub_card.write_model_card``).

    Run again after ``fashrec evaluate --out out_dir/eval.json`` to put retrieval scores on the card.
    """
    from fashrec.hub_card import write_model_card

    return write_model_card(out_dir, repo_id=repo_id)


def push_to_hub(out_dir: str | os.PathLike, repo_id: str, *, token: str | None = None,
                private: bool | None = None) -> str:
    """Rewrite the card so its snippet names ``repo_id``, then upload the model folder in one commit.

    The resume checkpoint and temporary files stay behind (``fashrec.hub.push`` ignores them). The folder's
    reconstructions.png shows H&M test photos, so ``private=None`` makes a new repo private
    (``fashrec.hub.visibility``).
    """
    from fashrec.hub.push import push_folder

    write_card(out_dir, repo_id=repo_id)
    return push_folder(out_dir, repo_id, token=token, private=private,
                       commit_message=f"Upload {Path(out_dir).name} trained with fashrec")


# ----- helpers -----------------------------------------------------------------------------------------

def _adam(model, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused CPU kernel when available (one kernel for all parameters: far less overhead)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def resolve_device(device) -> torch.device:
    """``device`` as a ``torch.device``, refusing one this machine does not have (before any work)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"train: unknown device {device!r} ({exc})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train: device {device!r} asked for, but torch sees no CUDA GPU here; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"train: device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def _averaged_model(model, decay: float):
    """An exponential moving average of ``model``'s weights (``torch.optim.swa_utils``): after each step
    ``avg = decay * avg + (1 - decay) * weights``, starting from the weights after the first step."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)))


def _check_images(name: str, x, model) -> None:
    size = model.preprocess_config.image_size
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size) or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"train: {name} must be a non-empty (N, 3, {size}, {size}) tensor, got {shape}")
    if x.dtype != torch.float32:
        raise ValueError(f"train: {name} must be float32 in [0, 1] (fashrec.dataset_tensor), got {x.dtype}")


def _loss_name(model, beta: float) -> str:
    if type(model).__name__ == "ConvVAE":
        return f"per-value MSE + beta * KL / values (beta={beta:g})"
    return "per-value MSE"


