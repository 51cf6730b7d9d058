"""Training for :class:`~fashrec.models.multitask_cnn.MultiTaskCNN`: labels and designs in, steerable
embeddings out, through the same resumable loop as the autoencoders (``fashrec.training.loop``).

The whole training set lives on the device as one uint8 tensor (18,919 photos of 3x64x64 are 230 MB),
so each step is a gather plus augmentation on the device: no DataLoader. A step:

1. rows: uniformly drawn, or with ``designs`` a :class:`DesignBatches` batch (pairs of colourways);
2. views: mirror + shift (``augment_batch``), then ``colour_jitter`` on a share of them, whose colour
   labels are dropped for that step (``colour_columns``);
3. loss: the model's ``loss`` (cross-entropies, plus the design contrastive term with ``designs``);
4. AdamW; the learning rate follows a linear warm-up then a cosine decay, computed from the global step,
   so a resumed run needs no scheduler state.

Convolutions run ``channels_last`` on a CPU (oneDNN's preferred layout: no reorders around each
convolution; measured 1.3x faster per step than the default layout, 1 thread). The written model is
in the default layout.

At the end BatchNorm's running statistics are recomputed over the training photos with the final
weights (``recalibrate_batchnorm``): the moving averages lag behind the weights, and a short run's
eval-mode embeddings can collapse on them.

Each epoch's draws come from a generator seeded by the loop's epoch seed: a run killed and resumed
ends exactly where the uninterrupted run does. With ``val_images`` the loss terms and accuracies of a
validation split (carved from training data: never the test split) are recorded after every epoch, as
``validation_<term>`` (never "test": the test split is not read here).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from fashrec.training.augment import as_float_images, augment_batch, colour_jitter
from fashrec.training.loop import fingerprint, run_epochs


# Constructor arguments that shape how the trained heads are read out, not what is trained: changing them
# on --resume (e.g. to finish a run with other embedding settings) is allowed.
_EMBEDDING_ONLY = frozenset({"fashrec_version", "embedding_dim", "representation", "colour_histogram_bins",
                             "histogram_weight", "overall_weights", "flip_tta"})


def train_multitask(model, images: torch.Tensor, labels: Mapping[str, torch.Tensor], *,
                    designs: torch.Tensor | None = None, val_images: torch.Tensor | None = None,
                    val_labels: Mapping[str, torch.Tensor] | None = None, val_designs: torch.Tensor | None = None,
                    epochs: int = 30, batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 5e-4,
                    max_shift: int = 4, flip: bool = True, colour_jitter_p: float = 0.5,
                    colour_columns: Sequence[str] | None = None, label_smoothing: float = 0.1,
                    contrastive_weight: float = 1.0, temperature: float = 0.1, pair_fraction: float = 0.375,
                    seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
                    out_dir=None, resume: bool = False, threads: int | None = None,
                    channels_last: bool = True, teacher: torch.Tensor | None = None,
                    distill_weight: float = 1.0, bfloat16: bool = False) -> dict:
    """Train ``model`` in place; returns ``{"history": {train_*/validation_*: per epoch}, "train_seconds", ...}``.

    ``images``: ``(N, 3, S, S)`` uint8 or float in [0, 1], preprocessed with the model's config.
    ``labels``: column -> ``(N,)`` class ids (-1 = missing) for every column of ``model.classes``.
    ``designs``: ``(N,)`` design ids (e.g. ``product_code`` factorised; -1 = unknown) for the contrastive
    term. ``teacher``: ``(N, D)`` features of each image from a stronger network (``fashrec.training.teacher``):
    a linear head on the trunk learns to point where they point (cosine, after centring), weighted by
    ``distill_weight``; the head is removed when training ends, so the model saves as it was built.
    ``bfloat16``: the training steps' convolutions and matrix products in bfloat16 (``torch.autocast``;
    the weights, the optimizer and the written model stay float32).
    ``colour_columns``: the columns a colour-jittered view loses (default: every column with
    "colour" in its name). ``out_dir``: where the per-epoch resume checkpoint goes (``resume=True`` to
    continue it). The ``validation_*`` history is the validation split's.
    """
    from fashrec.training.design_batches import DesignBatches

    _check_inputs(model, images, labels, designs, "")
    if teacher is not None and teacher.shape[0] != images.shape[0]:
        raise ValueError(f"train_multitask: {teacher.shape[0]} teacher feature rows for {images.shape[0]} images")
    if val_images is not None:
        _check_inputs(model, val_images, val_labels or {}, val_designs, "val_")
    if threads:
        torch.set_num_threads(int(threads))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if teacher is not None:  # part of the model while it trains, so checkpoints and --resume carry it
        model.teacher_head = torch.nn.Linear(model.widths[-1], teacher.shape[1])
    model.to(device=device, memory_format=layout).train()
    t_all = (teacher - teacher.mean(0)).float().to(device) if teacher is not None else None
    n = images.shape[0]
    x_all = images.to(device)
    y_all = {c: labels[c].to(device).long() for c in model.classes}
    d_all = designs.to(device).long() if designs is not None else None
    colour_columns = [c for c in model.classes if "colour" in c] if colour_columns is None else list(colour_columns)
    batch_size = min(batch_size, n)
    steps = max(1, n // batch_size)  # drop the ragged last batch: BatchNorm dislikes tiny ones
    total, warmup = epochs * steps, max(1, min(epochs * steps // 10, 3 * steps))
    sampler = DesignBatches(designs, pair_fraction=pair_fraction) if designs is not None else None
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    pad = float(model.preprocess_config.pad_value)
    loss_args = {"label_smoothing": label_smoothing, "contrastive_weight": contrastive_weight,
                 "temperature": temperature}

    def learning_rate(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def train_epoch(epoch: int, epoch_seed: int) -> dict:
        gen = torch.Generator().manual_seed(epoch_seed)
        dev_gen = torch.Generator(device=device).manual_seed(epoch_seed)
        perm = torch.randperm(n, generator=gen)
        model.train()
        sums: dict[str, float] = {}
        for step in range(steps):
            idx = sampler.batch(gen, batch_size) if sampler else perm[step * batch_size:(step + 1) * batch_size]
            idx = idx.to(device)
            x = augment_batch(as_float_images(x_all[idx]), pad_value=pad, max_shift=max_shift, flip=flip,
                              generator=dev_gen)
            x, jittered = colour_jitter(x, colour_jitter_p, generator=dev_gen, background=pad)
            x = x.contiguous(memory_format=layout)
            y = {c: v[idx] for c, v in y_all.items()}
            for c in colour_columns:
                y[c] = y[c].masked_fill(jittered, -1)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(epoch * steps + step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                out = model.loss(x, labels=y, designs=d_all[idx] if d_all is not None else None,
                                 teacher=t_all[idx] if t_all is not None else None, distill_weight=distill_weight,
                                 **loss_args)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
        return {k: v / steps for k, v in sums.items()}

    def evaluate() -> dict:
        if val_images is None:
            return {}
        return validation_terms(model, val_images, val_labels, val_designs, device=device, layout=layout, **loss_args)

    settings = {
        "model_class": type(model).__name__,
        "model_config": {k: v for k, v in model.config_dict().items() if k != "fashrec_version"},
        "epochs_total": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay),
        "max_shift": int(max_shift), "flip": bool(flip), "colour_jitter": float(colour_jitter_p),
        "colour_columns": colour_columns, "pair_fraction": float(pair_fraction), "seed": int(seed), **loss_args,
        "train_fingerprint": fingerprint(images), "train_images": int(n),
        "designs_fingerprint": fingerprint(designs[:, None]) if designs is not None else None,
        "val_fingerprint": fingerprint(val_images) if val_images is not None else None,
        **({"memory_format": "contiguous"} if not channels_last else {}),
        **({"autocast": "bfloat16"} if bfloat16 else {}),
        **({"teacher_fingerprint": fingerprint(teacher), "distill_weight": float(distill_weight)}
           if teacher is not None else {}),
        **({"device": device.type} if device.type != "cpu" else {}),
    }
    history, seconds, cpu = run_epochs(model, optimizer, train_epoch=train_epoch,
                                       evaluate=evaluate, epochs=epochs, seed=seed, settings=settings,
                                       out_dir=out_dir, resume=resume, progress=progress, desc="train multitask",
                                       free_config_keys=_EMBEDDING_ONLY, held_out="validation")
    if teacher is not None:
        del model.teacher_head  # the shipped model needs no teacher
    recalibrate_batchnorm(model, x_all, layout=layout)
    model.to(device="cpu", memory_format=torch.contiguous_format).eval()
    return {"history": history, "train_seconds": round(seconds, 3), "train_cpu_seconds": round(cpu, 3),
            "images_per_second": round(n * epochs / seconds, 1) if seconds > 0 else None, "epochs": int(epochs),
            "train_images": int(n)}


@torch.no_grad()
def validation_terms(model, images: torch.Tensor, labels: Mapping[str, torch.Tensor] | None,
                     designs: torch.Tensor | None, *, device, batch_size: int = 500,
                     layout=torch.contiguous_format, **loss_args) -> dict:
    """The model's loss terms and accuracies on a held-out split, in eval mode (image-weighted means)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = images.shape[0]
    try:
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            x = as_float_images(images[sl]).to(device).contiguous(memory_format=layout)
            y = {c: labels[c][sl].to(device).long() for c in model.classes}
            d = designs[sl].to(device) if designs is not None else None
            for key, value in model.loss(x, labels=y, designs=d, **loss_args).items():
                sums[key] = sums.get(key, 0.0) + float(value) * x.shape[0]
    finally:
        model.train(was_training)
    return {k: v / n for k, v in sums.items()}


def _check_inputs(model, images, labels, designs, prefix: str) -> None:
    missing = sorted(set(model.classes) - set(labels))
    if missing:
        raise ValueError(f"train_multitask: {prefix}labels are missing for columns {missing}")
    n = images.shape[0]
    for column, y in labels.items():
        if y.shape[0] != n:
            raise ValueError(f"train_multitask: {prefix}{column} has {y.shape[0]} labels for {n} images")
    if designs is not None and tuple(designs.shape) != (n,):
        raise ValueError(f"train_multitask: {prefix}designs must be ({n},), got {tuple(designs.shape)}")
    if n < 2:
        raise ValueError(f"train_multitask: need at least 2 {prefix}images")


@torch.no_grad()
def recalibrate_batchnorm(model, images: torch.Tensor, *, batch_size: int = 500,
                          layout=torch.contiguous_format) -> None:
    """Set every BatchNorm's running mean and variance to their exact averages over ``images`` (un-augmented)
    under the final weights, instead of moving averages collected while the weights moved."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    try:
        device = next(model.parameters()).device
        for start in range(0, images.shape[0], batch_size):
            model.features(as_float_images(images[start:start + batch_size]).to(device).contiguous(memory_format=layout))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
