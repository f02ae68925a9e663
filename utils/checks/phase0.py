"""Checks for the Phase 0 exercises (prerequisites). Oracles are library implementations where one exists."""
from __future__ import annotations

import inspect
import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from .. import attention as A
from .. import embeddings as E
from .. import text as T
from .. import train as TR
from .. import vision as V
from . import CheckFailed, register
from .oracles import close, diagnose, require_tensor

# --- 0.1 a training step --------------------------------------------------------------------------------

def _tiny_classifier(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


@register("0.1", "one training step", TR.train_step)
def _check_train_step(fn) -> str:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 2, 2, generator=g), torch.randint(0, 3, (8,), generator=g)
    ref, mine = _tiny_classifier(0), _tiny_classifier(0)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in mine.parameters()]
    losses = []
    for _ in range(3):  # several steps: leftover gradients only show from the second step on
        expected = TR.train_step(ref, x, y, opt_ref)
        losses.append(fn(mine, x, y, opt_mine))
        if not isinstance(losses[-1], float):
            raise CheckFailed(f"return the loss as a Python float (`loss.item()`), not {type(losses[-1]).__name__}: "
                              "keeping tensors around keeps their whole graph in memory.")
        if all(torch.equal(p, q) for p, q in zip(before, mine.parameters())):
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in mine.parameters()):
                raise CheckFailed("gradients were computed but the parameters did not change: call "
                                  "`optimizer.step()` after `loss.backward()`.")
            raise CheckFailed("the parameters did not change and no gradients are left: call `loss.backward()` "
                              "before `optimizer.step()`, and `optimizer.zero_grad()` at the start of the step, "
                              "not between `loss.backward()` and `optimizer.step()`.")
        if not math.isclose(losses[-1], expected, rel_tol=1e-4, abs_tol=1e-6):
            raise CheckFailed(f"the loss differs from cross-entropy ({losses[-1]:.4f} vs {expected:.4f}): use "
                              "`F.cross_entropy(model(inputs), targets)` on the raw logits: it applies log-softmax "
                              "itself, so no softmax (and no nll_loss) of your own.")
        if not all(torch.allclose(p, q, atol=1e-5) for p, q in zip(ref.parameters(), mine.parameters())):
            raise CheckFailed("the first step is right but later ones drift: gradients accumulate unless you "
                              "call `optimizer.zero_grad()` every step.")
    return "Same loss and same updated weights as the reference over 3 SGD-momentum steps."


# --- 0.2 / 0.3 embedding geometry -----------------------------------------------------------------------

@register("0.2", "L2 normalisation", E.l2_normalize)
def _check_l2(fn) -> str:
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)) * 3
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
    diagnose(got, F.normalize(x, dim=-1), mistakes, "rows should have unit L2 norm, like F.normalize(x, dim=-1).")
    zero = require_tensor(fn(torch.zeros(2, 4)), "l2_normalize")
    if not torch.isfinite(zero).all():
        raise CheckFailed("a zero vector gives NaN: clamp the norm to a small eps before dividing.")
    return "Matches F.normalize, zero vectors included."


@register("0.3", "cosine-similarity matrix", E.cosine_similarity_matrix)
def _check_cos(fn) -> str:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 6, generator=g) * 2, torch.randn(3, 6, generator=g) + 1
    expected = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    got = require_tensor(fn(a, b), "cosine_similarity_matrix")
    mistakes = {
        "these are raw dot products: L2-normalise both sets of vectors first.": a @ b.T,
        "only `a` was normalised: normalise `b` too.": F.normalize(a, dim=-1) @ b.T,
        "only `b` was normalised: normalise `a` too.": a @ F.normalize(b, dim=-1).T,
        "the vectors were normalised along the wrong axis: normalise each row (dim=-1).":
            F.normalize(a, dim=0) @ F.normalize(b, dim=0).T,
    }
    if got.shape == (3, 4):
        raise CheckFailed("the result is transposed: row i should hold a[i] against every b[j], shape (N, M).")
    diagnose(got, expected, mistakes, "entry (i, j) should be cos(a[i], b[j]) as F.cosine_similarity gives.")
    return "Matches F.cosine_similarity on every pair."


# --- 0.4 / 0.5 attention --------------------------------------------------------------------------------

def _attn_inputs(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (5, 6, 6))
    mask = torch.rand(5, 6, generator=g) > 0.4
    mask[:, 0] = True  # every query keeps at least one key
    return q, k, v, mask


@register("0.4", "scaled dot-product attention", A.scaled_dot_product_attention)
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
    }, "output differs from torch.nn.functional.scaled_dot_product_attention.")
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
    }, "output with a mask differs from scaled_dot_product_attention(q, k, v, attn_mask=mask).")
    causal = A.causal_mask(6)
    if not close(require_tensor(fn(k, k, v, causal), "causal attention"),
                  F.scaled_dot_product_attention(k, k, v, is_causal=True)):
        raise CheckFailed("a causal mask gives a different result from is_causal=True: check the mask handling.")
    _check_weights(fn, (q, k, v, mask), A.scaled_dot_product_attention(q, k, v, mask, return_weights=True)[1])
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


@register("0.5", "multi-head (cross-)attention", A.multi_head_attention)
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
            A.scaled_dot_product_attention(x_q @ w_q.T, x_kv @ w_k.T, x_kv @ w_v.T) @ w_o.T,
        "keys/values come from the query sequence: in cross-attention k and v are projections of x_kv.":
            _mha_oracle(x_q, x_q, w_q, w_k, w_v, w_o, h),
    }, "output differs from torch.nn.MultiheadAttention given the same weights.")
    mask = torch.rand(3, 5, generator=g) > 0.5
    mask[:, 0] = True
    if not close(require_tensor(fn(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask), "masked attention"),
                  _mha_oracle(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask)):
        raise CheckFailed("without a mask it is right, with one it is not: pass `mask` on to your attention.")
    _check_weights(fn, (x_q, x_kv, w_q, w_k, w_v, w_o, h, mask),
                   A.multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, h, mask, return_weights=True)[1])
    return "Matches torch.nn.MultiheadAttention (cross-attention, with and without a mask)."


# --- 0.6 BPE --------------------------------------------------------------------------------------------

def _corpora() -> list[dict[str, int]]:
    rng = random.Random(6)
    toy = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    overlap = {"aaab": 4, "baaa": 3, "abab": 2}
    rand = {"".join(rng.choice("abcd") for _ in range(rng.randint(2, 7))): rng.randint(1, 6) for _ in range(25)}
    return [toy, overlap, rand]


def _wrong_bpe(word_freqs: dict[str, int], n: int, mistake: str) -> list[T.Pair]:
    """Reproduce typical BPE bugs, to recognise them in a learner's merges."""
    words = {tuple(w): (1 if mistake == "unweighted" else f) for w, f in word_freqs.items()}
    order = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    pairs = T.count_pairs(words)
    merges: list[T.Pair] = []
    for _ in range(n):
        if mistake != "stale":
            pairs = T.count_pairs(words)
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
            words = {T.merge_word(w, best): f for w, f in words.items()}
    return merges


def _first_wrong_merge(word_freqs: dict[str, int], merges: list[T.Pair]):
    """Replay the learner's merges with correct counting and merging; at the first merge the rule would not
    make, return (its index, the pair counts at that point, the pair the rule picks), else None."""
    words = {tuple(w): f for w, f in word_freqs.items()}
    order = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    for i, pair in enumerate(merges):
        pairs = +T.count_pairs(words)
        if not pairs:
            return None
        best = min(pairs, key=lambda p: (-pairs[p], order[p[0]], order[p[1]]))
        if pair != best:
            return i, pairs, best
        order.setdefault(best[0] + best[1], len(order))
        words = {T.merge_word(w, best): f for w, f in words.items()}
    return None


@register("0.6", "BPE merge loop", T.bpe_train)
def _check_bpe(fn) -> str:
    for corpus in _corpora():
        n = 12
        expected = T.hf_bpe_merges(corpus, n)
        got = fn(dict(corpus), n)
        if not isinstance(got, list) or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(sym, str) for sym in p) for p in got):
            raise CheckFailed("return a list of merges, each a pair of strings like ('e', 's').")
        got = [tuple(p) for p in got]
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
        if len(got) != len(expected):
            raise CheckFailed(f"expected {len(expected)} merges on a small corpus, got {len(got)}: make exactly "
                              "num_merges merges, and stop early only when no pair is left.")
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise CheckFailed(f"merge #{first + 1} differs from the `tokenizers` BPE trainer on a small corpus "
                          f"(merges before it agree). Check counting, merging (every occurrence, left to right, "
                          "never across words) and tie-breaking.")
    return "Same merges as the `tokenizers` library's BpeTrainer on 3 corpora."


# --- 0.7 language-model loss ----------------------------------------------------------------------------

@register("0.7", "next-token loss", T.lm_loss)
def _check_lm_loss(fn) -> str:
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, 11, generator=g)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    labels[0, 4:] = -100
    from transformers.loss.loss_utils import ForCausalLMLoss

    expected = ForCausalLMLoss(logits, labels, vocab_size=11)
    got = require_tensor(fn(logits, labels), "lm_loss")
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
    }, "value differs from the loss a Hugging Face causal LM computes from `labels`.")
    return "Matches transformers' causal-LM loss (shift + ignore -100)."


# --- 0.8 images as sequences ----------------------------------------------------------------------------

VIT_CASES = ((224, 16), (336, 14), (64, 8), (32, 4))
VIT_REFERENCE = {case: V.num_patch_tokens(*case) for case in VIT_CASES}


@register("0.8", "how many tokens a ViT sees", VIT_REFERENCE)
def _check_vit_tokens(predictions) -> str:
    if not isinstance(predictions, dict) or set(predictions) != set(VIT_CASES):
        raise CheckFailed(f"give a dict with exactly these keys (image size, patch size): {list(VIT_CASES)}.")
    for (size, patch), guess in predictions.items():
        if not isinstance(guess, int) or isinstance(guess, bool):
            raise CheckFailed(f"{size}/{patch}: write each prediction as a whole number (an int), got {guess!r}.")
        actual = V.patch_embed_tokens(size, patch)  # measured with a real strided-conv patch embedding
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
        raise CheckFailed(f"{size}/{patch}: not {guess}. How many {patch}×{patch} tiles cover a {size}×{size} image?")
    return "All four token counts match a real patch-embedding layer."
