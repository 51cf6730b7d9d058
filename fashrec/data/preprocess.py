"""The one preprocessing function: every image that reaches a model goes through ``preprocess``.

Training, embedding, evaluation and the Space all call it, and the config it needs travels with each
checkpoint (``config.json["preprocess"]``), so a loaded model cannot be fed the wrong way.

The default is the paper's (section 3.1): fit inside 64 high x 43 wide keeping the aspect ratio,
zero-pad centred to 64 x 64, RGB float32 in [0, 1].
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Iterable

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = 64  # side of the square the model sees
    resize_height: int = 64  # the box the photo is fitted into, keeping its aspect ratio
    resize_width: int = 43  # 64 x 43 keeps H&M's 2:3 portrait photos undistorted
    pad_value: float = 0.0  # the paper pads with zeros (black); 1.0 pads with white like the studio background

    def __post_init__(self):
        if self.resize_height > self.image_size or self.resize_width > self.image_size:
            raise ValueError(
                f"PreprocessConfig: resize box {self.resize_height}x{self.resize_width} does not fit in "
                f"image_size {self.image_size}"
            )
        if min(self.image_size, self.resize_height, self.resize_width) < 1:
            raise ValueError("PreprocessConfig: sizes must be positive")
        if not 0.0 <= float(self.pad_value) <= 1.0:
            raise ValueError(f"PreprocessConfig: pad_value must be in [0, 1], got {self.pad_value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: "dict | PreprocessConfig | None") -> "PreprocessConfig":
        if d is None:
            return cls()
        if isinstance(d, cls):
            return d
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"PreprocessConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


MAX_PIXELS = 64_000_000
"""Images claiming more pixels than this are refused before decoding (decompression-bomb guard).

Checked on the header's size, independently of ``PIL.Image.MAX_IMAGE_PIXELS``, which is left alone."""

RESAMPLE = Image.Resampling.BILINEAR
"""The one resample filter. PIL widens the bilinear kernel by the reduction factor, so downscaling is
antialiased (every source pixel contributes), and a uniform region stays exactly uniform."""

_WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_truncation_lock = threading.Lock()


class ImageError(ValueError):
    """An image that cannot be used. The message names the source and what is wrong with it."""


def preprocess(image, config: "PreprocessConfig | dict | None" = None) -> torch.Tensor:
    """Turn one image into the ``(3, image_size, image_size)`` float32 tensor in [0, 1] a model sees.

    ``image`` may be a PIL image, a path (``str`` / ``os.PathLike``), ``bytes`` / ``bytearray`` /
    ``memoryview`` of an encoded file, a binary file object (anything with ``.read``), or a numpy
    array (HxW, HxWx1, HxWx2 gray+alpha, HxWx3, HxWx4; uint8, uint16, bool, or float in [0, 1]).

    Steps: decode -> EXIF orientation -> RGB (transparency composited on white) -> resize to fit inside
    ``resize_height`` x ``resize_width`` keeping the aspect ratio (bilinear, antialiased) -> paste
    centred on an ``image_size`` square of ``pad_value`` -> float32 / 255. See docs/preprocessing.md.

    Raises ``ImageError`` (a ``ValueError``) for anything unusable, ``FileNotFoundError`` for a
    missing path.
    """
    cfg = PreprocessConfig.from_dict(config)
    rgb = to_rgb(image)
    return _fit_and_pad(rgb, cfg)


def preprocess_batch(images: Iterable, config: "PreprocessConfig | dict | None" = None, *, progress: bool = False) -> torch.Tensor:
    """``preprocess`` every image of an iterable and stack them: ``(N, 3, image_size, image_size)``.

    An error names the position of the failing item as well as its source.
    """
    cfg = PreprocessConfig.from_dict(config)
    try:
        total = len(images)  # type: ignore[arg-type]
    except TypeError:
        total = None
    from tqdm.auto import tqdm

    out = []
    for i, image in enumerate(tqdm(images, total=total, disable=not progress, desc="preprocess", unit="img")):
        try:
            out.append(preprocess(image, cfg))
        except ImageError as e:
            raise ImageError(f"item {i}: {e}") from e
    if not out:
        return torch.empty((0, 3, cfg.image_size, cfg.image_size), dtype=torch.float32)
    return torch.stack(out)


def fitted_size(width: int, height: int, config: "PreprocessConfig | dict | None" = None) -> tuple[int, int]:
    """``(w, h)`` of an image of ``width`` x ``height`` once fitted inside the resize box.

    The limiting side becomes exactly the box side; the other is the exact rational size rounded
    half up, clamped to [1, box side]. 360x540 -> (43, 64); 540x360 -> (43, 29).
    """
    cfg = PreprocessConfig.from_dict(config)
    bw, bh = cfg.resize_width, cfg.resize_height
    if width * bh >= height * bw:  # relatively wider than the box: width limits
        w, h = bw, (2 * height * bw + width) // (2 * width)
    else:
        w, h = (2 * width * bh + height) // (2 * height), bh
    return max(1, min(bw, w)), max(1, min(bh, h))


def to_rgb(image, *, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode any accepted input into a loaded, EXIF-oriented 8-bit RGB PIL image (a new object).

    ``draft=(w, h)``: an encoded JPEG may be decoded at a reduced scale, no smaller than ``w`` x ``h``
    (PIL's ``draft``; several times faster for a thumbnail). The size limits are judged on the header."""
    if image is None:
        raise ImageError("<None>: got None instead of an image")
    if isinstance(image, torch.Tensor):
        raise ImageError(
            f"<tensor shape {tuple(image.shape)}>: preprocess takes an image (PIL, path, bytes, file object or "
            "numpy array), not a torch tensor; a tensor is assumed to be preprocessed already - pass it to the "
            "model directly, or convert it with image.permute(1, 2, 0).numpy() first"
        )
    if isinstance(image, Image.Image):
        return _from_pil(image, "<PIL image>")
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, (str, os.PathLike)):
        return _from_path(image, draft)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ImageError("<bytes>: empty bytes, no image data")
        return _open_and_convert(io.BytesIO(data), "<bytes>", draft)
    if hasattr(image, "read"):
        source = f"<file object {getattr(image, 'name', type(image).__name__)}>"
        try:
            data = image.read()
        except Exception as e:  # noqa: BLE001 - any read failure is an unusable image
            raise ImageError(f"{source}: cannot read ({type(e).__name__}: {e})") from e
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ImageError(f"{source}: read() returned {type(data).__name__}, open the file in binary mode ('rb')")
        if not data:
            raise ImageError(f"{source}: empty file, no image data")
        return _open_and_convert(io.BytesIO(bytes(data)), source, draft)
    raise ImageError(
        f"<{type(image).__name__}>: unsupported input type; expected a PIL image, a path, bytes, a binary file "
        "object or a numpy array"
    )


def _from_path(path, draft=None) -> Image.Image:
    source = os.fspath(path)
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such image file")
    if os.path.isdir(source):
        raise ImageError(f"{source}: is a directory, not an image file")
    if os.path.getsize(source) == 0:
        raise ImageError(f"{source}: empty file, no image data")
    try:
        f = open(source, "rb")
    except OSError as e:
        raise ImageError(f"{source}: cannot open ({e})") from e
    with f:
        return _open_and_convert(f, source, draft)


def _open_and_convert(fp, source: str, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{source}: refused as a possible decompression bomb ({e})") from e
    except Exception as e:  # noqa: BLE001 - PIL raises many types for undecodable data
        raise ImageError(f"{source}: not a readable image ({type(e).__name__}: {e})") from e
    with im:
        if draft is not None and im.format == "JPEG" and 0 < im.width * im.height <= MAX_PIXELS:
            im.draft("RGB", draft)  # only below the limit: a bomb is still judged by what its header claims
        return _from_pil(im, source)


def _from_pil(im: Image.Image, source: str) -> Image.Image:
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"{source}: zero-size image ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{source}: refused as a possible decompression bomb ({w}x{h} = {w * h:,} pixels > {MAX_PIXELS:,})"
        )
    try:
        with _strict_truncation():
            im.load()  # decodes the first frame only (animated GIF / WebP / multi-page TIFF)
        im = ImageOps.exif_transpose(im)
        return _convert_mode(im, source)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated data, broken EXIF, unsupported modes...
        raise ImageError(f"{source}: cannot decode image ({type(e).__name__}: {e})") from e


class _strict_truncation:
    """Make PIL raise on truncated files even if the user set ``ImageFile.LOAD_TRUNCATED_IMAGES``.

    The global is only touched (under a lock, and restored) when it was True."""

    def __enter__(self):
        self._locked = bool(ImageFile.LOAD_TRUNCATED_IMAGES)
        if self._locked:
            _truncation_lock.acquire()
            self._old = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False

    def __exit__(self, *exc):
        if self._locked:
            ImageFile.LOAD_TRUNCATED_IMAGES = self._old
            _truncation_lock.release()
        return False


def _convert_mode(im: Image.Image, source: str) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Transparency is composited on white (product shots are on white)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        a = np.asarray(im)
        if mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageError(
                f"{source}: mode I values span [{a.min()}, {a.max()}]; expected 16-bit range [0, 65535]"
            )
        return Image.fromarray(_u16_to_u8(a.astype(np.uint32)), "L").convert("RGB")
    if mode == "F":
        a = np.asarray(im)
        return Image.fromarray(_float_to_u8(a, source), "L").convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in im.info:
        return _on_white(im.convert("RGBA"))
    if mode == "RGB":
        return im  # exif_transpose already returned a copy detached from the file
    return im.convert("RGB")


def _on_white(rgba: Image.Image) -> Image.Image:
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _u16_to_u8(a: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255, rounding half up (v / 257: 65535 -> 255, 32768 -> 128)."""
    return ((a.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def _float_to_u8(a: np.ndarray, source: str) -> np.ndarray:
    if a.size:
        if not np.isfinite(a).all():
            raise ImageError(f"{source}: float image contains NaN or infinity")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(f"{source}: float values span [{lo:g}, {hi:g}]; expected [0, 1]")
    return np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)


def _from_array(a: np.ndarray) -> Image.Image:
    source = f"<array shape {a.shape} dtype {a.dtype}>"
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise ImageError(f"{source}: expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"{source}: zero-size image")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        u8 = _u16_to_u8(a)
    elif np.issubdtype(a.dtype, np.floating):
        u8 = _float_to_u8(a, source)
    else:
        raise ImageError(f"{source}: unsupported dtype; use uint8 (0..255), uint16 (0..65535), bool or float in [0, 1]")
    u8 = np.ascontiguousarray(u8)
    channels = 1 if u8.ndim == 2 else u8.shape[2]
    im = Image.fromarray(u8, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels])
    return _convert_mode(im, source)


def _fit_and_pad(rgb: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    w, h = fitted_size(rgb.width, rgb.height, cfg)
    if (w, h) != rgb.size:
        rgb = rgb.resize((w, h), RESAMPLE, reducing_gap=None)
    s = cfg.image_size
    left, top = (s - w) // 2, (s - h) // 2
    out = np.full((3, s, s), cfg.pad_value, dtype=np.float32)
    out[:, top : top + h, left : left + w] = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return torch.from_numpy(out)
