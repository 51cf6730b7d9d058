"""A model made ready for fast inference: BatchNorm folded, every focus in one call, a choice of runtime.

    fast = for_inference(model)                       # an eval-mode copy; ``model`` itself is untouched
    fast.embed(x)                                     # model.embed(x) to float32 rounding (~1e-6)

    embed = Embedder(model, backend="torch", threads=1)
    embed(x)                                          # {focus: (N, D)}: model.embed_focuses(x), ~1e-6

Folding (``torch.nn.utils.fusion.fuse_conv_bn_eval``) rewrites ``conv -> BatchNorm`` (running statistics,
eval mode) as one convolution with rescaled weights and a bias: the same function in exact arithmetic,
one pass over the activations instead of two. Models without BatchNorm (``ConvAE``, ``ConvVAE``) come
back as a plain copy and embed bit for bit as before. The copy's ``weights_hash`` differs from the
original's: identify an index by the original model.

:class:`Embedder` is what ``fashrec embed`` runs. It embeds every focus of a batch with one pass of the
network (``embed_focuses``) and runs the network (the model's ``network_method``) on one of
:data:`BACKENDS`:

- ``"torch"``: on a CPU, weights and activations in channels-last layout, which oneDNN's convolutions
  run about 1.5x faster than the default layout on this model;
- ``"onnx"``: ONNX Runtime (``pip install 'fashrec[onnx]'``, :mod:`fashrec.models.onnx_runtime`), which
  runs the network of the default model about 1.3x faster again.

The read-out around the network (flip TTA as the model's ``flip_tta`` says, the colour histogram,
normalising and mixing the focuses) is the model's own torch code in both cases, so both give the
vectors of ``model.embed`` to float32 rounding.
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

BACKENDS = ("torch", "onnx")


def for_inference(model: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """An eval-mode deep copy of ``model`` with every ``Conv2d -> BatchNorm2d`` pair of a ``Sequential``
    folded into one ``Conv2d`` (the BatchNorm becomes ``Identity``); gradients off; its 4-d weights
    in channels-last layout if ``channels_last``."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    for sequential in [m for m in fast.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        for name, after in zip(names, names[1:]):
            conv, bn = sequential._modules[name], sequential._modules[after]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                sequential._modules[name] = fuse_conv_bn_eval(conv, bn)
                sequential._modules[after] = nn.Identity()
    return fast.to(memory_format=torch.channels_last) if channels_last else fast


def check_backend(backend: str) -> None:
    """ValueError for an unknown backend; MissingExtra (``pip install 'fashrec[onnx]'``) for one whose
    runtime is not installed. Cheap: jobs call it before they start."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    if backend == "onnx":
        from fashrec.models.onnx_runtime import require_runtime  # imports no runtime itself: cheap

        require_runtime()


class Embedder:
    """Every focus of a preprocessed batch in one call (``model.embed_focuses``), BatchNorm folded, the
    network on ``backend``, with ``threads`` intra-op threads (None: torch's current setting)."""

    def __init__(self, model: nn.Module, *, backend: str = "torch", threads: int | None = None) -> None:
        check_backend(backend)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        self.backend = backend
        self.threads = threads
        self.model = for_inference(model, channels_last=backend == "torch" and on_cpu)
        self.focuses = tuple(getattr(model, "focuses", ("overall",)))
        self.network = None  # the model's own torch network, in its default layout
        if backend == "onnx":
            from fashrec.models.onnx_runtime import OnnxNetwork

            self.network = OnnxNetwork(self.model, threads=threads or torch.get_num_threads())
        elif on_cpu:
            method = getattr(self.model, self.model.network_method)
            self.network = lambda x: method(x.contiguous(memory_format=torch.channels_last))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # the read-out (histogram, TTA, mixing) is torch on either backend: both keep to ``threads``
        with torch.no_grad(), torch_threads(self.threads):
            return self.model.embed_focuses(x, network=self.network)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's intra-op threads set to ``n`` (None: left alone) for the block, then put back."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
