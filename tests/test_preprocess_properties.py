"""preprocess(), property-based: geometry and values over random sizes, aspect ratios, modes and configs.

The reference is written from the documented steps, in plain Python: the photo is fitted inside the
resize box keeping its aspect ratio (the limiting side becomes the box side, the other is the exact
rational size rounded half up, clamped to [1, box side]), pasted centred (offsets floored) on a square
of ``pad_value``, and divided by 255. A uniform colour stays exactly uniform through the resize, so for
uniform images every output value is known exactly; for random content the values stay within the
source's range (bilinear resampling averages).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fashrec.data.preprocess import PreprocessConfig, fitted_size, preprocess, preprocess_batch

# 1 .. 700 pixels a side, skewed towards small sizes; aspect ratios from 1:700 to 700:1
sides = st.integers(1, 40) | st.integers(1, 700)


@st.composite
def configs(draw):
    size = draw(st.integers(1, 96))
    return PreprocessConfig(image_size=size, resize_height=draw(st.integers(1, size)),
                            resize_width=draw(st.integers(1, size)),
                            pad_value=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)))


def _round_half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2))  # x >= 0: int() floors


def reference_fit(width: int, height: int, cfg: PreprocessConfig) -> tuple[int, int]:
    bw, bh = cfg.resize_width, cfg.resize_height
    if Fraction(width, height) >= Fraction(bw, bh):  # relatively wider than the box: width limits
        w, h = bw, _round_half_up(Fraction(height * bw, width))
    else:
        w, h = _round_half_up(Fraction(width * bh, height)), bh
    return max(1, min(bw, w)), max(1, min(bh, h))


def expected_tensor(cfg: PreprocessConfig, box: tuple[int, int], rgb: tuple[int, int, int]) -> torch.Tensor:
    s, (w, h) = cfg.image_size, box
    out = torch.full((3, s, s), float(cfg.pad_value), dtype=torch.float32)
    top, left = (s - h) // 2, (s - w) // 2
    out[:, top:top + h, left:left + w] = torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / np.float32(255.0)
    return out


def _u16_to_u8(v: int) -> int:
    return _round_half_up(Fraction(v, 257))


# (PIL mode, how to draw a uniform value, the RGB colour it must become)
UNIFORM = {
    "RGB": (st.tuples(*[st.integers(0, 255)] * 3), lambda v: v),
    "L": (st.integers(0, 255), lambda v: (v, v, v)),
    "1": (st.sampled_from([0, 255]), lambda v: (v, v, v)),
    "I;16": (st.integers(0, 65535), lambda v: (_u16_to_u8(v),) * 3),
    "F": (st.floats(0.0, 1.0, width=32), lambda v: (int(np.rint(np.float64(np.float32(v)) * 255.0)),) * 3),
    "RGBA_opaque": (st.tuples(*[st.integers(0, 255)] * 3), lambda v: v),
    "RGBA_clear": (st.tuples(*[st.integers(0, 255)] * 3), lambda v: (255, 255, 255)),  # on white
    "LA_clear": (st.integers(0, 255), lambda v: (255, 255, 255)),
}


def _uniform_image(mode: str, size: tuple[int, int], value) -> Image.Image:
    if mode == "RGBA_opaque":
        return Image.new("RGBA", size, (*value, 255))
    if mode == "RGBA_clear":
        return Image.new("RGBA", size, (*value, 0))
    if mode == "LA_clear":
        return Image.new("LA", size, (value, 0))
    return Image.new(mode, size, value)


@st.composite
def uniform_cases(draw):
    mode = draw(st.sampled_from(sorted(UNIFORM)))
    value_strategy, to_rgb = UNIFORM[mode]
    value = draw(value_strategy)
    return mode, (draw(sides), draw(sides)), value, to_rgb(value)


@settings(max_examples=300, deadline=None)
@given(case=uniform_cases(), cfg=configs())
def test_uniform_images_give_exactly_the_fitted_box_of_their_colour(case, cfg):
    mode, (width, height), value, rgb = case
    box = reference_fit(width, height, cfg)
    assert fitted_size(width, height, cfg) == box
    t = preprocess(_uniform_image(mode, (width, height), value), cfg)
    assert t.dtype == torch.float32 and t.shape == (3, cfg.image_size, cfg.image_size)
    assert torch.equal(t, expected_tensor(cfg, box, rgb))


@settings(max_examples=120, deadline=None)
@given(width=sides, height=sides, cfg=configs(), channels=st.sampled_from([None, 3, 4]),
       seed=st.integers(0, 2**32 - 1), as_array=st.booleans())
def test_random_images_keep_the_pad_and_the_source_range(width, height, cfg, channels, seed, as_array):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    lo, hi = sorted(rng.integers(0, 256, size=2))
    a = rng.integers(lo, hi + 1, size=shape, dtype=np.uint8)
    if channels == 4:
        a[..., 3] = 255  # opaque: the colour range is the source's
    t = preprocess(a if as_array else Image.fromarray(a), cfg)
    s = cfg.image_size
    assert t.shape == (3, s, s) and t.dtype == torch.float32
    w, h = reference_fit(width, height, cfg)
    top, left = (s - h) // 2, (s - w) // 2
    inside = torch.zeros(s, s, dtype=torch.bool)
    inside[top:top + h, left:left + w] = True
    assert torch.all(t[:, ~inside] == np.float32(cfg.pad_value))
    content = t[:, inside]
    assert float(content.min()) >= lo / 255 - 1e-7 and float(content.max()) <= hi / 255 + 1e-7
    assert torch.all(content * 255 == torch.round(content * 255))  # whole 8-bit levels
    if channels is None:  # gray stays gray
        assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.tuples(sides, sides), min_size=1, max_size=4), cfg=configs())
def test_a_batch_is_the_stack_of_single_calls(sizes, cfg):
    rng = np.random.default_rng(len(sizes))
    images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for w, h in sizes]
    batch = preprocess_batch(images, cfg)
    assert torch.equal(batch, torch.stack([preprocess(im, cfg) for im in images]))
