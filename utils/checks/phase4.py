"""Checks for the Phase 4 exercises (fusion architectures).

Oracles: ``torch.nn.MultiheadAttention`` driven by the reference functions in ``utils.fusion`` (4.4, 4.2, 4.1,
4.6), ``torch.cdist`` + argmin (4.3) and the counting formula (4.5). Each check then probes the properties every
right answer has (the padding does not count, the tokens are read as a set, Euclidean distance does not move when
everything is shifted or rotated, the residual passes x through untouched, the gradient reaches what is learned),
so that a mistake nobody listed still gets a hint that names what it breaks.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import fusion as fu
from . import CheckFailed, Mismatch, register
from .oracles import (
    Probe,
    batch_independent,
    call,
    changes_when,
    close,
    diagnose,
    equivariant,
    gradient_reaches,
    gradient_reaches_parameters,
    invariant,
    require_properties,
    require_tensor,
    unchanged_when,
)

# The references, captured at import: notebooks rebind ``fu.resample = check(...)`` etc. to the learner's passing
# version, and a later check must still compare against the course's answer.
_gated, _resample, _cost, _concat, _add_depth = (fu.gated_cross_attention, fu.resample, fu.attention_cost,
                                                 fu.concat_features, fu.add_depth)


def _attn(d: int = 8, kdim: int | None = None, seed: int = 0) -> nn.MultiheadAttention:
    torch.manual_seed(seed)
    return nn.MultiheadAttention(d, 2, kdim=kdim, vdim=kdim, batch_first=True).eval()


# --- 4.4 gated cross-attention --------------------------------------------------------------------------

def _gated_inputs() -> tuple[torch.Tensor, torch.Tensor, nn.MultiheadAttention, nn.LayerNorm, nn.LayerNorm]:
    """Text states x (2, 5, 8), image tokens (2, 7, 6), the attention and the two norms of the 4.4 check."""
    torch.manual_seed(1)
    d, c = 8, 6
    attn, norm_q, norm_kv = _attn(d, c), nn.LayerNorm(d), nn.LayerNorm(c)
    with torch.no_grad():  # non-trivial norms, so a skipped norm shows
        norm_q.weight.uniform_(0.5, 1.5), norm_q.bias.uniform_(-0.5, 0.5)
        norm_kv.weight.uniform_(0.5, 1.5), norm_kv.bias.uniform_(-0.5, 0.5)
    return torch.randn(2, 5, d), torch.randn(2, 7, c), attn, norm_q, norm_kv


@register("4.4", "Flamingo's gated cross-attention", fu.gated_cross_attention, hints=(
    "Start from the promise of the block: with gate = 0 it must give back x exactly. So whatever you add to x has "
    "to be multiplied by something that is 0 when the gate is 0 — and x itself must not be touched.",
    "Section 4, 'Flamingo's gated cross-attention' (Alayrac et al., 2022): the text hidden states, normalised by "
    "norm_q, ask (they are the queries); the image tokens, normalised by norm_kv, answer (keys and values). The "
    "attention output is squashed by tanh of the gate and added to the original, un-normalised x.",
    "Worked step: normalise the image once and pass the result as both key and value; keep only the first thing "
    "nn.MultiheadAttention returns, a (B, T, D) tensor like x. tanh(0.7) ≈ 0.60, so at gate 0.7 the block adds 60 % "
    "of it to x. Keep the gate a tensor (torch.tanh, no .item()) so that training can open it.",
))
def _check_gated(fn) -> str:
    x, image, attn, norm_q, norm_kv = _gated_inputs()
    zero = torch.zeros(1)
    got0 = require_tensor(call(fn, x, image, attn, norm_q, norm_kv, zero), "gated_cross_attention")
    if got0.shape != x.shape or not torch.equal(got0, x):
        raise CheckFailed("with gate = 0 the block must return x exactly (that is the whole point: the frozen LM is "
                          "untouched at initialisation). Output = x + tanh(gate) · attention.")
    kv = norm_kv(image)
    out = attn(norm_q(x), kv, kv)[0]
    probes = _gated_probes(fn, x, image, attn, norm_q, norm_kv, torch.tensor([0.7]))
    for gate in (torch.tensor([0.7]), torch.tensor([-1.3])):  # open, and open the other way (tanh is odd)
        got = call(fn, x, image, attn, norm_q, norm_kv, gate)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            raise CheckFailed(f"the output must have the text's shape {tuple(x.shape)}: the text hidden states are "
                              "the queries, the image tokens the keys and values.")
        mistakes = {
            "the gate goes through tanh: x + tanh(gate) · attn(...), not the raw gate.": x + gate * out,
            "Flamingo squashes the gate with tanh (range −1..1), not a sigmoid (sigmoid(0) = 0.5 is not an "
            "identity).": x + torch.sigmoid(gate) * out,
            "the residual is missing: return x + tanh(gate) · attn(...), not just the gated attention.":
                gate.tanh() * out,
            "the keys/values should be the normalised IMAGE tokens: norm_kv(image).":
                x + gate.tanh() * attn(norm_q(x), image, image)[0],
            "the query should be the normalised text: norm_q(x).": x + gate.tanh() * attn(x, kv, kv)[0],
        }
        diagnose(got, _gated(x, image, attn, norm_q, norm_kv, gate), mistakes,
                 f"at gate = {gate.item():g} the output differs from x + tanh(gate) · attn(norm_q(x), norm_kv(image), "
                 "…).", probes=probes)
    gate = torch.tensor([0.7])
    require_properties([Probe(
        "the gradient reaches the gate",
        lambda: gradient_reaches(lambda gt: fn(x, image, attn, norm_q, norm_kv, gt), gate),
        "the values are right, but no gradient reaches the gate: it is the learned parameter that opens the block, "
        "so keep it a tensor in the graph (torch.tanh or gate.tanh(); no .item(), float() or math.tanh).")])
    return "Identity at gate = 0, and the same output as the reference for gates 0.7 and −1.3."


def _gated_probes(fn, x: torch.Tensor, image: torch.Tensor, attn: nn.Module, norm_q: nn.Module,
                  norm_kv: nn.Module, gate: torch.Tensor) -> list[Probe]:
    d, c = x.shape[-1], image.shape[-1]

    def block(x_=x, image_=image, gate_=gate):
        return fn(x_, image_, attn, norm_q, norm_kv, gate_)

    g = torch.Generator().manual_seed(11)
    other_x, other_image = torch.randn(2, 5, d, generator=g), torch.randn(2, 7, c, generator=g)
    t_perm, n_perm = torch.tensor([3, 0, 4, 1, 2]), torch.tensor([6, 2, 0, 5, 1, 3, 4])

    def scales_with_tanh() -> bool:
        added = block() - x
        return all(close(block(gate_=torch.tensor([v])) - x, added * (torch.tanh(torch.tensor(v)) / gate.tanh()),
                         1e-4) for v in (-0.7, 2.0))

    return [
        Probe("the residual passes x through", equivariant(lambda v: block(x_=v), x, lambda v: v + 0.5,
                                                           lambda y: y + 0.5),
              "adding the same constant to every feature of x leaves norm_q(x) unchanged, so your output should move "
              "by exactly that constant — it does not: x must be added back once and untouched (not normalised, not "
              "scaled by 1 − tanh(gate), not added twice), the residual of the block."),
        Probe("what is added scales with tanh(gate)", scales_with_tanh,
              "what your block adds to x does not scale like tanh(gate): at gate −0.7 it must be the exact negative of "
              "what it adds at gate 0.7, and at gate 2.0 tanh(2.0)/tanh(0.7) ≈ 1.6 times as much. Multiply the "
              "attention output by tanh of the gate, nothing else."),
        Probe("the image is normalised", unchanged_when(lambda v: block(image_=v), image, lambda v: v + 0.5),
              "shifting every image feature by the same constant should change nothing once norm_kv has normalised "
              "the image, yet your output changes: the keys and values must be the normalised image tokens."),
        Probe("the output depends on the image", changes_when(lambda v: block(image_=v), image,
                                                              lambda v: other_image),
              "your output does not change when the image changes: the image tokens must be the keys and values "
              "that the text attends to."),
        Probe("each text position asks its own question",
              lambda: not close(block(x_=other_x) - other_x, block() - x, 1e-4),
              "what your block adds to x is the same whatever the text is: the normalised text must be the "
              "attention's queries, so that each position reads its own mix of the image tokens (do not pool the "
              "image into a single token)."),
        Probe("text positions are independent queries", equivariant(lambda v: block(x_=v), x, lambda v: v[:, t_perm],
                                                                    lambda y: y[:, t_perm]),
              "shuffling the text positions must shuffle your output rows the same way: in cross-attention each text "
              "position is a query of its own, and nothing mixes the text positions with each other."),
        Probe("the image tokens are a set", invariant(lambda v: block(image_=v), image, lambda v: v[:, n_perm]),
              "your output changes when the image tokens are shuffled: as keys and values they are read as a set, "
              "so their order cannot matter."),
        Probe("examples are independent", batch_independent(lambda v: block(x_=v, image_=image[: len(v)]), x),
              "example 0's output changes with example 1: each text attends to its own image only (B stays the "
              "batch axis of the queries, the keys and the values)."),
    ]


# --- 4.2 resampler ----------------------------------------------------------------------------------------------

@register("4.2", "a resampler: N tokens -> K queries", fu.resample, hints=(
    "Decide who asks and who answers: the K learned queries are the attention's queries, the N image tokens are "
    "its keys and its values. The output has one row per query, so K rows whatever N is.",
    "Section 2, Exercise 4.2, and section 5, 'Resamplers: a fixed token budget': BLIP-2's Q-Former and "
    "Flamingo's Perceiver resampler are cross-attention from a fixed set of learned queries to the image tokens.",
    "Worked step: queries is (K, D), but an nn.MultiheadAttention with batch_first=True wants (B, K, D) — give the "
    "queries a batch axis and repeat them for the B images (unsqueeze, then expand). The module returns a pair "
    "(output, weights): keep the output, (B, K, D).",
))
def _check_resample(fn) -> str:
    attn = _attn(8, seed=2)
    torch.manual_seed(2)
    queries = torch.randn(3, 8)
    for n in (5, 12):
        tokens = torch.randn(2, n, 8)
        got = require_tensor(call(fn, queries, tokens, attn), "resample")
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
        diagnose(got, ref, mistakes,
                 "the output differs from attn(queries, tokens, tokens) with the queries repeated over the batch.",
                 probes=_resample_probes(fn, queries, tokens, attn))
    tokens = torch.randn(2, 5, 8)
    require_properties([
        Probe("the gradient reaches the queries", lambda: gradient_reaches(lambda q: fn(q, tokens, attn), queries),
              "the values are right, but no gradient reaches the queries: they are the resampler's learned "
              "parameters, so keep them in the graph (no .detach(), .data or torch.no_grad())."),
        Probe("the gradient reaches the tokens", lambda: gradient_reaches(lambda t: fn(queries, t, attn), tokens),
              "the values are right, but no gradient reaches the image tokens: the projection in front of the "
              "resampler trains through them, so keep them in the graph (no .detach() or torch.no_grad())."),
    ])
    return "K = 3 outputs for N = 5 and N = 12 inputs, equal to cross-attention from the queries."


def _resample_probes(fn, queries: torch.Tensor, tokens: torch.Tensor, attn: nn.Module) -> list[Probe]:
    g = torch.Generator().manual_seed(12)
    other_tokens, other_queries = torch.randn(tokens.shape, generator=g), torch.randn(queries.shape, generator=g)
    n_perm, k_perm = torch.randperm(tokens.shape[1], generator=g), torch.tensor([2, 0, 1])
    read = lambda t: fn(queries, t, attn)  # noqa: E731
    ask = lambda q: fn(q, tokens, attn)  # noqa: E731
    return [
        Probe("the output depends on the image tokens", changes_when(read, tokens, lambda t: other_tokens),
              "your output does not change when the image tokens change: they must be the attention's keys and "
              "values (the queries only ask)."),
        Probe("the output depends on the queries", changes_when(ask, queries, lambda q: other_queries),
              "your output does not change when the queries change: each of the K learned queries must be an "
              "attention query, so that it reads its own mix of the image tokens."),
        Probe("the tokens are read as a set", invariant(read, tokens, lambda t: t[:, n_perm]),
              "your output changes when the image tokens are shuffled: read by cross-attention from the queries, "
              "the tokens are keys and values, a set whose order cannot matter. Are they used as queries somewhere?"),
        Probe("each query reads on its own", equivariant(ask, queries, lambda q: q[k_perm], lambda y: y[:, k_perm]),
              "shuffling the K queries must shuffle the K output rows the same way: each row is what its own query "
              "read, and nothing mixes the queries with each other."),
        Probe("images are independent", batch_independent(read, tokens),
              "image 0's output changes with image 1's tokens: each image is read on its own — repeat the queries "
              "over the batch, do not merge the images' tokens into one sequence."),
    ]


# --- 4.3 discrete image tokens -------------------------------------------------------------------------------

@register("4.3", "discrete image tokens (vector quantisation)", fu.vq_tokens, hints=(
    "For each patch, compare it with every codebook row and keep the position of the closest row: the answer is "
    "one integer index per patch, not a vector and not a distance.",
    "Section 2, Exercise 4.3 (Chameleon-style early fusion): vector quantisation maps a patch to its nearest code "
    "in Euclidean distance. A dot product or a cosine is not a distance: it prefers long or well-aligned codes to "
    "near ones.",
    "Worked step: torch.cdist of the patches laid out as (B·N, P) with the codebook (V, P) gives a (B·N, V) table "
    "of distances; the smallest entry of each row is the nearest code, and its column is the token. Give the "
    "tokens back the (B, N) shape at the end.",
))
def _check_vq(fn) -> str:
    g = torch.Generator().manual_seed(3)
    codebook = torch.randn(10, 6, generator=g) * torch.linspace(0.2, 3, 10).unsqueeze(1)  # different norms
    patches = torch.randn(2, 7, 6, generator=g)
    got = call(fn, patches, codebook)
    if isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got):
        raise CheckFailed("your answer returned a pair of tensors: .min(dim) / .max(dim) return (values, indices). "
                          "The token is the INDEX: keep `.indices`, or use argmin.")
    if not isinstance(got, torch.Tensor):
        raise CheckFailed("return a tensor of code indices (B, N).")
    if got.dtype.is_floating_point:
        if got.shape == (2, 7, 6):
            raise CheckFailed("return the INDEX of the nearest code (B, N) int64, not the code vectors themselves.")
        raise CheckFailed("return integer indices (argmin), not distances or floats.")
    if got.dtype != torch.long:
        raise CheckFailed(f"token ids are int64 (torch.long, what argmin returns and what nn.Embedding expects); yours "
                          f"are {str(got.dtype).replace('torch.', '')}: drop the conversion, or `.long()`.")
    dist = torch.cdist(patches, codebook.expand(2, -1, -1))
    mistakes = {
        "argmax picks the FARTHEST code: the token is the nearest one, argmin of the distance.": dist.argmax(-1),
        "the largest dot product is not the nearest code when codes have different lengths: use Euclidean distance "
        "(torch.cdist) and argmin.": (patches @ codebook.T).argmax(-1),
    }
    diagnose(got, dist.argmin(-1), mistakes, "the indices differ from the nearest codebook row (cdist + argmin).",
             probes=_vq_probes(fn))
    return "Every patch gets the index of its nearest code."


def _vq_probes(fn) -> list[Probe]:
    # Data whose nearest codes are clear (the gap to the second nearest is > 0.06), so that shifting or rotating
    # everything cannot flip a near tie for a right answer.
    g = torch.Generator().manual_seed(7)
    codebook = torch.randn(10, 6, generator=g) * torch.linspace(0.3, 2.0, 10).unsqueeze(1)
    patches = torch.randn(2, 7, 6, generator=g)
    rotation = torch.linalg.qr(torch.randn(6, 6, generator=g))[0]
    shift = torch.randn(6, generator=g)
    hits = torch.tensor([[3, 0, 9, 9, 5, 1, 7], [2, 8, 4, 6, 0, 1, 3]])
    code_perm = torch.tensor([4, 7, 0, 9, 2, 5, 1, 8, 3, 6])
    patch_perm = torch.tensor([5, 2, 6, 0, 3, 1, 4])
    tokens = lambda pc: fn(*pc)  # noqa: E731
    both = (patches, codebook)
    return [
        Probe("a code is its own token", lambda: close(fn(codebook[hits], codebook), hits, 0),
              "a patch that IS codebook row i must get token i (its distance is 0), and yours does not: take the "
              "smallest distance (argmin, not argmax) over the codebook axis, count the rows from 0, and reshape the "
              "tokens back to (B, N) in the order you flattened the patches."),
        Probe("shifting everything changes nothing", invariant(tokens, both, lambda pc: (pc[0] + shift, pc[1] + shift),
                                                               0),
              "shifting every patch and every code by the same vector moves no code nearer or farther, yet your "
              "tokens change: you compare angles or dot products (a cosine similarity?), not Euclidean distances."),
        Probe("rotating everything changes nothing", invariant(tokens, both, lambda pc: (pc[0] @ rotation,
                                                                                        pc[1] @ rotation), 0),
              "rotating the patches and the codebook together keeps every Euclidean distance, yet your tokens "
              "change: measure the straight-line (L2) distance — torch.cdist's default p = 2 — not L1 or a "
              "per-coordinate one."),
        Probe("tokens follow the codebook's order", equivariant(tokens, both, lambda pc: (pc[0], pc[1][code_perm]),
                                                                lambda t: torch.argsort(code_perm)[t], 0),
              "reordering the codebook rows must relabel the tokens the same way, and yours do not follow: the token "
              "is the position of the nearest row in the codebook you were given."),
        Probe("each patch is tokenised on its own", equivariant(tokens, both, lambda pc: (pc[0][:, patch_perm], pc[1]),
                                                                lambda t: t[:, patch_perm], 0),
              "shuffling the patches must shuffle their tokens the same way: each patch's token depends on that patch "
              "alone. Check how you flatten (B, N, P) and reshape the tokens back to (B, N)."),
        Probe("images are independent", batch_independent(lambda p: fn(p, codebook), patches, atol=0),
              "image 0's tokens change with image 1's patches: each patch's token depends on that patch alone (no "
              "normalising over the batch, and B stays the first axis when you reshape back to (B, N))."),
    ]


# --- 4.5 attention cost -------------------------------------------------------------------------------------

@register("4.5", "what a latent bottleneck saves", fu.attention_cost, hints=(
    "Count one layer at a time: in an attention layer every query scores every key, so one layer computes "
    "(number of queries) × (number of keys) scores. Then add up the layers.",
    "Section 6, 'Perceiver: a latent bottleneck for big inputs': in every layer of the transformer the N inputs are "
    "both queries and keys; the Perceiver's K latents read the N inputs once, and after that its layers attend "
    "among the K latents only.",
    "Worked step for N = 4 inputs, K = 2 latents and depth 3: one transformer layer scores 4 × 4 = 16 pairs, so 48 "
    "in three layers; the Perceiver's single read scores 4 × 2 = 8, and each latent layer 2 × 2 = 4. Return both "
    'totals in a dict under the keys "transformer" and "perceiver".',
))
def _check_cost(fn) -> str:
    for n, k, depth in ((1024, 32, 6), (50, 8, 2)):
        got = call(fn, n, k, depth)
        if not isinstance(got, dict) or set(got) != {"transformer", "perceiver"}:
            raise CheckFailed('return a dict with the keys "transformer" and "perceiver".')
        ref = _cost(n, k, depth)
        if got == ref:
            continue
        t, p = got["transformer"], got["perceiver"]
        if t != ref["transformer"] and t in (n * n, depth * n):
            raise CheckFailed("self-attention scores every pair of inputs: N² per layer, times the number of layers.")
        if p != ref["perceiver"]:
            if p == depth * (n * k + k * k):
                raise CheckFailed("the Perceiver reads the inputs ONCE (N·K), then its depth layers attend among the K "
                                  "latents only (K² each).")
            if p == n * k + k * k:
                raise CheckFailed("count the latent self-attention in every layer: depth · K².")
        require_properties(_cost_probes(fn))
        which = "transformer" if t != ref["transformer"] else "perceiver"
        raise Mismatch(f"{which}: for N = {n}, K = {k}, depth = {depth} expected {ref[which]:,} scores, got "
                       f"{got[which]!r}.")
    return "Right for N = 1024 inputs, K = 32 latents, 6 layers: 6.3 M vs 39 k scores."


def _cost_probes(fn) -> list[Probe]:
    n, k, d = 40, 6, 3
    tr = lambda n_, k_, d_: fn(n_, k_, d_)["transformer"]  # noqa: E731
    pc = lambda n_, k_, d_: fn(n_, k_, d_)["perceiver"]  # noqa: E731
    return [
        Probe("the transformer has no latents", lambda: tr(n, 2 * k, d) == tr(n, k, d),
              "your transformer count changes with the number of latents K: the plain transformer has no latents, "
              "its queries and keys are the N inputs themselves."),
        Probe("the transformer's count grows with depth", lambda: tr(n, k, 2 * d) == 2 * tr(n, k, d),
              "twice the layers must be twice the transformer's scores, and yours are not: count N² for EVERY layer."),
        Probe("the transformer's count is quadratic in N", lambda: tr(2 * n, k, d) == 4 * tr(n, k, d),
              "doubling N must multiply the transformer's count by 4 (N² per layer), and yours does not: every input "
              "scores every input, itself included — N·N ordered pairs, not N(N − 1)/2."),
        Probe("the Perceiver reads the inputs once", lambda: pc(2 * n, k, d) - pc(n, k, d) == n * k,
              "N more inputs must add exactly N·K scores to the Perceiver (its K latents read the inputs ONCE), and "
              "yours add a different amount: the inputs appear only in that one read."),
        Probe("each latent layer scores K²", lambda: pc(n, k, d + 1) - pc(n, k, d) == k * k,
              "one more layer must add exactly K² scores to the Perceiver (the K latents attend to each other), and "
              "yours adds a different amount: K·K per layer, not K and not N·K."),
        Probe("depth 0 leaves only the read", lambda: pc(n, k, 0) == n * k,
              "with depth = 0 only the one read is left, N·K scores, and your Perceiver count is different: you count "
              "something extra (one latent layer too many?)."),
    ]


# --- 4.1 concatenation fusion ------------------------------------------------------------------------------

@register("4.1", "concatenation fusion's input", fu.concat_features, hints=(
    "Look at the shapes first: the image is already one vector per example, (B, E); only the question, (B, T, D), "
    "has to be pooled down to one vector, (B, D), before the two are joined.",
    "Section 2, 'Five ways to fuse', Exercise 4.1: the question vector is the mean of the LM's hidden states over "
    "the question's REAL tokens. Padded positions (mask False) count neither in the sum nor in the number you "
    "divide by.",
    "Worked step: for a row whose mask is [True, True, False], the question vector is (h0 + h1) / 2. Turn the mask "
    "into a (B, T, 1) float so that it broadcasts over D, sum the masked states over T, divide by each row's count "
    "of real tokens; then join, image first, along the last dimension.",
))
def _check_concat(fn) -> str:
    g = torch.Generator().manual_seed(5)
    pooled, text = torch.randn(3, 4, generator=g), torch.randn(3, 5, 6, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    got = call(fn, pooled, text, mask)
    mistakes = {
        "padding is averaged in: take the mean over the real tokens only (use the mask).":
            torch.cat([pooled, text.mean(1)], -1),
        "the order is [image ; text] (image embedding first).": torch.cat([fu.masked_mean(text, mask), pooled], -1),
        "the question is pooled by its last position, which for short questions is padding: use the masked mean.":
            torch.cat([pooled, text[:, -1]], -1),
    }
    diagnose(got, _concat(pooled, text, mask), mistakes,
             "expected torch.cat([pooled_image, masked mean of text], dim=-1), shape (B, E + D).",
             probes=_concat_probes(fn, pooled, text, mask))
    return "[image ; masked mean of the question], shape (B, E + D)."


def _concat_probes(fn, pooled: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> list[Probe]:
    e = pooled.shape[1]
    g = torch.Generator().manual_seed(15)
    noise, other = torch.randn(text.shape, generator=g), torch.randn(text.shape, generator=g)
    same = torch.randn(len(text), 1, text.shape[2], generator=g)
    # each row's real tokens reordered (the real tokens are a prefix: 3, 5 and 1 of them)
    order = torch.tensor([[2, 0, 1, 3, 4], [4, 1, 3, 0, 2], [0, 1, 2, 3, 4]])
    question = lambda t: fn(pooled, t, mask)[:, e:]  # noqa: E731
    return [
        Probe("the image embedding comes through", lambda: close(fn(pooled, text, mask)[:, :e], pooled, 1e-5),
              f"the first E = {e} numbers of each row must be the image embedding itself, unchanged: the image "
              "goes first, then the question vector."),
        Probe("padding does not count", unchanged_when(lambda t: fn(pooled, t, mask), text,
                                                       lambda t: torch.where(mask[..., None], t, noise)),
              "your output changes when the hidden states at the padded positions change: the padding still counts. "
              "Use the mask so that only the real tokens enter the mean."),
        Probe("a mean, not a sum", lambda: close(question(torch.where(mask[..., None], same, text)), same[:, 0], 1e-4),
              "when every real token of a question has the same hidden state v, the question vector must be v itself, "
              "and yours is not: divide the masked sum by the number of REAL tokens of that row (not by T, not by "
              "the whole batch's count, and not by nothing)."),
        Probe("the order of the tokens does not matter",
              invariant(question, text, lambda t: torch.gather(t, 1, order[..., None].expand_as(t))),
              "your question vector changes when the real tokens are reordered: it must be their mean, which ignores "
              "the order. One position (the first, the last real one) is not a summary of the question."),
        Probe("linear in the token states", lambda: close(question(text + other), question(text) + question(other),
                                                          1e-4),
              "the mean is linear — mean(a + b) = mean(a) + mean(b) — and your question vector is not: max-pooling, "
              "normalising or squaring the states breaks it. Average the real tokens' states, nothing more."),
        Probe("questions are independent", batch_independent(lambda t: fn(pooled[: len(t)], t, mask[: len(t)]), text),
              "question 0's vector changes with the other questions of the batch: pool each question over its own "
              "real tokens (sum the mask over T, row by row)."),
    ]


# --- 4.6 depth adapter ------------------------------------------------------------------------------------------

@register("4.6", "an adapter for a new modality (depth)", fu.add_depth, hints=(
    "Three steps, in order: bring the depth map to the feature grid's size, turn it into features with the two "
    "modules you are given, and combine the result with the tower's features so that a zero projection changes "
    "nothing.",
    "Section 7, 'An adapter for a new modality: depth': the trick of Flamingo's gate and ControlNet's zero "
    "convolutions — the frozen tower's features pass through untouched and the adapter's output is ADDED to "
    "them, so at initialisation the tower computes exactly what it did before.",
    "Worked step: the depth map is (B, 1, 32, 32) and the features (B, C, 8, 8); area pooling averages each 4 × 4 "
    "cell of depth pixels into one value (F.interpolate with mode='area', the size taken from the features' last "
    "two dimensions), giving (B, 1, 8, 8). Then encode, then the zero layer.",
))
def _check_adapter(fn) -> str:
    torch.manual_seed(6)
    encode = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU())
    zero = nn.Conv2d(4, 5, 1)
    features, depth = torch.randn(2, 5, 8, 8), torch.rand(2, 1, 32, 32)
    nn.init.zeros_(zero.weight), nn.init.zeros_(zero.bias)
    try:
        got0 = call(fn, features, depth, encode, zero)
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
    got = call(fn, features, depth, encode, zero)
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
             "expected features + zero(encode(area-resized depth)).",
             probes=_adapter_probes(fn, features, depth, encode, zero))
    require_properties([Probe(
        "the gradient reaches the adapter", lambda: gradient_reaches_parameters(
            lambda: fn(features, depth, encode, zero), nn.ModuleList([encode, zero])),
        "the values are right, but no gradient reaches the adapter's layers: the encoder and the zero projection "
        "are what trains, so keep them in the graph (no torch.no_grad() or .detach() around them).")])
    return "Unchanged at initialisation; depth resized by area, encoded, projected and added."


def _adapter_probes(fn, features: torch.Tensor, depth: torch.Tensor, encode: nn.Module,
                    zero: nn.Module) -> list[Probe]:
    g = torch.Generator().manual_seed(16)
    delta, other_depth = torch.randn(features.shape, generator=g), torch.rand(depth.shape, generator=g)
    one_pixel = depth.clone()
    one_pixel[:, :, 3, 3] += 0.5  # a pixel that 'nearest' (pixel 0 of each cell) and 'bilinear' (1, 2) never read

    def keeps_the_mean() -> bool:  # with identity modules the output is the resized depth map itself
        resized = fn(torch.zeros(2, 1, 8, 8), depth, nn.Identity(), nn.Identity())
        return close(resized.mean((-2, -1)), depth.mean((-2, -1)), 1e-5)

    adapt = lambda f_: fn(f_, depth, encode, zero)  # noqa: E731
    with_depth = lambda d_: fn(features, d_, encode, zero)  # noqa: E731
    return [
        Probe("the adapter's output is added", equivariant(adapt, features, lambda f_: f_ + delta,
                                                           lambda y: y + delta),
              "adding δ to the tower's features must add exactly δ to your output, and it does not: the adapter's "
              "output is ADDED to the features, not multiplied with them or mixed into them."),
        Probe("the output depends on the depth", changes_when(with_depth, depth, lambda d_: other_depth),
              "your output does not change when the depth map changes: the depth must go through encode and the "
              "projection and be added to the features."),
        Probe("resizing keeps the mean depth", keeps_the_mean,
              "the resized depth map should keep the depth map's average — area pooling averages each cell — and "
              "yours does not (run with identity modules for encode and zero to see it): 'nearest' and 'bilinear' "
              "sample a few pixels, max-pooling keeps the largest, a sum or a normalisation rescales."),
        Probe("every depth pixel counts", changes_when(with_depth, depth, lambda d_: one_pixel),
              "changing one depth pixel, (3, 3), changes nothing in your output: area pooling averages all 16 pixels "
              "of each 4 × 4 cell, whereas 'nearest' keeps one of them and 'bilinear' two."),
        Probe("examples are independent", batch_independent(lambda d_: fn(features[: len(d_)], d_, encode, zero),
                                                            depth),
              "example 0's output changes with example 1's depth map: each depth map is resized and encoded on its "
              "own (no normalising over the batch)."),
    ]
