"""Unit tests of the Phase 4 exercise self-checks (``utils/checks/phase4.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with

# --- 4.4 gated cross-attention -------------------------------------------------------------------------------

def gated_raw(x, image, attn, norm_q, norm_kv, gate):
    kv = norm_kv(image)
    return x + gate * attn(norm_q(x), kv, kv)[0]


def gated_sigmoid(x, image, attn, norm_q, norm_kv, gate):
    kv = norm_kv(image)
    return x + torch.sigmoid(gate) * attn(norm_q(x), kv, kv)[0]


def gated_no_residual(x, image, attn, norm_q, norm_kv, gate):
    kv = norm_kv(image)
    return torch.tanh(gate) * attn(norm_q(x), kv, kv)[0]


def gated_unnormed_image(x, image, attn, norm_q, norm_kv, gate):
    return x + torch.tanh(gate) * attn(norm_q(x), image, image)[0]


def gated_unnormed_text(x, image, attn, norm_q, norm_kv, gate):
    kv = norm_kv(image)
    return x + torch.tanh(gate) * attn(x, kv, kv)[0]


@pytest.mark.parametrize("fn, hint", [
    (gated_raw, "tanh"), (gated_sigmoid, "gate = 0"), (gated_no_residual, "gate = 0"),
    (gated_unnormed_image, "normalised IMAGE"), (gated_unnormed_text, "normalised text"),
])
def test_gated_cross_attention_mistakes(fn, hint):
    failed_with("4.4", fn, hint)


def test_gated_tanh_without_residual_is_named():
    # with the gate open the no-residual answer is caught by the identity test first; the raw-gate answer passes
    # the identity test (0 * out = 0) and must be caught by the value test
    failed_with("4.4", gated_raw, "raw gate")


# --- 4.2 resampler ---------------------------------------------------------------------------------------------------

def resample_swapped(queries, tokens, attn):
    q = queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    return attn(tokens, q, q)[0]


def resample_mean(queries, tokens, attn):
    return tokens.mean(1, keepdim=True).expand(-1, queries.shape[0], -1)


def resample_with_residual(queries, tokens, attn):
    q = queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    return q + attn(q, tokens, tokens)[0]


@pytest.mark.parametrize("fn, hint", [(resample_swapped, "queries must be the attention's queries"),
                                      (resample_with_residual, "only the attention output"),
                                      (resample_mean, "plain mean")])
def test_resample_mistakes(fn, hint):
    failed_with("4.2", fn, hint)


# --- 4.3 vector quantisation -------------------------------------------------------------------------------------

def vq_argmax(patches, codebook):
    return torch.cdist(patches, codebook.expand(len(patches), -1, -1)).argmax(-1)


def vq_dot(patches, codebook):
    return (patches @ codebook.T).argmax(-1)


def vq_vectors(patches, codebook):
    return codebook[torch.cdist(patches, codebook.expand(len(patches), -1, -1)).argmin(-1)]


@pytest.mark.parametrize("fn, hint", [(vq_argmax, "FARTHEST"), (vq_dot, "dot product"), (vq_vectors, "INDEX")])
def test_vq_mistakes(fn, hint):
    failed_with("4.3", fn, hint)


# --- 4.5 attention cost ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, hint", [
    (lambda n, k, d: {"transformer": n * n, "perceiver": n * k + d * k * k}, "times the number of layers"),
    (lambda n, k, d: {"transformer": d * n * n, "perceiver": d * (n * k + k * k)}, "ONCE"),
    (lambda n, k, d: {"transformer": d * n * n, "perceiver": n * k + k * k}, "depth · K²"),
    (lambda n, k, d: (d * n * n, n * k + d * k * k), "dict"),
])
def test_cost_mistakes(fn, hint):
    failed_with("4.5", fn, hint)


# --- 4.1 concatenation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, hint", [
    (lambda p, t, m: torch.cat([p, t.mean(1)], -1), "padding"),
    (lambda p, t, m: torch.cat([(t * m[..., None]).sum(1) / m.sum(1, keepdim=True), p], -1), "order"),
    (lambda p, t, m: torch.cat([p, t[:, -1]], -1), "last position"),
])
def test_concat_mistakes(fn, hint):
    failed_with("4.1", fn, hint)


# --- 4.6 depth adapter ---------------------------------------------------------------------------------------------

def adapter_replaces(features, depth, encode, zero):
    return zero(encode(F.interpolate(depth, size=features.shape[-2:], mode="area")))


def adapter_nearest(features, depth, encode, zero):
    return features + zero(encode(F.interpolate(depth, size=features.shape[-2:], mode="nearest")))


def adapter_no_resize(features, depth, encode, zero):
    return features + zero(encode(depth))


@pytest.mark.parametrize("fn, hint", [(adapter_replaces, "unchanged"), (adapter_nearest, "nearest"),
                                      (adapter_no_resize, "resize")])
def test_adapter_mistakes(fn, hint):
    failed_with("4.6", fn, hint)


def test_checks_compare_with_the_course_reference_even_after_rebinding(monkeypatch):
    from utils import fusion
    from utils.checks import evaluate

    monkeypatch.setattr(fusion, "resample", resample_mean)  # what `fu.resample = check(...)` does in a notebook
    assert evaluate("4.2", resample_mean).status == "failed"


def test_resample_returning_the_attention_tuple_is_told_to_take_the_output():
    def whole_tuple(queries, tokens, attn):  # forgot [0]: nn.MultiheadAttention returns (output, weights)
        return attn(queries.unsqueeze(0).expand(len(tokens), -1, -1), tokens, tokens)

    failed_with("4.2", whole_tuple, "(output, attention weights): keep the output, `[0]`")


# --- property probes: wrong answers nobody listed as a mistake get a hint naming the property they break ----------
# (none of the answers below reproduces an entry of a check's list of known mistakes)

def gated_interpolates(x, image, attn, norm_q, norm_kv, gate):  # a convex mix of x and the attention, not a residual
    kv, t = norm_kv(image), torch.tanh(gate)
    return (1 - t) * x + t * attn(norm_q(x), kv, kv)[0]


def gated_item(x, image, attn, norm_q, norm_kv, gate):  # right values, but the gate is a Python float: it cannot learn
    kv = norm_kv(image)
    return x + math.tanh(gate.item()) * attn(norm_q(x), kv, kv)[0]


def gated_pooled_image(x, image, attn, norm_q, norm_kv, gate):  # the image pooled to one token before attending
    kv = norm_kv(image).mean(1, keepdim=True)
    return x + torch.tanh(gate) * attn(norm_q(x), kv, kv)[0]


def gated_abs(x, image, attn, norm_q, norm_kv, gate):  # "a gate opens, it does not go negative"
    kv = norm_kv(image)
    return x + torch.tanh(gate.abs()) * attn(norm_q(x), kv, kv)[0]


def gated_adds_x_twice(x, image, attn, norm_q, norm_kv, gate):  # the residual inside the gated branch as well
    kv = norm_kv(image)
    return x + torch.tanh(gate) * (x + attn(norm_q(x), kv, kv)[0])


@pytest.mark.parametrize("fn, hint", [
    (gated_interpolates, "x must be added back once and untouched"),
    (gated_item, "no gradient reaches the gate"),
    (gated_pooled_image, "each position reads its own mix of the image tokens"),
    (gated_abs, "does not scale like tanh(gate)"),
    (gated_adds_x_twice, "not added twice"),
])
def test_gated_cross_attention_properties(fn, hint):
    failed_with("4.4", fn, hint)


def resample_self_attention_of_queries(queries, tokens, attn):  # the queries attend to themselves
    q = queries.expand(len(tokens), -1, -1)
    return attn(q, q, q)[0]


def resample_first_k_tokens(queries, tokens, attn):  # self-attention over the tokens, then keep K of them
    return attn(tokens, tokens, tokens)[0][:, : len(queries)]


def resample_merged_batch(queries, tokens, attn):  # every image reads the tokens of the whole batch
    q = queries.expand(len(tokens), -1, -1)
    merged = tokens.reshape(1, -1, tokens.shape[-1]).expand(len(tokens), -1, -1)
    return attn(q, merged, merged)[0]


def resample_detached(queries, tokens, attn):  # right values, but the learned queries get no gradient
    q = queries.detach().unsqueeze(0).expand(len(tokens), -1, -1)
    return attn(q, tokens, tokens)[0]


@pytest.mark.parametrize("fn, hint", [
    (resample_self_attention_of_queries, "does not change when the image tokens change"),
    (resample_first_k_tokens, "does not change when the queries change"),
    (resample_merged_batch, "image 0's output changes with image 1's tokens"),
    (resample_detached, "no gradient reaches the queries"),
])
def test_resample_properties(fn, hint):
    failed_with("4.2", fn, hint)


def vq_cosine(patches, codebook):
    return (F.normalize(patches, dim=-1) @ F.normalize(codebook, dim=-1).T).argmax(-1)


def vq_manhattan(patches, codebook):
    return torch.cdist(patches, codebook.expand(len(patches), -1, -1), p=1).argmin(-1)


def vq_one_based(patches, codebook):  # "token 0 is reserved"
    return torch.cdist(patches, codebook.expand(len(patches), -1, -1)).argmin(-1) + 1


def vq_min_pair(patches, codebook):  # .min(dim) returns (values, indices)
    return torch.cdist(patches, codebook.expand(len(patches), -1, -1)).min(-1)


def vq_scrambled_reshape(patches, codebook):  # flattened N-major, reshaped back B-major
    flat = patches.transpose(0, 1).reshape(-1, patches.shape[-1])
    return torch.cdist(flat, codebook).argmin(-1).view(patches.shape[:-1])


@pytest.mark.parametrize("fn, hint", [
    (vq_cosine, "cosine similarity"), (vq_manhattan, "not L1"), (vq_one_based, "count the rows from 0"),
    (vq_min_pair, "keep `.indices`"), (vq_scrambled_reshape, "in the order you flattened"),
])
def test_vq_properties(fn, hint):
    failed_with("4.3", fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda n, k, d: {"transformer": d * n * (n - 1) // 2, "perceiver": n * k + d * k * k}, "not N(N − 1)/2"),
    (lambda n, k, d: {"transformer": d * n * n, "perceiver": n * k + d * k}, "one more layer must add exactly K²"),
    (lambda n, k, d: {"transformer": d * (n + k) ** 2, "perceiver": n * k + d * k * k}, "changes with the number of "
                                                                                         "latents K"),
    (lambda n, k, d: {"transformer": d * n * n, "perceiver": n * k + (d + 1) * k * k}, "with depth = 0"),
    (lambda n, k, d: {"transformer": d * n * n, "perceiver": d * n * k + k * k}, "N more inputs must add exactly"),
])
def test_cost_properties(fn, hint):
    failed_with("4.5", fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda p, t, m: torch.cat([p, (t * m[..., None]).sum(1)], -1), "number of REAL tokens"),  # a sum
    (lambda p, t, m: torch.cat([p, (t * m[..., None]).mean(1)], -1), "number of REAL tokens"),  # divided by T
    (lambda p, t, m: torch.cat([p, t[:, 0]], -1), "reordered"),  # the first token as the summary
    (lambda p, t, m: torch.cat([p, t.masked_fill(~m[..., None], -1e9).max(1).values], -1), "max-pooling"),
    (lambda p, t, m: torch.cat([F.normalize(p, dim=-1), (t * m[..., None]).sum(1) / m.sum(1, keepdim=True)], -1),
     "image embedding itself, unchanged"),
    (lambda p, t, m: torch.cat([p, (t * ~m[..., None]).sum(1) / (~m).sum(1, keepdim=True).clamp(min=1)], -1),
     "the padding still counts"),  # the mask read the wrong way round
])
def test_concat_properties(fn, hint):
    failed_with("4.1", fn, hint)


def adapter_multiplies(features, depth, encode, zero):  # a modulation, not an addition
    return features * (1 + zero(encode(F.interpolate(depth, size=features.shape[-2:], mode="area"))))


def adapter_max_pool(features, depth, encode, zero):
    return features + zero(encode(F.adaptive_max_pool2d(depth, features.shape[-2:])))


def adapter_nearest_exact(features, depth, encode, zero):
    return features + zero(encode(F.interpolate(depth, size=features.shape[-2:], mode="nearest-exact")))


def adapter_no_grad(features, depth, encode, zero):  # right values, but the adapter cannot train
    with torch.no_grad():
        return features + zero(encode(F.interpolate(depth, size=features.shape[-2:], mode="area")))


def adapter_sum_pool(features, depth, encode, zero):  # avg_pool2d(4) times 16: the cell's sum, not its mean
    return features + zero(encode(F.avg_pool2d(depth, 4) * 16))


@pytest.mark.parametrize("fn, hint", [
    (adapter_multiplies, "not multiplied with them"), (adapter_max_pool, "keep the depth map's average"),
    (adapter_nearest_exact, "keep the depth map's average"), (adapter_no_grad, "no gradient reaches the adapter"),
    (adapter_sum_pool, "a sum or a normalisation rescales"),
])
def test_adapter_properties(fn, hint):
    failed_with("4.6", fn, hint)


# --- valid variants pass, and every probe holds for the reference ---------------------------------------------------

VARIANTS = {
    "4.4": [lambda x, image, attn, nq, nk, gate: x + torch.tanh(gate) * attn(nq(x), nk(image), nk(image))[0],
            lambda x, image, attn, nq, nk, gate: torch.addcmul(x, gate.tanh(),
                                                               attn(query=nq(x), key=nk(image), value=nk(image))[0])],
    "4.2": [lambda q, t, attn: torch.stack([attn(q[None], v[None], v[None])[0][0] for v in t]),  # a loop
            lambda q, t, attn: attn(q.repeat(len(t), 1, 1), t, t)[0]],
    "4.3": [lambda p, c: ((p[..., None, :] - c) ** 2).sum(-1).argmin(-1),  # squared distance, broadcast
            lambda p, c: (c.pow(2).sum(-1) - 2 * p @ c.T).argmin(-1),  # ||p||² dropped: the same argmin
            lambda p, c: torch.cdist(p.double(), c.double()).argmin(-1),
            lambda p, c: torch.tensor([[int((c - v).norm(dim=1).argmin()) for v in row] for row in p])],
    "4.5": [lambda n, k, d: {"perceiver": k * (n + d * k), "transformer": float(d * n ** 2)}],
    "4.1": [lambda p, t, m: torch.cat([p, torch.stack([t[b][m[b]].mean(0) for b in range(len(t))])], -1),
            lambda p, t, m: torch.hstack([p, torch.einsum("btd,bt->bd", t, m.float()) / m.sum(1, keepdim=True)]),
            lambda p, t, m: torch.cat([p.double(), fu_masked_mean(t.double(), m.long())], -1)],
    "4.6": [lambda f, d, e, z: f + z(e(F.adaptive_avg_pool2d(d, f.shape[-2:]))),
            lambda f, d, e, z: z(e(F.avg_pool2d(d, d.shape[-1] // f.shape[-1]))) + f,
            lambda f, d, e, z: f + z(e(F.interpolate(d, scale_factor=f.shape[-1] / d.shape[-1], mode="area")))],
}


def fu_masked_mean(text, mask):
    from utils.embeddings import masked_mean
    return masked_mean(text, mask)


@pytest.mark.parametrize("exercise, index", [(e, i) for e, fns in VARIANTS.items() for i in range(len(fns))])
def test_valid_variants_pass(exercise, index):
    from utils.checks import evaluate

    result = evaluate(exercise, VARIANTS[exercise][index])
    assert result.passed, result.message


def test_every_probe_holds_for_the_reference():
    import torch.nn as nn

    from utils.checks import phase4, reference
    from utils.checks.oracles import broken

    x, image, attn, norm_q, norm_kv = phase4._gated_inputs()
    g = torch.Generator().manual_seed(5)
    pooled, text = torch.randn(3, 4, generator=g), torch.randn(3, 5, 6, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    encode, zero = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU()), nn.Conv2d(4, 5, 1)
    probe_sets = {
        "4.4": phase4._gated_probes(reference("4.4"), x, image, attn, norm_q, norm_kv, torch.tensor([0.7])),
        "4.2": phase4._resample_probes(reference("4.2"), torch.randn(3, 8), torch.randn(2, 5, 8), phase4._attn(8)),
        "4.3": phase4._vq_probes(reference("4.3")),
        "4.5": phase4._cost_probes(reference("4.5")),
        "4.1": phase4._concat_probes(reference("4.1"), pooled, text, mask),
        "4.6": phase4._adapter_probes(reference("4.6"), torch.randn(2, 5, 8, 8), torch.rand(2, 1, 32, 32), encode,
                                      zero),
    }
    for exercise, probes in probe_sets.items():
        assert all(p.holds() for p in probes), (exercise, broken(probes))  # holds, and none merely skipped by a crash


def test_vq_tokens_in_int32_are_told_the_dtype():  # found by the independent audit
    failed_with("4.3", lambda p, c: torch.cdist(p, c.expand(len(p), -1, -1)).argmin(-1).int(), "int64")
