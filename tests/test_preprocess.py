"""preprocess(): geometry against hand-computed references, every input kind, every PIL mode, bad input."""
from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fashrec.data.preprocess import (
    MAX_PIXELS,
    ImageError,
    PreprocessConfig,
    fitted_size,
    preprocess,
    preprocess_batch,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def halves(width=360, height=540, left=RED, right=BLUE) -> Image.Image:
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = left
    a[:, width // 2 :] = right
    return Image.fromarray(a)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def box_of(t: torch.Tensor, pad: float):
    """(top, bottom, left, right) rows/cols (inclusive) where any channel differs from the pad."""
    inside = (t != pad).any(dim=0)
    rows = torch.nonzero(inside.any(dim=1)).flatten()
    cols = torch.nonzero(inside.any(dim=0)).flatten()
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()


# --- geometry against hand-computed references ------------------------------------------------------


@pytest.mark.parametrize("pad", [0.0, 1.0])
def test_red_blue_halves_hand_reference(pad):
    t = preprocess(halves(), {"pad_value": pad})
    assert t.shape == (3, 64, 64) and t.dtype == torch.float32 and t.is_contiguous()
    # 360x540 -> 43 wide x 64 high, left offset floor((64 - 43) / 2) = 10: columns 10..52 are the photo.
    assert torch.all(t[:, :, :10] == pad) and torch.all(t[:, :, 53:] == pad)
    assert torch.all(t[0, :, 10] == 1.0) and torch.all(t[1:, :, 10] == 0.0)
    assert torch.all(t[2, :, 52] == 1.0) and torch.all(t[:2, :, 52] == 0.0)
    assert t.min() >= 0.0 and t.max() <= 1.0


@pytest.mark.parametrize(
    "size, expect_wh",
    [((360, 540), (43, 64)), ((540, 360), (43, 29)), ((43, 64), (43, 64)), ((100, 100), (43, 43)),
     ((10, 1000), (1, 64)), ((1000, 10), (43, 1)), ((1, 1), (43, 43)), ((200, 301), (43, 64))],
)
def test_uniform_colour_fills_exact_box(size, expect_wh):
    colour = (13, 200, 77)
    t = preprocess(Image.new("RGB", size, colour))
    w, h = expect_wh
    assert fitted_size(*size) == (w, h)
    left, top = (64 - w) // 2, (64 - h) // 2
    expected = torch.zeros(3, 64, 64)
    expected[:, top : top + h, left : left + w] = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
    assert torch.equal(t, expected)


def test_wide_image_is_centred_vertically():
    t = preprocess(Image.new("RGB", (540, 360), (255, 255, 255)))
    # fit in 64 high x 43 wide: width limits -> 43 wide, 360 * 43 / 540 = 28.67 -> 29 high;
    # top = floor((64 - 29) / 2) = 17, left = floor((64 - 43) / 2) = 10.
    assert box_of(t, 0.0) == (17, 17 + 29 - 1, 10, 10 + 43 - 1)


def test_other_config_sizes():
    t = preprocess(halves(), PreprocessConfig(image_size=32, resize_height=30, resize_width=20, pad_value=0.5))
    assert t.shape == (3, 32, 32)
    assert box_of(t, 0.5) == (1, 30, 6, 25)  # 360x540 in 30x20 -> 20x30, offsets (32-20)//2=6, (32-30)//2=1


def test_real_hm_jpeg_equals_manual_pil(hm_dir):
    path = sorted((hm_dir / "images").glob("*/*.jpg"))[0]
    with Image.open(path) as im:
        assert im.size == (360, 540)
        small = np.asarray(im.convert("RGB").resize((43, 64), Image.BILINEAR, reducing_gap=None), np.float32)
    expected = np.zeros((64, 64, 3), np.float32)
    expected[:, 10:53] = small / 255
    assert torch.equal(preprocess(path), torch.from_numpy(expected).permute(2, 0, 1))


# --- input kinds -------------------------------------------------------------------------------------


def test_every_input_kind_gives_same_tensor(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)
    png = encode(Image.fromarray(rgb), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(png)
    ref = preprocess(Image.fromarray(rgb))
    rgba = np.concatenate([rgb, np.full((90, 60, 1), 255, np.uint8)], axis=2)
    same = {
        "str": str(path),
        "Path": path,
        "bytes": png,
        "bytearray": bytearray(png),
        "memoryview": memoryview(png),
        "BytesIO": io.BytesIO(png),
        "open file": open(path, "rb"),
        "uint8": rgb,
        "uint16": rgb.astype(np.uint16) * 257,
        "float32": rgb.astype(np.float32) / 255,
        "float64": rgb.astype(np.float64) / 255,
        "RGBA opaque": rgba,
        "non-contiguous": np.asfortranarray(rgb),
    }
    for name, image in same.items():
        assert torch.equal(preprocess(image), ref), name
    same["open file"].close()


def test_gray_inputs_agree():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    ref = preprocess(Image.fromarray(np.stack([gray] * 3, axis=2)))
    for image in (gray, gray[:, :, None], Image.fromarray(gray), gray.astype(np.float32) / 255):
        assert torch.equal(preprocess(image), ref)
    b = gray > 128
    assert torch.equal(preprocess(b), preprocess(b.astype(np.uint8) * 255))


def test_uint16_and_float_rounding_within_one_level():
    rng = np.random.default_rng(2)
    u16 = rng.integers(0, 65536, (64, 43, 3), dtype=np.uint16)
    ref = torch.from_numpy(u16.astype(np.float64) / 65535).permute(2, 0, 1).float()
    out = preprocess(u16)[:, :, 10:53]  # exact box size: no resampling
    assert (out - ref).abs().max() <= 0.5 / 255 + 1e-6
    f = rng.random((64, 43, 3))
    assert (preprocess(f)[:, :, 10:53] - torch.from_numpy(f).permute(2, 0, 1).float()).abs().max() <= 0.5 / 255 + 1e-6


# --- PIL modes ---------------------------------------------------------------------------------------


def center(t):
    return t[:, 32, 32]


def test_rgba_transparent_is_white_not_black():
    a = np.zeros((60, 40, 4), np.uint8)
    a[..., 0] = 255  # red where opaque
    a[:30, :, 3] = 255  # top half opaque, bottom half fully transparent
    png = encode(Image.fromarray(a, "RGBA"), "PNG")
    t = preprocess(png)  # 40x60 -> 43x64
    assert torch.equal(t[:, 5, 32], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(t[:, 60, 32], torch.ones(3))
    assert torch.equal(preprocess(a), t)  # numpy RGBA composites the same way


def test_half_transparent_blends_with_white():
    im = Image.new("RGBA", (43, 64), (0, 0, 0, 128))
    assert torch.allclose(center(preprocess(im)), torch.full((3,), 127 / 255), atol=1.01 / 255)


def test_la_and_pa_and_p_with_transparency():
    la = Image.new("LA", (43, 64), (0, 0))  # black, fully transparent -> white
    assert torch.equal(center(preprocess(encode(la, "PNG"))), torch.ones(3))
    p = Image.new("P", (43, 64), 1)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.info["transparency"] = 1
    assert torch.equal(center(preprocess(p)), torch.ones(3))
    p_opaque = Image.new("P", (43, 64), 1)
    p_opaque.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    assert torch.equal(center(preprocess(encode(p_opaque, "PNG"))), torch.tensor([0.0, 1.0, 0.0]))
    gif = encode(p, "GIF", transparency=1)
    assert torch.equal(center(preprocess(gif)), torch.ones(3))
    pa = p_opaque.convert("PA")
    assert torch.equal(center(preprocess(pa)), torch.tensor([0.0, 1.0, 0.0]))


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (43, 64), (0, 255, 255, 0))  # red
    jpg = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(jpg)).mode == "CMYK"
    assert torch.allclose(center(preprocess(jpg)), torch.tensor([1.0, 0.0, 0.0]), atol=3 / 255)


def test_ycbcr_and_mode_1():
    ycc = Image.new("RGB", (43, 64), (10, 120, 240)).convert("YCbCr")
    assert torch.allclose(center(preprocess(ycc)), torch.tensor([10, 120, 240]) / 255, atol=3 / 255)
    one = Image.new("1", (43, 64), 1)
    assert torch.equal(center(preprocess(encode(one, "PNG"))), torch.ones(3))
    assert torch.equal(center(preprocess(Image.new("1", (43, 64), 0))), torch.zeros(3))


def test_16_bit_grayscale_png_scaled_not_clipped():
    a = np.zeros((64, 43), np.uint16)
    a[:32] = 65535
    a[32:] = 32768
    png = encode(Image.fromarray(a), "PNG")
    im = Image.open(io.BytesIO(png))
    assert im.mode.startswith("I")
    t = preprocess(png)
    assert torch.equal(t[:, 10, 32], torch.ones(3))
    assert torch.allclose(t[:, 50, 32], torch.full((3,), 0.5), atol=0.5 / 255 + 1e-6)
    big = Image.frombytes("I;16B", (43, 64), a.astype(">u2").tobytes())
    assert torch.equal(preprocess(big), t)
    assert torch.equal(preprocess(Image.fromarray(a.astype(np.int32), "I")), t)


def test_mode_i_32_bit_and_f():
    i32 = Image.fromarray(np.full((64, 43), 65535, np.int32), "I")
    assert torch.equal(center(preprocess(i32)), torch.ones(3))
    with pytest.raises(ImageError, match="16-bit range"):
        preprocess(Image.fromarray(np.full((64, 43), 70000, np.int32), "I"))
    f = Image.fromarray(np.full((64, 43), 0.25, np.float32), "F")
    assert torch.allclose(center(preprocess(f)), torch.full((3,), 64 / 255))
    with pytest.raises(ImageError, match=r"expected \[0, 1\]"):
        preprocess(Image.fromarray(np.full((64, 43), 200.0, np.float32), "F"))


def test_exif_rotated_jpeg_comes_out_portrait(tmp_path):
    portrait = Image.new("RGB", (40, 60), RED)
    portrait.paste(BLUE, (0, 30, 40, 60))  # top red, bottom blue
    stored = portrait.transpose(Image.Transpose.ROTATE_90)  # 60x40 landscape on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    t = preprocess(path)
    assert box_of(t, 0.0) == (0, 63, 10, 52)  # portrait: full height, 43 wide
    assert t[0, 5, 32] > 0.95 and t[2, 5, 32] < 0.05  # top is red
    assert t[2, 58, 32] > 0.95 and t[0, 58, 32] < 0.05  # bottom is blue


def test_animated_gif_takes_first_frame():
    frames = [Image.new("P", (43, 64), i) for i in (1, 2)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert torch.equal(center(preprocess(buf.getvalue())), torch.tensor([1.0, 0.0, 0.0]))


# --- bad input ---------------------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched (with a correct CRC) to claim width x height."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture
def bad_files(tmp_path) -> dict[str, tuple[Path, str]]:
    """name -> (path, regex the message must match besides the path)."""
    jpg = encode(halves(), "JPEG", quality=90)
    png = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)), "PNG")
    files = {
        "truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated|cannot decode"),
        "empty.jpg": (b"", "empty"),
        "text.jpg": (b"this is not an image, it is a note\n" * 20, "not a readable image"),
        "random.bin": (np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes(), "not a readable image"),
        "bomb_header.png": (png_claiming(100_000, 100_000), "decompression bomb"),
        "bomb_mid.png": (png_claiming(9000, 9000), "decompression bomb"),
    }
    out = {}
    for name, (data, pattern) in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, pattern)
    return out


@pytest.mark.parametrize("name", ["truncated.jpg", "truncated.png", "empty.jpg", "text.jpg", "random.bin",
                                  "bomb_header.png", "bomb_mid.png"])
@pytest.mark.parametrize("as_kind", ["path", "bytes", "file object"])
def test_bad_files_raise_naming_source_and_problem(bad_files, name, as_kind):
    path, pattern = bad_files[name]
    if as_kind == "path":
        image, source = str(path), str(path)
    elif as_kind == "bytes":
        image, source = path.read_bytes(), "<bytes>"
    else:
        image, source = open(path, "rb"), f"<file object {path}>"
    with pytest.raises(ImageError) as err:
        preprocess(image)
    msg = str(err.value)
    assert msg.startswith(source), msg
    assert re.search(pattern, msg), msg
    if as_kind == "file object":
        image.close()


def test_real_decompression_bomb_png_mode_1(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(path)  # 81 Mpx but ~10 kB on disk
    assert path.stat().st_size < 100_000 and 9000 * 9000 > MAX_PIXELS
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=rf"^{path}: refused as a possible decompression bomb"):
        preprocess(path)
    assert Image.MAX_IMAGE_PIXELS == before  # the user's global is left alone


def test_truncated_refused_even_if_user_allows_truncation(bad_files):
    path, _ = bad_files["truncated.jpg"]
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageError, match="truncated"):
            preprocess(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        preprocess(missing)
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory"):
        preprocess(tmp_path)


@pytest.mark.parametrize(
    "image, pattern",
    [
        (np.zeros((0, 10, 3), np.uint8), r"^<array shape \(0, 10, 3\).*zero-size"),
        (np.full((4, 4, 3), np.nan, np.float32), r"^<array shape.*NaN"),
        (np.full((4, 4, 3), 1.5), r"^<array shape.*\[1\.5, 1\.5\]; expected \[0, 1\]"),
        (np.full((4, 4, 3), -0.1), r"^<array shape.*expected \[0, 1\]"),
        (np.zeros((4, 4, 5), np.uint8), r"^<array shape \(4, 4, 5\).*expected HxW"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"^<array shape \(2, 4, 4, 3\).*expected HxW"),
        (np.zeros((4, 4, 3), np.int64), r"^<array shape.*int64.*unsupported dtype"),
        (torch.rand(3, 64, 64), r"^<tensor shape \(3, 64, 64\)>.*not a torch tensor"),
        (None, r"^<None>: got None"),
        (12345, r"^<int>: unsupported input type"),
        (b"", r"^<bytes>: empty"),
        (io.BytesIO(b""), r"^<file object BytesIO>: empty"),
        (io.StringIO("text"), r"binary mode"),
        (Image.new("RGB", (0, 5)), r"^<PIL image>: zero-size"),
    ],
)
def test_bad_values_raise(image, pattern):
    with pytest.raises(ImageError, match=pattern):
        preprocess(image)


def test_image_error_is_value_error():
    assert issubclass(ImageError, ValueError)


# --- batch and config --------------------------------------------------------------------------------


def test_batch_matches_single_calls(tmp_path):
    images = [halves(), Image.new("RGB", (540, 360), (1, 2, 3)), np.full((10, 10), 0.5)]
    path = tmp_path / "a.png"
    halves(100, 50).save(path)
    images.append(path)
    for progress in (False, True):
        b = preprocess_batch(images, {"pad_value": 1.0}, progress=progress)
        assert b.shape == (4, 3, 64, 64) and b.dtype == torch.float32
        for i, im in enumerate(images):
            assert torch.equal(b[i], preprocess(im, {"pad_value": 1.0}))
    assert torch.equal(preprocess_batch(iter(images)), preprocess_batch(images))  # plain iterables too


def test_batch_empty_and_error_names_item():
    assert preprocess_batch([]).shape == (0, 3, 64, 64)
    assert preprocess_batch([], {"image_size": 32, "resize_height": 32, "resize_width": 20}).shape == (0, 3, 32, 32)
    with pytest.raises(ImageError, match=r"^item 1: <bytes>: empty"):
        preprocess_batch([halves(), b""])


def test_config_dict_equals_dataclass_and_unknown_key():
    d = {"image_size": 48, "resize_height": 40, "resize_width": 30, "pad_value": 1.0}
    assert PreprocessConfig.from_dict(d) == PreprocessConfig(**d)
    assert PreprocessConfig.from_dict(PreprocessConfig(**d).to_dict()) == PreprocessConfig(**d)
    assert torch.equal(preprocess(halves(), d), preprocess(halves(), PreprocessConfig(**d)))
    assert torch.equal(preprocess(halves()), preprocess(halves(), PreprocessConfig()))
    with pytest.raises(ValueError, match="imagesize"):
        preprocess(halves(), {"imagesize": 64})


# --- contracts pinned by mutation testing (docs/testing.md) -----------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 32, "resize_height": 40, "resize_width": 20}, "resize box 40x20 does not fit in image_size 32"),
    ({"image_size": 32, "resize_height": 20, "resize_width": 40}, "resize box 20x40 does not fit in image_size 32"),
    ({"resize_height": 0}, "sizes must be positive"),
    ({"resize_width": 0}, "sizes must be positive"),
    ({"pad_value": 1.5}, r"pad_value must be in \[0, 1\], got 1.5"),
    ({"pad_value": -0.5}, r"pad_value must be in \[0, 1\], got -0.5"),
])
def test_config_refuses_each_bad_field_on_its_own(kwargs, message):
    with pytest.raises(ValueError, match=f"^PreprocessConfig: {message}$"):
        PreprocessConfig(**kwargs)


def test_batch_progress_bar_only_when_asked(monkeypatch):
    """No bar by default, even on a terminal (tqdm's own default would draw one there); with
    progress=True one bar named 'preprocess' counting images."""
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    images = [Image.new("RGB", (4, 6), RED)] * 3
    for kwargs in ({}, {"progress": False}):
        monkeypatch.setattr(sys, "stderr", Terminal())
        preprocess_batch(images, **kwargs)
        assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", Terminal())
    preprocess_batch(images, progress=True)
    assert re.search(r"^\rpreprocess: +0%.* 0/3 .*\rpreprocess: 100%.* 3/3 \[.*img/s\]", sys.stderr.getvalue())


def test_error_messages_name_the_source_and_the_problem_in_full(tmp_path, monkeypatch):
    import fashrec.data.preprocess as module

    with pytest.raises(ImageError) as err:
        preprocess(torch.rand(3, 8, 8))
    assert str(err.value) == (
        "<tensor shape (3, 8, 8)>: preprocess takes an image (PIL, path, bytes, file object or numpy array), "
        "not a torch tensor; a tensor is assumed to be preprocessed already - pass it to the model directly, "
        "or convert it with image.permute(1, 2, 0).numpy() first")
    with pytest.raises(ImageError) as err:
        preprocess(3.5)
    assert str(err.value) == ("<float>: unsupported input type; expected a PIL image, a path, bytes, a binary file "
                              "object or a numpy array")

    class Broken(io.RawIOBase):
        def read(self, *_):
            raise OSError("disk on fire")

    with pytest.raises(ImageError, match=r"^<file object Broken>: cannot read \(OSError: disk on fire\)$"):
        preprocess(Broken())
    with pytest.raises(ImageError, match=r"^<file object StringIO>: read\(\) returned str, open the file in binary mode"):
        preprocess(io.StringIO("text"))
    with pytest.raises(ImageError, match=r"^<bytes>: not a readable image \(UnidentifiedImageError: "):
        preprocess(b"not an image at all")
    jpg = encode(halves(), "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"^<bytes>: cannot decode image \(OSError: image file is truncated"):
        preprocess(jpg[: len(jpg) // 2])
    path = tmp_path / "a.png"
    halves(10, 10).save(path)

    def refuse(*_args, **_kw):
        raise PermissionError("no access")

    monkeypatch.setattr(module, "open", refuse, raising=False)  # as a locked file would
    with pytest.raises(ImageError, match=rf"^{path}: cannot open \(no access\)$"):
        preprocess(path)


def test_empty_and_one_byte_files_by_path(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png: empty file, no image data$"):
        preprocess(tmp_path / "empty.png")
    (tmp_path / "one.png").write_bytes(b"x")
    with pytest.raises(ImageError, match=r"one.png: not a readable image"):
        preprocess(tmp_path / "one.png")


def test_a_path_object_whose_fspath_is_bytes(tmp_path):
    path = tmp_path / "a.png"
    halves(30, 60).save(path)

    class BytesPath:
        def __fspath__(self):
            return bytes(path)

    assert torch.equal(preprocess(BytesPath()), preprocess(path))


def test_pixel_limit_is_inclusive_and_named(monkeypatch):
    import fashrec.data.preprocess as module

    monkeypatch.setattr(module, "MAX_PIXELS", 100)
    assert preprocess(Image.new("RGB", (10, 10), RED)).shape == (3, 64, 64)  # exactly the limit is fine
    with pytest.raises(ImageError, match=r"^<PIL image>: refused as a possible decompression bomb "
                                         r"\(101x1 = 101 pixels > 100\)$"):
        preprocess(Image.new("RGB", (101, 1), RED))


def test_pils_own_bomb_warning_becomes_a_refusal():
    """Between PIL's warning threshold (~89 Mpx) and its error (~179 Mpx) PIL only warns: that must refuse too."""
    with pytest.raises(ImageError, match=r"^<bytes>: refused as a possible decompression bomb \(Image size \(100000000 pixels\)"):
        preprocess(png_claiming(10_000, 10_000))


def test_mode_i_range_is_inclusive():
    a = np.array([[0, 65535], [0, 65535]], np.int32)  # already the box's size: no resampling
    t = preprocess(Image.fromarray(a, "I"), {"image_size": 2, "resize_height": 2, "resize_width": 2})
    assert t[:, :, 0].max() == 0.0 and t[:, :, 1].min() == 1.0
    for bad in (-1, 65536):
        with pytest.raises(ImageError, match=rf"^<PIL image>: mode I values span \[{min(bad, 0)}, {max(bad, 0)}\]"):
            preprocess(Image.fromarray(np.array([[0, bad]], np.int32), "I"))
    with pytest.raises(ImageError, match=r"^<PIL image>: float values span \[0, 2\]; expected \[0, 1\]$"):
        preprocess(Image.fromarray(np.array([[0.0, 2.0]], np.float32), "F"))


def test_gray_alpha_arrays_are_composited_on_white():
    a = np.zeros((6, 4, 2), np.uint8)
    a[..., 0] = 100
    a[:3, :, 1] = 255  # top half opaque gray 100, bottom half fully transparent
    t = preprocess(a, {"image_size": 6, "resize_height": 6, "resize_width": 4})
    assert torch.all(t[:, :3, 1:5] == 100 / 255) and torch.all(t[:, 3:, 1:5] == 1.0)
