"""A model made ready for fast inference: each BatchNorm folded into the convolution before it.

    fast = for_inference(model)      # an eval-mode copy; ``model`` itself is untouched
    fast.embed(x)                    # model.embed(x) to float32 rounding (~1e-6), about 2x faster on a CPU

Folding (``torch.nn.utils.fusion.fuse_conv_bn_eval``) rewrites ``conv -> BatchNorm`` (running statistics,
eval mode) as one convolution with rescaled weights and a bias: the same function in exact arithmetic,
one pass over the activations instead of two. Models without BatchNorm (``ConvAE``, ``ConvVAE``) come
back as a plain copy and embed bit for bit as before. The copy's ``weights_hash`` differs from the
original's: identify an index by the original model.
"""
from __future__ import annotations

import copy

from torch import nn


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``model`` with every ``Conv2d -> BatchNorm2d`` pair of a ``Sequential``
    folded into one ``Conv2d`` (the BatchNorm becomes ``Identity``); gradients off."""
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
    return fast
