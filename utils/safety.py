"""Safety (Phase 10): adversarial images against the zoo CLIP, and a defence measured against an attacker who knows
it.

A projected-gradient-descent (PGD) attack (Madry et al., 2018) nudges every pixel a little in the direction that
raises the classifier's loss, then projects back into a box of ±ε around the original image (an L∞ budget), and
repeats. Changes of a few grey levels, invisible to a person, flip a zero-shot CLIP::

    weights = zero_shot_head(model, tokenizer)               # the 24 classes' text embeddings
    adversarial = pgd_attack(model, weights, images, labels, eps=4 / 255, steps=10)
    accuracy(model, weights, adversarial, labels)

:func:`pgd_step` is the reference of Exercise 10.5. A defence that preprocesses the input (here bit-depth reduction,
:func:`squeeze`) is measured twice: against the attack above, which does not know about it, and against an *adaptive*
attack that differentiates through it (Athalye et al., 2018: defences that only hide the gradient fall to an attacker
who models them), at several budgets ε.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .clip import normalize_float_images, zero_shot_weights
from .world import class_names


def pgd_step(images: torch.Tensor, grad: torch.Tensor, original: torch.Tensor, eps: float, alpha: float
             ) -> torch.Tensor:
    """One step of an untargeted L∞ PGD attack on images in [0, 1]: move every pixel by ``alpha`` in the direction
    of the sign of the loss's gradient (up the loss), project back into [original − eps, original + eps], and keep
    the result a valid image in [0, 1]."""
    stepped = images + alpha * grad.sign()
    return torch.min(torch.max(stepped, original - eps), original + eps).clamp(0.0, 1.0)


def zero_shot_head(model, tokenizer) -> torch.Tensor:
    """The zoo CLIP's zero-shot classifier over the world's 24 (colour, shape) classes: (24, dim) text embeddings."""
    return zero_shot_weights(model, tokenizer, class_names())


def logits(model, weights: torch.Tensor, images: torch.Tensor, defence: Callable | None = None) -> torch.Tensor:
    """Zero-shot logits of float images (B, 3, S, S) in [0, 1], through ``defence`` first if given; differentiable."""
    x = defence(images) if defence is not None else images
    features = F.normalize(model.encode_image(normalize_float_images(x)), dim=-1)
    return 100.0 * features @ weights.T


def pgd_attack(model, weights: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, eps: float,
               steps: int = 10, alpha: float | None = None, defence: Callable | None = None,
               step_fn: Callable = pgd_step, seed: int | None = 0) -> torch.Tensor:
    """Adversarial versions of ``images`` (float, [0, 1]) within ±``eps`` per pixel: from a random start in the
    ε-box (Madry et al.; ``seed=None`` starts at the image itself, which makes it the older iterative FGSM of Kurakin
    et al.), ``steps`` PGD steps of size ``alpha`` (default 2.5·eps/steps) up the cross-entropy of the true
    ``labels``. With ``defence``, the attack differentiates through it (adaptive); ``step_fn`` is the update
    (Exercise 10.5's answer)."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    model.eval()
    x = images.clone()
    if seed is not None:
        noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        x = (images + eps * noise.to(images.device)).clamp(0.0, 1.0)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(logits(model, weights, x, defence), labels)
        grad, = torch.autograd.grad(loss, x)
        x = step_fn(x.detach(), grad, images, eps, alpha).detach()
    return x


@torch.no_grad()
def predictions(model, weights: torch.Tensor, images: torch.Tensor, defence: Callable | None = None,
                batch_size: int = 512) -> torch.Tensor:
    """The predicted class of each image (through ``defence`` if given)."""
    model.eval()
    return torch.cat([logits(model, weights, images[i:i + batch_size], defence).argmax(-1)
                      for i in range(0, len(images), batch_size)])


def squeeze(images: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Bit-depth reduction, the "feature squeezing" defence (Xu et al., 2018): round every pixel to one of 2^bits
    levels. Its gradient is passed straight through (BPDA, Athalye et al., 2018), so an adaptive attack can
    differentiate through it as if it were the identity."""
    levels = 2**bits - 1
    rounded = torch.round(images * levels) / levels
    return images + (rounded - images).detach()
