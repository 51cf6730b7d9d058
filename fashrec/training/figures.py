"""The two pictures every training run leaves behind, as in the paper's Figure 4.1.

- :func:`save_loss_curve`: train and test loss per epoch (Figure 4.1A), ``LOSS_CURVE_SIZE`` pixels.
- :func:`save_reconstructions`: a few test images on the top row, the model's reconstructions of them
  on the bottom row (Figure 4.1B), ``reconstructions_size(n)`` pixels.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state, no display) and
written atomically, so a crash never leaves a half-written PNG.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

DPI = 100
LOSS_CURVE_INCHES = (6.4, 4.0)
LOSS_CURVE_SIZE = (640, 400)  # width, height in pixels
_RECON_CELL_INCHES = 1.4


def reconstructions_size(n: int) -> tuple[int, int]:
    """Width and height in pixels of the reconstructions picture for ``n`` images."""
    return round(_RECON_CELL_INCHES * n * DPI), round(_RECON_CELL_INCHES * 2 * DPI + 40)


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> None:
    from fashrec.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)  # no bbox_inches="tight": the pixel size stays fixed


def save_loss_curve(path: str | os.PathLike, history: dict[str, Sequence[float]], *,
                    title: str = "Reconstruction loss", ylabel: str = "MSE per pixel value",
                    label_suffix: str = " loss") -> None:
    """Plot each series of ``history`` (one value per epoch, epochs counted from 1), in order, labelled
    "<name><label_suffix>" (" loss"): usually ``train`` and ``test``."""
    fig = _figure(*LOSS_CURVE_INCHES)
    ax = fig.add_subplot(1, 1, 1)
    styles = ("-o", "-s", "--^", ":v")
    for i, (name, values) in enumerate(history.items()):
        values = list(values)
        if values:
            ax.plot(range(1, len(values) + 1), values, styles[i % len(styles)], markersize=3, label=f"{name}{label_suffix}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if any(v > 0 for values in history.values() for v in values):
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def save_reconstructions(path: str | os.PathLike, originals: torch.Tensor, reconstructions: torch.Tensor, *,
                         title: str = "original (top) vs reconstruction (bottom)") -> None:
    """``originals`` and ``reconstructions`` are ``(n, 3, H, W)`` in [0, 1]; originals on top."""
    if originals.shape != reconstructions.shape or originals.ndim != 4 or originals.shape[1] != 3:
        raise ValueError(f"save_reconstructions: need two (n, 3, H, W) batches of the same shape, got "
                         f"{tuple(originals.shape)} and {tuple(reconstructions.shape)}")
    n = originals.shape[0]
    width, height = reconstructions_size(n)
    fig = _figure(width / DPI, height / DPI)
    fig.suptitle(title, fontsize=9)
    for row, batch in enumerate((originals, reconstructions)):
        for col in range(n):
            ax = fig.add_subplot(2, n, row * n + col + 1)
            ax.imshow(batch[col].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel("original" if row == 0 else "reconstruction", fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.99, top=(height - 30) / height, bottom=0.01, wspace=0.05, hspace=0.08)
    _save(fig, path)
