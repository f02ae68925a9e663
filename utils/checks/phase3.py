"""Checks for the Phase 3 exercises (contrastive learning).

Oracles: ``open_clip.loss.ClipLoss`` and ``SigLipLoss`` (value and gradients, 3.1-3.2), an open_clip
model's own forward pass (3.3), the zoo CLIP's text tower (3.4), ``torch.topk`` (3.5, 3.6).

Property probes (after the known mistakes): a loss is symmetric in images and texts, ignores the order of the
pairs, is log N on a batch of identical features and lower on matched than on shuffled pairs (3.1-3.2);
logits and class vectors ignore the lengths of the raw embeddings (a stand-in model rescales them), follow
the model's logit scale and treat each image, text, class and template on its own (3.3-3.4); mined negatives
and the filter's mask ignore row lengths, follow a permutation of the rows and respect k and keep (3.5-3.6).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .. import clip as uclip
from .. import contrastive
from . import CheckFailed, Mismatch, Unsolved, register
from .oracles import Probe, diagnose, require_properties, require_tensor


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


def _value(fn, img: torch.Tensor, txt: torch.Tensor, *scalars: float) -> float:
    """The loss an answer gives on these inputs, as a float (for the probes, which compare values)."""
    return float(fn(img.clone(), txt.clone(), *[torch.tensor(s) for s in scalars]))


def _renormalised(loss):
    """``loss`` computed on features normalised once more: the same value on unit features, another gradient."""
    return lambda img, txt, *scalars: loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), *scalars)


_RENORMALISED = ("the value is right but the gradient w.r.t. the {} is not, as if the features were L2-normalised "
                 "again inside the loss: they arrive normalised, and normalising twice changes the gradient (it "
                 "removes the part along each vector), so drop that step.")


def _same(a: float, b: float, tol: float = 1e-4) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _allclose(a: object, b: torch.Tensor, atol: float = 1e-4) -> bool:
    """Like ``oracles.close`` but with a relative tolerance too (logits of size ~20 computed in other batches)."""
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.detach().float(), b.detach().float(), rtol=1e-4, atol=atol))


def _identical(n: int = 5, d: int = 8) -> torch.Tensor:
    """n copies of one unit vector: every cosine of the batch is 1, so every logit is the same."""
    return F.normalize(torch.randn(d, generator=torch.Generator().manual_seed(11)), dim=0).repeat(n, 1)


_PERM5 = torch.tensor([3, 0, 4, 1, 2])
_DERANGE5 = torch.tensor([1, 2, 3, 4, 0])  # every caption moved to another image


def _loss_probes(fn, *scalars: float) -> list[Probe]:
    """Properties every contrastive loss over a batch of pairs has (3.1 and 3.2)."""
    img, txt = _batch(5, 8, seed=3)
    eye = torch.eye(5, 8)  # each image equals its caption and is orthogonal to the others
    return [
        Probe("symmetric in images and texts", lambda: _same(_value(fn, img, txt, *scalars),
                                                             _value(fn, txt, img, *scalars)),
              "your loss changes when the images and the captions swap roles: both directions (images pick "
              "captions, captions pick images) must be computed the same way, with the same scale, and weigh "
              "the same."),
        Probe("invariant to the order of the pairs", lambda: _same(_value(fn, img, txt, *scalars),
                                                                   _value(fn, img[_PERM5], txt[_PERM5], *scalars)),
              "your loss changes when the pairs of the batch are shuffled (image i keeps caption i): the target of "
              "row i must be column i, wherever the pair sits in the batch."),
        Probe("lower on matched than on shuffled pairs", lambda: _value(fn, eye, eye, *scalars)
              < _value(fn, eye, eye[_DERANGE5], *scalars),
              "a batch of matching pairs should score a LOWER loss than the same batch with the captions shuffled; "
              "yours scores it higher, so it rewards mismatches: is the sign flipped, or are the positives (the "
              "diagonal) and the negatives swapped?"),
    ]


# --- 3.1 symmetric InfoNCE ------------------------------------------------------------------------------

@register("3.1", "symmetric InfoNCE (CLIP's loss)", contrastive.clip_loss, hints=(
    "Start from the (N, N) matrix of scaled cosines: row i holds image i against every caption of the batch, "
    "and the right caption of row i sits on the diagonal, at column i.",
    "Section 1, 'The contrastive objective' (Radford et al., 2021, Figure 3): each row is a classification "
    "'which caption is mine?' and each column 'which image is mine?'. Symmetric InfoNCE is the MEAN of the two "
    "cross-entropies, each of them averaged over the batch.",
    "Worked step for N = 3: the targets are the class indices [0, 1, 2]; F.cross_entropy takes the raw logits "
    "(it applies the softmax itself) and a row-per-example matrix, so the caption→image direction is the same "
    "call on the transposed matrix. logit_scale is already 1/τ: multiply by it, no exp.",
))
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
    same = _identical()
    probes = _loss_probes(fn, scale) + [
        Probe("log N when every logit is equal", lambda: _same(_value(fn, same, same, scale), math.log(5)),
              "when every image is equally similar to every caption (here all 5 features are identical), each "
              "softmax is uniform over the batch and the loss must be exactly log N = log 5 ≈ 1.609, whatever "
              "logit_scale is; yours is not: check the reduction (the mean over the batch, not the sum; the "
              "average of the two directions) and that the softmax runs over one row or column, not the whole "
              "matrix."),
        Probe("about 0 on a perfect batch", lambda: _value(fn, torch.eye(5, 8), torch.eye(5, 8), 50.0) < 1e-3,
              "on a perfect batch (each image equals its caption and is orthogonal to the others) at logit_scale "
              "50 the loss should be about 0, since each softmax puts all its weight on the right caption; yours "
              "is not: F.cross_entropy expects raw logits, so don't apply a softmax before it."),
    ]
    diagnose(got[0].reshape(()), expected[0].reshape(()), {h: v.reshape(()) for h, v in mistakes.items()},
             "the loss differs from open_clip.loss.ClipLoss.", probes=probes)
    twice = _loss_and_grads(_renormalised(ClipLoss()), img, txt, scale)
    for name, g, e, t in zip(("image features", "text features", "logit_scale"), got[1:], expected[1:], twice[1:]):
        if not torch.allclose(g, e, atol=1e-5) and torch.allclose(g, t, atol=1e-5):
            raise CheckFailed(_RENORMALISED.format(name))
        if not torch.allclose(g, e, atol=1e-5):
            raise CheckFailed(f"the value matches ClipLoss but the gradient w.r.t. the {name} does not: is part of "
                              "the computation detached or done in-place?")
    big = _batch(64, 16, seed=1)  # a larger batch: values must still agree
    if not math.isclose(float(fn(*big, scale)), float(ClipLoss()(*big, scale)), rel_tol=1e-4):
        raise CheckFailed("right on a batch of 6 but not on a batch of 64: don't hard-code the batch size.")
    return "Same value and same gradients (features and logit_scale) as open_clip.loss.ClipLoss."


# --- 3.2 SigLIP ---------------------------------------------------------------------------------------------

def _sigmoid_loss_of_identical(z: float, n: int = 5) -> float:
    """SigLIP's loss when every logit equals z: one positive (−log σ(z)) and n − 1 negatives (−log σ(−z)) per
    image, summed over the n² pairs and divided by n."""
    return float(F.softplus(torch.tensor(-z)) + (n - 1) * F.softplus(torch.tensor(z)))


@register("3.2", "SigLIP's sigmoid loss", contrastive.siglip_loss, hints=(
    "Build the same (N, N) matrix of scaled cosines as in 3.1, then add the bias: each entry is now its own "
    "yes/no question, 'do image i and caption j match?'.",
    "Section 2, 'SigLIP: one sigmoid per pair' (Zhai et al., 2023): the label is +1 on the diagonal and −1 "
    "everywhere else, each pair contributes −log σ(label · logit), and the sum over all N² pairs is divided "
    "by N, the batch size, not by N².",
    "Worked step for N = 2: the label matrix is [[+1, −1], [−1, +1]], i.e. twice the identity minus a matrix of "
    "ones; multiply it with the logits element by element (not with @), and use F.logsigmoid, the "
    "numerically stable log σ.",
))
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
            contrastive.clip_loss(img, txt, scale),
    }
    same = _identical()
    probes = [
        Probe("non-negative", lambda: _value(fn, img, txt, scale, bias) >= 0,
              "your loss is negative, but every pair contributes −log σ(·) ≥ 0: is the minus sign in front of "
              "the log-sigmoid missing?"),
        *_loss_probes(fn, scale, bias),
        Probe("the bias is added to the scaled cosines", lambda: _same(_value(fn, same, same, 3.0, -1.0),
                                                                       _value(fn, same, same, 1.0, 1.0)),
              "with all cosines equal to 1, logit_scale 3 with bias −1 and logit_scale 1 with bias 1 give the same "
              "logits (2), so the same loss; yours does not. The logit is logit_scale · cosine + logit_bias — "
              "the bias added AFTER the scaling, and the label multiplies the WHOLE logit, bias included: "
              "label · (t · cos + b)."),
        Probe("the value on identical features", lambda: _same(_value(fn, same, same, 1.0, 0.5),
                                                               _sigmoid_loss_of_identical(1.5)),
              "with all 5 features identical every logit is z = logit_scale + logit_bias, so the loss must be "
              "−log σ(z) − 4 · log σ(−z) (one positive and four negatives per image); yours is not: check the "
              "reduction, the sum over the N² pairs divided by N."),
        Probe("depends on the bias", lambda: not _same(_value(fn, img, txt, scale, bias),
                                                       _value(fn, img, txt, scale, bias + 3.0)),
              "your loss does not change when logit_bias changes: add the bias to every logit."),
    ]
    diagnose(got[0].reshape(()), expected[0].reshape(()), {h: v.reshape(()) for h, v in mistakes.items()},
             "the loss differs from open_clip.loss.SigLipLoss.", probes=probes)
    twice = _loss_and_grads(_renormalised(SigLipLoss()), img, txt, scale, bias)
    names = ("image features", "text features", "logit_scale", "logit_bias")
    for name, g, e, t in zip(names, got[1:], expected[1:], twice[1:]):
        if not torch.allclose(g, e, atol=1e-5) and torch.allclose(g, t, atol=1e-5):
            raise CheckFailed(_RENORMALISED.format(name))
        if not torch.allclose(g, e, atol=1e-5):
            raise CheckFailed(f"the value matches SigLipLoss but the gradient w.r.t. the {name} does not.")
    return "Same value and gradients (features, scale and bias) as open_clip.loss.SigLipLoss."


# --- 3.3 a CLIP's logits ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _zoo():
    """The zoo CLIP and its tokenizer (loaded once per process for the checks that need a real model)."""
    model, _, tokenizer = uclip.load_clip()
    return model, tokenizer


def _zoo_batch(n: int = 5):
    from ..world import World, caption

    world = World(seed=0, image_size=32)
    images, scenes = world.arrays("val", n)
    return uclip.normalize_images(images), [caption(s) for s in scenes]


def _gains(n: int) -> torch.Tensor:
    """A different positive length factor for each row of a batch of n."""
    return torch.linspace(0.4, 3.0, n)[:, None]


class _Rescaled:
    """A stand-in for an open_clip model: its raw embeddings come out with other lengths, row by row (what a
    right answer normalises away), and its stored log-scale can be shifted (what a right answer follows).
    Everything else (``parameters()``, ``eval()``, ``visual``...) is the wrapped model's."""

    def __init__(self, model, image_gain: bool = False, text_gain: bool = False, log_scale_shift: float = 0.0):
        self._model, self._image_gain, self._text_gain = model, image_gain, text_gain
        self.logit_scale = model.logit_scale.detach() + log_scale_shift

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    @staticmethod
    def _out(features: torch.Tensor, gain: bool, normalize: bool) -> torch.Tensor:
        features = features * _gains(len(features)) if gain else features
        return F.normalize(features, dim=-1) if normalize else features

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self._out(self._model.encode_image(image), self._image_gain, normalize)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self._out(self._model.encode_text(text), self._text_gain, normalize)

    def __call__(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None):
        """open_clip's forward: normalised image and text features and the exponentiated scale."""
        return (None if image is None else self.encode_image(image, normalize=True),
                None if text is None else self.encode_text(text, normalize=True), self.logit_scale.exp())

    forward = __call__


@register("3.3", "a CLIP's logits", contrastive.clip_logits, hints=(
    "Two towers, one matrix: encode the images and the texts separately, then compare every image with every "
    "text, so the result has one row per image and one column per text.",
    "Section 1, 'The contrastive objective', and Exercise 3.1: the logits are cosines times 1/τ. A dot "
    "product is a cosine only between unit vectors, and open_clip keeps log(1/τ) in model.logit_scale, so it "
    "must be exponentiated before it multiplies anything.",
    "Worked step: with 5 images and 3 captions, model.encode_image gives (5, D) and model.encode_text (3, D); "
    "F.normalize(..., dim=-1) makes each ROW unit length; the product of the two must come out (5, 3).",
))
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

    def logits(m=model, im=images, tok=tokens) -> torch.Tensor:
        with torch.no_grad():
            return fn(m, im, tok)

    probes = [  # in this order: each may rely on the ones before (rows on their own, so 2 images do)
        Probe("shape (N_images, N_texts)", lambda: tuple(logits(im=images[:3], tok=tokens[:2]).shape) == (3, 2),
              "with 3 images and 2 texts your answer does not return shape (3, 2): one row per image, one "
              "column per text (image features @ text features transposed)."),
        Probe("each row depends on its image only", lambda: _allclose(logits(im=images[:2]), got[:2]),
              "the logits of image 0 change when the other images of the batch are left out: normalise each "
              "embedding on its own (F.normalize along the feature dim, dim=-1), not across the batch."),
        Probe("each column depends on its text only", lambda: _allclose(logits(tok=tokens[:2]), got[:, :2]),
              "the logits of text 0 change when the other texts of the batch are left out: return raw logits "
              "(no softmax over the batch) and normalise each embedding on its own, along dim=-1."),
        Probe("ignores the lengths of the embeddings",
              lambda: _allclose(logits(m=_Rescaled(model, image_gain=True, text_gain=True), im=images[:2]), got[:2]),
              "your logits change when the encoders' raw embeddings get other lengths: BOTH sides must be "
              "L2-normalised, so that the dot products are cosines."),
        Probe("follows the model's logit scale",
              lambda: _allclose(logits(m=_Rescaled(model, log_scale_shift=math.log(2)), im=images[:2]), 2 * got[:2]),
              "when the model's logit_scale grows by log 2 your logits do not double: read the scale from the "
              "model, exponentiated (model.logit_scale.exp()), instead of a fixed number such as 100 or 1/0.07."),
    ]
    diagnose(got, expected, mistakes, "the logits differ from the model's own forward pass.", probes=probes)
    return "Equal to the logits from the open_clip model's own forward pass."


# --- 3.4 zero-shot classifier with prompt ensembling ----------------------------------------------------------

@register("3.4", "zero-shot classifier (prompt ensembling)", uclip.class_embeddings, hints=(
    "Work one class at a time: fill every template with that class's name, embed those prompts, and squeeze "
    "them into ONE vector for the class; stack the classes at the end.",
    "Section 4, 'Zero-shot classification' (and the CLIP paper's prompt ensembling, Radford et al., 2021, "
    "section 3.1.4): each prompt embedding is L2-normalised so that every template weighs the same; their "
    "mean is shorter than 1, so it is normalised again.",
    "Worked step for 3 templates: the prompts of one class embed to a (3, D) tensor; normalise each of its "
    "rows, average over dim 0 to get (D,), then normalise that vector; with C classes the stack is (C, D).",
))
def _check_zero_shot(fn) -> str:
    model, tokenizer = _zoo()
    names = ["red circle", "blue square", "green triangle"]
    templates = ["a small {}.", "there is a large {}.", "one object: a small {}."]
    with torch.no_grad():
        got = require_tensor(fn(model, tokenizer, names, templates), "the classifier")
        expected = uclip.class_embeddings(model, tokenizer, names, templates)
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

    def classes(m=model, class_names=names, prompts=templates) -> torch.Tensor:
        with torch.no_grad():
            return fn(m, tokenizer, class_names, prompts)

    probes = [
        Probe("unit-length class vectors", lambda: bool(torch.allclose(got.float().norm(dim=-1),
                                                                       torch.ones(len(names)), atol=1e-4)),
              "your class vectors are not unit length: L2-normalise each class's vector at the end, along the "
              "feature dim (one row per class)."),
        Probe("each class on its own", lambda: _allclose(classes(class_names=names[1:2]), got[1:2]),
              "the vector of a class changes when the other classes are left out: compute each class from its "
              "own prompts only, and normalise along the feature dim, not across the classes."),
        Probe("ignores the order of the templates", lambda: _allclose(classes(prompts=templates[::-1]), got),
              "your class vectors change when the templates come in another order: average over ALL the "
              "templates, each with the same weight, rather than picking one."),
        Probe("ignores the lengths of the prompt embeddings",
              lambda: _allclose(classes(m=_Rescaled(model, text_gain=True)), got),
              "your class vectors change when the raw prompt embeddings get other lengths: L2-normalise each "
              "prompt's embedding on its own (along the feature dim, dim=-1) before averaging, so that every "
              "template weighs the same."),
    ]
    diagnose(got, expected, mistakes, "the class embeddings differ from the ensembled, normalised prompts.",
             probes=probes)
    return "One unit vector per class, the normalised mean of its normalised prompt embeddings."


# --- 3.5 hard negatives ----------------------------------------------------------------------------------------------

def _mining_probes(fn) -> list[Probe]:
    """Properties of the k most similar other rows by cosine, on 14 rows where anchors 0 and 1 are look-alikes
    (each is the other's hardest negative). Each probe compares the answer with its own picks on these rows,
    by their cosines (which ties cannot blur)."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(14, 5, generator=g)
    base[1] = base[0] + 0.05 * torch.randn(5, generator=g)
    emb = base * torch.linspace(0.3, 3, 14)[:, None]
    anchors = torch.tensor([0, 1, 9])
    unit = F.normalize(emb, dim=-1)
    perm = torch.randperm(14, generator=g)
    moved = torch.argsort(perm)  # row a of emb is row moved[a] of emb[perm]

    def same_picks(picked: object, a: torch.Tensor = anchors, ref: torch.Tensor | None = None) -> bool:
        ref = fn(emb, anchors, 4) if ref is None else ref
        if not isinstance(picked, torch.Tensor) or not isinstance(ref, torch.Tensor) or picked.shape != ref.shape:
            return False
        cosines = lambda idx: (unit[a][:, None, :] * unit[idx.long()]).sum(-1)  # noqa: E731
        return bool(torch.allclose(cosines(picked), cosines(ref), atol=1e-5))

    return [
        Probe("ignores the lengths of the rows", lambda: same_picks(fn(emb * torch.linspace(5, 0.2, 14)[:, None],
                                                                       anchors, 4)),
              "your negatives change when the rows of the embeddings are rescaled (same directions, other "
              "lengths): rank by cosine similarity, normalising each ROW (dim=-1) first; dot products or "
              "Euclidean distances of raw vectors depend on the lengths."),
        Probe("each anchor on its own", lambda: all(same_picks(fn(emb, anchors[i:i + 1], 4), anchors[i:i + 1],
                                                               fn(emb, anchors, 4)[i:i + 1]) for i in range(3)),
              "the negatives of an anchor change when the other anchors are in the same call: mask only each "
              "anchor's own entry (row i, column anchors[i]), not the columns of every anchor: another anchor "
              "can be this one's hardest negative."),
        Probe("respects k", lambda: same_picks(fn(emb, anchors, 2), ref=fn(emb, anchors, 4)[:, :2]),
              "with k = 2 your answer does not return the first two of its k = 4 answer: use the k you are given, "
              "not a fixed number."),
        Probe("follows a shuffle of the rows", lambda: same_picks(perm[fn(emb[perm], moved[anchors], 4).long()]),
              "your indices do not follow the rows when the rows of the embeddings are shuffled: return indices "
              "into `embeddings` itself (what topk over all N rows gives), not positions in a shortened or "
              "reordered copy."),
    ]


@register("3.5", "mine hard negatives", contrastive.mine_hard_negatives, hints=(
    "Compute one similarity row per anchor: how close is that anchor to EVERY row of embeddings, itself "
    "included? Then decide how to keep the anchor itself out of the ranking.",
    "Section 6, 'Hard negatives': a hard negative is an item the current model finds most similar to the "
    "anchor, by cosine. The anchor's own entry must be knocked out by its index, since exact copies of "
    "a caption have cosine 1 as well and are the hardest negatives of all.",
    "Worked step: for 4 anchors among 30 rows the similarity matrix is (4, 30), and the entry to knock out in "
    "row i is column anchors[i] (one entry per row, not a whole column); torch.topk along the last dim then "
    "returns the indices, most similar first.",
))
def _check_hard_negatives(fn) -> str:
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(30, 6, generator=g) * torch.linspace(0.3, 3, 30)[:, None]  # rows of very different norms
    anchors = torch.tensor([0, 7, 29, 12])
    got = require_tensor(fn(emb, anchors, 4), "mine_hard_negatives")
    expected = contrastive.mine_hard_negatives(emb, anchors, 4)
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

        if not torch.allclose(cosines(got_dup), cosines(contrastive.mine_hard_negatives(dup, anchors, 4)), atol=1e-5):
            raise CheckFailed("with copies of an anchor in the set, the negatives differ from the k most similar "
                              "other rows: an anchor's copies are its hardest negatives and must come first.")
        require_properties(_mining_probes(fn))
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
    require_properties(_mining_probes(fn))
    raise Mismatch("the negatives differ from the k most similar other rows (cosine similarity).")


# --- 3.6 CLIP as a data filter ----------------------------------------------------------------------------------

def _filter_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """The check's 20 (image, caption) embeddings: three mismatched pairs, captions of very different lengths."""
    img, txt = _batch(20, 8, seed=6)
    txt = txt.clone()
    txt[[3, 8, 15]] = txt[[8, 15, 3]]  # three mismatched pairs
    txt = txt * torch.linspace(0.2, 4.0, 20).flip(0)[:, None]  # unnormalised captions: long ones first
    return img, txt


def _filter_probes(fn, img: torch.Tensor, txt: torch.Tensor) -> list[Probe]:
    """Properties of "keep the round(keep · N) pairs of highest cosine" on the check's 20 pairs, each compared
    with the answer's own mask (the sorted scores are well apart at the cuts used here, so no rescaling can
    swap two of them)."""
    own = fn(img, txt, 0.75)
    perm = torch.randperm(len(img), generator=torch.Generator().manual_seed(8))

    def count(keep: float) -> int:
        return int(torch.as_tensor(fn(img, txt, keep)).sum())

    return [
        Probe("keeps round(keep · N) pairs", lambda: count(0.28) == 6 and count(0.12) == 2,
              "keep = 0.28 and 0.12 of 20 pairs should keep round(5.6) = 6 and round(2.4) = 2 pairs, and yours "
              "keeps another number: count round(keep · N) (int() truncates, and a quantile threshold rounds its "
              "own way)."),
        Probe("ignores the lengths of the embeddings", lambda: torch.equal(
            torch.as_tensor(fn(img * torch.linspace(3, 0.3, len(img))[:, None], txt * 2.5, 0.75)), own),
              "your mask changes when the image and caption embeddings are rescaled (same directions, other "
              "lengths): the CLIP score is the cosine, so normalise BOTH sides (or use F.cosine_similarity)."),
        Probe("follows a shuffle of the pairs", lambda: torch.equal(torch.as_tensor(fn(img[perm], txt[perm], 0.75)),
                                                                  own[perm]),
              "your mask does not follow the pairs: when the pairs are shuffled the kept ones should move with "
              "them. Set True at the positions of the best-scoring pairs (topk's .indices), not at the first "
              "positions of a sorted list."),
    ]


@register("3.6", "CLIP-score filter", contrastive.clip_filter, hints=(
    "One score per pair, image i with caption i only: that is a vector of N numbers, not an N × N matrix. "
    "Then turn 'the best round(keep · N) scores' into a mask.",
    "Section 7, 'CLIP as a data filter' (LAION-5B kept pairs whose CLIP score passed a threshold): the CLIP "
    "score is the cosine of the two embeddings, and the inputs here are not unit length, so the cosine is not "
    "the plain dot product.",
    "Worked step for N = 4, keep = 0.5: scores [0.9, 0.1, 0.7, 0.3] keep round(2.0) = 2 pairs; topk gives "
    "the positions [0, 2]; a boolean tensor of 4 False, set True there, gives [True, False, True, False].",
))
def _check_filter(fn) -> str:
    img, txt = _filter_pairs()
    got = fn(img, txt, 0.75)
    if got is None:
        raise Unsolved
    got = require_tensor(got, "clip_filter")
    expected = contrastive.clip_filter(img, txt, 0.75)
    if got.dtype != torch.bool or got.shape != (20,):
        raise CheckFailed(f"return a boolean mask with one entry per pair, shape (20,), "
                          f"got {got.dtype} {tuple(got.shape)}.")
    if torch.equal(got, expected):
        if fn(img, txt, 0.5).sum().item() != 10:
            raise CheckFailed("keep = 0.5 should keep 10 of 20 pairs.")
        require_properties(_filter_probes(fn, img, txt))
        return "Keeps the 75 % of pairs with the highest CLIP score (and drops the mismatched ones)."
    if got.sum().item() != 15:
        raise CheckFailed(f"keep = 0.75 of 20 pairs should keep 15, you kept {got.sum().item()}.")
    if torch.equal(got, ~contrastive.clip_filter(img, txt, 0.25)):
        raise CheckFailed("you kept the LOWEST-scoring pairs: keep the best-matching ones.")
    dots = (img * txt).sum(-1)
    if torch.equal(got, contrastive.keep_best(dots, 0.75)):
        raise CheckFailed("you scored pairs by raw dot products: the CLIP score is the cosine (normalise both).")
    best = (F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T).max(-1).values
    if torch.equal(got, contrastive.keep_best(best, 0.75)):
        raise CheckFailed("you scored each image by its best caption in the batch: score each PAIR, image i "
                          "with caption i.")
    require_properties(_filter_probes(fn, img, txt))
    raise Mismatch("the kept pairs differ from the top 75 % by per-pair cosine similarity.")
