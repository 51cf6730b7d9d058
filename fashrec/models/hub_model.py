"""The base class of every fashrec model, and ``fashrec.from_pretrained``.

Built on ``huggingface_hub.PyTorchModelHubMixin`` (as segmentation_models_pytorch is), with three
changes that make checkpoints safe to share:

- ``config.json`` stores ``model_class``, so ``fashrec.from_pretrained(repo)`` returns the right class,
  and ``preprocess`` (a :class:`~fashrec.data.preprocess.PreprocessConfig`), so the weights travel with the
  input format they expect (as timm keeps input size with the weights).
- Loading is strict: a config key the class cannot take, a missing or unexpected weight, or a shape
  mismatch raises an error that names them. Nothing is silently dropped.
- Weights are only ever read from ``model.safetensors``; the mixin's fallback to pickled
  ``pytorch_model.bin`` is removed (loading must not be able to run code).

The README that ``save_pretrained`` / ``push_to_hub`` write is the mixin's own card (library, task, tags,
links to the code and the docs), with no licence: a model in memory knows neither its training data nor its
scores. fashrec's full card is written from a checkpoint folder's files by the publishing layer
(``fashrec.hub_card.write_model_card``; training does it), never from here.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from fashrec.data.preprocess import PreprocessConfig
from fashrec.version import REPOSITORY

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# config.json keys that describe the checkpoint rather than configure the class.
_INFO_KEYS = {"model_class", "fashrec_version", "embedding_dim"}

_REGISTRY: dict[str, type["HubModel"]] = {}


class HubModel(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="fashrec",
    repo_url=REPOSITORY,
    docs_url=f"{REPOSITORY}/blob/main/docs/hub.md",
    tags=["fashrec", "image-feature-extraction", "fashion"],
    pipeline_tag="image-feature-extraction",
):
    """Base class: subclasses define ``encode``, ``decode``, ``forward``, ``_embed`` and ``loss``.

    ``embed(x)`` is the one tensor recommendations use; ``embedding_dim`` is its size.
    Subclasses with several similarity "focuses" (e.g. shape vs colour) list them in ``focuses``;
    ``"overall"`` is always first; ``design_focus`` names the one that finds other colourways of a garment.
    """

    focuses: tuple[str, ...] = ("overall",)
    # The focus that answers "other colours of this design", named by the checkpoint's config (a model
    # trained on designs, e.g. MultiTaskCNN(design_focus=...)); None: the model was taught no designs.
    design_focus: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, *, preprocess: dict | PreprocessConfig | None = None):
        super().__init__()
        self.preprocess_config = PreprocessConfig.from_dict(preprocess)

    # ----- the verbs every model shares -----------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def _code(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic latent code of ``x`` (for a VAE: mu)."""
        raise NotImplementedError

    def _embed(self, x: torch.Tensor, focus: str) -> torch.Tensor:
        return self._code(x)

    def _check_input(self, x: torch.Tensor) -> None:
        size = self.preprocess_config.image_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__} expects a preprocessed batch of shape (N, 3, {size}, {size}); got {shape}. "
                "Use fashrec.preprocess_batch(images, model.preprocess_config) or model.embed_images(images)."
            )

    @torch.no_grad()
    def embed(self, x: torch.Tensor, normalize: bool = False, focus: str = "overall") -> torch.Tensor:
        """Embed a preprocessed batch ``(N, 3, S, S)`` into ``(N, embedding_dim)`` float32 vectors.

        This is the one tensor fashrec's recommendations use. ``normalize=True`` scales each row to unit
        L2 norm. ``focus`` picks one of ``self.focuses`` for models with steerable similarity.
        """
        self._check_input(x)
        if focus not in self.focuses:
            raise ValueError(f"unknown focus {focus!r} for {type(self).__name__}; choose from {list(self.focuses)}")
        z = self._embed(x, focus).reshape(x.shape[0], -1).float()
        return F.normalize(z, dim=1) if normalize else z

    network_method = "_focus_codes"  # the tensor computation embed_focuses(network=...) stands in for

    @torch.no_grad()
    def embed_focuses(self, x: torch.Tensor, *, network=None) -> dict[str, torch.Tensor]:
        """``{focus: embed(x, focus=focus)}`` for every focus of the model, in one call.

        ``network`` stands in for the method named by ``network_method`` (tensors in, a dict of tensors
        out): ``fashrec.models.inference`` passes the same computation run by ONNX Runtime."""
        self._check_input(x)
        codes = (self._focus_codes if network is None else network)(x)
        return {focus: codes[focus].reshape(x.shape[0], -1).float() for focus in self.focuses}

    def _focus_codes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {focus: self._embed(x, focus) for focus in self.focuses}

    def embed_images(self, images: Iterable[Any], *, batch_size: int = 256, normalize: bool = False,
                     focus: str = "overall", progress: bool = False) -> torch.Tensor:
        """Preprocess raw images (paths, PIL images, bytes, arrays) with this model's own config, then embed."""
        from fashrec.data.preprocess import preprocess_batch

        images = list(images)
        device = next(self.parameters()).device
        out = [torch.empty(0, self.embedding_dim)]
        for start in range(0, len(images), batch_size):
            x = preprocess_batch(images[start:start + batch_size], self.preprocess_config, progress=progress)
            out.append(self.embed(x.to(device), normalize=normalize, focus=focus).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction of a preprocessed batch, same shape as ``x``, values in [0, 1]."""
        self._check_input(x)
        return self.decode(self._code(x))

    # ----- config and persistence -----------------------------------------------------------------
    def config_dict(self) -> dict:
        """Everything needed to rebuild this model: its constructor arguments plus ``model_class``."""
        from fashrec.version import __version__

        cfg = dict(self._hub_mixin_config or {})
        cfg["preprocess"] = self.preprocess_config.to_dict()
        cfg["model_class"] = type(self).__name__
        cfg["fashrec_version"] = __version__
        cfg["embedding_dim"] = self.embedding_dim
        return json.loads(json.dumps(cfg))  # tuples -> lists, as config.json will hold them

    def _save_pretrained(self, save_directory: Path) -> None:
        from fashrec.atomic import save_safetensors_atomic, write_json_atomic

        save_safetensors_atomic(self.state_dict(), Path(save_directory) / WEIGHTS_NAME, metadata={"format": "pt"})
        write_json_atomic(self.config_dict(), Path(save_directory) / CONFIG_NAME)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, force_download: bool = False,
                        token: str | bool | None = None, local_files_only: bool = False,
                        map_location: str | torch.device = "cpu", strict: bool = True, **overrides) -> "HubModel":
        """Load a model from a shipped name (``"paper-ae"``, ``"default"``), a local folder or a Hub repo id.

        Called on ``HubModel`` (or via ``fashrec.from_pretrained``) it returns whichever class
        ``config.json`` names; called on a subclass it also checks the checkpoint is of that class.
        The keywords are ``PyTorchModelHubMixin.from_pretrained``'s: ``revision``, ``cache_dir``,
        ``force_download``, ``token`` and ``local_files_only`` go to the Hub download, ``map_location`` is
        where the weights land, and ``strict=False`` tolerates missing or unexpected weights (a shape
        mismatch is still an error; the default, unlike the mixin's, is strict). Any other keyword overrides
        a ``config.json`` value.
        """
        source = _shipped_folder(str(pretrained_model_name_or_path))
        fetch = dict(revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                     local_files_only=local_files_only)
        config_file = _fetch(source, CONFIG_NAME, **fetch)
        try:
            config = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: {CONFIG_NAME} is not valid JSON ({exc})") from exc
        if not isinstance(config, dict):
            raise ValueError(f"{source}: {CONFIG_NAME} must hold a JSON object")
        target = _resolve_class(cls, config, source)
        kwargs = _constructor_kwargs(target, {**config, **overrides}, source)
        try:
            model = target(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {CONFIG_NAME} holds a config {target.__name__} cannot take: {exc}") from exc
        weights_file = _fetch(source, WEIGHTS_NAME, **fetch)
        load_state_strict(model, weights_file, source=source, strict=strict)
        return model.to(map_location).eval()

    def save_pretrained(self, save_directory: str | os.PathLike, *, config: dict | None = None, **kwargs):
        """The mixin's ``save_pretrained``. ``config.json`` is always this model's own ``config_dict()`` (the
        arguments that rebuild it), so a different ``config=`` is refused rather than silently dropped."""
        mine = self.config_dict()
        differs = sorted(k for k, v in json.loads(json.dumps(config or {})).items() if k not in mine or mine[k] != v)
        if differs:
            raise ValueError(
                f"save_pretrained(config=...) differs from this {type(self).__name__}'s config in {differs}: a fashrec "
                "config.json always holds the model's own constructor arguments; build the model with the config instead"
            )
        return super().save_pretrained(save_directory, **kwargs)


def from_pretrained(path_or_repo_id: str | os.PathLike, **kwargs) -> HubModel:
    """Load any fashrec model from a shipped name, a folder or a Hub repo id; the class comes from ``config.json``."""
    return HubModel.from_pretrained(path_or_repo_id, **kwargs)


def load_model(ref: str, *, device: str = "cpu", options: dict | None = None):
    """The model of ``ref`` (a shipped name, a checkpoint folder or a Hub id) on ``device``, built with
    ``options`` overriding its config (e.g. ``{"flip_tta": False}``: the model is made that way, not patched
    after loading). A device torch cannot use, or an option the model does not take, is one clear error."""
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this torch sees no CUDA GPU (torch.cuda.is_available() is False)")
    try:
        return from_pretrained(ref, map_location=device, **(options or {}))
    except ValueError as exc:
        unknown = [name for name in options or {} if f"'{name}'" in str(exc) and "does not take" in str(exc)]
        if unknown:
            raise UnknownOptionError(f"{ref}: this model has no {unknown[0]} option (--flip-tta / --no-flip-tta are for "
                                     "models with flip TTA)") from None
        raise


class UnknownOptionError(ValueError):
    """:func:`load_model` was given an option (e.g. ``flip_tta``) the model's class does not take."""


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 (hex) over the state dict: names, dtypes, shapes and bytes. Identifies a checkpoint."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too (BN counters)
    return h.hexdigest()


def load_state_strict(model: torch.nn.Module, weights_file: str | os.PathLike, *, source: str = "",
                      strict: bool = True) -> None:
    """Load safetensors weights into ``model``; any missing, unexpected or mis-shaped tensor is an error
    (``strict=False``: missing and unexpected tensors are tolerated, a shape mismatch still is one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    where = source or str(weights_file)
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{where}: {WEIGHTS_NAME} could not be read as safetensors ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected) if state[k].shape != expected[k].shape
    )
    if not strict:
        missing = unexpected = []
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched}")
        raise ValueError(f"{where}: weights do not match {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=strict)


def _shipped_folder(source: str) -> str:
    """A shipped checkpoint's name (``"paper-ae"``, ``"default"``) as its folder; anything else unchanged.
    A local folder of the same name wins over the shipped one."""
    from fashrec.models import pretrained

    if not os.path.exists(source) and (source == "default" or source in pretrained.names()):
        return str(pretrained.path(source))
    return source


def _fetch(source: str, filename: str, **fetch) -> str:
    if os.path.isdir(source):
        path = os.path.join(source, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{source}: no {filename} in this folder (is it a fashrec checkpoint?)")
        return path
    if os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"{source}: not a checkpoint folder, and not a Hub repo id of the form 'org/name'")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(repo_id=source, filename=filename, **fetch)
    except LocalEntryNotFoundError as exc:  # before EntryNotFoundError, its parent: nothing was asked of the Hub
        from fashrec.models import pretrained

        why = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else
               "local_files_only=True" if fetch.get("local_files_only") else "the Hub could not be reached")
        raise FileNotFoundError(
            f"{source}: not in the local Hub cache and {why}, so its {filename} cannot be downloaded; "
            f"go online once, or load a folder or a shipped name ({', '.join(pretrained.names())})"
        ) from exc
    except EntryNotFoundError as exc:
        raise FileNotFoundError(f"{source}: the Hub repo has no {filename}") from exc
    except RepositoryNotFoundError as exc:
        raise FileNotFoundError(f"{source}: no such Hub repo (or no access to it)") from exc


def _resolve_class(cls: type[HubModel], config: dict, source: str) -> type[HubModel]:
    name = config.get("model_class")
    if name is None:
        if cls is HubModel:
            raise ValueError(f"{source}: {CONFIG_NAME} has no 'model_class'; load it with the model class itself")
        return cls
    target = _REGISTRY.get(name)
    if target is None:
        _import_all_models()
        target = _REGISTRY.get(name)
    if target is None:
        raise ValueError(f"{source}: unknown model_class {name!r}; known: {sorted(_REGISTRY)}")
    if not issubclass(target, cls):
        raise ValueError(f"{source}: checkpoint is a {name}, not a {cls.__name__}; use fashrec.from_pretrained")
    return target


def _import_all_models() -> None:
    import importlib
    import pkgutil

    import fashrec.models

    for info in pkgutil.iter_modules(fashrec.models.__path__):
        try:
            importlib.import_module(f"fashrec.models.{info.name}")  # registers any HubModel subclasses it defines
        except ImportError:
            continue


def _constructor_kwargs(target: type[HubModel], config: dict, source: str) -> dict:
    params = inspect.signature(target.__init__).parameters
    accepted = {n for n, p in params.items() if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(config) - accepted - _INFO_KEYS)
    if unknown:
        raise ValueError(
            f"{source}: {CONFIG_NAME} has keys {target.__name__} does not take: {unknown}; "
            f"it takes {sorted(accepted)}"
        )
    return {k: v for k, v in config.items() if k in accepted}
