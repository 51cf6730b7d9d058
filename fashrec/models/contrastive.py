"""Supervised contrastive loss (Khosla et al., 2020): pull same-design items together, push the rest apart.

For a batch of embeddings ``z`` (N, D) and group ids ``groups`` (N,), every item whose group occurs again
in the batch is an anchor; its positives are the other members of its group, its negatives everything
else. With unit vectors and temperature t,

    L = mean over anchors a of  -1/|P(a)| * sum_{p in P(a)} log( exp(z_a.z_p / t) / sum_{b != a} exp(z_a.z_b / t) )

fashrec uses it with ``product_code`` as the group: two colourways of one garment are positives, so the
embedding learns what makes a design itself (cut, silhouette, details) rather than only its class.
Items without a partner in the batch (group id seen once, or a negative id = unknown) add nothing as
anchors but still serve as negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_contrastive_loss(z: torch.Tensor, groups: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The loss above (a scalar); zero when no item of the batch has a partner."""
    if z.ndim != 2 or groups.shape != (z.shape[0],):
        raise ValueError(f"supervised_contrastive_loss: z must be (N, D) and groups (N,), got {tuple(z.shape)} "
                         f"and {tuple(groups.shape)}")
    if not temperature > 0:
        raise ValueError(f"supervised_contrastive_loss: temperature must be > 0, got {temperature}")
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    groups = groups.to(z.device)
    positive = (groups[:, None] == groups[None, :]) & ~self_mask & (groups[:, None] >= 0)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    anchors = positive.any(dim=1)
    if not anchors.any():
        return z.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1)
    return -(pos_log_prob[anchors] / positive[anchors].sum(dim=1)).mean()
