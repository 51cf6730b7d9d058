"""A CNN trained on the catalogue's own labels, whose hidden layers are steerable similarity embeddings.

The paper's last open question (Yang, section 5): would the hidden layer of a CNN trained to label the
images be a better embedding than an autoencoder's latent? On H&M it is, by a wide margin
(``docs/embeddings.md``). The labels every catalogue row carries are the supervision:

- ``product_type_name`` (Trousers, Dress, Sneakers, ...)  -> the ``"shape"`` focus
- ``colour_group_name`` (Black, Dark Blue, Light Pink, ...) -> the ``"colour"`` focus
- ``graphical_appearance_name`` (Solid, Stripe, Denim, ...) -> the ``"pattern"`` focus

One shared convolutional trunk (BatchNorm, global average pooling) feeds one small linear head per focus.
Each head is trained through a cosine classifier (normalised features x normalised class weights x a
scale), so that the head's *cosine* geometry is what the loss shapes: products of the same type end up at
a small angle in the ``shape`` head, products of the same colour group in the ``colour`` head.

Steering. Every focus returns a vector in one shared space of ``embedding_dim`` values, made of one block
per head. ``"overall"`` is the concatenation of the L2-normalised heads, each scaled by
``overall_weights``; a single focus (e.g. ``"colour"``) keeps its own block and zeroes the others, so its
cosine similarity is exactly that head's. Because the blocks are orthogonal, a shopper's mix such as
``{"shape": 0.7, "colour": 0.3}`` is a weighted sum of per-focus cosine similarities.

Optionally the colour head is joined by a fixed colour histogram of the garment's pixels
(``colour_histogram_bins``): a soft RGB histogram of the pixels that are neither padding nor studio
background. It has no weights, lives in ``forward``, and describes colour the way a shopper sees it.

``embed`` averages the image and its mirror image (``flip_tta``), since a mirrored garment is the same
product.

Looks, not just labels. A head trained only to classify collapses every product of a class to one
point: within "Trousers" the neighbours are arbitrary. ``design_focus`` names the focus that answers
"other colours of this design": a supervised contrastive loss (``fashrec.models.contrastive``) over
``product_code`` makes the colourways of one garment positives, so the embedding keeps what makes a
design itself. With ``design_head=True`` that embedding is a head of its own (``design_embedding``),
so the focus's column head stays a plain classifier and other focuses on that column (a type-only
``"shape"``) never pull toward design siblings; without it (the older layout) the focus's column head
carries both losses. The design block is the embedding, and with ``representation={"design":
"embedding+probabilities"}`` the column's class posterior beside it, half of the cosine each.
``stem_stride=2`` halves the side in the first convolution: ~14x faster on a CPU, at a small cost in
label scores.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fashrec.models.colour_histogram import colour_histogram
from fashrec.models.contrastive import supervised_contrastive_loss
from fashrec.models.hub_model import HubModel
from fashrec.data.preprocess import PreprocessConfig

REPRESENTATIONS = ("probabilities", "embedding", "embedding+probabilities")
_MEMO_BATCHES = 64  # embed() remembers this many recent batches' blocks (see focus_embeddings)

DEFAULT_FOCUS_COLUMNS = {
    "shape": "product_type_name",
    "colour": "colour_group_name",
    "pattern": "graphical_appearance_name",
}
FOCUS_ORDER = ("design", "shape", "colour", "pattern")  # how a shopper would list them; others follow, sorted


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CosineClassifier(nn.Module):
    """Logits = scale x cos(feature, class weight): trains the feature's angles, which cosine k-NN uses."""

    def __init__(self, dim: int, n_classes: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale = float(scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(z, dim=1) @ F.normalize(self.weight, dim=1).T


class MultiTaskCNN(HubModel):
    """Shared CNN trunk + one embedding head (and cosine classifier) per labelled task.

    ``classes`` maps each label column to its class names (index = label id), so predictions read back
    as names; ``focus_columns`` maps each focus to the column its head is trained on. Columns in
    ``classes`` without a focus are auxiliary tasks: they shape the trunk but are not embedded.
    """

    def __init__(self, *, classes: Mapping[str, Sequence[str]], focus_columns: Mapping[str, str] | None = None,
                 widths: Sequence[int] = (32, 64, 128, 256), head_dim: int = 64, cosine_scale: float = 16.0,
                 dropout: float = 0.1, overall_weights: Mapping[str, float] | None = None,
                 colour_histogram_bins: int = 0, histogram_weight: float = 1.0, flip_tta: bool = True,
                 representation: str | Mapping[str, str] = "probabilities", stem_stride: int = 1,
                 design_focus: str | None = None, design_head: bool = False, stem_channels: int = 0,
                 preprocess: dict | PreprocessConfig | None = None):
        super().__init__(preprocess=preprocess)
        self.classes = {str(c): [str(n) for n in names] for c, names in classes.items()}
        focus_columns = dict(DEFAULT_FOCUS_COLUMNS if focus_columns is None else focus_columns)
        if "overall" in focus_columns:
            raise ValueError("MultiTaskCNN: 'overall' is the combination of the heads, not a column's focus")
        for focus, column in focus_columns.items():
            if column not in self.classes:
                raise ValueError(f"MultiTaskCNN: focus {focus!r} is trained on {column!r}, which is not in classes "
                                 f"({sorted(self.classes)})")
        for column, names in self.classes.items():
            if len(names) < 2:
                raise ValueError(f"MultiTaskCNN: column {column!r} needs at least 2 classes, got {len(names)}")
        # a fixed order (config.json sorts its keys): the known focuses first, as a shopper would list them
        known = list(FOCUS_ORDER)
        order = sorted(focus_columns, key=lambda f: (known.index(f) if f in known else len(known), f))
        self.focus_columns = {f: focus_columns[f] for f in order}
        focus_columns = self.focus_columns
        self.focuses = ("overall", *focus_columns)
        self.widths = [int(w) for w in widths]
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"MultiTaskCNN: widths must be positive, got {list(widths)}")
        self.head_dim = int(head_dim)
        weights = {f: 1.0 for f in focus_columns} if overall_weights is None else dict(overall_weights)
        unknown = sorted(set(weights) - set(focus_columns))
        if unknown:
            raise ValueError(f"MultiTaskCNN: overall_weights names unknown focuses {unknown}")
        self.overall_weights = {f: float(weights.get(f, 0.0)) for f in focus_columns}
        self.colour_histogram_bins = int(colour_histogram_bins)
        if self.colour_histogram_bins and "colour" not in focus_columns:
            raise ValueError("MultiTaskCNN: colour_histogram_bins needs a 'colour' focus to join")
        self.histogram_weight = float(histogram_weight)
        self.flip_tta = bool(flip_tta)
        per_focus = {f: representation for f in focus_columns} if isinstance(representation, str) else dict(representation)
        for focus, rep in per_focus.items():
            if focus not in focus_columns:
                raise ValueError(f"MultiTaskCNN: representation names unknown focus {focus!r}")
            if rep not in REPRESENTATIONS:
                raise ValueError(f"MultiTaskCNN: representation must be one of {REPRESENTATIONS}, got {rep!r}")
        self.representation = representation if isinstance(representation, str) else dict(per_focus)
        self._representations = {f: per_focus.get(f, "probabilities") for f in focus_columns}
        if design_focus is not None and design_focus not in focus_columns:
            raise ValueError(f"MultiTaskCNN: design_focus {design_focus!r} is not one of the focuses {list(focus_columns)}")
        self.design_focus = design_focus
        self.design_head = bool(design_head)
        if self.design_head and design_focus is None:
            raise ValueError("MultiTaskCNN: design_head=True needs a design_focus to serve")
        self.stem_stride = int(stem_stride)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"MultiTaskCNN: stem_stride must be 1 or 2, got {stem_stride!r}")

        self.stem_channels = int(stem_channels)
        if self.stem_channels < 0:
            raise ValueError(f"MultiTaskCNN: stem_channels must be >= 0, got {stem_channels!r}")
        # stem_channels > 0: one convolution at full resolution before the (strided) stem, so fine texture
        # (thin stripes, small dots) is seen by a non-linear layer before the side is halved
        layers: list[nn.Module] = ([conv_bn_relu(3, self.stem_channels)] if self.stem_channels else []) + [
            conv_bn_relu(self.stem_channels or 3, self.widths[0], stride=self.stem_stride)]
        cin = self.widths[0]
        for i, w in enumerate(self.widths):
            # every stage but the first halves the side: 64 -> 32 -> 16 -> 8 for four widths
            layers += [conv_bn_relu(cin, w, stride=1 if i == 0 else 2), conv_bn_relu(w, w)]
            cin = w
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(float(dropout)))
        self.heads = nn.ModuleDict({column.replace(".", "_"): nn.Linear(cin, self.head_dim) for column in self.classes})
        self.classifiers = nn.ModuleDict({column.replace(".", "_"): CosineClassifier(self.head_dim, len(names), cosine_scale)
                                          for column, names in self.classes.items()})
        if self.design_head:
            self.design_embedding = nn.Linear(cin, self.head_dim)
        self._blocks = {f: (self.head_dim if "embedding" in self._representations[f] else 0)
                        + (len(self.classes[c]) if "probabilities" in self._representations[f] else 0)
                        + (self.colour_histogram_bins ** 3 if f == "colour" else 0)
                        for f, c in focus_columns.items()}
        self._memo: OrderedDict = OrderedDict()

    # ----- shapes ----------------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return sum(self._blocks.values())

    def focus_slices(self) -> dict[str, slice]:
        """Where each focus's block sits inside the ``embedding_dim`` vector."""
        out, start = {}, 0
        for focus, size in self._blocks.items():
            out[focus] = slice(start, start + size)
            start += size
        return out

    # ----- the network -----------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The shared trunk's pooled features ``(N, widths[-1])``."""
        return self.trunk(x)

    def head_embeddings(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Un-normalised ``(N, head_dim)`` embedding of every labelled column."""
        return self._heads(self.features(x))[0]

    def _heads(self, h: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Each column's head embedding and the design embedding (None without a design focus) of features h."""
        heads = {column: self.heads[column.replace(".", "_")](h) for column in self.classes}
        if self.design_focus is None:
            return heads, None
        return heads, (self.design_embedding(h) if self.design_head else heads[self.focus_columns[self.design_focus]])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class logits per label column."""
        return {column: self.classifiers[column.replace(".", "_")](z) for column, z in self.head_embeddings(x).items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, column: str) -> list[str]:
        """The most likely class name of ``column`` for each image of a preprocessed batch."""
        self._check_input(x)
        if column not in self.classes:
            raise ValueError(f"unknown column {column!r}; this model predicts {sorted(self.classes)}")
        return [self.classes[column][i] for i in self(x)[column].argmax(1).tolist()]

    def loss(self, x: torch.Tensor, *, labels: Mapping[str, torch.Tensor], designs: torch.Tensor | None = None,
             label_smoothing: float = 0.1, contrastive_weight: float = 1.0, temperature: float = 0.1,
             teacher: torch.Tensor | None = None, distill_weight: float = 1.0, **_) -> dict[str, torch.Tensor]:
        """Sum of the tasks' cross-entropies (a label of -1, missing, is ignored), plus, with ``designs``
        (a design id per image, -1 = unknown) and a ``design_focus``, ``contrastive_weight`` times the
        supervised contrastive loss of the design embedding over designs (``"supcon"``), plus, with
        ``teacher`` features and a ``teacher_head`` that training attached (and removes before saving),
        ``distill_weight`` times their cosine distance from the head's output (``"distill"``)."""
        h = self.features(x)
        heads, design = self._heads(h)
        logits = {c: self.classifiers[c.replace(".", "_")](z) for c, z in heads.items()}
        out: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        if designs is not None and design is not None and contrastive_weight:
            con = supervised_contrastive_loss(design, designs, temperature)
            total = total + contrastive_weight * con
            out["supcon"] = con.detach()
        if teacher is not None and distill_weight and hasattr(self, "teacher_head"):
            distill = (1 - F.cosine_similarity(self.teacher_head(h), teacher.to(h), dim=1)).mean()
            total = total + distill_weight * distill
            out["distill"] = distill.detach()
        for column, lg in logits.items():
            y = labels[column].to(x.device).long()
            if (y >= 0).any():
                ce = F.cross_entropy(lg, y, ignore_index=-1, label_smoothing=label_smoothing)
                total = total + ce
                out[f"ce/{column}"] = ce.detach()
                valid = y >= 0
                out[f"acc/{column}"] = (lg.argmax(1)[valid] == y[valid]).float().mean().detach()
        out["loss"] = total
        return out

    # ----- embeddings ------------------------------------------------------------------------------
    def colour_histogram(self, x: torch.Tensor) -> torch.Tensor:
        """Soft RGB histogram (``bins**3`` values, square-rooted, unit L2) of the garment's pixels: padding
        ignored, studio background down-weighted (``fashrec.models.colour_histogram``)."""
        return colour_histogram(x, bins=self.colour_histogram_bins, pad_value=float(self.preprocess_config.pad_value))

    def _blocks_of(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Per focus and part (``embedding``: the normalised head, ``probabilities``: the class posterior),
        for one view of x."""
        heads, design = self._heads(self.features(x))
        out = {}
        for focus, column in self.focus_columns.items():
            z, rep = heads[column], self._representations[focus]
            parts = {}
            if "embedding" in rep:
                parts["embedding"] = F.normalize(design if focus == self.design_focus else z, dim=1)
            if "probabilities" in rep:
                parts["probabilities"] = self.classifiers[column.replace(".", "_")](z).softmax(1)
            out[focus] = parts
        return out

    def focus_embeddings(self, x: torch.Tensor, *, network=None) -> dict[str, torch.Tensor]:
        """Each focus's own block, L2-normalised (averaged with the mirror image if ``flip_tta``).

        ``representation="probabilities"`` (default): the square root of the predicted class
        distribution of the focus's column (so cosine = the Bhattacharyya coefficient of two products'
        class posteriors: high when the network reads them as the same type / colour / pattern, and
        graded by its uncertainty). ``"embedding"``: the head's ``head_dim`` hidden values.

        In eval mode the blocks of the last few batches are remembered (keyed by the batch's storage,
        shape, version and a checksum), so asking for several focuses of one batch runs the network once.

        ``network`` stands in for ``_blocks_of`` (one view in, the per-focus parts out), e.g. the same
        network on ONNX Runtime (``fashrec.models.inference``); its results are not remembered.
        """
        key = None
        blocks_of = self._blocks_of if network is None else network
        if network is None and not self.training and not torch.is_grad_enabled():
            key = (x.data_ptr(), tuple(x.shape), x.stride(), x._version, str(x.device), x.dtype,
                   float(x.double().sum()), float((x.double() ** 2).sum()), self.histogram_weight,
                   self.flip_tta, sum(p._version for p in self.parameters()))
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        n = x.shape[0]
        if self.flip_tta and not self.training:
            # one pass over the image and its mirror (BatchNorm uses running stats in eval mode, so batching
            # them together changes nothing but the speed: ~17 ms instead of 2 x 11 ms for one photo)
            both = blocks_of(torch.cat([x, torch.flip(x, dims=[3])]))
            blocks = {f: {k: (b[:n] + b[n:]) / 2 for k, b in parts.items()} for f, parts in both.items()}
        elif self.flip_tta:
            blocks = blocks_of(x)
            mirrored = blocks_of(torch.flip(x, dims=[3]))
            blocks = {f: {k: (b + mirrored[f][k]) / 2 for k, b in parts.items()} for f, parts in blocks.items()}
        else:
            blocks = blocks_of(x)
        out = {}
        for focus, parts in blocks.items():
            # cosine of square-rooted posteriors = their Bhattacharyya coefficient; parts weigh equally
            pieces = [F.normalize(parts["embedding"], dim=1)] if "embedding" in parts else []
            if "probabilities" in parts:
                pieces.append(F.normalize(parts["probabilities"].clamp(min=0).sqrt(), dim=1))
            out[focus] = F.normalize(torch.cat(pieces, dim=1), dim=1)
        if self.colour_histogram_bins:
            hist = self.colour_histogram(x) * self.histogram_weight
            out["colour"] = F.normalize(torch.cat([out["colour"], hist], dim=1), dim=1)
        if key is not None:
            self._memo[key] = out
            while len(self._memo) > _MEMO_BATCHES:
                self._memo.popitem(last=False)
        return out

    def train(self, mode: bool = True):
        if mode:
            self._memo.clear()  # weights are about to change (the key also holds the weights' versions)
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._memo.clear()
        return super()._load_from_state_dict(*args, **kwargs)

    network_method = "_blocks_of"  # what embed_focuses(network=...) stands in for

    @torch.no_grad()
    def embed_focuses(self, x: torch.Tensor, *, network=None) -> dict[str, torch.Tensor]:
        """``{focus: embed(x, focus=focus)}`` for every focus, from one pass of the network."""
        self._check_input(x)
        blocks = self.focus_embeddings(x, network=network)
        return {focus: self._mix(blocks, focus).float() for focus in self.focuses}

    def _embed(self, x: torch.Tensor, focus: str) -> torch.Tensor:
        return self._mix(self.focus_embeddings(x), focus)

    def _mix(self, blocks: dict[str, torch.Tensor], focus: str) -> torch.Tensor:
        if focus == "overall":
            weights = self.overall_weights
        else:
            weights = {f: 1.0 if f == focus else 0.0 for f in blocks}
        return torch.cat([blocks[f] * weights.get(f, 0.0) for f in self.focus_columns], dim=1)

    def _code(self, x: torch.Tensor) -> torch.Tensor:
        return self._embed(x, "overall")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The overall embedding (there is no decoder: this model does not reconstruct)."""
        return self._embed(x, "overall")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("MultiTaskCNN is a discriminative model: it embeds, it does not reconstruct")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("MultiTaskCNN is a discriminative model: it embeds, it does not reconstruct")
