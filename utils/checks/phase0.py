"""Checks for the Phase 0 exercises (prerequisites). Oracles are library implementations where one exists.

Each check compares with the oracle and names a known mistake first; when none matches, it probes properties
every right answer has (a mean over the batch, rows of unit length, masked keys that do not matter, merges that
do not depend on the order of the words...) so that a mistake nobody listed still gets a hint naming what breaks.
"""
from __future__ import annotations

import copy
import inspect
import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from .. import attention as uattention
from .. import embeddings as uembeddings
from .. import text as utext
from .. import train as utrain
from .. import vision as uvision
from . import CheckFailed, Mismatch, register
from .oracles import (
    Probe,
    batch_independent,
    changes_when,
    close,
    diagnose,
    equivariant,
    gradient_reaches,
    invariant,
    require_properties,
    require_tensor,
    unchanged_when,
    unit_length,
)

# --- 0.1 a training step --------------------------------------------------------------------------------

def _tiny_classifier(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def _fresh_setup() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _tiny_classifier(0)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _same_params(a: nn.Module, b: nn.Module, atol: float = 1e-5) -> bool:
    return all(torch.allclose(p, q, atol=atol) for p, q in zip(a.parameters(), b.parameters()))


def _train_step_probes(fn, x: torch.Tensor, y: torch.Tensor) -> list[Probe]:
    """Properties of one training step, each on a fresh model and a fresh SGD-momentum optimizer."""

    def uses_given_optimizer() -> bool:  # SGD with momentum keeps a buffer per parameter once it has stepped
        model, opt = _fresh_setup()
        fn(model, x, y, opt)
        return all(opt.state.get(p, {}).get("momentum_buffer") is not None for p in model.parameters())

    def one_update_per_call() -> bool:
        model, opt = _fresh_setup()
        steps = []
        handle = opt.register_step_pre_hook(lambda *_: steps.append(1))
        try:
            fn(model, x, y, opt)
        finally:
            handle.remove()
        return len(steps) == 1

    def mean_over_batch() -> bool:  # the same batch twice: a mean gives the same loss and the same update
        once, opt1 = _fresh_setup()
        twice, opt2 = _fresh_setup()
        loss1 = fn(once, x, y, opt1)
        loss2 = fn(twice, torch.cat([x, x]), torch.cat([y, y]), opt2)
        return math.isclose(float(loss1), float(loss2), rel_tol=1e-4, abs_tol=1e-6) and _same_params(once, twice)

    def gradients_cleared() -> bool:  # after a second call, .grad holds that call's gradient only (or nothing)
        model, opt = _fresh_setup()
        fn(model, x, y, opt)
        snapshot = copy.deepcopy(model)
        grads = torch.autograd.grad(F.cross_entropy(snapshot(x), y), list(snapshot.parameters()))
        fn(model, x, y, opt)
        return all(p.grad is None or not p.grad.any() or torch.allclose(p.grad, g, atol=1e-5)
                   for p, g in zip(model.parameters(), grads))

    return [
        Probe("updates with the optimizer it is given", uses_given_optimizer,
              "the `optimizer` you were given never stepped (it holds no momentum): update the weights with that "
              "optimizer — one created inside train_step starts from scratch at every call and forgets its "
              "momentum, and a hand-written update ignores the optimizer's settings."),
        Probe("one update per call", one_update_per_call,
              "`optimizer.step()` ran more than once in one call: one training step is one forward pass, one "
              "`loss.backward()` and one `optimizer.step()`."),
        Probe("mean over the batch", mean_over_batch,
              "your loss (or your update) changes when the batch is simply repeated twice: average the "
              "per-example losses (cross-entropy's default, reduction='mean') instead of summing them, or the "
              "step size grows with the batch size."),
        Probe("gradients cleared every step", gradients_cleared,
              "after two calls the gradients hold more than the last step's: they accumulate unless you call "
              "`optimizer.zero_grad()` every step, before `loss.backward()`."),
    ]


@register("0.1", "one training step", utrain.train_step, hints=(
    "Four things happen in one step, always in the same order: clear the old gradients, compute the loss, "
    "back-propagate it, update the weights. Then hand back the loss as a plain Python number.",
    "Section 2 (Tensors, autograd and a training loop): PyTorch adds every new gradient to `.grad`, so the "
    "previous step's gradients must be cleared first; F.cross_entropy takes the raw logits and the integer class "
    "targets, and applies log-softmax itself.",
    "Use the optimizer you are given: it already knows the model's parameters — its zero_grad() clears their "
    "gradients and its step() updates them, once the loss has been back-propagated. `.item()` turns the "
    "one-element loss tensor into a float.",
))
def _check_train_step(fn) -> str:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 2, 2, generator=g), torch.randint(0, 3, (8,), generator=g)
    ref, mine = _tiny_classifier(0), _tiny_classifier(0)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in mine.parameters()]
    probes = _train_step_probes(fn, x, y)
    for step in range(3):  # several steps: leftover gradients only show from the second step on
        expected = utrain.train_step(ref, x, y, opt_ref)
        with torch.no_grad():
            logits = mine(x)  # what the learner's model predicts before its update
        loss = fn(mine, x, y, opt_mine)
        if not isinstance(loss, float):
            raise CheckFailed(f"return the loss as a Python float (`loss.item()`), not {type(loss).__name__}: "
                              "keeping tensors around keeps their whole graph in memory.")
        if all(torch.equal(p, q) for p, q in zip(before, mine.parameters())):
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in mine.parameters()):
                raise CheckFailed("gradients were computed but the parameters did not change: call "
                                  "`optimizer.step()` after `loss.backward()`.")
            raise CheckFailed("the parameters did not change and no gradients are left: call `loss.backward()` "
                              "before `optimizer.step()`, and `optimizer.zero_grad()` at the start of the step, "
                              "not between `loss.backward()` and `optimizer.step()`.")
        if not math.isclose(loss, expected, rel_tol=1e-4, abs_tol=1e-6):
            with torch.no_grad():
                after = F.cross_entropy(mine(x), y).item()
            for hint, value in (
                ("you applied softmax before F.cross_entropy: it applies log-softmax itself, so give it the raw "
                 "logits.", F.cross_entropy(logits.softmax(-1), y).item()),
                ("F.nll_loss on raw logits is not cross-entropy: F.cross_entropy applies log-softmax itself — use "
                 "it on the raw logits (or take log_softmax before nll_loss).", F.nll_loss(logits, y).item()),
                ("you returned the loss of the UPDATED model (computed again after `optimizer.step()`): return the "
                 "loss whose backward pass made the update.", after),
            ):
                if math.isclose(loss, value, rel_tol=1e-4, abs_tol=1e-6):
                    raise CheckFailed(hint)
            require_properties(probes)
            raise Mismatch(f"the loss differs from the cross-entropy of the model's raw logits against the targets "
                           f"({loss:.4f} vs {expected:.4f}).")
        if not _same_params(ref, mine):
            require_properties(probes)
            raise Mismatch(f"the loss is right but the weights after step {step + 1} differ from those one "
                           "zero_grad → cross-entropy → backward → step gives.")
    return "Same loss and same updated weights as the reference over 3 SGD-momentum steps."


# --- 0.2 / 0.3 embedding geometry -----------------------------------------------------------------------

def _l2_probes(fn, x: torch.Tensor, got: torch.Tensor) -> list[Probe]:
    """Properties of row normalisation: invariant to rescaling a row, unit rows, same directions, rows apart."""
    rescale = torch.tensor([0.02, 20.0, 0.1, 0.5, 4.0])[:, None]
    f = lambda t: fn(t)  # noqa: E731
    return [
        Probe("invariant to rescaling a row", invariant(f, x, lambda t: t * rescale),
              "your output changes when a row is multiplied by a positive number: a normalised row depends only "
              "on its direction. If short rows come out unchanged, your eps (or clamp) is far too large — it is "
              "only there for rows that are exactly zero, so keep it tiny (1e-12)."),
        Probe("rows of unit L2 norm", lambda: unit_length(got),
              "the rows of your output do not have L2 norm 1: divide each row by sqrt(sum of its squared "
              "entries) — not by its largest entry, its sum of absolute values or a standard deviation."),
        Probe("same direction as the input", lambda: bool((F.cosine_similarity(got, x, dim=-1) > 1 - 1e-4).all()),
              "your rows have length 1 but point in another direction than x's rows: only divide each row by a "
              "positive number (its norm), do not change its entries otherwise."),
        Probe("rows independent of each other", batch_independent(f, x, split=2),
              "a row's result depends on the other rows of x: compute one norm per row (along dim=-1)."),
    ]


@register("0.2", "L2 normalisation", uembeddings.l2_normalize, hints=(
    "Work on one row first: what number do you divide a vector by so that its length becomes 1? Then do it for "
    "every row at once, along the last dimension.",
    "Section 3, Embedding geometry: the L2 norm of a row is the square root of the sum of its squared entries; "
    "dividing the row by it keeps the direction and makes the length 1. For broadcasting, the norms must stay a "
    "column (keep the reduced dimension).",
    "For x of shape (5, 7) the row norms have shape (5, 1), and x divided by them is (5, 7) again. A zero row has "
    "norm 0: raise the norm to at least a tiny eps (clamp_min) before dividing, so 0 / eps stays 0.",
))
def _check_l2(fn) -> str:
    g = torch.Generator().manual_seed(1)
    # rows of very different lengths: an eps or clamp that is too large leaves the short rows unnormalised
    x = torch.randn(5, 7, generator=g) * torch.tensor([3.0, 0.05, 1.0, 10.0, 0.3])[:, None]
    try:
        got = require_tensor(fn(x), "l2_normalize")
    except RuntimeError as exc:
        if "must match the size" not in str(exc):
            raise
        raise CheckFailed(f"the norms do not broadcast against x ({exc}): keep the reduced dimension "
                          "(keepdim=True), so the norms of an (N, D) input have shape (N, 1).") from None
    mistakes = {
        "each COLUMN has unit norm: normalise along the last dimension (dim=-1), one vector per row.":
            x / x.norm(dim=0, keepdim=True),
        "you divided by the squared norm: divide by the norm itself (the square root of the sum of squares).":
            x / (x ** 2).sum(-1, keepdim=True),
        "you divided by the sum of the entries (L1-style): divide by the L2 norm, sqrt(sum of squares).":
            x / x.sum(-1, keepdim=True),
        "you divided by the norm of the whole tensor: compute one norm per row (along dim=-1).": x / x.norm(),
    }
    if got.shape != x.shape and got.shape == (5,):
        raise CheckFailed("you returned the norms: return x divided by its norms, same shape as x.")
    diagnose(got, F.normalize(x, dim=-1), mistakes, "rows should have unit L2 norm, like F.normalize(x, dim=-1).",
             probes=_l2_probes(fn, x, got))
    zero = require_tensor(fn(torch.zeros(2, 4)), "l2_normalize")
    if not torch.isfinite(zero).all():
        raise CheckFailed("a zero vector gives NaN: clamp the norm to a small eps before dividing.")
    return "Matches F.normalize, zero vectors included."


def _cos_probes(fn, a: torch.Tensor, b: torch.Tensor, got: torch.Tensor) -> list[Probe]:
    """Properties of a cosine matrix: values in [-1, 1], invariant to rescaling rows, rows and columns that follow
    a and b, ones on the diagonal of (a, a), zeros for orthogonal vectors."""
    f = lambda pair: fn(*pair)  # noqa: E731
    scale_a, scale_b = torch.tensor([0.1, 3.0, 1.0, 25.0])[:, None], torch.tensor([7.0, 0.2, 1.0])[:, None]
    perm_a, perm_b = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
    basis = torch.eye(6)
    return [
        Probe("values in [-1, 1]", lambda: bool(got.abs().max() <= 1 + 1e-4),
              "some of your entries lie outside [-1, 1], where no cosine ever is: divide by the lengths of BOTH "
              "vectors (normalise every row of a and of b), and do not scale the result afterwards."),
        Probe("invariant to rescaling a row", invariant(f, (a, b), lambda p: (p[0] * scale_a, p[1] * scale_b)),
              "rescaling one row of a or b changes your similarities: a cosine depends only on directions, so "
              "divide each row by its OWN norm, not the whole matrix by one number."),
        Probe("columns follow the rows of b", equivariant(f, (a, b), lambda p: (p[0], p[1][perm_b]),
                                                          lambda s: s[:, perm_b]),
              "reordering the rows of b does not reorder your columns the same way: column j must be the "
              "similarities with b[j] alone."),
        Probe("rows follow the rows of a", equivariant(f, (a, b), lambda p: (p[0][perm_a], p[1]),
                                                       lambda s: s[perm_a]),
              "reordering the rows of a does not reorder your rows the same way: row i must be a[i] against "
              "every b[j], nothing else."),
        Probe("a vector has similarity 1 with itself",
              lambda: close(torch.diagonal(fn(a, a)), torch.ones(len(a)), 1e-4),
              "the diagonal of cosine_similarity_matrix(a, a) is not all ones, but every vector has cosine 1 "
              "with itself: return the plain cosines — no softmax, temperature or other transformation."),
        Probe("orthogonal vectors have similarity 0", lambda: close(fn(basis[:2] * 3, basis[2:5]), torch.zeros(2, 3),
                                                                     1e-4),
              "orthogonal vectors should get similarity 0, and yours do not: the cosine is the dot product of the "
              "unit vectors itself, not a distance between them or a function of one."),
    ]


def _cos_crash_hint(fn, a: torch.Tensor, exc: RuntimeError) -> str:
    """A broadcasting error on (N, D) against (M, D) inputs: row-by-row cosine, or norms of the wrong shape."""
    try:
        square = fn(a, a.flip(0))
    except Exception:  # noqa: BLE001 - a second crash says nothing more
        square = None
    if isinstance(square, torch.Tensor) and tuple(square.shape) == (a.shape[0],):
        return ("your answer compares a[i] with b[i] only, row by row (as F.cosine_similarity(a, b) does), which "
                f"fails when N ≠ M ({exc}): the exercise asks for every pair (i, j), an (N, M) matrix.")
    return (f"the shapes do not broadcast ({exc}): the N × M matrix of dot products must be divided by a's norms "
            "as a column (N, 1) and by b's norms as a row (1, M) — or normalise the rows of a and b first.")


@register("0.3", "cosine-similarity matrix", uembeddings.cosine_similarity_matrix, builds_on=("0.2",), hints=(
    "Start from the definition: cos(u, v) is the dot product of u and v after each has been scaled to length 1. "
    "Do that to every row of a and of b first.",
    "Section 3, Embedding geometry: once the rows of a and b have unit length, the dot product of a[i] and b[j] "
    "is their cosine, and one matrix product computes all N × M dot products at once. Your l2_normalize from "
    "Exercise 0.2 does the first part.",
    "A worked shape: a is (4, 6) and b is (3, 6), and the result must be (4, 3), so the inner dimensions of the "
    "product must meet at D = 6 — which normalised matrix needs transposing? Test it: with b = a, the diagonal "
    "must be all ones.",
))
def _check_cos(fn) -> str:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 6, generator=g) * 2, torch.randn(3, 6, generator=g) + 1
    expected = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    try:
        got = require_tensor(fn(a, b), "cosine_similarity_matrix")
    except RuntimeError as exc:
        if "must match the size" not in str(exc):
            raise
        raise CheckFailed(_cos_crash_hint(fn, a, exc)) from None
    mistakes = {
        "these are raw dot products: L2-normalise both sets of vectors first.": a @ b.T,
        "only `a` was normalised: normalise `b` too.": F.normalize(a, dim=-1) @ b.T,
        "only `b` was normalised: normalise `a` too.": a @ F.normalize(b, dim=-1).T,
        "the vectors were normalised along the wrong axis: normalise each row (dim=-1).":
            F.normalize(a, dim=0) @ F.normalize(b, dim=0).T,
    }
    if got.shape == (3, 4):
        raise CheckFailed("the result is transposed: row i should hold a[i] against every b[j], shape (N, M).")
    diagnose(got, expected, mistakes, "entry (i, j) should be cos(a[i], b[j]) as F.cosine_similarity gives.",
             probes=_cos_probes(fn, a, b, got))
    return "Matches F.cosine_similarity on every pair."


# --- 0.4 / 0.5 attention --------------------------------------------------------------------------------

def _attn_inputs(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (5, 6, 6))
    mask = torch.rand(5, 6, generator=g) > 0.4
    mask[:, 0] = True  # every query keeps at least one key
    return q, k, v, mask


def _attention_probes(fn, q, k, v, mask=None) -> list[Probe]:
    """Properties of attention over keys: weights summing to 1, the 1/sqrt(d) scale, order of keys and queries,
    examples of a batch kept apart (with ``mask`` passed on, and permuted along, when given)."""
    extra = () if mask is None else (mask,)
    f = lambda t: fn(*t)  # noqa: E731
    same_value = torch.randn(8, generator=torch.Generator().manual_seed(30)).expand_as(v).clone()
    keys, queries = torch.tensor([3, 1, 5, 0, 2, 4]), torch.tensor([4, 2, 0, 1, 3])

    def permute_keys(t):
        return (t[0], t[1][..., keys, :], t[2][..., keys, :], *(m[:, keys] for m in t[3:]))

    def permute_queries(t):
        return (t[0][..., queries, :], t[1], t[2], *(m[queries] for m in t[3:]))

    return [
        Probe("weights over the keys sum to 1",
              lambda: close(fn(q, k, same_value, *extra), same_value[..., :q.shape[-2], :], 1e-4),
              "when every value vector is the same vector c, your output is not c: each query's weights must sum "
              "to 1 over the KEYS — the softmax runs along the last dimension of the (…, T_q, T_k) scores (not "
              "dim=1 or -2), after masking and before multiplying by v."),
        Probe("scores scaled by 1/sqrt(d)",
              lambda: close(fn(torch.cat([q, q], -1), torch.cat([k, k], -1), v, *extra),
                            fn(q * math.sqrt(2), k, v, *extra), 1e-4),
              "your scaling does not follow 1/sqrt(d), d being the size of the LAST dimension of q and k: repeating "
              "q and k side by side (d → 2d) should act exactly like multiplying q by sqrt(2). Divide the scores by "
              "sqrt(q.shape[-1]) — not by a sequence length, and not by d itself."),
        Probe("order of the keys does not matter", invariant(f, (q, k, v, *extra), permute_keys),
              "reordering the keys together with their values changes your output: attention is a weighted "
              "average over the keys, so their order must not matter."),
        Probe("each query on its own", equivariant(f, (q, k, v, *extra), permute_queries,
                                                   lambda out: out[..., queries, :]),
              "reordering the queries does not just reorder your output rows: each query's output depends only on "
              "that query (and the keys and values)."),
        Probe("examples of the batch kept apart",
              lambda: close(fn(q[:1], k[:1], v[:1], *extra), fn(q, k, v, *extra)[:1]),
              "the first example's output changes when the rest of the batch is dropped: attend within each "
              "example (and head) only — transpose the last two dimensions of k, never the batch ones."),
    ]


def _mask_probes(fn, q, k, v, mask) -> list[Probe]:
    """Properties of masking: a key hidden from every query does not matter, an all-True mask changes nothing."""
    hidden = mask.clone()
    hidden[:, 3] = False  # key 3 is masked out for every query

    def change_key_3(t):
        k2, v2 = t[1].clone(), t[2].clone()
        k2[..., 3, :] += 5.0
        v2[..., 3, :] -= 7.0
        return t[0], k2, v2

    f = lambda qkv: fn(*qkv, hidden)  # noqa: E731
    return [
        Probe("masked keys do not matter", unchanged_when(f, (q, k, v), change_key_3),
              "changing a key (and its value) that the mask hides changes your output: a masked key must get "
              "exactly zero weight — fill its score with -inf (not 0, not a small negative number) before the "
              "softmax, where the mask is False."),
        Probe("an all-True mask changes nothing",
              lambda: close(fn(q, k, v, torch.ones_like(mask)), fn(q, k, v)),
              "with a mask that allows every key, your output differs from the output without a mask: True means "
              "'may attend', so only the places where the mask is False may change."),
        *_attention_probes(fn, q, k, v, mask),
    ]


@register("0.4", "scaled dot-product attention", uattention.scaled_dot_product_attention, hints=(
    "Follow the formula from left to right: scores from q and k, scaled; then the mask; then the softmax; then the "
    "weighted sum of the values. Print the shape after each step.",
    "Section 4, Attention: softmax(QKᵀ/√d)·V, with d the size of the last dimension of q and k. Inputs are "
    "batched (…, T, d), so transpose only the last two dimensions of k. The mask is True where a query may "
    "attend; a masked score must become -inf before the softmax, so that its weight is exactly zero.",
    "Shapes for q (2, 3, 5, 8) and k, v (2, 3, 6, 8): the scores are (2, 3, 5, 6), one row per query and one "
    "column per key; the softmax runs over those 6 keys, so each row of weights sums to 1; weights times v is "
    "(2, 3, 5, 8). masked_fill writes its value where its condition is True.",
))
def _check_sdpa(fn) -> str:
    q, k, v, mask = _attn_inputs()
    d = q.shape[-1]
    expected = F.scaled_dot_product_attention(q, k, v)
    try:
        got = require_tensor(fn(q, k, v), "attention")
    except RuntimeError as exc:
        if "must match the size" not in str(exc):
            raise
        raise CheckFailed(f"shapes do not line up ({exc}). Inputs are batched (…, T, d): transpose only the "
                          "last two dimensions of k, with k.transpose(-2, -1) (k.T reverses all of them).") from None
    s = q @ k.transpose(-2, -1)
    diagnose(got, expected, {
        "the scores are not scaled: divide q·kᵀ by sqrt(d) (d = size of the last dimension).": s.softmax(-1) @ v,
        "you scaled by d: divide by sqrt(d) instead.": (s / d).softmax(-1) @ v,
        "you multiplied by sqrt(d): divide by it.": (s * math.sqrt(d)).softmax(-1) @ v,
        "softmax runs over the wrong axis: normalise over the keys (dim=-1), so each query's weights sum to 1.":
            (s / math.sqrt(d)).softmax(-2) @ v,
        "you returned the attention weights: multiply them by v.": (s / math.sqrt(d)).softmax(-1),
    }, "output differs from torch.nn.functional.scaled_dot_product_attention.", probes=_attention_probes(fn, q, k, v))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = require_tensor(fn(q, k, v, mask), "attention with a mask")
    scaled = s / math.sqrt(d)
    diagnose(got, expected, {
        "the mask is ignored: set the scores of masked-out keys (mask == False) to -inf before the softmax.":
            scaled.softmax(-1) @ v,
        "the mask is inverted: True means 'may attend', so fill -inf where mask is False (use ~mask).":
            scaled.masked_fill(mask, float("-inf")).softmax(-1) @ v,
        "masking after the softmax leaves rows that do not sum to 1: mask the scores, then apply softmax.":
            (scaled.softmax(-1) * mask) @ v,
        "masked keys got a score of 0 instead of -inf: exp(0) = 1 still gives them weight.":
            scaled.masked_fill(~mask, 0.0).softmax(-1) @ v,
        "you added the boolean mask to the scores (True counts as 1): a boolean mask selects keys, so fill "
        "-inf where it is False instead.": (scaled + mask).softmax(-1) @ v,
    }, "output with a mask differs from scaled_dot_product_attention(q, k, v, attn_mask=mask).",
        probes=_mask_probes(fn, q, k, v, mask))
    causal = uattention.causal_mask(6)
    if not close(require_tensor(fn(k, k, v, causal), "causal attention"),
                 F.scaled_dot_product_attention(k, k, v, is_causal=True)):
        def change_last(t):
            k2, v2 = t[1].clone(), t[2].clone()
            k2[..., -1, :] += 5.0
            v2[..., -1, :] -= 7.0
            return t[0], k2, v2

        require_properties([Probe(
            "no peeking at later positions",
            lambda: close(fn(*change_last((k, k, v)), causal)[..., :-1, :], fn(k, k, v, causal)[..., :-1, :]),
            "with a causal mask, changing the LAST key and value changes the outputs of earlier positions: "
            "position t may only see keys 0..t, so the mask's False entries must get zero weight.")])
        raise Mismatch("a causal mask gives a different result from scaled_dot_product_attention(..., "
                       "is_causal=True): check the mask handling.")
    _check_weights(fn, (q, k, v, mask), uattention.scaled_dot_product_attention(q, k, v, mask, return_weights=True)[1])
    return "Matches torch's scaled_dot_product_attention with and without masks (causal included)."


def _check_weights(fn, args: tuple, expected: torch.Tensor) -> None:
    """If ``fn`` can return its attention weights, they must be the softmax weights (rows summing to 1)."""
    if "return_weights" not in inspect.signature(fn).parameters:
        return
    out = fn(*args, return_weights=True)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed("with return_weights=True, return a pair (output, weights).")
    weights = require_tensor(out[1], "the attention weights")
    if weights.shape != expected.shape:
        raise CheckFailed(f"the weights should have shape {tuple(expected.shape)} (…, queries, keys), "
                          f"got {tuple(weights.shape)}.")
    if not close(weights, expected):
        raise CheckFailed("the output is right but the returned weights are not the softmax weights "
                          "(after masking): return those.")


def _mha_oracle(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None) -> torch.Tensor:
    d = x_q.shape[-1]
    mha = nn.MultiheadAttention(d, n_heads, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([w_q, w_k, w_v]))
        mha.out_proj.weight.copy_(w_o)
    out, _ = mha(x_q, x_kv, x_kv, attn_mask=None if mask is None else ~mask, need_weights=False)
    return out.detach()


def _mha_probes(fn, x_q, x_kv, w_q, w_k, w_v, w_o, h) -> list[Probe]:
    """Properties of multi-head attention: examples kept apart, keys in any order, queries each on their own,
    keys from x_kv, each head in its own contiguous block of dimensions, one head = plain attention."""
    d = x_q.shape[-1]
    hd = d // h
    f = lambda xs: fn(xs[0], xs[1], w_q, w_k, w_v, w_o, h)  # noqa: E731
    kv_order, q_order = torch.tensor([2, 4, 0, 3, 1]), torch.tensor([1, 2, 0])
    eye = torch.eye(d)

    def heads_in_blocks() -> bool:  # with w_o = I, output columns [0, hd) are head 0's, from rows [0, hd) only
        def first_head(wq, wk, wv):
            return fn(x_q, x_kv, wq, wk, wv, eye, h)[..., :hd]

        other = torch.randn(d - hd, d, generator=torch.Generator().manual_seed(40))
        rest = lambda w: torch.cat([w[:hd], other])  # noqa: E731 - head 0's rows kept, the other heads' rows changed
        return close(first_head(rest(w_q), rest(w_k), rest(w_v)), first_head(w_q, w_k, w_v))

    def one_head_is_attention() -> bool:
        plain = uattention.scaled_dot_product_attention(x_q @ w_q.T, x_kv @ w_k.T, x_kv @ w_v.T) @ w_o.T
        return close(fn(x_q, x_kv, w_q, w_k, w_v, w_o, 1), plain)

    return [
        Probe("examples of the batch kept apart", lambda: close(f((x_q[:1], x_kv[:1])), f((x_q, x_kv))[:1]),
              "the first example's output changes when the rest of the batch is dropped: keep the batch dimension "
              "first and apart when you split and merge the heads."),
        Probe("order of the key positions does not matter", invariant(f, (x_q, x_kv), lambda xs: (xs[0],
                                                                                                  xs[1][:, kv_order])),
              "reordering the positions of x_kv changes your output: attention averages over the keys, so their "
              "order must not matter — your head split mixes positions (split (B, T, D) → (B, T, H, D/H) first, "
              "then move the head axis)."),
        Probe("each query on its own", equivariant(f, (x_q, x_kv), lambda xs: (xs[0][:, q_order], xs[1]),
                                                   lambda out: out[:, q_order]),
              "reordering the queries does not just reorder your output rows: each output row must depend on its "
              "own query only — merge the heads back with the positions kept in place."),
        Probe("keys and values come from x_kv", changes_when(f, (x_q, x_kv), lambda xs: (xs[0], xs[1] + 1.0)),
              "your output does not change when x_kv changes: keys and values are projections of x_kv (the other "
              "sequence, e.g. the image), queries of x_q."),
        Probe("each head in its own block of dimensions", heads_in_blocks,
              "head h must work in its own contiguous block of D/H dimensions: with w_o = identity, the first D/H "
              "output columns (head 0) should not change when only the other heads' rows of w_q, w_k, w_v change, "
              "and yours do. Split (B, T, D) into (B, T, H, D/H) — head, then dimension — and merge back the same "
              "way."),
        Probe("one head is plain attention", one_head_is_attention,
              "with n_heads=1 your function is not plain attention of the projections followed by w_o: check the "
              "projections (x @ w.T), the 1/sqrt(head dimension) scale and the output projection."),
    ]


@register("0.5", "multi-head (cross-)attention", uattention.multi_head_attention, builds_on=("0.4",), hints=(
    "Work in stages and check the shape after each: project to (B, T, D), split into heads (B, H, T, D/H), "
    "attend with your attention from Exercise 0.4, merge back to (B, Tq, D), project with w_o.",
    "Section 4, Attention (multi-head and cross-attention): each head is an ordinary attention in its own block "
    "of D/H consecutive dimensions, so its scale is 1/√(D/H). The weights act like nn.Linear, x @ w.T. Queries "
    "come from x_q, keys and values from x_kv, whose length may differ.",
    "Splitting (B, T, D) = (2, 5, 8) into 2 heads: first view it as (2, 5, 2, 4) — position, head, dimension — "
    "and only then bring the head axis forward with transpose(1, 2), giving (2, 2, 5, 4). Merging undoes both "
    "steps in reverse order. Take T from the tensor you split: x_q and x_kv differ.",
))
def _check_mha(fn) -> str:
    g = torch.Generator().manual_seed(4)
    d, h = 8, 2
    x_q, x_kv = torch.randn(2, 3, d, generator=g), torch.randn(2, 5, d, generator=g)
    w_q, w_k, w_v, w_o = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(4))
    expected = _mha_oracle(x_q, x_kv, w_q, w_k, w_v, w_o, h)
    try:
        got = require_tensor(fn(x_q, x_kv, w_q, w_k, w_v, w_o, h), "multi_head_attention")
    except RuntimeError as exc:
        if "is invalid for input of size" not in str(exc):
            raise
        raise CheckFailed(f"a reshape failed ({exc}). In cross-attention x_q and x_kv have different lengths: "
                          "take the length from the tensor you split (x.shape[1], or -1), not from x_q.") from None

    def variant(split, scale_dim, out_proj=True, bare_merge=False, lin=lambda x, w: x @ w.T):
        q, k, v = (split(t) for t in (lin(x_q, w_q), lin(x_kv, w_k), lin(x_kv, w_v)))
        o = ((q @ k.transpose(-2, -1)) / math.sqrt(scale_dim)).softmax(-1) @ v
        o = o.reshape(2, -1, d) if bare_merge else o.transpose(1, 2).reshape(2, -1, d)
        return lin(o, w_o) if out_proj else o

    bad_split = lambda t: t.reshape(2, h, -1, d // h)  # noqa: E731 - heads cut across positions
    good_split = lambda t: t.view(2, -1, h, d // h).transpose(1, 2)  # noqa: E731
    diagnose(got, expected, {
        "the heads are split with a bare reshape to (B, H, T, d): reshape to (B, T, H, d) and then transpose(1, 2),"
        " or each head mixes several positions.": variant(bad_split, d // h),
        "the heads are split and merged with a bare reshape: split (B, T, D) → (B, T, H, d) → transpose(1, 2), "
        "and transpose back before merging, or each head mixes several positions.":
            variant(bad_split, d // h, bare_merge=True),
        "the heads are merged with a bare reshape: transpose (B, H, T, d) back to (B, T, H, d) before reshaping "
        "to (B, T, D), or the output mixes positions.": variant(good_split, d // h, bare_merge=True),
        "the weights are applied like nn.Linear, `x @ w.T`: you multiplied by w instead of its transpose.":
            variant(good_split, d // h, lin=lambda x, w: x @ w),
        "scale by sqrt of the HEAD dimension (D / n_heads), not of the model dimension D.": variant(good_split, d),
        "the output projection w_o is missing: merge the heads back to (B, T, D), then apply w_o.":
            variant(good_split, d // h, out_proj=False),
        "this is single-head attention: split q, k, v into n_heads heads of size D / n_heads.":
            uattention.scaled_dot_product_attention(x_q @ w_q.T, x_kv @ w_k.T, x_kv @ w_v.T) @ w_o.T,
        "keys/values come from the query sequence: in cross-attention k and v are projections of x_kv.":
            _mha_oracle(x_q, x_q, w_q, w_k, w_v, w_o, h),
    }, "output differs from torch.nn.MultiheadAttention given the same weights.",
        probes=_mha_probes(fn, x_q, x_kv, w_q, w_k, w_v, w_o, h))
    mask = torch.rand(3, 5, generator=g) > 0.5
    mask[:, 0] = True
    if not close(require_tensor(fn(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask), "masked attention"),
                 _mha_oracle(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask)):
        hidden = mask.clone()
        hidden[:, 2] = False  # key position 2 is hidden from every query

        def moved(x):
            x = x.clone()
            x[:, 2] += 3.0
            return x

        require_properties([Probe(
            "masked key positions do not matter",
            unchanged_when(lambda xkv: fn(x_q, xkv, w_q, w_k, w_v, w_o, h, hidden), x_kv, moved),
            "without a mask it is right, with one it is not: changing a key position that the mask hides changes "
            "your output. pass `mask` on to your attention, which gives masked keys zero weight.")])
        raise Mismatch("without a mask it is right, with one it differs from torch.nn.MultiheadAttention: pass the "
                       "(Tq, Tk) `mask` on to your attention unchanged.")
    _check_weights(fn, (x_q, x_kv, w_q, w_k, w_v, w_o, h, mask),
                   uattention.multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask, return_weights=True)[1])
    return "Matches torch.nn.MultiheadAttention (cross-attention, with and without a mask)."


# --- 0.6 BPE --------------------------------------------------------------------------------------------

def _corpora() -> list[dict[str, int]]:
    rng = random.Random(6)
    toy = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    overlap = {"aaab": 4, "baaa": 3, "abab": 2}
    rand = {"".join(rng.choice("abcd") for _ in range(rng.randint(2, 7))): rng.randint(1, 6) for _ in range(25)}
    return [toy, overlap, rand]


def _wrong_bpe(word_freqs: dict[str, int], n: int, mistake: str) -> list[utext.Pair]:
    """Reproduce typical BPE bugs, to recognise them in a learner's merges."""
    words = {tuple(w): (1 if mistake == "unweighted" else f) for w, f in word_freqs.items()}
    order = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    pairs = utext.count_pairs(words)
    merges: list[utext.Pair] = []
    for _ in range(n):
        if mistake != "stale":
            pairs = utext.count_pairs(words)
        pairs = +pairs
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], order.get(p[0], 1e9), order.get(p[1], 1e9)))
        merges.append(best)
        order.setdefault(best[0] + best[1], len(order))
        if mistake == "stale":
            pairs[best] = 0
        if mistake == "first_only":
            def merge_first(w, pair):
                for i in range(len(w) - 1):
                    if (w[i], w[i + 1]) == pair:
                        return w[:i] + (w[i] + w[i + 1],) + w[i + 2:]
                return w
            words = {merge_first(w, best): f for w, f in words.items()}
        elif mistake == "substring":  # "a b".replace: "aa b" → "aab" for the pair ("a", "b")
            words = {tuple(" ".join(w).replace(" ".join(best), "".join(best)).split()): f for w, f in words.items()}
        else:
            words = {utext.merge_word(w, best): f for w, f in words.items()}
    return merges


def _first_wrong_merge(word_freqs: dict[str, int], merges: list[utext.Pair]):
    """Replay the learner's merges with correct counting and merging; at the first merge the rule would not
    make, return (its index, the pair counts at that point, the pair the rule picks), else None."""
    words = {tuple(w): f for w, f in word_freqs.items()}
    order = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    for i, pair in enumerate(merges):
        pairs = +utext.count_pairs(words)
        if not pairs:
            return None
        best = min(pairs, key=lambda p: (-pairs[p], order[p[0]], order[p[1]]))
        if pair != best:
            return i, pairs, best
        order.setdefault(best[0] + best[1], len(order))
        words = {utext.merge_word(w, best): f for w, f in words.items()}
    return None


def _as_merges(got) -> list[utext.Pair]:
    if not isinstance(got, list) or not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(sym, str) for sym in p) for p in got):
        raise CheckFailed("return a list of merges, each a pair of strings like ('e', 's').")
    return [tuple(p) for p in got]


def _bpe_structure_probes(corpus: dict[str, int], got: list[utext.Pair]) -> list[Probe]:
    """Properties the merges themselves show: no pair merged twice, every symbol made before it is used."""
    repeat = next(((got.index(p), j) for j, p in enumerate(got) if p in got[:j]), None)
    symbols, unknown = {c for w in corpus for c in w}, None
    for i, (left, right) in enumerate(got):
        missing = next((s for s in (left, right) if s not in symbols), None)
        if missing is not None:
            unknown = (i, missing)
            break
        symbols.add(left + right)
    probes = []
    if repeat is not None:
        i, j = repeat
        probes.append(Probe("no pair merged twice", lambda: False,
                            f"merge #{j + 1} {got[j]} repeats merge #{i + 1}: once a pair is merged, no occurrence "
                            "of it is left, so recount the pairs on the merged words before choosing the next one "
                            "(and never reuse the counts of an earlier round)."))
    if unknown is not None:
        i, missing = unknown
        probes.append(Probe("every symbol exists when it is merged", lambda: False,
                            f"merge #{i + 1} {got[i]} uses the symbol {missing!r}, which is neither a character of "
                            "the corpus nor made by an earlier merge: a merge was applied across symbol boundaries "
                            "(or pieces were glued some other way) — merge two adjacent whole symbols only."))
    return probes


def _bpe_invariance_probes(fn, corpus: dict[str, int], n: int, got: list[utext.Pair]) -> list[Probe]:
    """Properties of the rule itself: only the ranking of the counts matters, not their scale nor the order in
    which the words are listed."""
    def scaled() -> bool:
        return [tuple(p) for p in fn({w: 3 * f for w, f in corpus.items()}, n)] == got

    def reordered() -> bool:
        return [tuple(p) for p in fn(dict(reversed(list(corpus.items()))), n)] == got

    return [
        Probe("unchanged when every frequency is tripled", scaled,
              "your merges change when every word frequency is multiplied by 3, yet which pair is most frequent "
              "does not: don't compare the counts with a fixed threshold — make num_merges merges, stopping early "
              "only when no pair is left at all."),
        Probe("independent of the order of the words", reordered,
              "your merges change when the same words are listed in another order: ties are broken differently "
              "from `tokenizers` — by where a pair was first seen. Break ties by the symbols' numbers in `order` "
              "instead."),
    ]


@register("0.6", "BPE merge loop", utext.bpe_train, hints=(
    "Write one round first: count every adjacent pair inside each word (weighted by the word's count), pick the "
    "best one, merge it everywhere. Then repeat that round num_merges times.",
    "Section 5, Tokenization: byte-pair encoding. The counts must be recomputed after every merge, because a merge "
    "changes which symbols are neighbours; pairs never run from one word into the next. Ties go to the pair with "
    "the smallest (left number, right number) in `order`, and a new symbol gets the next number.",
    "A worked round on {'aaab': 4}: the pairs are ('a', 'a') twice × 4 = 8 and ('a', 'b') 4. Merging ('a', 'a') "
    "left to right turns a a a b into aa a b (the third a has no partner left), and 'aa' gets the next free number "
    "in `order`. The next round counts the pairs of aa a b.",
))
def _check_bpe(fn) -> str:
    for corpus in _corpora():
        n = 12
        expected = utext.hf_bpe_merges(corpus, n)
        got = _as_merges(fn(dict(corpus), n))
        if got == expected:
            continue
        for mistake, hint in (
            ("unweighted", "pair counts ignore how often each word occurs: add the word's frequency, not 1."),
            ("first_only", "only the first occurrence of the pair in a word was merged: merge every occurrence."),
            ("stale", "pair counts were computed once: recount the pairs after every merge."),
            ("substring", "a merge was applied across symbol boundaries (string replacement: 'aa b' contains "
                          "'a b'): merge two adjacent whole symbols, comparing symbols, not substrings."),
        ):
            if got == _wrong_bpe(corpus, n, mistake):
                raise CheckFailed(hint)
        require_properties(_bpe_structure_probes(corpus, got))
        wrong = _first_wrong_merge(corpus, got)
        if wrong is not None:
            i, pairs, best = wrong
            pair = got[i]
            if pairs[pair] == 0 and not any(pair[0] + pair[1] in w for w in corpus):
                raise CheckFailed(f"merge #{i + 1} {pair} joins symbols that are never next to each other inside a "
                                  "word: count pairs within each word only, never across word boundaries.")
            if pairs[pair] == 0:
                raise CheckFailed(f"merge #{i + 1} {pair}: after your earlier merges no word holds these two symbols "
                                  "side by side. Count pairs within each word only (never across word boundaries) "
                                  "and merge whole adjacent symbols, every occurrence, left to right.")
            if pairs[pair] == pairs[best]:
                raise CheckFailed(f"merge #{i + 1}: your merges are most-frequent pairs, but ties are broken "
                                  "differently from `tokenizers`: among equally frequent pairs take the one whose "
                                  "left (then right) symbol was created first — characters in sorted order, then "
                                  "merged symbols in creation order.")
            raise CheckFailed(f"merge #{i + 1} {pair} occurs {pairs[pair]} times at that point (weighted by word "
                              f"frequency), but {best} occurs {pairs[best]} times: merge the most frequent pair, "
                              "counted within words, after every merge.")
        require_properties(_bpe_invariance_probes(fn, corpus, n, got))
        if len(got) != len(expected):
            raise CheckFailed(f"expected {len(expected)} merges on a small corpus, got {len(got)}: make exactly "
                              "num_merges merges, and stop early only when no pair is left.")
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise Mismatch(f"merge #{first + 1} differs from the `tokenizers` BPE trainer on a small corpus "
                       "(merges before it agree). Check counting, merging (every occurrence, left to right, never "
                       "across words) and tie-breaking.")
    return "Same merges as the `tokenizers` library's BpeTrainer on 3 corpora."


# --- 0.7 language-model loss ----------------------------------------------------------------------------

def _lm_probes(fn, logits: torch.Tensor, labels: torch.Tensor) -> list[Probe]:
    """Properties of the next-token loss: what must not matter (the last logits, the first label, predictions of
    padding), a mean over the batch, and every real token counted once."""
    f = lambda t: fn(*t)  # noqa: E731
    noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(70)) * 3

    def change_logits(where):
        def change(t):
            lg = t[0].clone()
            lg[where] += noise[where]
            return lg, t[1]
        return change

    def change_first_label(t):
        lb = t[1].clone()
        lb[:, 0] = (lb[:, 0] + 1) % logits.shape[-1]
        return t[0], lb

    padded = torch.zeros(labels.shape, dtype=torch.bool)
    padded[:, :-1] = labels[:, 1:] == -100  # predictions whose next label is padding

    def token_mean() -> bool:  # the whole batch = its two parts, weighted by their numbers of real tokens
        n = (labels[:, 1:] != -100).sum(1)
        part_a, part_b = fn(logits[:1], labels[:1]), fn(logits[1:], labels[1:])
        mixed = (n[0] * part_a + n[1:].sum() * part_b) / n.sum()
        return close(fn(logits, labels), mixed.detach(), 1e-4)

    return [
        Probe("the last position's logits do not matter", unchanged_when(f, (logits, labels),
                                                                         change_logits((slice(None), -1))),
              "your loss changes with the logits at the LAST position, which has no next token to be compared "
              "with (nothing follows it — a roll would wrap the first token around): position t predicts the "
              "label at t+1, so the last prediction is dropped."),
        Probe("the first label does not matter", unchanged_when(f, (logits, labels), change_first_label),
              "your loss changes with the FIRST label, which no position predicts (nothing comes before it): the "
              "prediction at t goes with the label at t+1, so the first label is dropped."),
        Probe("predictions of padding do not matter", unchanged_when(f, (logits, labels), change_logits(padded)),
              "your loss changes with the predictions whose next label is -100: those positions are padding and "
              "must be ignored entirely (ignore_index=-100)."),
        Probe("a mean, whatever the batch size", invariant(f, (logits, labels), lambda t: (t[0].repeat(2, 1, 1),
                                                                                           t[1].repeat(2, 1))),
              "your loss changes when the batch is simply repeated twice: take the mean over the predicted tokens, "
              "not a sum."),
        Probe("every real token counts once", token_mean,
              "the loss of the whole batch is not the average of its parts weighted by their numbers of real "
              "tokens: average over all real (non -100) tokens together, not per sequence first (sequences with "
              "more padding would weigh more per token)."),
    ]


@register("0.7", "next-token loss", utext.lm_loss, hints=(
    "Decide first which prediction goes with which label: the logits at position t are a guess about the token "
    "at position t+1. Line the two up, then compute one cross-entropy.",
    "Section 6, Next-token prediction: the loss is the cross-entropy between the prediction at position t and "
    "the actual token at t+1, averaged over the positions whose label is not -100 (padding). F.cross_entropy can "
    "skip one label value for you: its ignore_index argument.",
    "Shapes for logits (3, 6, 11) and labels (3, 6): once lined up there are 5 predictions per sequence, logits "
    "(3, 5, 11) against labels (3, 5); F.cross_entropy wants (N, V) and (N,), so flatten to (15, 11) and (15,). "
    "Keep the result a tensor: training calls backward() on it.",
))
def _check_lm_loss(fn) -> str:
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, 11, generator=g)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    labels[0, 4:] = -100
    from transformers.loss.loss_utils import ForCausalLMLoss

    expected = ForCausalLMLoss(logits, labels, vocab_size=11)
    try:
        got = require_tensor(fn(logits, labels), "lm_loss")
    except (IndexError, RuntimeError) as exc:
        if "out of bounds" not in str(exc):
            raise
        raise CheckFailed(f"the padding label -100 reached the loss as if it were a class ({exc}): tell "
                          "F.cross_entropy to skip it, ignore_index=-100 (padding is -100 here, not 0).") from None
    if got.dim() != 0:
        raise CheckFailed(f"return one number (the mean over predicted tokens), got shape {tuple(got.shape)}.")
    flat = lambda lg, lb: F.cross_entropy(lg.reshape(-1, 11), lb.reshape(-1), ignore_index=-100)  # noqa: E731
    diagnose(got, expected, {
        "no shift: position t must predict token t+1 — compare logits[:, :-1] with labels[:, 1:].":
            flat(logits, labels),
        "shifted the wrong way: logits[:, :-1] (predictions at 0..T-2) go with labels[:, 1:] (the next tokens).":
            flat(logits[:, 1:], labels[:, :-1]),
        "padding (-100) is counted: ignore those positions (F.cross_entropy(..., ignore_index=-100)).":
            flat(logits[:, :-1], labels[:, 1:].clamp_min(0)),
        "you summed the token losses: take their mean over the predicted (non -100) tokens.":
            flat(logits[:, :-1], labels[:, 1:]) * (labels[:, 1:] != -100).sum(),
        "the mean also counts the padded positions: divide by the number of real (non -100) labels, not by "
        "every position.": flat(logits[:, :-1], labels[:, 1:]) * (labels[:, 1:] != -100).float().mean(),
    }, "value differs from the loss a Hugging Face causal LM computes from `labels`.",
        probes=_lm_probes(fn, logits, labels))
    require_properties([Probe(
        "the gradient reaches the logits", lambda: gradient_reaches(lambda lg: fn(lg, labels), logits),
        "the value is right, but no gradient flows from your loss back to the logits: keep it a tensor in the "
        "autograd graph — no .item(), no NumPy, no torch.tensor(...) around a number — or training cannot use it.")])
    return "Matches transformers' causal-LM loss (shift + ignore -100)."


# --- 0.8 images as sequences ----------------------------------------------------------------------------

VIT_CASES = ((224, 16), (336, 14), (64, 8), (32, 4))
VIT_REFERENCE = {case: uvision.num_patch_tokens(*case) for case in VIT_CASES}


def _vit_probes(predictions: dict) -> list[Probe]:
    """Properties of the token counts: a square grid, patches that tile the side exactly, and the same count for
    the same image-to-patch ratio."""
    def first(bad):
        return next(((s, p, n) for (s, p), n in predictions.items() if bad(s, p, n)), None)

    probes = []
    tiny = first(lambda s, p, n: n <= 0)
    if tiny:
        s, p, n = tiny
        probes.append(Probe("positive", lambda: False, f"{s}/{p}: {n} tokens? Every patch of the image is one token, "
                                                       "so there is at least one."))
    not_square = first(lambda s, p, n: n > 0 and math.isqrt(n) ** 2 != n)
    if not_square:
        s, p, n = not_square
        probes.append(Probe("a square grid", lambda: False,
                            f"{s}/{p}: {n} is not a square number, but a square image cut into square patches gives "
                            f"a square grid, side × side. How many {p}×{p} tiles cover a {s}×{s} image?"))
    gaps = first(lambda s, p, n: n > 0 and math.isqrt(n) ** 2 == n and math.isqrt(n) * p != s)
    if gaps:
        s, p, n = gaps
        r = math.isqrt(n)
        probes.append(Probe("patches tile the image exactly", lambda: False,
                            f"{s}/{p}: {n} tokens is a {r} × {r} grid, and {r} patches of {p} pixels cover {r * p} "
                            f"pixels, not {s}: the patches tile the image side by side, without gaps or overlap."))
    if predictions[(64, 8)] != predictions[(32, 4)]:
        probes.append(Probe("same ratio, same count", lambda: False,
                            "64/8 and 32/4 have the same image-to-patch ratio (8 patches per side), so they make "
                            f"the same number of tokens; you wrote {predictions[(64, 8)]} and "
                            f"{predictions[(32, 4)]}."))
    return probes


@register("0.8", "how many tokens a ViT sees", VIT_REFERENCE, hints=(
    "Picture the image as a chessboard of P × P tiles: count the tiles along one side first, then think about the "
    "whole board.",
    "Section 7, Images as sequences: a ViT cuts an S × S image into non-overlapping P × P patches and makes one "
    "token per patch (a convolution with kernel size = stride = P does exactly that); a CLS token, when there is "
    "one, is extra and not counted here.",
    "A worked example with other numbers: a 48 × 48 image with 12 × 12 patches has 48 / 12 = 4 patches along each "
    "side, so a 4 × 4 grid: 16 tokens. Do the same for each of the four cases, on paper.",
))
def _check_vit_tokens(predictions) -> str:
    if not isinstance(predictions, dict) or set(predictions) != set(VIT_CASES):
        raise CheckFailed(f"give a dict with exactly these keys (image size, patch size): {list(VIT_CASES)}.")
    for (size, patch), guess in predictions.items():
        if not isinstance(guess, int) or isinstance(guess, bool):
            raise CheckFailed(f"{size}/{patch}: write each prediction as a whole number (an int), got {guess!r}.")
    wrong = None
    for (size, patch), guess in predictions.items():
        actual = uvision.patch_embed_tokens(size, patch)  # measured with a real strided-conv patch embedding
        if guess == actual:
            continue
        side = size // patch
        if guess == side:
            raise CheckFailed(f"{size}/{patch}: {side} is the number of patches along ONE side; the image is a "
                              "2-D grid of patches.")
        if guess == actual + 1:
            raise CheckFailed(f"{size}/{patch}: count only the patch tokens (the CLS token is extra).")
        if guess == size * size // patch:
            raise CheckFailed(f"{size}/{patch}: divide each side by the patch size, then multiply the two.")
        wrong = wrong or (size, patch, guess)
    if wrong is None:
        return "All four token counts match a real patch-embedding layer."
    require_properties(_vit_probes(predictions))
    size, patch, guess = wrong
    raise Mismatch(f"{size}/{patch}: not {guess}. How many {patch}×{patch} tiles cover a {size}×{size} image?")
