"""Unit tests of the Phase 4 exercise self-checks (``utils/checks/phase4.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake."""
from __future__ import annotations

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
