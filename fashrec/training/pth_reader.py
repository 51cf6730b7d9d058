"""Tensors out of a PyTorch ``.pth`` file in the legacy (non-zip) format, without unpickling it.

    state = read_state_dict("efficientnet-lite0-57934424.pth")     # {name: tensor}

``torch.load`` runs the file's pickle, and a pickle can run any code. This reader never calls pickle: it
walks the opcodes (``pickletools.genops``) with a small stack machine that knows only what a saved
``state_dict`` needs (dicts, tuples, strings, numbers, the ``OrderedDict`` and ``_rebuild_tensor_v2``
constructors, float and long storages) and refuses every other opcode and every other global, naming it.
Nothing it builds can call anything: a global is only a name, and the tensor records are plain tuples
that are materialised from the raw storage bytes afterwards.

The legacy layout (``torch.save(..., _use_new_zipfile_serialization=False)``): five pickles in a row
(magic number, protocol version, system info, the object, the storage keys), then each storage's raw
bytes (an int64 element count, then the values, little-endian).
"""
from __future__ import annotations

import io
import os
import pickletools
import struct
from typing import NamedTuple

import torch

MAGIC = 0x1950A86A20F9469CFC6C
STORAGES = {("torch", "FloatStorage"): torch.float32, ("torch", "LongStorage"): torch.int64}
CALLABLES = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")}
_PUSH = {"BINUNICODE", "SHORT_BINUNICODE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT"}


class _Mark:
    pass


class _Storage(NamedTuple):
    key: str
    dtype: torch.dtype
    numel: int


class _TensorRef(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


class UnsafeCheckpointError(ValueError):
    """The file holds something a plain state_dict does not: it is refused, not run."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a legacy-format ``.pth`` state dict, read without executing anything."""
    data = open(path, "rb").read()
    stream = io.BytesIO(data)
    magic = _walk(stream, path)
    if magic != MAGIC:
        raise UnsafeCheckpointError(f"{path}: not a legacy PyTorch file (magic number {magic!r})")
    _walk(stream, path)  # protocol version
    _walk(stream, path)  # system info (endianness, type sizes)
    obj = _walk(stream, path)
    keys = _walk(stream, path)
    if not isinstance(obj, dict) or not isinstance(keys, list):
        raise UnsafeCheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    storages = {ref.storage.key: ref.storage for ref in obj.values() if isinstance(ref, _TensorRef)}
    raw: dict[str, torch.Tensor] = {}
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise UnsafeCheckpointError(f"{path}: storage {key!r} belongs to no tensor")
        (count,) = struct.unpack("<q", stream.read(8))
        width = torch.empty((), dtype=storage.dtype).element_size()
        if count != storage.numel:
            raise UnsafeCheckpointError(f"{path}: storage {key!r} holds {count} values, its tensor says {storage.numel}")
        raw[key] = torch.frombuffer(bytearray(stream.read(count * width)), dtype=storage.dtype)
    out = {}
    for name, ref in obj.items():
        if not isinstance(ref, _TensorRef):
            raise UnsafeCheckpointError(f"{path}: entry {name!r} is a {type(ref).__name__}, not a tensor")
        out[name] = torch.as_strided(raw[ref.storage.key], ref.size, ref.stride, ref.offset).clone()
    return out


def _walk(stream: io.BytesIO, path) -> object:
    """Interpret one pickle with the allowed opcodes only; returns what it builds."""
    stack: list = []
    memo: dict = {}

    def pop_mark() -> list:
        items = []
        while True:
            item = stack.pop()
            if isinstance(item, _Mark):
                return items[::-1]
            items.append(item)

    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name == "PROTO":
            continue
        if name == "STOP":
            return stack.pop()
        if name in _PUSH:
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "MARK":
            stack.append(_Mark())
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif name == "SETITEMS":
            items = pop_mark()
            stack[-1].update(zip(items[::2], items[1::2]))
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            if (module, attr) not in CALLABLES and (module, attr) not in STORAGES:
                raise UnsafeCheckpointError(f"{path}: refers to {module}.{attr}, which a state dict does not need")
            stack.append((module, attr))
        elif name == "BINPERSID":
            pid = stack.pop()
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in STORAGES):
                raise UnsafeCheckpointError(f"{path}: unexpected persistent id {pid!r}")
            stack.append(_Storage(key=str(pid[2]), dtype=STORAGES[pid[1]], numel=int(pid[4])))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_reduce(func, args, path))
        elif name == "BUILD":
            stack.pop()  # the OrderedDict's _metadata (per-module versions): not needed for the tensors
        else:
            raise UnsafeCheckpointError(f"{path}: opcode {name} is not part of a plain state dict")
    raise UnsafeCheckpointError(f"{path}: the pickle ends without STOP")


def _reduce(func, args, path):
    if func == ("collections", "OrderedDict") and args == ():
        return {}
    if func == ("torch._utils", "_rebuild_tensor_v2") and len(args) >= 4 and isinstance(args[0], _Storage):
        storage, offset, size, stride = args[:4]
        return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))
    raise UnsafeCheckpointError(f"{path}: calls {func!r} with {type(args).__name__} arguments")
