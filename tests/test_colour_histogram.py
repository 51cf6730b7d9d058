"""fashrec.models.colour_histogram against its first implementation, kept here verbatim as the reference:
real preprocessed photos on white and black padding, random pixels, and the awkward cases (no padding,
nothing but padding, a padding-coloured column inside the photo, tiny photos, every bin count)."""
import pytest
import torch
import torch.nn.functional as F

import fashrec
from fashrec.models.colour_histogram import colour_histogram


def reference_histogram(x: torch.Tensor, bins: int, pad: float) -> torch.Tensor:
    """``MultiTaskCNN.colour_histogram`` as shipped with the stem_stride=2 default (commit 3b8e337)."""
    b = bins
    n, _, hgt, wid = x.shape
    is_pad = (x - pad).abs().amax(1) < 1e-3  # (N, H, W)
    pad_cols = is_pad.all(1, keepdim=True)  # (N, 1, W)
    pad_rows = is_pad.all(2, keepdim=True)  # (N, H, 1)
    inside = ~(pad_cols | pad_rows)
    rows = inside.any(2)
    cols = inside.any(1)
    idx_h = torch.arange(hgt, device=x.device)
    idx_w = torch.arange(wid, device=x.device)
    big = hgt + wid
    top = torch.where(rows, idx_h, big).amin(1)
    bottom = torch.where(rows, idx_h, -1).amax(1)
    left = torch.where(cols, idx_w, big).amin(1)
    right = torch.where(cols, idx_w, -1).amax(1)
    near_h = ((idx_h[None] - top[:, None]) < 2) | ((bottom[:, None] - idx_h[None]) < 2)
    near_w = ((idx_w[None] - left[:, None]) < 2) | ((right[:, None] - idx_w[None]) < 2)
    border = inside & (near_h[:, :, None] | near_w[:, None, :])
    pix = x.permute(0, 2, 3, 1).reshape(n, -1, 3)
    bmask = border.reshape(n, -1)
    bg = torch.where(bmask[..., None], pix, torch.nan).nanmedian(1).values  # (N, 3)
    bg = torch.where(bg.isnan(), torch.ones_like(bg), bg)
    dist = (pix - bg[:, None]).norm(dim=2)
    weight = (dist / 0.15).clamp(0, 1) * inside.reshape(n, -1) + 1e-3 * inside.reshape(n, -1)
    centres = (torch.arange(b, device=x.device, dtype=x.dtype) + 0.5) / b
    member = (1 - (pix[..., None] - centres).abs() * b).clamp(min=0)  # (N, P, 3, b)
    member = member / member.sum(-1, keepdim=True).clamp(min=1e-8)
    joint = torch.einsum("np,npi,npj,npk->nijk", weight, member[:, :, 0], member[:, :, 1], member[:, :, 2])
    hist = joint.reshape(n, -1)
    hist = hist / hist.sum(1, keepdim=True).clamp(min=1e-8)
    return F.normalize(hist.sqrt(), dim=1)


def assert_same(x, bins, pad):
    got = colour_histogram(x, bins=bins, pad_value=pad)
    want = reference_histogram(x, bins, pad)
    assert got.shape == want.shape == (x.shape[0], bins ** 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def photos():
    paths = sorted((fashrec.SAMPLE_DIR / "images").rglob("*.jpg"))[:48]
    assert len(paths) == 48
    return paths


@pytest.mark.parametrize("pad", [1.0, 0.0])
@pytest.mark.parametrize("bins", [2, 4])
def test_real_photos_get_the_reference_histogram(photos, bins, pad):
    x = fashrec.preprocess_batch(photos, {"pad_value": pad})
    assert_same(x, bins, pad)
    # and a landscape fit (padding above and below), as other catalogues' photos get
    wide = fashrec.preprocess_batch(photos[:8], {"pad_value": pad, "resize_height": 30, "resize_width": 64})
    assert_same(wide, bins, pad)


@pytest.mark.parametrize("bins", [1, 2, 3, 5])
def test_random_pixels_get_the_reference_histogram(bins):
    g = torch.Generator().manual_seed(bins)
    x = torch.rand(17, 3, 64, 64, generator=g)
    assert_same(x, bins, 1.0)
    quantised = torch.randint(0, 256, (9, 3, 32, 32), generator=g).float() / 255  # ties in the median
    assert_same(quantised, bins, 0.0)


def test_awkward_layouts_get_the_reference_histogram():
    g = torch.Generator().manual_seed(7)
    x = torch.ones(6, 3, 64, 64)
    x[0, :, :, 10:53] = torch.rand(3, 64, 43, generator=g)  # an ordinary portrait photo on white padding
    x[1, :, :, 10:53] = torch.rand(3, 64, 43, generator=g)
    x[1, :, :, 30] = 1.0  # a white column inside the photo counts as padding
    x[1, 2, 5, :] = 1.0  # and a row whose only non-white channels are R and G does not
    # x[2]: nothing but padding: no border, background white, every weight zero
    x[3, :, 31:33, 31:33] = torch.rand(3, 2, 2, generator=g)  # a 2 x 2 photo: its border is all of it
    x[4, :, 20, 20] = 0.3  # a single pixel
    x[5] = torch.rand(3, 64, 64, generator=g)  # no padding at all
    for bins in (1, 2, 4):
        assert_same(x, bins, 1.0)
    assert_same(torch.zeros(3, 3, 16, 16), 2, 0.0)  # all padding on black
    assert_same(torch.rand(1, 3, 8, 5, generator=g), 3, 0.5)  # one small, non-square image


def test_the_histogram_describes_the_garment_not_the_background():
    x = torch.ones(2, 3, 64, 64)  # white padding + light background
    x[:, :, :, 10:53] = 0.9
    x[0, :, 20:40, 20:40] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a red garment
    x[1, :, 25:30, 25:30] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # a much smaller one
    h = colour_histogram(x, bins=4, pad_value=1.0)
    red_bin = 3 * 16 + 0 * 4 + 0  # r in the top bin, g and b in the bottom one
    assert h[0].argmax() == red_bin and h[1].argmax() == red_bin
    torch.testing.assert_close(h.norm(dim=1), torch.ones(2))


def test_bad_shapes_and_bins_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        colour_histogram(torch.rand(3, 64, 64), bins=2, pad_value=1.0)
    with pytest.raises(ValueError, match="bins must be positive"):
        colour_histogram(torch.rand(1, 3, 8, 8), bins=0, pad_value=1.0)


def test_the_model_reads_its_histogram_from_this_module():
    model = fashrec.MultiTaskCNN(classes={"product_type_name": ["a", "b"], "colour_group_name": ["c", "d"]},
                                 focus_columns={"shape": "product_type_name", "colour": "colour_group_name"},
                                 widths=(4,), head_dim=4, colour_histogram_bins=3, preprocess={"pad_value": 1.0})
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.colour_histogram(x), reference_histogram(x, 3, 1.0), rtol=1e-5, atol=1e-5)
