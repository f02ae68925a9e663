"""Checks for the Phase 4 exercises (fusion architectures).

Oracles: ``torch.nn.MultiheadAttention`` driven by the reference functions in ``utils.fusion`` (4.4, 4.2, 4.1,
4.6), ``torch.cdist`` + argmin (4.3) and the counting formula (4.5).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import fusion as Fu
from . import CheckFailed, Unsolved, register
from .oracles import diagnose

# The references, captured at import: notebooks rebind ``fu.resample = check(...)`` etc. to the learner's passing
# version, and a later check must still compare against the course's answer.
_gated, _resample, _cost, _concat, _add_depth = (Fu.gated_cross_attention, Fu.resample, Fu.attention_cost,
                                                 Fu.concat_features, Fu.add_depth)


def _call(fn, *args):
    out = fn(*args)
    if out is None or out is Ellipsis:
        raise Unsolved
    return out


def _attn(d: int = 8, kdim: int | None = None, seed: int = 0) -> nn.MultiheadAttention:
    torch.manual_seed(seed)
    return nn.MultiheadAttention(d, 2, kdim=kdim, vdim=kdim, batch_first=True).eval()


# --- 4.4 gated cross-attention --------------------------------------------------------------------------

@register("4.4", "Flamingo's gated cross-attention", Fu.gated_cross_attention)
def _check_gated(fn) -> str:
    torch.manual_seed(1)
    d, c = 8, 6
    attn, norm_q, norm_kv = _attn(d, c), nn.LayerNorm(d), nn.LayerNorm(c)
    with torch.no_grad():  # non-trivial norms, so a skipped norm shows
        norm_q.weight.uniform_(0.5, 1.5), norm_q.bias.uniform_(-0.5, 0.5)
        norm_kv.weight.uniform_(0.5, 1.5), norm_kv.bias.uniform_(-0.5, 0.5)
    x, image = torch.randn(2, 5, d), torch.randn(2, 7, c)
    zero = torch.zeros(1)
    got0 = _call(fn, x, image, attn, norm_q, norm_kv, zero)
    if not torch.equal(got0, x):
        raise CheckFailed("with gate = 0 the block must return x exactly (that is the whole point: the frozen LM is "
                          "untouched at initialisation). Output = x + tanh(gate) · attention.")
    gate = torch.tensor([0.7])
    got = _call(fn, x, image, attn, norm_q, norm_kv, gate)
    if got.shape != x.shape:
        raise CheckFailed(f"the output must have the text's shape {tuple(x.shape)}: the text hidden states are the "
                          "queries, the image tokens the keys and values.")
    expected = _gated(x, image, attn, norm_q, norm_kv, gate)
    kv = norm_kv(image)
    out = attn(norm_q(x), kv, kv)[0]
    mistakes = {
        "the gate goes through tanh: x + tanh(gate) · attn(...), not the raw gate.": x + gate * out,
        "Flamingo squashes the gate with tanh (range −1..1), not a sigmoid (sigmoid(0) = 0.5 is not an identity).":
            x + torch.sigmoid(gate) * out,
        "the residual is missing: return x + tanh(gate) · attn(...), not just the gated attention.": gate.tanh() * out,
        "the keys/values should be the normalised IMAGE tokens: norm_kv(image).":
            x + gate.tanh() * attn(norm_q(x), image, image)[0],
        "the query should be the normalised text: norm_q(x).": x + gate.tanh() * attn(x, kv, kv)[0],
    }
    diagnose(got, expected, mistakes, "the output differs from x + tanh(gate) · attn(norm_q(x), norm_kv(image), …).")
    return "Identity at gate = 0, and the same output as the reference for an open gate."


# --- 4.2 resampler ----------------------------------------------------------------------------------------------

@register("4.2", "a resampler: N tokens -> K queries", Fu.resample)
def _check_resample(fn) -> str:
    attn = _attn(8, seed=2)
    torch.manual_seed(2)
    queries = torch.randn(3, 8)
    for n in (5, 12):
        tokens = torch.randn(2, n, 8)
        got = _call(fn, queries, tokens, attn)
        if got.shape[:2] == (2, n):
            raise CheckFailed(f"the output has N = {n} tokens: the learned queries must be the attention's queries "
                              "(so the output has K = 3 tokens whatever N is); the image tokens are keys and values.")
        ref = _resample(queries, tokens, attn)
        mistakes = {
            "return only the attention output: fu.Resampler adds the residual (queries + ...) and the MLP itself.":
                queries.unsqueeze(0) + ref,
            "no attention: each query should get its own attention-weighted mix of the tokens, not the plain mean.":
                tokens.mean(1, keepdim=True).expand(-1, 3, -1),
        }
        diagnose(got, _resample(queries, tokens, attn), mistakes,
                  "the output differs from attn(queries, tokens, tokens) with the queries repeated over the batch.")
    return "K = 3 outputs for N = 5 and N = 12 inputs, equal to cross-attention from the queries."


# --- 4.3 discrete image tokens -------------------------------------------------------------------------------

@register("4.3", "discrete image tokens (vector quantisation)", Fu.vq_tokens)
def _check_vq(fn) -> str:
    g = torch.Generator().manual_seed(3)
    codebook = torch.randn(10, 6, generator=g) * torch.linspace(0.2, 3, 10).unsqueeze(1)  # different norms
    patches = torch.randn(2, 7, 6, generator=g)
    got = _call(fn, patches, codebook)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed("return a tensor of code indices (B, N).")
    if got.dtype.is_floating_point:
        if got.shape == (2, 7, 6):
            raise CheckFailed("return the INDEX of the nearest code (B, N) int64, not the code vectors themselves.")
        raise CheckFailed("return integer indices (argmin), not distances or floats.")
    dist = torch.cdist(patches, codebook.expand(2, -1, -1))
    mistakes = {
        "argmax picks the FARTHEST code: the token is the nearest one, argmin of the distance.": dist.argmax(-1),
        "the largest dot product is not the nearest code when codes have different lengths: use Euclidean distance "
        "(torch.cdist) and argmin.": (patches @ codebook.T).argmax(-1),
    }
    diagnose(got, dist.argmin(-1), mistakes, "the indices differ from the nearest codebook row (cdist + argmin).")
    return "Every patch gets the index of its nearest code."


# --- 4.5 attention cost -------------------------------------------------------------------------------------

@register("4.5", "what a latent bottleneck saves", Fu.attention_cost)
def _check_cost(fn) -> str:
    for n, k, depth in ((1024, 32, 6), (50, 8, 2)):
        got = _call(fn, n, k, depth)
        if not isinstance(got, dict) or set(got) != {"transformer", "perceiver"}:
            raise CheckFailed('return a dict with the keys "transformer" and "perceiver".')
        ref = _cost(n, k, depth)
        if got["transformer"] != ref["transformer"]:
            hint = ("self-attention scores every pair of inputs: N² per layer, times the number of layers."
                    if got["transformer"] in (n * n, depth * n) else
                    f"transformer: expected depth · N² = {ref['transformer']:,} scores, got {got['transformer']:,}.")
            raise CheckFailed(hint)
        if got["perceiver"] != ref["perceiver"]:
            if got["perceiver"] == depth * (n * k + k * k):
                raise CheckFailed("the Perceiver reads the inputs ONCE (N·K), then its depth layers attend among the K "
                                  "latents only (K² each).")
            if got["perceiver"] == n * k + k * k:
                raise CheckFailed("count the latent self-attention in every layer: depth · K².")
            raise CheckFailed(f"perceiver: expected N·K + depth·K² = {ref['perceiver']:,}, got {got['perceiver']:,}.")
    return "Right for N = 1024 inputs, K = 32 latents, 6 layers: 6.3 M vs 39 k scores."


# --- 4.1 concatenation fusion ------------------------------------------------------------------------------

@register("4.1", "concatenation fusion's input", Fu.concat_features)
def _check_concat(fn) -> str:
    g = torch.Generator().manual_seed(5)
    pooled, text = torch.randn(3, 4, generator=g), torch.randn(3, 5, 6, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    got = _call(fn, pooled, text, mask)
    mistakes = {
        "padding is averaged in: take the mean over the real tokens only (use the mask).":
            torch.cat([pooled, text.mean(1)], -1),
        "the order is [image ; text] (image embedding first).": torch.cat([Fu.masked_mean(text, mask), pooled], -1),
        "the question is pooled by its last position, which for short questions is padding: use the masked mean.":
            torch.cat([pooled, text[:, -1]], -1),
    }
    diagnose(got, _concat(pooled, text, mask), mistakes,
              "expected torch.cat([pooled_image, masked mean of text], dim=-1), shape (B, E + D).")
    return "[image ; masked mean of the question], shape (B, E + D)."


# --- 4.6 depth adapter ------------------------------------------------------------------------------------------

@register("4.6", "an adapter for a new modality (depth)", Fu.add_depth)
def _check_adapter(fn) -> str:
    torch.manual_seed(6)
    encode = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU())
    zero = nn.Conv2d(4, 5, 1)
    features, depth = torch.randn(2, 5, 8, 8), torch.rand(2, 1, 32, 32)
    nn.init.zeros_(zero.weight), nn.init.zeros_(zero.bias)
    try:
        got0 = _call(fn, features, depth, encode, zero)
    except RuntimeError as e:
        if "size" not in str(e):
            raise
        got0 = None
    if not isinstance(got0, torch.Tensor) or got0.shape != features.shape:
        raise CheckFailed(f"the output must have the features' shape {tuple(features.shape)}: resize the depth map to "
                          "the feature grid first (F.interpolate(depth, size=features.shape[-2:], mode='area')).")
    if not torch.equal(got0, features):
        raise CheckFailed("with a zero-initialised projection the tower's features must come out unchanged: ADD the "
                          "adapter's output to the features (features + zero(encode(depth))).")
    nn.init.normal_(zero.weight)
    got = _call(fn, features, depth, encode, zero)
    d_near = F.interpolate(depth, size=(8, 8), mode="nearest")
    d_bil = F.interpolate(depth, size=(8, 8), mode="bilinear", align_corners=False)
    mistakes = {
        "the adapter should ADD to the tower's features, not replace them.":
            zero(encode(F.interpolate(depth, size=(8, 8), mode="area"))),
        "resize with mode='area' (the average over each cell), not 'nearest', which samples one pixel per cell.":
            features + zero(encode(d_near)),
        "resize with mode='area', not bilinear.": features + zero(encode(d_bil)),
    }
    diagnose(got, _add_depth(features, depth, encode, zero), mistakes,
              "expected features + zero(encode(area-resized depth)).")
    return "Unchanged at initialisation; depth resized by area, encoded, projected and added."
