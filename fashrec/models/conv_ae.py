"""The paper's convolutional autoencoder (Yang, Table 3.3), with its sizes as keyword arguments.

``ConvAE()`` with no arguments is exactly Table 3.3::

    Conv2d 3->16 (k3, s2, p1), ReLU, Conv2d 16->8 (k3, s2, p1), Sigmoid          # encoder: 8 x 16 x 16
    ConvTranspose2d 8->16 (k3, s2, p1, op1), ReLU, ConvTranspose2d 16->3 (same), Sigmoid

Its embedding is the flattened latent: 8 x 16 x 16 = 2,048 values. ``channels`` makes it wider or
deeper; ``latent_dim`` adds a linear bottleneck (a linear code, no activation) for a compact embedding
(e.g. 128 values).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fashrec.models.conv_blocks import LatentGeometry, Unflatten, conv_stack, deconv_stack
from fashrec.models.hub_model import HubModel
from fashrec.data.preprocess import PreprocessConfig


class ConvAE(LatentGeometry, HubModel):
    """Convolutional autoencoder. ``embed(x)`` returns ``(N, embedding_dim)``: 2,048 for the paper's model."""

    def __init__(self, *, channels: Sequence[int] = (16, 8), latent_dim: int | None = None,
                 preprocess: dict | PreprocessConfig | None = None):
        super().__init__(preprocess=preprocess)
        self._set_geometry(channels, latent_dim, self.preprocess_config.image_size)
        # The paper's latent is the sigmoid conv map. A linear bottleneck's code stays linear (like a VAE's mu):
        # a sigmoid on it saturates within ~20 Adam steps, every image gets the same code and the decoder
        # learns the mean image (measured: P@10 at chance, docs/embeddings.md).
        self.encoder = conv_stack(self.channels, last_activation=nn.Sigmoid() if latent_dim is None else nn.ReLU())
        self.decoder = deconv_stack(self.channels)
        if self.latent_dim is not None:
            self.to_code = nn.Sequential(nn.Flatten(), nn.Linear(self.flat_dim, self.latent_dim))
            self.from_code = nn.Sequential(nn.Linear(self.latent_dim, self.flat_dim), nn.ReLU(),
                                           Unflatten(self.feature_shape))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code: ``(N, C, h, w)`` for the paper's model, ``(N, latent_dim)`` with a bottleneck."""
        h = self.encoder(x)
        return self.to_code(h) if self.latent_dim is not None else h

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_dim is not None:
            z = self.from_code(z)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def _code(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def loss(self, x: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        """Per-pixel mean squared error (the paper's reconstruction loss, averaged over values in [0, 1])."""
        mse = F.mse_loss(self(x), x)
        return {"loss": mse, "mse": mse.detach()}
