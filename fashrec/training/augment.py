"""Training-time views of a product photo, done on the tensor's device: no DataLoader, no PIL.

- ``augment_batch``: a horizontal mirror and a shift of a few pixels (filled with the pad value): what a
  shopper calls "the same product".
- ``colour_jitter``: for a share of the images, a random permutation of the RGB channels, a random
  blend towards grey and a random gamma. The studio background (white, or the pad value) stays what it
  was. A jittered image no longer has its colour label, so the caller drops it for those images; what
  it keeps is the garment's shape, which is how two colourways of one design come to look alike.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def as_float_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) or float images (0..1) -> float32 in [0, 1]."""
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


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


def colour_jitter(x: torch.Tensor, probability: float, *, generator: torch.Generator | None = None,
                  background: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, jittered)``: each image is recoloured with ``probability``; ``jittered`` (N,) says which.

    Pixels within 0.02 of ``background`` in every channel keep their value, so the studio background
    and the padding do not change colour with the garment.
    """
    n = x.shape[0]
    dev = x.device
    jittered = torch.rand(n, device=dev, generator=generator) < probability
    if probability <= 0 or not jittered.any():
        return x, jittered
    order = torch.argsort(torch.rand(n, 3, device=dev, generator=generator), dim=1)
    recoloured = x.gather(1, order[:, :, None, None].expand_as(x))
    grey = recoloured.mean(dim=1, keepdim=True)
    mix = torch.rand(n, 1, 1, 1, device=dev, generator=generator)
    recoloured = mix * grey + (1 - mix) * recoloured
    gamma = torch.exp((torch.rand(n, 1, 1, 1, device=dev, generator=generator) - 0.5) * 1.2)
    recoloured = recoloured.clamp(0, 1) ** gamma
    keep = ((x - background).abs() < 0.02).all(dim=1, keepdim=True)
    recoloured = torch.where(keep, x, recoloured)
    return torch.where(jittered[:, None, None, None], recoloured, x), jittered
