"""A resumable training checkpoint in ONE safetensors file: no pickle, and atomic by construction.

Everything a run needs to continue exactly where it stopped is stored together:

- the model weights (``model/<name>``),
- optionally a weight average (``averaged/<name>``: the state of a ``torch.optim.swa_utils.AveragedModel``),
- the optimizer state, flattened: every tensor of ``optimizer.state_dict()["state"]`` becomes
  ``optimizer/<param index>/<key>``; everything else (``param_groups``, non-tensor entries) goes to JSON,
- the torch CPU RNG state (``rng/torch``),
- the epoch that was completed, and free-form JSON ``info`` (the loss history, the run's settings).

The JSON travels in the safetensors header metadata (``__metadata__["train_state"]``), so a checkpoint is
a single file written with :func:`fashrec.atomic.save_safetensors_atomic` (temporary file, fsync,
rename): after a crash at any moment the file is either the previous complete checkpoint or the new
complete one. Loading runs no code: safetensors holds raw tensors, the rest is ``json.loads``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

FORMAT = "fashrec-train-state"
VERSION = 1
_META_KEY = "train_state"


@dataclass
class TrainState:
    """What :func:`load_train_state` returns; :meth:`restore` puts it back into a model and optimizer."""

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict
    rng_state: torch.Tensor | None
    info: dict = field(default_factory=dict)
    averaged_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                rng: bool = True, averaged: torch.nn.Module | None = None) -> None:
        """Load weights (strictly), optimizer state, the weight average (``averaged``, strictly: a
        checkpoint without one is refused) and (``rng=True``) the global torch RNG state."""
        if averaged is not None:
            if not self.averaged_state:
                raise ValueError("checkpoint holds no weight average to resume (it was written without one)")
            averaged.load_state_dict(self.averaged_state, strict=True)
        missing = sorted(set(model.state_dict()) - set(self.model_state))
        unexpected = sorted(set(self.model_state) - set(model.state_dict()))
        if missing or unexpected:
            raise ValueError(f"checkpoint weights do not match {type(model).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        model.load_state_dict(self.model_state, strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(self.optimizer_state)
            # Optimizer.load_state_dict copies values but not the memory format; keep moments laid out like
            # their parameters (e.g. channels_last) so fused kernels see matching tensors.
            for group in optimizer.param_groups:
                for p in group["params"]:
                    entry = optimizer.state.get(p, {})
                    for key, value in entry.items():
                        if isinstance(value, torch.Tensor) and value.shape == p.shape:
                            entry[key] = torch.empty_like(p).copy_(value)
        if rng and self.rng_state is not None:
            torch.set_rng_state(self.rng_state)


def save_train_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     epoch: int, info: dict | None = None, averaged: torch.nn.Module | None = None) -> None:
    """Write the checkpoint atomically to ``path`` (one ``.safetensors`` file); ``averaged`` is an optional
    weight average (e.g. an ``AveragedModel``) saved beside the weights."""
    from fashrec.atomic import save_safetensors_atomic

    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model.state_dict().items()}
    if averaged is not None:
        tensors.update({f"averaged/{k}": v for k, v in averaged.state_dict().items()})
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors["rng/torch"] = torch.get_rng_state()
    structure = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "optimizer": {
            "param_groups": opt["param_groups"],
            "state_indices": [int(i) for i in opt["state"]],
            "scalars": scalars,
        },
        "info": info or {},
    }
    # Tensors that share storage (none today, but state dicts may alias) must be saved as separate copies.
    tensors = {k: v.detach().cpu().clone() for k, v in tensors.items()}
    save_safetensors_atomic(tensors, path, metadata={"format": "pt", _META_KEY: json.dumps(structure)})


def load_train_state(path: str | os.PathLike) -> TrainState:
    """Read a checkpoint written by :func:`save_train_state`; a damaged or foreign file is a ValueError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable training checkpoint ({exc})") from exc
    try:
        structure = json.loads(metadata[_META_KEY])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: safetensors file without fashrec training state metadata") from exc
    if structure.get("format") != FORMAT or structure.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {structure.get('format')!r} "
                         f"version {structure.get('version')!r} (expected {FORMAT!r} {VERSION})")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    averaged_state = {k[len("averaged/"):]: v for k, v in tensors.items() if k.startswith("averaged/")}
    opt = structure["optimizer"]
    state: dict[int, dict] = {int(i): {} for i in opt["state_indices"]}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            state[int(index)][name] = value
    for index, entries in opt["scalars"].items():
        state[int(index)].update(entries)
    groups = []
    for group in opt["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):  # JSON has no tuples; Adam expects one
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return TrainState(epoch=int(structure["epoch"]), model_state=model_state,
                      optimizer_state={"state": state, "param_groups": groups},
                      rng_state=tensors.get("rng/torch"), info=structure.get("info", {}),
                      averaged_state=averaged_state)
