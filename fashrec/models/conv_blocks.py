"""Encoder and decoder stacks shared by ConvAE and ConvVAE.

Every convolution is the paper's: kernel 3, stride 2, padding 1, so each layer halves the side
(64 -> 32 -> 16 ...); transposed convolutions use output_padding 1 to double it back exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def check_channels(channels: Sequence[int], image_size: int) -> list[int]:
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
    if image_size % (2 ** len(channels)):
        raise ValueError(f"image_size {image_size} is not divisible by 2**{len(channels)} (one halving per layer)")
    return channels


def conv_stack(channels: Sequence[int], *, last_activation: nn.Module | None) -> nn.Sequential:
    """3 -> channels[0] -> ... -> channels[-1], ReLU between layers, ``last_activation`` at the end."""
    layers: list[nn.Module] = []
    widths = [3, *channels]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1))
        last = i == len(channels) - 1
        if not last:
            layers.append(nn.ReLU(inplace=True))
        elif last_activation is not None:
            layers.append(last_activation)
    return nn.Sequential(*layers)


def deconv_stack(channels: Sequence[int]) -> nn.Sequential:
    """Mirror of ``conv_stack``: channels[-1] -> ... -> channels[0] -> 3, ReLU between, Sigmoid at the end."""
    layers: list[nn.Module] = []
    widths = [*reversed(list(channels)), 3]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1))
        layers.append(nn.Sigmoid() if i == len(widths) - 2 else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Unflatten(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *self.shape)


class LatentGeometry:
    """What ConvAE and ConvVAE share about their code: the checked widths (``channels``), the optional
    linear code size (``latent_dim``), the conv code's shape (``feature_shape``) and ``embedding_dim``."""

    def _set_geometry(self, channels: Sequence[int], latent_dim: int | None, image_size: int) -> None:
        self.channels = check_channels(channels, image_size)
        if latent_dim is not None and int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.latent_dim = None if latent_dim is None else int(latent_dim)
        side = image_size // 2 ** len(self.channels)
        self.feature_shape = (self.channels[-1], side, side)

    @property
    def flat_dim(self) -> int:
        """Values in the conv code (8 x 16 x 16 = 2,048 for the paper's model)."""
        c, h, w = self.feature_shape
        return c * h * w

    @property
    def embedding_dim(self) -> int:
        return self.latent_dim if self.latent_dim is not None else self.flat_dim
