"""Training for :class:`~fashrec.models.multitask_cnn.MultiTaskCNN`: labels in, steerable embeddings out.

The whole training set lives on the device as one tensor (5,000 images of 3x64x64 are 250 MB in float32,
61 MB in uint8), so each step is a gather plus an augmentation done on the device: no DataLoader.
Augmentation is what a shopper would call "the same product": a horizontal mirror and a shift of a few
pixels (filled with the model's pad value). Nothing that changes colour, since colour is a label.

``train_multitask`` is the library function; ``training/train_multitask.py`` is its command line.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, *, pad_value: float, max_shift: int = 4, flip: bool = True,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip and integer shift of up to ``max_shift`` pixels, per image, on x's device."""
    n, _, h, w = x.shape
    dev = x.device
    if flip:
        mirror = torch.rand(n, device=dev, generator=generator) < 0.5
        x = torch.where(mirror[:, None, None, None], torch.flip(x, dims=[3]), x)
    if max_shift > 0:
        s = max_shift
        padded = F.pad(x, (s, s, s, s), value=float(pad_value))
        dy = torch.randint(0, 2 * s + 1, (n,), device=dev, generator=generator)
        dx = torch.randint(0, 2 * s + 1, (n,), device=dev, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=dev)[None])  # (N, H)
        cols = (dx[:, None] + torch.arange(w, device=dev)[None])  # (N, W)
        idx_r = rows[:, None, :, None].expand(n, x.shape[1], h, w + 2 * s)
        x = padded.gather(2, idx_r)
        idx_c = cols[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, idx_c)
    return x


def as_float_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) or float images (0..1) -> float32 in [0, 1]."""
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def train_multitask(model, images: torch.Tensor, labels: Mapping[str, torch.Tensor], *, epochs: int = 30,
                    batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 5e-4, max_shift: int = 4,
                    flip: bool = True, label_smoothing: float = 0.1, seed: int = 0,
                    device: str | torch.device | None = None, progress: bool = True,
                    on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train ``model`` (a MultiTaskCNN) in place with AdamW and a one-cycle cosine schedule.

    ``images``: ``(N, 3, S, S)`` uint8 or float in [0, 1], already preprocessed with the model's config.
    ``labels``: column -> ``(N,)`` int tensor of class ids (-1 = missing) for every column of
    ``model.classes``. Returns one dict of mean losses / accuracies per epoch (also passed to ``on_epoch``).
    """
    from tqdm.auto import tqdm

    missing = sorted(set(model.classes) - set(labels))
    if missing:
        raise ValueError(f"train_multitask: labels are missing for columns {missing}")
    n = images.shape[0]
    for column, y in labels.items():
        if y.shape[0] != n:
            raise ValueError(f"train_multitask: {column} has {y.shape[0]} labels for {n} images")
    if n < 2:
        raise ValueError("train_multitask: need at least 2 images")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model.to(device).train()
    x_all = images.to(device)
    y_all = {c: labels[c].to(device).long() for c in model.classes}
    batch_size = min(batch_size, n)
    steps_per_epoch = max(1, n // batch_size)  # drop the ragged last batch: BatchNorm dislikes tiny ones
    total = epochs * steps_per_epoch
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warmup = max(1, min(total // 10, 3 * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: (step + 1) / warmup if step < warmup
        else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
    history = []
    bar = tqdm(range(epochs), desc="train multitask", unit="epoch", disable=not progress)
    for epoch in bar:
        perm = torch.randperm(n, device=device, generator=gen)
        sums: dict[str, float] = {}
        for step in range(steps_per_epoch):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            x = as_float_images(x_all[idx])
            x = augment_batch(x, pad_value=model.preprocess_config.pad_value, max_shift=max_shift, flip=flip,
                              generator=gen)
            out = model.loss(x, labels={c: y[idx] for c, y in y_all.items()}, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            sched.step()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
        record = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}}
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    model.eval()
    return history
