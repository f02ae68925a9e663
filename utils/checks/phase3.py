"""Checks for the Phase 3 exercises (contrastive learning).

Oracles: ``open_clip.loss.ClipLoss`` and ``SigLipLoss`` (value and gradients, 3.1-3.2), an open_clip
model's own forward pass (3.3), the zoo CLIP's text tower (3.4), ``torch.topk`` (3.5, 3.6).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .. import clip as C
from .. import contrastive as K
from . import CheckFailed, Unsolved, register
from .oracles import diagnose, require_tensor


def _batch(n: int = 6, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised image/text features where matching pairs are somewhat aligned (a realistic batch)."""
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    txt = F.normalize(img + 0.8 * torch.randn(n, d, generator=g), dim=-1)
    return img, txt


def _loss_and_grads(fn, img: torch.Tensor, txt: torch.Tensor, *scalars: float) -> tuple[torch.Tensor, ...]:
    """Call a loss on leaf copies; return (loss, d/d image, d/d text, d/d each scalar)."""
    img, txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    params = [torch.tensor(s, requires_grad=True) for s in scalars]
    loss = fn(img, txt, *params)
    if loss is None:
        raise Unsolved
    if not isinstance(loss, torch.Tensor):
        raise CheckFailed(f"return the loss as a scalar tensor (so it can be back-propagated), "
                          f"not {type(loss).__name__}.")
    if loss.numel() != 1:
        raise CheckFailed(f"the loss should be one number (a scalar tensor), got shape {tuple(loss.shape)}: reduce it.")
    if not loss.requires_grad:
        raise CheckFailed("the loss does not depend on the features through autograd: no `.item()`, `.detach()` "
                          "or NumPy inside the loss.")
    grads = torch.autograd.grad(loss, [img, txt, *params], allow_unused=True)
    return (loss.detach(), *[torch.zeros(()) if g is None else g for g in grads])


# --- 3.1 symmetric InfoNCE ------------------------------------------------------------------------------

@register("3.1", "symmetric InfoNCE (CLIP's loss)", K.clip_loss)
def _check_clip_loss(fn) -> str:
    from open_clip.loss import ClipLoss

    img, txt = _batch()
    scale = 14.3  # 1 / 0.07
    got = _loss_and_grads(fn, img, txt, scale)
    expected = _loss_and_grads(ClipLoss(), img, txt, scale)
    labels = torch.arange(len(img))
    logits = scale * img @ txt.T
    mistakes = {
        "only the image→text direction: average the cross-entropy over rows (images pick captions) AND over "
        "columns (captions pick images).": F.cross_entropy(logits, labels),
        "only the text→image direction: add the image→text cross-entropy and average the two.":
            F.cross_entropy(logits.T, labels),
        "the two directions are summed: CLIP averages them, (loss_i + loss_t) / 2.":
            F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels),
        "the temperature is inverted: multiply the cosines by logit_scale (= 1/τ), don't divide.":
            (F.cross_entropy(img @ txt.T / scale, labels) + F.cross_entropy((img @ txt.T / scale).T, labels)) / 2,
        "logit_scale is not applied: the cosines must be multiplied by it.":
            (F.cross_entropy(img @ txt.T, labels) + F.cross_entropy((img @ txt.T).T, labels)) / 2,
        "the target of row i is class i (the diagonal): labels = torch.arange(N), not zeros.":
            (F.cross_entropy(logits, torch.zeros_like(labels))
             + F.cross_entropy(logits.T, torch.zeros_like(labels))) / 2,
        "you used exp(logit_scale): here logit_scale is already the multiplier (open_clip passes "
        "model.logit_scale.exp()).": (F.cross_entropy(math.exp(scale) * img @ txt.T, labels)
                                      + F.cross_entropy(math.exp(scale) * (img @ txt.T).T, labels)) / 2,
    }
    diagnose(got[0].reshape(()), expected[0].reshape(()), {h: v.reshape(()) for h, v in mistakes.items()},
              "the loss differs from open_clip.loss.ClipLoss.")
    for name, g, e in zip(("image features", "text features", "logit_scale"), got[1:], expected[1:]):
        if not torch.allclose(g, e, atol=1e-5):
            raise CheckFailed(f"the value matches ClipLoss but the gradient w.r.t. the {name} does not: is part of "
                              "the computation detached or done in-place?")
    big = _batch(64, 16, seed=1)  # a larger batch: values must still agree
    if not math.isclose(float(fn(*big, scale)), float(ClipLoss()(*big, scale)), rel_tol=1e-4):
        raise CheckFailed("right on a batch of 6 but not on a batch of 64: don't hard-code the batch size.")
    return "Same value and same gradients (features and logit_scale) as open_clip.loss.ClipLoss."


# --- 3.2 SigLIP ---------------------------------------------------------------------------------------------

@register("3.2", "SigLIP's sigmoid loss", K.siglip_loss)
def _check_siglip(fn) -> str:
    from open_clip.loss import SigLipLoss

    img, txt = _batch(seed=2)
    scale, bias = 10.0, -10.0  # SigLIP's initial values
    got = _loss_and_grads(fn, img, txt, scale, bias)
    expected = _loss_and_grads(SigLipLoss(), img, txt, scale, bias)
    n = len(img)
    logits = scale * img @ txt.T + bias
    eye = torch.eye(n)
    pm = 2 * eye - 1
    mistakes = {
        "you averaged over all N² pairs (as BCE's default 'mean' reduction does): SigLIP sums the N² pair "
        "losses and divides by N, the batch size.": -F.logsigmoid(pm * logits).mean(),
        "labels are 0/1: with -logsigmoid(labels * logits) they must be +1 for matches and −1 for the rest "
        "(2·I − 1).": -F.logsigmoid(eye * logits).sum() / n,
        "the bias is missing: logits = logit_scale · cosines + logit_bias.":
            -F.logsigmoid(pm * (scale * img @ txt.T)).sum() / n,
        "only the diagonal (positive pairs) contributes: every off-diagonal pair is a negative with label −1.":
            -F.logsigmoid(logits.diagonal()).sum() / n,
        "this is CLIP's softmax loss: SigLIP applies a sigmoid to each pair independently.":
            K.clip_loss(img, txt, scale),
    }
    diagnose(got[0].reshape(()), expected[0].reshape(()), {h: v.reshape(()) for h, v in mistakes.items()},
              "the loss differs from open_clip.loss.SigLipLoss.")
    for name, g, e in zip(("image features", "text features", "logit_scale", "logit_bias"), got[1:], expected[1:]):
        if not torch.allclose(g, e, atol=1e-5):
            raise CheckFailed(f"the value matches SigLipLoss but the gradient w.r.t. the {name} does not.")
    return "Same value and gradients (features, scale and bias) as open_clip.loss.SigLipLoss."


# --- 3.3 a CLIP's logits ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _zoo():
    """The zoo CLIP and its tokenizer (loaded once per process for the checks that need a real model)."""
    model, _, tokenizer = C.load_clip()
    return model, tokenizer


def _zoo_batch(n: int = 5):
    from ..world import World, caption

    world = World(seed=0, image_size=32)
    images, scenes = world.arrays("val", n)
    return C.normalize_images(images), [caption(s) for s in scenes]


@register("3.3", "a CLIP's logits", K.clip_logits)
def _check_logits(fn) -> str:
    model, tokenizer = _zoo()
    images, texts = _zoo_batch()
    tokens = tokenizer(texts)
    with torch.no_grad():
        got = require_tensor(fn(model, images, tokens), "clip_logits")
        img_f, txt_f, scale = model(images, tokens)[:3]  # open_clip's forward: normalised features, exp'd scale
        expected = scale * img_f @ txt_f.T
        raw_i, raw_t = model.encode_image(images), model.encode_text(tokens)
    mistakes = {
        "the features are not L2-normalised: normalise image and text embeddings before the dot product.":
            scale * raw_i @ raw_t.T,
        "logit_scale is stored as a log: multiply by model.logit_scale.exp(), not model.logit_scale.":
            model.logit_scale.detach() * img_f @ txt_f.T,
        "the scale is missing: multiply the cosines by model.logit_scale.exp().": img_f @ txt_f.T,
        "these are texts × images: return logits_per_image, one row per image (image @ text.T).": expected.T,
    }
    diagnose(got, expected, mistakes, "the logits differ from the model's own forward pass.")
    return "Equal to the logits from the open_clip model's own forward pass."


# --- 3.4 zero-shot classifier with prompt ensembling ----------------------------------------------------------

@register("3.4", "zero-shot classifier (prompt ensembling)", C.class_embeddings)
def _check_zero_shot(fn) -> str:
    model, tokenizer = _zoo()
    names = ["red circle", "blue square", "green triangle"]
    templates = ["a small {}.", "there is a large {}.", "one object: a small {}."]
    with torch.no_grad():
        got = require_tensor(fn(model, tokenizer, names, templates), "the classifier")
        expected = C.class_embeddings(model, tokenizer, names, templates)
        raw = torch.stack([model.encode_text(tokenizer([t.format(n) for t in templates])) for n in names])  # (C, T, D)
    unit = F.normalize(raw, dim=-1)
    mistakes = {
        "the averaged embedding is not re-normalised: the mean of unit vectors is shorter than 1; "
        "L2-normalise each class vector at the end.": unit.mean(1),
        "the prompt embeddings are averaged before being normalised: normalise each prompt's embedding first, "
        "so every template gets the same weight.": F.normalize(raw.mean(1), dim=-1),
        "only the first template is used: embed every template and average them (prompt ensembling).": unit[:, 0],
        "you averaged over classes instead of templates: one vector per class, the mean over its prompts.":
            F.normalize(unit.mean(0), dim=-1),
    }
    if got.shape == (len(names), len(templates), raw.shape[-1]):
        raise CheckFailed("one embedding per prompt is left: average over the templates (dim 1) so each class "
                          "gets ONE vector.")
    diagnose(got, expected, mistakes, "the class embeddings differ from the ensembled, normalised prompts.")
    return "One unit vector per class, the normalised mean of its normalised prompt embeddings."


# --- 3.5 hard negatives ----------------------------------------------------------------------------------------------

@register("3.5", "mine hard negatives", K.mine_hard_negatives)
def _check_hard_negatives(fn) -> str:
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(30, 6, generator=g) * torch.linspace(0.3, 3, 30)[:, None]  # rows of very different norms
    anchors = torch.tensor([0, 7, 29, 12])
    got = require_tensor(fn(emb, anchors, 4), "mine_hard_negatives")
    expected = K.mine_hard_negatives(emb, anchors, 4)
    if got.shape != expected.shape:
        raise CheckFailed(f"expected indices of shape (n_anchors, k) = {tuple(expected.shape)}, "
                          f"got {tuple(got.shape)}.")
    if got.dtype not in (torch.int64, torch.int32):
        raise CheckFailed("return integer indices (like topk's .indices), not similarities.")
    if (got == anchors[:, None]).any():
        raise CheckFailed("an anchor is listed as its own hard negative: exclude it (e.g. set its own similarity "
                          "to −inf before topk).")
    if torch.equal(got, expected):
        dup = torch.cat([emb, emb[anchors].repeat(3, 1)])  # three exact copies of every anchor: captions repeat
        got_dup = require_tensor(fn(dup, anchors, 4), "mine_hard_negatives")
        if got_dup.shape != (len(anchors), 4) or (got_dup == anchors[:, None]).any():
            raise CheckFailed("with exact copies of an anchor in the set (captions repeat: the 10,000 training "
                              "captions hold only 4,344 distinct ones), your answer lists the anchor itself. Dropping "
                              "the first result of topk(k + 1) assumes the anchor ranks first, but its copies tie "
                              "with it: mask the anchor's own index instead (e.g. set its similarity to −inf).")
        unit_dup = F.normalize(dup, dim=-1)

        def cosines(picked: torch.Tensor) -> torch.Tensor:  # ties between copies make indices ambiguous, not cosines
            return (unit_dup[anchors, None, :] * unit_dup[picked]).sum(-1)

        if not torch.allclose(cosines(got_dup), cosines(K.mine_hard_negatives(dup, anchors, 4)), atol=1e-5):
            raise CheckFailed("with copies of an anchor in the set, the negatives differ from the k most similar "
                              "other rows: an anchor's copies are its hardest negatives and must come first.")
        return "The k most similar other items, most similar first (duplicates of an anchor included)."
    unit = F.normalize(emb, dim=-1)
    dots = emb[anchors] @ emb.T
    dots[torch.arange(4), anchors] = -math.inf
    if torch.equal(got, dots.topk(4, dim=-1).indices):
        raise CheckFailed("you ranked by raw dot products: use cosine similarity (normalise first), or long "
                          "vectors become everyone's 'hardest' negative.")
    cos = unit[anchors] @ unit.T
    cos[torch.arange(4), anchors] = math.inf
    if torch.equal(got, cos.topk(4, dim=-1, largest=False).indices):
        raise CheckFailed("these are the EASIEST negatives (least similar): hard negatives are the most similar.")
    if torch.equal(got.sort(-1).values, expected.sort(-1).values):
        raise CheckFailed("the right items in the wrong order: most similar first.")
    raise CheckFailed("the negatives differ from the k most similar other rows (cosine similarity).")


# --- 3.6 CLIP as a data filter ----------------------------------------------------------------------------------

@register("3.6", "CLIP-score filter", K.clip_filter)
def _check_filter(fn) -> str:
    img, txt = _batch(20, 8, seed=6)
    txt = txt.clone()
    txt[[3, 8, 15]] = txt[[8, 15, 3]]  # three mismatched pairs
    txt = txt * torch.linspace(0.2, 4.0, 20).flip(0)[:, None]  # unnormalised captions: long ones first
    got = fn(img, txt, 0.75)
    if got is None:
        raise Unsolved
    got = require_tensor(got, "clip_filter")
    expected = K.clip_filter(img, txt, 0.75)
    if got.dtype != torch.bool or got.shape != (20,):
        raise CheckFailed(f"return a boolean mask with one entry per pair, shape (20,), "
                          f"got {got.dtype} {tuple(got.shape)}.")
    if torch.equal(got, expected):
        if fn(img, txt, 0.5).sum().item() != 10:
            raise CheckFailed("keep = 0.5 should keep 10 of 20 pairs.")
        return "Keeps the 75 % of pairs with the highest CLIP score (and drops the mismatched ones)."
    if got.sum().item() != 15:
        raise CheckFailed(f"keep = 0.75 of 20 pairs should keep 15, you kept {got.sum().item()}.")
    if torch.equal(got, ~K.clip_filter(img, txt, 0.25)):
        raise CheckFailed("you kept the LOWEST-scoring pairs: keep the best-matching ones.")
    dots = (img * txt).sum(-1)
    if torch.equal(got, K.keep_best(dots, 0.75)):
        raise CheckFailed("you scored pairs by raw dot products: the CLIP score is the cosine (normalise both).")
    best = (F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T).max(-1).values
    if torch.equal(got, K.keep_best(best, 0.75)):
        raise CheckFailed("you scored each image by its best caption in the batch: score each PAIR, image i "
                          "with caption i.")
    raise CheckFailed("the kept pairs differ from the top 75 % by per-pair cosine similarity.")
