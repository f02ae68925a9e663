"""Contrastive learning: CLIP's and SigLIP's losses, logits, hard negatives, CLIP-score filtering.

Introduced in Phase 3 (reference answers of Exercises 3.1-3.6); Phase 8 (data curation) reuses the
filter. The losses equal ``open_clip.loss.ClipLoss`` and ``open_clip.loss.SigLipLoss`` (a test keeps them
in agreement).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of L2-normalised pairs (row i of each is a matching pair).

    ``logit_scale`` multiplies the cosines (it is 1/temperature; open_clip stores its log). The loss is the
    mean of two cross-entropies: each image must pick its caption among the batch, and each caption its image.
    """
    logits = logit_scale * image_features @ text_features.T
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float) -> torch.Tensor:
    """SigLIP's sigmoid loss: every (image, caption) pair of the batch is an independent binary decision,
    label +1 on the diagonal and −1 elsewhere; summed over the N² pairs and divided by N."""
    logits = logit_scale * image_features @ text_features.T + logit_bias
    labels = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / len(logits)


def clip_logits(model, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """An open_clip CLIP's image→text logits for a batch: scale · normalised image @ normalised text ᵀ."""
    image = F.normalize(model.encode_image(images), dim=-1)
    text = F.normalize(model.encode_text(tokens), dim=-1)
    return model.logit_scale.exp() * image @ text.T


def mine_hard_negatives(embeddings: torch.Tensor, anchors: torch.Tensor, k: int) -> torch.Tensor:
    """For each anchor index, the indices of the ``k`` most similar OTHER rows of ``embeddings`` (by
    cosine), most similar first: shape (len(anchors), k)."""
    sim = F.normalize(embeddings[anchors], dim=-1) @ F.normalize(embeddings, dim=-1).T
    sim[torch.arange(len(anchors)), anchors] = -math.inf  # an item is not its own negative
    return sim.topk(k, dim=-1).indices


def pair_scores(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """CLIP score of each pair: cosine similarity of row i of ``image_emb`` with row i of ``text_emb``."""
    return F.cosine_similarity(image_emb, text_emb, dim=-1)


def keep_best(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask keeping the ``round(keep * N)`` highest-scoring items (the CLIP-score filter)."""
    n_keep = round(keep * len(scores))
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[scores.topk(n_keep).indices] = True
    return mask


def clip_filter(image_emb: torch.Tensor, text_emb: torch.Tensor, keep: float) -> torch.Tensor:
    """Keep the share ``keep`` of (image, caption) pairs with the highest CLIP score; a boolean mask."""
    return keep_best(pair_scores(image_emb, text_emb), keep)


def neighbour_table(embeddings: torch.Tensor, k: int, miner=None, chunk: int = 1024) -> torch.Tensor:
    """The ``k`` hardest negatives of every row (N, k), mined in chunks of anchors with ``miner``
    (default :func:`mine_hard_negatives`; Phase 3 passes the learner's own)."""
    miner = miner or mine_hard_negatives
    return torch.cat([miner(embeddings, torch.arange(i, min(i + chunk, len(embeddings))), k)
                      for i in range(0, len(embeddings), chunk)])


def hard_negative_sampler(neighbours: torch.Tensor, n_anchors: int):
    """A batch sampler for :func:`utils.clip.train_clip`: ``n_anchors`` random items plus each one's mined
    neighbours (``neighbours`` from :func:`neighbour_table`), duplicates removed — so every batch is full of
    look-alikes the model must tell apart."""
    def draw(generator: torch.Generator) -> torch.Tensor:
        anchors = torch.randint(0, len(neighbours), (n_anchors,), generator=generator)
        return torch.unique(torch.cat([anchors, neighbours[anchors].flatten()]))
    return draw
