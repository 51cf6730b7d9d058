"""The one epoch loop every fashrec model trains through: resumable, reproducible, with a progress bar.

    history, seconds = run_epochs(model, optimizer, train_epoch=..., evaluate=..., held_out="validation",
                                  epochs=30, seed=0, settings={...}, out_dir="runs/x", resume=False)

What a model family brings is two functions: ``train_epoch(epoch, epoch_seed) -> {term: mean}`` (one
pass over its data, in an order drawn from ``epoch_seed`` alone) and ``evaluate() -> {term: value}`` (held-out
figures after the epoch), and the name of what it holds out (``held_out``: the autoencoders report the
test split each epoch, as the paper's curve does; the default model a validation split carved from its
training data, and it must never be called "test"). Everything else is here, once:

- The global torch RNG (dropout, the VAE's noise) is reseeded from ``(seed, epoch)`` before each epoch,
  so an epoch depends only on the weights and optimizer state it starts from: nothing mid-epoch needs
  saving, and a resumed run equals an uninterrupted one.
- After every epoch, weights + optimizer state + epoch + history + RNG state go to
  ``out_dir/checkpoint/train_state.safetensors`` (one file, written atomically: ``train_state.py``).
- ``resume=True`` continues from the last complete epoch, and refuses a run whose ``settings`` (the
  hyperparameters, the model config, fingerprints of the data) differ from the checkpoint's.
- A loss that stops being finite stops the run with a message naming the epoch.
"""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Callable, Mapping

import torch

CHECKPOINT = Path("checkpoint") / "train_state.safetensors"


def run_epochs(model, optimizer, *, train_epoch: Callable[[int, int], Mapping[str, float]],
               evaluate: Callable[[], Mapping[str, float]], epochs: int, seed: int, settings: Mapping,
               out_dir=None, resume: bool = False, progress: bool = True, averaged=None,
               desc: str = "training", on_restore: Callable[[], None] | None = None,
               held_out: str, free_config_keys: frozenset = frozenset()) -> tuple[dict, float, float]:
    """Run ``epochs`` epochs (or the rest of them, when resuming); returns ``(history, wall s, CPU s)``.

    ``history`` maps ``train_<term>`` / ``<held_out>_<term>`` to one value per epoch (the progress bar
    shows the held-out loss under the same name). ``averaged`` (an
    ``AveragedModel``) is checkpointed beside the weights. ``on_restore`` runs after a checkpoint was
    loaded (e.g. to move restored optimizer state to the training device's layout). ``free_config_keys``
    are keys of ``settings["model_config"]`` that a resumed run may change (read-out settings that
    training does not depend on).
    """
    from fashrec.training.train_state import save_train_state

    out = Path(out_dir) if out_dir is not None else None
    settings = dict(settings)
    history: dict[str, list[float]] = {}
    start_epoch, wall, cpu = 0, 0.0, 0.0
    if out is not None:
        remove_stray_temporaries(out)
        ckpt = out / CHECKPOINT
        if ckpt.exists():
            if not resume:
                raise ValueError(f"{out}: holds a training checkpoint ({CHECKPOINT}); pass --resume to continue "
                                 "it, or choose another --out")
            start_epoch, history, wall, cpu = _resume(ckpt, model, optimizer, settings, averaged, free_config_keys)
            if start_epoch > epochs:
                raise ValueError(f"{ckpt}: already trained {start_epoch} epochs, more than the {epochs} asked for")
            if on_restore is not None:
                on_restore()
    bar = _bar(progress, total=epochs, initial=start_epoch, desc=desc)
    try:
        for epoch in range(start_epoch, epochs):
            started, cpu_started = time.perf_counter(), time.process_time()
            epoch_seed = epoch_seed_of(seed, epoch)
            torch.manual_seed(epoch_seed + 1)
            train_stats = dict(train_epoch(epoch, epoch_seed))
            test_stats = dict(evaluate())
            wall += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            for key, value in train_stats.items():
                history.setdefault(f"train_{key}", []).append(float(value))
            for key, value in test_stats.items():
                history.setdefault(f"{held_out}_{key}", []).append(float(value))
            if not math.isfinite(train_stats["loss"]):
                lr = optimizer.param_groups[0]["lr"]
                raise FloatingPointError(f"train: the loss became {train_stats['loss']} in epoch {epoch + 1}; "
                                         f"lower the learning rate (now {lr:g})")
            if out is not None:
                save_train_state(out / CHECKPOINT, model=model, optimizer=optimizer, epoch=epoch + 1, averaged=averaged,
                                 info={"settings": settings, "history": history, "train_seconds": wall,
                                       "cpu_seconds": cpu})
            shown = {"train": train_stats["loss"], **({held_out: test_stats["loss"]} if "loss" in test_stats else {})}
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return history, wall, cpu


def epoch_seed_of(seed: int, epoch: int) -> int:
    digest = hashlib.sha256(f"fashrec-train:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def fingerprint(x: torch.Tensor) -> str:
    """A cheap identity of a tensor (shape + a strided sample of rows) to refuse resuming on other data."""
    step = max(1, x.shape[0] // 64)
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x[::step].contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def remove_stray_temporaries(out: Path) -> None:
    """Atomic writes leave ``.<name>.<random>.tmp`` behind only if killed mid-write; clear them."""
    for folder in (out, out / CHECKPOINT.parent):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _resume(ckpt: Path, model, optimizer, settings: dict, averaged=None,
            free_config_keys: frozenset = frozenset()) -> tuple[int, dict, float, float]:
    from fashrec.training.train_state import load_train_state

    state = load_train_state(ckpt)
    saved = state.info.get("settings", {})
    if free_config_keys:
        settings, saved = ({**s, "model_config": {k: v for k, v in s.get("model_config", {}).items()
                                                  if k not in free_config_keys}} for s in (settings, saved))
    different = sorted(k for k in set(settings) | set(saved) if saved.get(k) != settings.get(k))
    if different:
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {settings.get(k)!r}" for k in different
                           if "fingerprint" not in k)
        raise ValueError(f"{ckpt}: cannot resume, the run differs from the checkpoint in {different}"
                         + (f" ({detail})" if detail else " (different images)"))
    state.restore(model, optimizer, averaged=averaged)
    info = state.info
    return state.epoch, info.get("history", {}), float(info.get("train_seconds", 0.0)), float(info.get("cpu_seconds", 0.0))


class _NoBar:
    def set_postfix(self, *a, **k):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def _bar(enabled: bool, *, total: int, initial: int, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="epoch", desc=desc, dynamic_ncols=True)
