"""A model's network run by ONNX Runtime: the optional CPU backend of ``fashrec embed --backend onnx``.

    network = OnnxNetwork(for_inference(model), threads=1)   # pip install 'fashrec[onnx]'
    model.embed_focuses(x, network=network)                   # the same vectors, to float32 rounding

What runs in ONNX Runtime is the method the model names in ``network_method`` (for ``MultiTaskCNN`` the
trunk, heads and classifiers of one view; for the autoencoders the code): tensors in, a dict of tensors
out, no branching on data. Everything around it (flip TTA, the colour histogram, normalising and mixing
the focuses) stays in torch, in the model's own code, so there is one implementation of the read-out.

The graph is exported with ``torch.onnx.export`` (the ``torch.export``-based exporter, which needs
``onnxscript``) for any batch size, and kept on disk under ``$FASHREC_CACHE/onnx/`` (default
``~/.cache/fashrec``), keyed by the weights, the config and the library versions, since an export takes
seconds. A file is ONNX protobuf: data, no code. Every session is checked against torch on a probe batch
before it is used; a cached file that disagrees is exported again. A network the exporter cannot
express, or a fresh export that disagrees, is one ``ValueError`` line that names ``--backend torch``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
from pathlib import Path

import torch
from torch import nn

TOLERANCE = 1e-4  # max |ONNX Runtime - torch| accepted on the probe batch (seen: ~1e-6)
_PROBE_BATCH = 3  # not 1: torch.export would specialise the batch dimension to 1


def require_runtime() -> None:
    """MissingExtra naming ``pip install 'fashrec[onnx]'`` when ONNX Runtime or the exporter is missing."""
    from fashrec.extras import require

    for module in ("onnxruntime", "onnxscript"):
        require(module, "the ONNX Runtime backend (--backend onnx)")


class OnnxNetwork:
    """``model``'s ``network_method`` as an ONNX Runtime session on the CPU; calling it returns the same
    dict of tensors (nested one level deep, as ``MultiTaskCNN._blocks_of``) as the torch method."""

    def __init__(self, model: nn.Module, *, threads: int = 1, cache_dir: str | Path | None = None) -> None:
        require_runtime()
        import onnxruntime

        self.ort = onnxruntime
        if any(p.device.type != "cpu" for p in model.parameters()):
            raise ValueError("the ONNX Runtime backend runs on the CPU; load the model on the CPU (--device cpu)")
        self.threads = int(threads)
        self.flat = _Flattened(model).eval()
        size = int(model.preprocess_config.image_size)
        probe = torch.rand(_PROBE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = self.flat(probe)  # also fixes the order of the outputs (self.flat.keys)
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        self.path = folder / f"{self._key(model)}.onnx"
        self.session = None
        if self.path.is_file():
            self.session = self._session(self.path.read_bytes(), probe, expected)  # None: stale or damaged
        if self.session is None:
            data = self._export(probe)
            with contextlib.suppress(OSError):  # a read-only cache: export each time rather than fail
                from fashrec.atomic import write_bytes_atomic

                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(data, self.path)
            self.session = self._session(data, probe, expected)
        if self.session is None:
            raise ValueError(f"ONNX Runtime's output differs from torch's by more than {TOLERANCE} for "
                             f"{type(model).__name__}: use the torch backend (--backend torch)")

    def __call__(self, x: torch.Tensor) -> dict:
        return self.flat.unflatten(self._run(self.session, x))

    # ----- internals -----------------------------------------------------------------------------
    def _key(self, model: nn.Module) -> str:
        import onnxscript

        from fashrec.models.hub_model import weights_hash

        config = model.config_dict() if hasattr(model, "config_dict") else {}
        config.pop("fashrec_version", None)
        what = {"weights": weights_hash(model), "class": type(model).__name__, "config": config,
                "method": self.flat.method, "outputs": self.flat.keys, "torch": torch.__version__,
                "onnxscript": onnxscript.__version__, "format": 1}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _export(self, probe: torch.Tensor) -> bytes:
        try:
            with _quiet_exporter():
                program = torch.onnx.export(self.flat, (probe,), dynamo=True, verbose=False,
                                            dynamic_shapes=({0: torch.export.Dim("batch")},))
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types for what it cannot express
            root = exc
            while root.__cause__ is not None:  # the exporter wraps what torch.export could not trace
                root = root.__cause__
            why = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip().split("\n")[0][:200]
            raise ValueError(f"{type(self.flat.model).__name__}.{self.flat.method} cannot be exported to ONNX "
                             f"({type(root).__name__}: {why}): use the torch backend (--backend torch)") from exc
        return program.model_proto.SerializeToString()

    def _session(self, data: bytes, probe: torch.Tensor, expected: tuple):
        """A session of ``data`` that reproduces ``expected`` on ``probe``, else None."""
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # spinning threads would steal the CPU that the decoding threads (and anyone else) need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            got = self._run(session, probe)
        except Exception:  # noqa: BLE001 - a damaged file; ONNX Runtime raises its own exception types
            return None
        agree = len(got) == len(expected) and all(
            a.shape == b.shape and float((a - b).abs().max()) <= TOLERANCE for a, b in zip(got, expected))
        return session if agree else None

    @staticmethod
    def _run(session, x: torch.Tensor) -> list[torch.Tensor]:
        name = session.get_inputs()[0].name
        arrays = session.run(None, {name: x.detach().to(torch.float32).contiguous().numpy()})
        return [torch.from_numpy(a) for a in arrays]


class _Flattened(nn.Module):
    """The model's ``network_method`` with its dict (of dicts) of outputs as a flat tuple, for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.method = str(getattr(model, "network_method", "_focus_codes"))
        self.keys: list[tuple[str, ...]] = []

    def forward(self, x: torch.Tensor) -> tuple:
        out = getattr(self.model, self.method)(x)
        keys: list[tuple[str, ...]] = []
        for name, value in out.items():
            keys += [(name,)] if isinstance(value, torch.Tensor) else [(name, part) for part in value]
        self.keys = keys
        return tuple(out[k[0]] if len(k) == 1 else out[k[0]][k[1]] for k in keys)

    def unflatten(self, values: list) -> dict:
        out: dict = {}
        for key, value in zip(self.keys, values):
            if len(key) == 1:
                out[key[0]] = value
            else:
                out.setdefault(key[0], {})[key[1]] = value
        return out


def _default_cache_dir() -> Path:
    from fashrec.data.tensor_cache import default_cache_dir

    return default_cache_dir() / "onnx"


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter and torch.export log a warning per torchvision operator they cannot find, progress
    lines, and on failure whole graphs: not ours to show; a failure becomes one line of our own."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "torch" or name.startswith(("torch.", "onnxscript"))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
