"""A variational autoencoder of the same shape as the paper's ConvAE (Yang, sections 3.2-3.3).

The encoder's last convolution is doubled into two heads, ``mu`` and ``logvar``; training samples
``z = mu + exp(logvar / 2) * eps`` (the reparameterisation trick). ``embed`` and ``reconstruct`` use
``mu`` — never a sample — so recommendations are deterministic.

Loss (per input value, so ``mse`` is comparable with the AE's)::

    loss = mean((x - x_hat)^2) + beta * KL(N(mu, sigma) || N(0, I)) / (3 * S * S)

i.e. the paper's equation (3), sum of squared errors + beta * KL, divided by the number of input values.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fashrec.models.conv_blocks import LatentGeometry, Unflatten, conv_stack, deconv_stack
from fashrec.models.hub_model import HubModel
from fashrec.data.preprocess import PreprocessConfig


class ConvVAE(LatentGeometry, HubModel):
    """Convolutional VAE. ``embed(x)`` returns mu flattened: ``(N, 2048)`` for the default shape."""

    def __init__(self, *, channels: Sequence[int] = (16, 8), latent_dim: int | None = None,
                 preprocess: dict | PreprocessConfig | None = None):
        super().__init__(preprocess=preprocess)
        self._set_geometry(channels, latent_dim, self.preprocess_config.image_size)
        body = self.channels[:-1]
        self.encoder = conv_stack(body, last_activation=nn.ReLU()) if body else nn.Identity()
        cin = body[-1] if body else 3
        if self.latent_dim is None:
            self.mu = nn.Conv2d(cin, self.channels[-1], kernel_size=3, stride=2, padding=1)
            self.logvar = nn.Conv2d(cin, self.channels[-1], kernel_size=3, stride=2, padding=1)
        else:
            flat = self.flat_dim
            self.features = nn.Sequential(
                nn.Conv2d(cin, self.channels[-1], kernel_size=3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
            self.mu = nn.Linear(flat, self.latent_dim)
            self.logvar = nn.Linear(flat, self.latent_dim)
            self.from_code = nn.Sequential(nn.Linear(self.latent_dim, flat), nn.ReLU(), Unflatten(self.feature_shape))
        self.decoder = deconv_stack(self.channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x)."""
        h = self.encoder(x)
        if self.latent_dim is not None:
            h = self.features(h)
        return self.mu(h), self.logvar(h).clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_dim is not None:
            z = self.from_code(z)
        return self.decoder(z)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, mu, logvar)``; samples z in training mode, uses mu in eval mode."""
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def _code(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def loss(self, x: torch.Tensor, *, beta: float = 1.0, **_) -> dict[str, torch.Tensor]:
        recon, mu, logvar = self(x)
        mse = F.mse_loss(recon, x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]  # per image, summed over z
        total = mse + beta * kl / x[0].numel()
        return {"loss": total, "mse": mse.detach(), "kl": kl.detach()}
