"""Unit tests of the Phase 7 exercise self-checks (``utils/checks/phase7.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake (or the property it breaks), right ones
written another way must pass, and every property a check probes must hold for the course's reference."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils import vq
from utils.checks import evaluate, phase7, reference
from utils.checks.oracles import all_hold

EXERCISES = ["7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "7.8", "7.9", "7.10"]


def _passes(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "passed", result.message


def _starter(*args, **kwargs):  # a notebook's starter: the body is `...`, so it returns None
    ...


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_starter_reads_as_unsolved(exercise):
    assert evaluate(exercise, _starter).status == "unsolved"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_passes(exercise):
    _passes(exercise, reference(exercise))


# --- 7.1 the vector quantiser -----------------------------------------------------------------------------------
# The learner's function is f(z (B, D, H, W), codebook (K, D)) -> (quantized, indices, codebook_loss, commitment_loss).

def _parts(z, codebook, pick=None):
    """flat vectors, indices (B, H, W), codewords q (B, D, H, W) — with ``pick`` choosing codes from distances."""
    b, d, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    dist = torch.cdist(flat, codebook)
    idx = (pick or (lambda dd, f: dd.argmin(-1)))(dist, flat)
    q = codebook[idx].view(b, h, w, d).permute(0, 3, 1, 2)
    return idx.view(b, h, w), q


def _right(z, codebook, pick=None):
    idx, q = _parts(z, codebook, pick)
    return z + (q - z).detach(), idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_expanded_distance(z, codebook):  # |z|² - 2 z·c + |c|², a loop-free variant: right
    b, d, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    dist = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ codebook.T + (codebook ** 2).sum(1)
    idx = dist.argmin(1)
    q = F.embedding(idx, codebook).view(b, h, w, d).permute(0, 3, 1, 2)
    st = (q - z).detach() + z  # the same estimator written the other way round: right
    return st, idx.view(b, h, w), ((z.detach() - q) ** 2).mean(), ((z - q.detach()) ** 2).mean()


def quantize_namedtuple(z, codebook):  # the course's own NamedTuple: right
    return vq.vector_quantize(z, codebook)


def quantize_argmax(z, codebook):
    return _right(z, codebook, lambda d, f: d.argmax(-1))


def quantize_dot(z, codebook):
    return _right(z, codebook, lambda d, f: (f @ codebook.T).argmax(-1))


def quantize_cosine(z, codebook):
    return _right(z, codebook, lambda d, f: (F.normalize(f, dim=-1) @ F.normalize(codebook, dim=-1).T).argmax(-1))


def quantize_no_permute(z, codebook):
    b, d, h, w = z.shape
    flat = z.reshape(-1, d)
    idx = torch.cdist(flat, codebook).argmin(-1)
    q = codebook[idx].view(b, d, h, w)
    return z + (q - z).detach(), idx.view(b, h, w), F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_flat_indices(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx.reshape(-1), cb, cm


def quantize_float_indices(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx.float(), cb, cm


def quantize_channels_last(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st.permute(0, 2, 3, 1), idx, cb, cm


def quantize_no_straight_through(z, codebook):
    idx, q = _parts(z, codebook)
    return q, idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_detach_swapped(z, codebook):  # q + (z - q).detach(): forward value is z
    idx, q = _parts(z, codebook)
    return q + (z - q).detach(), idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_straight_through_to_codebook(z, codebook):  # z + q - z.detach(): gradient to both
    idx, q = _parts(z, codebook)
    return z - z.detach() + q, idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_scaled_gradient(z, codebook):  # the gradient reaches z halved
    idx, q = _parts(z, codebook)
    return 0.5 * z + (q - 0.5 * z).detach(), idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q.detach())


def quantize_losses_summed(z, codebook):
    st, idx, _, _ = _right(z, codebook)
    q = st.detach()
    return st, idx, ((codebook[idx].permute(0, 3, 1, 2) - z.detach()) ** 2).sum(), ((z - q) ** 2).sum()


def quantize_beta_inside(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx, cb, 0.25 * cm


def quantize_l1(z, codebook):
    idx, q = _parts(z, codebook)
    return z + (q - z).detach(), idx, (q - z.detach()).abs().mean(), (z - q.detach()).abs().mean()


def quantize_distance_summed_over_d(z, codebook):
    idx, q = _parts(z, codebook)
    return z + (q - z).detach(), idx, ((q - z.detach()) ** 2).sum(1).mean(), ((z - q.detach()) ** 2).sum(1).mean()


def quantize_losses_swapped(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx, cm, cb


def quantize_no_detach(z, codebook):
    idx, q = _parts(z, codebook)
    return z + (q - z).detach(), idx, F.mse_loss(q, z), F.mse_loss(z, q.detach())


def quantize_codebook_loss_through_st(z, codebook):  # codebook loss on the straight-through output
    st, idx, _, cm = _right(z, codebook)
    return st, idx, F.mse_loss(st, z.detach()), cm


def quantize_commitment_detached_z(z, codebook):
    idx, q = _parts(z, codebook)
    return z + (q - z).detach(), idx, F.mse_loss(q, z.detach()), F.mse_loss(z.detach(), q)


def quantize_commitment_no_detach(z, codebook):
    idx, q = _parts(z, codebook)
    return z + (q - z).detach(), idx, F.mse_loss(q, z.detach()), F.mse_loss(z, q)


def quantize_in_place(z, codebook):
    z.sub_(0)  # harmless value, but written in place — still changes nothing; the next line does
    z.mul_(1.0001)
    return _right(z, codebook)


def quantize_three_things(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx, cb + 0.25 * cm


def quantize_loss_per_vector(z, codebook):
    st, idx, cb, cm = _right(z, codebook)
    return st, idx, ((st.detach() - z.detach()) ** 2).mean(1), cm


@pytest.mark.parametrize("answer", [quantize_expanded_distance, quantize_namedtuple])
def test_quantizer_accepts_right_variants(answer):
    _passes("7.1", answer)


@pytest.mark.parametrize("answer, phrase", [
    (quantize_argmax, "farthest"),
    (quantize_dot, "dot product"),
    (quantize_cosine, "cosine"),
    (quantize_no_permute, "without moving the channels last"),
    (quantize_flat_indices, "right but flat"),
    (quantize_float_indices, "integers"),
    (quantize_channels_last, "(B, H, W, D)"),
    (quantize_no_straight_through, "no gradient reaches z"),
    (quantize_detach_swapped, "equal z itself"),
    (quantize_straight_through_to_codebook, "reaches the codebook"),
    (quantize_scaled_gradient, "passes it unchanged"),
    (quantize_losses_summed, "a sum"),
    (quantize_beta_inside, "β = 0.25"),
    (quantize_l1, "mean absolute error"),
    (quantize_distance_summed_over_d, "summed over D"),
    (quantize_losses_swapped, "swapped"),
    (quantize_no_detach, "also pulls the encoder"),
    (quantize_codebook_loss_through_st, "reaches the codebook"),
    (quantize_commitment_detached_z, "commitment loss reaches z"),
    (quantize_commitment_no_detach, "also moves the codebook"),
    (quantize_in_place, "changed the tensors"),
    (quantize_three_things, "four things"),
    (quantize_loss_per_vector, "one number"),
])
def test_quantizer_names_the_mistake(answer, phrase):
    failed_with("7.1", answer, phrase)


def test_quantizer_probes_hold_for_the_reference():
    z, codebook = phase7._vq_inputs()
    assert all_hold(phase7._quantizer_probes(vq.vector_quantize, z, codebook))


def test_quantizer_matches_the_library_oracle():
    z, codebook = phase7._vq_inputs()
    q, idx, grad = phase7._library_quantize(z, codebook)
    ours = vq.vector_quantize(z, codebook)
    assert torch.equal(ours.indices, idx) and torch.allclose(ours.quantized, q)
    assert torch.allclose(grad, phase7._weights(z))


# --- 7.2 codebook perplexity -------------------------------------------------------------------------------------
# The learner's function is f(indices (any shape, long), n_codes) -> float.

def _p(indices, n):
    c = torch.bincount(indices.flatten(), minlength=n).float()
    return c / c.sum()


def perplexity_via_log2(indices, n):  # 2 ** entropy in bits: right
    p = _p(indices, n)
    p = p[p > 0]
    return float(2 ** -(p * p.log2()).sum())


def perplexity_xlogy(indices, n):  # torch.special.xlogy handles 0·log 0: right, returned as a tensor
    p = _p(indices, n)
    return torch.exp(-torch.special.xlogy(p, p).sum())


def perplexity_entropy(indices, n):
    p = _p(indices, n)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def perplexity_bits(indices, n):
    p = _p(indices, n)
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def perplexity_exp_bits(indices, n):
    p = _p(indices, n)
    p = p[p > 0]
    return math.exp(float(-(p * p.log2()).sum()))


def perplexity_two_nats(indices, n):
    p = _p(indices, n)
    p = p[p > 0]
    return 2 ** float(-(p * p.log()).sum())


def perplexity_used(indices, n):
    return float(torch.unique(indices).numel())


def perplexity_simpson(indices, n):
    return float(1 / (_p(indices, n) ** 2).sum())


def perplexity_over_n(indices, n):
    c = torch.bincount(indices.flatten(), minlength=n).float()
    p = c[c > 0] / n
    return float(torch.exp(-(p * p.log()).sum()))


def perplexity_nan(indices, n):
    p = _p(indices, n)
    return float(torch.exp(-(p * p.log()).sum()))


def perplexity_first_row(indices, n):  # counts only the first image's tokens
    return perplexity_via_log2(indices[0], n) if indices.dim() > 1 else perplexity_via_log2(indices, n)


def perplexity_tuple(indices, n):
    return perplexity_via_log2(indices, n), n


@pytest.mark.parametrize("answer", [perplexity_via_log2, perplexity_xlogy])
def test_perplexity_accepts_right_variants(answer):
    _passes("7.2", answer)


@pytest.mark.parametrize("answer, phrase", [
    (perplexity_entropy, "that is the entropy H"),
    (perplexity_bits, "entropy in bits"),
    (perplexity_exp_bits, "exp of the entropy in bits"),
    (perplexity_two_nats, "2 ** the entropy in natural units"),
    (perplexity_used, "number of codes used"),
    (perplexity_simpson, "inverse Simpson"),
    (perplexity_over_n, "divided the counts by n_codes"),
    (perplexity_nan, "nan"),
    (perplexity_tuple, "one number"),
])
def test_perplexity_names_the_mistake(answer, phrase):
    failed_with("7.2", answer, phrase)


def test_perplexity_names_a_mistake_nobody_listed():
    failed_with("7.2", perplexity_first_row, "count every token")


def test_perplexity_probes_hold_for_the_reference():
    assert all_hold(phase7._perplexity_probes(vq.codebook_perplexity, phase7._perplexity_inputs(), 16))


# --- 7.3 the loss of each modality --------------------------------------------------------------------------------
# The learner's function is f(logits (B, T, V), labels (B, T), image_offset, n_codes) -> (text_loss, image_loss).

def _per_target(logits, labels):
    lg, tg = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), ignore_index=-100,
                           reduction="none").view(tg.shape), tg


def losses_masked_labels(logits, labels, offset, n):  # the other modality's labels set to -100, loss twice: right
    image = (labels >= offset) & (labels < offset + n)
    lg = logits[:, :-1].reshape(-1, logits.shape[-1])
    text = F.cross_entropy(lg, labels.masked_fill(image, -100)[:, 1:].reshape(-1), ignore_index=-100)
    img = F.cross_entropy(lg, labels.masked_fill(~image, -100)[:, 1:].reshape(-1), ignore_index=-100)
    return text, img


def losses_swapped(logits, labels, offset, n):
    t, i = losses_masked_labels(logits, labels, offset, n)
    return i, t


def losses_no_shift(logits, labels, offset, n):  # position t scored against label t
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                             reduction="none").view(labels.shape)
    image = (labels >= offset) & (labels < offset + n)
    return losses[(labels != -100) & ~image].mean(), losses[image].mean()


def losses_by_input(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    src = labels[:, :-1]
    valid = tg != -100
    image = (src >= offset) & (src < offset + n) & valid
    return losses[valid & ~image].mean(), losses[image].mean()


def losses_padding_counted(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    image = (tg >= offset) & (tg < offset + n)
    return losses[~image].mean(), losses[image].mean()


def losses_summed(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    image = (tg >= offset) & (tg < offset + n)
    return losses[(tg != -100) & ~image].sum(), losses[image].sum()


def losses_over_all(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    mean = losses[tg != -100].mean()
    return mean, mean


def losses_per_sequence(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    image = (tg >= offset) & (tg < offset + n)
    text = (tg != -100) & ~image
    t = torch.stack([losses[i][text[i]].mean() for i in range(len(tg)) if text[i].any()]).mean()
    m = torch.stack([losses[i][image[i]].mean() for i in range(len(tg)) if image[i].any()]).mean()
    return t, m


def losses_exclusive_start(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    image = (tg > offset) & (tg < offset + n)
    return losses[(tg != -100) & ~image].mean(), losses[image].mean()


def losses_one_number(logits, labels, offset, n):
    t, i = losses_masked_labels(logits, labels, offset, n)
    return t + i


def losses_per_token(logits, labels, offset, n):
    losses, tg = _per_target(logits, labels)
    image = (tg >= offset) & (tg < offset + n)
    return losses[(tg != -100) & ~image], losses[image]


@pytest.mark.parametrize("answer", [losses_masked_labels])
def test_modality_losses_accept_right_variants(answer):
    _passes("7.3", answer)


@pytest.mark.parametrize("answer, phrase", [
    (losses_swapped, "swapped"),
    (losses_no_shift, "no shift"),
    (losses_by_input, "*input* token"),
    (losses_padding_counted, "padding is counted"),
    (losses_summed, "sums"),
    (losses_over_all, "every token"),
    (losses_per_sequence, "per sequence"),
    (losses_exclusive_start, "image_offset itself"),
    (losses_one_number, "two losses"),
    (losses_per_token, "one number"),
])
def test_modality_losses_name_the_mistake(answer, phrase):
    failed_with("7.3", answer, phrase)


def test_modality_loss_probes_hold_for_the_reference():
    logits, labels = phase7._loss_inputs()
    assert all_hold(phase7._loss_probes(reference("7.3"), logits, labels))


# --- 7.4 drawing with image tokens only ---------------------------------------------------------------------------
# The learner's function is f(logits (B, V), image_offset, n_codes) -> logits (B, V).

def restrict_masked_fill(logits, offset, n):  # a boolean mask and masked_fill: right
    ids = torch.arange(logits.shape[-1])
    return logits.masked_fill((ids < offset) | (ids >= offset + n), float("-inf"))


def restrict_large_negative(logits, offset, n):  # -1e9 instead of -inf: accepted (probability 0 in float32)
    out = torch.full_like(logits, -1e9)
    out[:, offset:offset + n] = logits[:, offset:offset + n]
    return out


def restrict_in_place(logits, offset, n):
    logits[:, :offset] = float("-inf")
    logits[:, offset + n:] = float("-inf")
    return logits


def restrict_columns(logits, offset, n):
    return logits[:, offset:offset + n]


def restrict_probabilities(logits, offset, n):
    return restrict_masked_fill(logits, offset, n).softmax(-1)


def restrict_inverted(logits, offset, n):
    out = logits.clone()
    out[:, offset:offset + n] = float("-inf")
    return out


def restrict_one_too_many(logits, offset, n):
    out = torch.full_like(logits, float("-inf"))
    out[:, offset:offset + n + 1] = logits[:, offset:offset + n + 1]
    return out


def restrict_one_short(logits, offset, n):
    out = torch.full_like(logits, float("-inf"))
    out[:, offset:offset + n - 1] = logits[:, offset:offset + n - 1]
    return out


def restrict_shifted(logits, offset, n):
    out = torch.full_like(logits, float("-inf"))
    out[:, offset + 1:offset + n + 1] = logits[:, offset + 1:offset + n + 1]
    return out


def restrict_zeros(logits, offset, n):
    out = torch.zeros_like(logits)
    out[:, offset:offset + n] = logits[:, offset:offset + n]
    return out


def restrict_normalised(logits, offset, n):  # log-softmax over the image codes: changes their logits
    out = torch.full_like(logits, float("-inf"))
    out[:, offset:offset + n] = logits[:, offset:offset + n].log_softmax(-1)
    return out


def restrict_only_tail(logits, offset, n):  # forgets the text tokens after the codes (<boi>, <eoi>)
    out = logits.clone()
    out[:, :offset] = float("-inf")
    return out


@pytest.mark.parametrize("answer", [restrict_masked_fill, restrict_large_negative])
def test_restriction_accepts_right_variants(answer):
    _passes("7.4", answer)


@pytest.mark.parametrize("answer, phrase", [
    (restrict_in_place, "changed the logits"),
    (restrict_columns, "only the image codes' columns"),
    (restrict_probabilities, "probabilities"),
    (restrict_inverted, "other way round"),
    (restrict_one_too_many, "one token too many"),
    (restrict_one_short, "last image code is missing"),
    (restrict_shifted, "shifted by one"),
    (restrict_zeros, "logit of 0"),
    (restrict_normalised, "image codes' logits changed"),
])
def test_restriction_names_the_mistake(answer, phrase):
    failed_with("7.4", answer, phrase)


def test_restriction_names_a_mistake_nobody_listed():
    result = evaluate("7.4", restrict_only_tail)
    assert result.status == "failed", result.message


# --- 7.5 routing tokens to experts ---------------------------------------------------------------------------------
# The learner's function is f(router_logits (T, E), k) -> (weights (T, k), experts (T, k)).

def route_softmax_then_renormalise(logits, k):  # Mixtral's order: right
    probs = logits.softmax(-1)
    top = probs.topk(k, -1)
    return top.values / top.values.sum(-1, keepdim=True), top.indices


def route_ascending_order(logits, k):  # the chosen experts worst-first, weights kept with them: right
    top = logits.topk(k, -1)
    return top.values.softmax(-1).flip(-1), top.indices.flip(-1)


def route_int32(logits, k):  # int32 indices: right
    w, e = logits.topk(k, -1)
    return w.softmax(-1), e.int()


def route_softmax_all(logits, k):
    top = logits.softmax(-1).topk(k, -1)
    return top.values, top.indices


def route_raw(logits, k):
    return tuple(logits.topk(k, -1))


def route_uniform(logits, k):
    e = logits.topk(k, -1).indices
    return torch.full(e.shape, 1.0 / k), e


def route_misaligned(logits, k):
    top = logits.topk(k, -1)
    return top.values.softmax(-1).flip(-1), top.indices


def route_softmax_tokens(logits, k):
    top = logits.topk(k, -1)
    return top.values.softmax(0), top.indices


def route_lowest(logits, k):
    top = logits.topk(k, -1, largest=False)
    return top.values.softmax(-1), top.indices


def route_swapped(logits, k):
    top = logits.topk(k, -1)
    return top.indices, top.values.softmax(-1)


def route_dense(logits, k):  # a dense mixture over every expert
    return logits.softmax(-1), logits.topk(k, -1).indices


def route_detached(logits, k):
    top = logits.detach().topk(k, -1)
    return top.values.softmax(-1), top.indices


def route_in_place(logits, k):
    logits.sub_(logits.max(-1, keepdim=True).values)
    top = logits.topk(k, -1)
    return top.values.softmax(-1), top.indices


def route_tokens_axis(logits, k):  # the best k tokens for each expert
    top = logits.topk(k, 0)
    return top.values.softmax(0), top.indices


def route_fixed_k(logits, k):  # ignores k: always two experts
    top = logits.topk(2, -1)
    return top.values.softmax(-1), top.indices


def route_share_of_sum(logits, k):  # nobody listed this: shares of exp() of the raw scores' sum
    top = logits.topk(k, -1)
    v = top.values - top.values.min()
    return (v + 1) / (v + 1).sum(-1, keepdim=True), top.indices


@pytest.mark.parametrize("answer", [route_softmax_then_renormalise, route_ascending_order, route_int32])
def test_router_accepts_right_variants(answer):
    _passes("7.5", answer)


@pytest.mark.parametrize("answer, phrase", [
    (route_softmax_all, "softmax over *all* experts"),
    (route_raw, "raw router scores"),
    (route_uniform, "same weight 1/k"),
    (route_misaligned, "wrong experts"),
    (route_softmax_tokens, "across the tokens"),
    (route_lowest, "lowest-scoring"),
    (route_swapped, "swapped"),
    (route_dense, "dense mixture"),
    (route_detached, "no gradient"),
    (route_in_place, "changed the router logits"),
    (route_tokens_axis, "along the tokens"),
])
def test_router_names_the_mistake(answer, phrase):
    failed_with("7.5", answer, phrase)


def test_router_names_a_mistake_nobody_listed():
    assert evaluate("7.5", route_share_of_sum).status == "failed"
    failed_with("7.5", route_fixed_k, "the k you are given")


def test_router_probes_hold_for_the_reference():
    assert all_hold(phase7._route_probes(reference("7.5"), phase7._router_inputs(), 2))


# --- 7.6 the load-balancing loss -----------------------------------------------------------------------------------
# The learner's function is f(router_logits (T, E), k) -> a 0-dim loss.

def _f_and_p(logits, k, divide=None):
    n_tokens, n = logits.shape
    probs = logits.softmax(-1)
    counts = F.one_hot(probs.topk(k, -1).indices, n).sum((0, 1)).float()
    return counts / (divide or n_tokens), probs.mean(0)


def balance_bincount(logits, k):  # counts with bincount over the flattened choices: right
    n = logits.shape[-1]
    probs = logits.softmax(-1)
    counts = torch.bincount(logits.topk(k, -1).indices.reshape(-1), minlength=n).float()
    return n * (counts / len(logits) * probs.mean(0)).sum()


def balance_loop(logits, k):  # one expert at a time: right
    n = logits.shape[-1]
    probs = logits.softmax(-1)
    chosen = probs.topk(k, -1).indices
    return n * sum((chosen == i).sum() / len(logits) * probs[:, i].mean() for i in range(n))


def balance_no_e(logits, k):
    f, p = _f_and_p(logits, k)
    return (f * p).sum()


def balance_over_tk(logits, k):
    f, p = _f_and_p(logits, k, divide=len(logits) * k)
    return logits.shape[-1] * (f * p).sum()


def balance_top1_counts(logits, k):
    f, p = _f_and_p(logits, 1)
    return logits.shape[-1] * (f * p).sum()


def balance_soft_counts(logits, k):
    p = logits.softmax(-1).mean(0)
    return logits.shape[-1] * (p * p).sum()


def balance_renormalised_p(logits, k):
    f, _ = _f_and_p(logits, k)
    top = logits.softmax(-1).topk(k, -1)
    w = torch.zeros_like(logits).scatter(1, top.indices, top.values / top.values.sum(-1, keepdim=True))
    return logits.shape[-1] * (f * w.mean(0)).sum()


def balance_logits_p(logits, k):
    f, _ = _f_and_p(logits, k)
    return logits.shape[-1] * (f * logits.mean(0)).sum()


def balance_float(logits, k):
    return balance_bincount(logits, k).item()


def balance_detached(logits, k):
    return balance_bincount(logits.detach(), k)


def balance_differentiable_counts(logits, k):  # soft counts in the gradient, hard counts in the value
    f, p = _f_and_p(logits, k)
    soft = logits.softmax(-1).mean(0) * k
    f = f + soft - soft.detach()
    return logits.shape[-1] * (f * p).sum()


def balance_tokens_axis(logits, k):
    n = logits.shape[-1]
    probs = logits.softmax(0)
    counts = torch.bincount(probs.topk(k, -1).indices.reshape(-1), minlength=n).float()
    return n * (counts / len(logits) * probs.mean(0)).sum()


def balance_counts_not_divided(logits, k):
    n = logits.shape[-1]
    probs = logits.softmax(-1)
    counts = torch.bincount(probs.topk(k, -1).indices.reshape(-1), minlength=n).float()
    return n * (counts * probs.mean(0)).sum()


def balance_p_summed(logits, k):
    f, _ = _f_and_p(logits, k)
    return logits.shape[-1] * (f * logits.softmax(-1).sum(0)).sum()


def balance_mean_of_products(logits, k):
    n = logits.shape[-1]
    probs = logits.softmax(-1)
    chosen = F.one_hot(probs.topk(k, -1).indices, n).sum(1).float()
    return n * (chosen * probs).sum(-1).mean()


def balance_squared(logits, k):  # nobody listed this: f_i² + P_i² as the penalty
    f, p = _f_and_p(logits, k)
    return logits.shape[-1] * (f * f + p * p).sum() / 2


@pytest.mark.parametrize("answer", [balance_bincount, balance_loop])
def test_balance_accepts_right_variants(answer):
    _passes("7.6", answer)


@pytest.mark.parametrize("answer, phrase", [
    (balance_no_e, "factor E"),
    (balance_over_tk, "not by T·k"),
    (balance_top1_counts, "first choice"),
    (balance_soft_counts, "not the mean probability"),
    (balance_renormalised_p, "*full* softmax"),
    (balance_logits_p, "raw router logits"),
    (balance_float, "Python number"),
    (balance_detached, "no gradient"),
    (balance_differentiable_counts, "gradient differs"),
    (balance_tokens_axis, "across the tokens"),
    (balance_counts_not_divided, "T times too large"),
    (balance_p_summed, "T times too large"),
    (balance_mean_of_products, "mean of products"),
])
def test_balance_names_the_mistake(answer, phrase):
    failed_with("7.6", answer, phrase)


def test_balance_names_a_mistake_nobody_listed():
    result = evaluate("7.6", balance_squared)
    assert result.status == "failed", result.message


def test_balance_probes_hold_for_the_reference():
    assert all_hold(phase7._balance_probes(reference("7.6"), phase7._balance_inputs(), 2))


# --- 7.7 the forward process of diffusion --------------------------------------------------------------------------
# The learner's function is f(x0 (B, C, H, W), noise, t (B,), betas (T,)) -> x_t.

def _abar(betas, t, op=None):
    a = (op or (lambda b: torch.cumprod(1 - b, 0)))(betas)
    return a[t].view(-1, 1, 1, 1)


def noise_right_via_log(x0, noise, t, betas):  # ᾱ through a cumulative sum of logs: right
    a = torch.exp(torch.cumsum(torch.log1p(-betas), 0))[t].view(-1, 1, 1, 1)
    return torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise


def noise_alpha(x0, noise, t, betas):
    a = (1 - betas)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_cumprod_betas(x0, noise, t, betas):
    a = _abar(betas, t, lambda b: torch.cumprod(b, 0))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_one_indexed(x0, noise, t, betas):  # ᾱ of the steps before t
    a = torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)[:-1]])[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_no_sqrt(x0, noise, t, betas):
    a = _abar(betas, t)
    return a * x0 + (1 - a) * noise


def noise_half_sqrt(x0, noise, t, betas):
    a = _abar(betas, t)
    return a.sqrt() * x0 + (1 - a) * noise


def noise_swapped(x0, noise, t, betas):
    a = _abar(betas, t)
    return a.sqrt() * noise + (1 - a).sqrt() * x0


def noise_exploding(x0, noise, t, betas):
    return x0 + (1 - _abar(betas, t)).sqrt() * noise


def noise_cumsum(x0, noise, t, betas):
    a = (1 - torch.cumsum(betas, 0))[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_first_t(x0, noise, t, betas):
    a = torch.cumprod(1 - betas, 0)[t[0]]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_in_place(x0, noise, t, betas):
    a = _abar(betas, t)
    return x0.mul_(a.sqrt()).add_((1 - a).sqrt() * noise)


def noise_t_plus_one(x0, noise, t, betas):  # ᾱ one step late: a mistake nobody listed by this name
    a = torch.cumprod(1 - betas, 0)[(t + 1).clamp(max=len(betas) - 1)].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@pytest.mark.parametrize("answer", [noise_right_via_log])
def test_forward_process_accepts_right_variants(answer):
    _passes("7.7", answer)


@pytest.mark.parametrize("answer, phrase", [
    (noise_alpha, "of the step alone"),
    (noise_cumprod_betas, "multiplied the betas"),
    (noise_one_indexed, "includes step t itself"),
    (noise_no_sqrt, "no square roots"),
    (noise_half_sqrt, "noise's factor lacks"),
    (noise_swapped, "swapped"),
    (noise_exploding, "variance-exploding"),
    (noise_cumsum, "never 1 − Σβ"),
    (noise_first_t, "first image's timestep"),
    (noise_in_place, "changed one of the tensors"),
])
def test_forward_process_names_the_mistake(answer, phrase):
    failed_with("7.7", answer, phrase)


def test_forward_process_names_a_mistake_nobody_listed():
    result = evaluate("7.7", noise_t_plus_one)
    assert result.status == "failed" and result.named, result.message


# --- 7.8 the clean image from the noise ----------------------------------------------------------------------------
# The learner's function is f(x_t, eps, t (B,), betas (T,)) -> x0_hat.

def x0_rearranged(x_t, eps, t, betas):  # x_t/√ᾱ − √(1/ᾱ − 1)·ε: right
    a = _abar(betas, t)
    return x_t / a.sqrt() - (1 / a - 1).sqrt() * eps


def x0_no_division(x_t, eps, t, betas):
    return x_t - (1 - _abar(betas, t)).sqrt() * eps


def x0_no_factor(x_t, eps, t, betas):
    return (x_t - eps) / _abar(betas, t).sqrt()


def x0_multiplied(x_t, eps, t, betas):
    a = _abar(betas, t)
    return (x_t - (1 - a).sqrt() * eps) * a.sqrt()


def x0_no_sqrt(x_t, eps, t, betas):
    a = _abar(betas, t)
    return (x_t - (1 - a) * eps) / a


def x0_clipped(x_t, eps, t, betas):
    a = _abar(betas, t)
    return ((x_t - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)


def x0_alpha(x_t, eps, t, betas):
    a = (1 - betas)[t].view(-1, 1, 1, 1)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def x0_first_t(x_t, eps, t, betas):
    a = torch.cumprod(1 - betas, 0)[t[0]]
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


@pytest.mark.parametrize("answer", [x0_rearranged])
def test_clean_image_accepts_right_variants(answer):
    _passes("7.8", answer)


@pytest.mark.parametrize("answer, phrase", [
    (x0_no_division, "did not divide"),
    (x0_no_factor, "without its factor"),
    (x0_multiplied, "multiplied by"),
    (x0_no_sqrt, "no square roots"),
    (x0_clipped, "clipped"),
    (x0_alpha, "α_t of the step alone"),
    (x0_first_t, "own timestep"),
])
def test_clean_image_names_the_mistake(answer, phrase):
    failed_with("7.8", answer, phrase)


# --- 7.9 classifier-free guidance ----------------------------------------------------------------------------------
# The learner's function is f(eps_cond, eps_uncond, scale) -> the guided estimate.

def guide_mix(c, u, w):  # w ε_c + (1 − w) ε_∅: the same line written as a mix — right
    return w * c + (1 - w) * u


def guide_lerp(c, u, w):  # torch.lerp extrapolates past the end for w > 1: right
    return torch.lerp(u, c, w)


def guide_paper(c, u, w):
    return c + w * (c - u)


def guide_reversed(c, u, w):
    return u + w * (u - c)


def guide_swapped(c, u, w):
    return c + w * (u - c)


def guide_difference(c, u, w):
    return w * (c - u)


def guide_no_minus(c, u, w):
    return w * c + u


def guide_ignores_w(c, u, w):
    return (c + u) / 2


def guide_in_place(c, u, w):
    return u.add_(w * (c - u))


def guide_conditional_only(c, u, w):
    return c


def guide_parentheses(c, u, w):
    return w * (u + (c - u))


def guide_normalised(c, u, w):  # nobody listed this: the guided estimate rescaled to the conditional one's norm
    out = u + w * (c - u)
    return out * c.norm() / out.norm()


@pytest.mark.parametrize("answer", [guide_mix, guide_lerp])
def test_guidance_accepts_right_variants(answer):
    _passes("7.9", answer)


@pytest.mark.parametrize("answer, phrase", [
    (guide_paper, "paper's formulation"),
    (guide_reversed, "direction is reversed"),
    (guide_swapped, "swapped"),
    (guide_difference, "only the difference"),
    (guide_no_minus, "without subtracting"),
    (guide_ignores_w, "w is not used"),
    (guide_in_place, "changed one of the estimates"),
    (guide_conditional_only, "w is not used"),
    (guide_parentheses, "check the parentheses"),
])
def test_guidance_names_the_mistake(answer, phrase):
    failed_with("7.9", answer, phrase)


def test_guidance_names_a_mistake_nobody_listed():
    result = evaluate("7.9", guide_normalised)
    assert result.status == "failed" and result.named, result.message


def test_guidance_probes_hold_for_the_reference():
    assert all_hold(phase7._guidance_probes(reference("7.9"), *phase7._guidance_inputs()))


# --- 7.10 Transfusion's attention mask -------------------------------------------------------------------------------
# The learner's function is f(segments (B, T)) -> bool (B, T, T), True where query i may attend to key j.

def _tril(segments, diagonal=0):
    t = segments.shape[1]
    return torch.ones(t, t, dtype=torch.bool).tril(diagonal).expand(len(segments), t, t)


def _same(segments):
    return (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] > 0)


def mask_loops(segments):  # two loops over (i, j), as the paper's rule reads: right
    b, t = segments.shape
    out = torch.zeros(b, t, t, dtype=torch.bool)
    for n in range(b):
        for i in range(t):
            for j in range(t):
                out[n, i, j] = j <= i or (segments[n, i] != 0 and segments[n, i] == segments[n, j])
    return out


def mask_int(segments):  # 0/1 integers say the same thing: right
    return (_tril(segments) | _same(segments)).long()


def mask_causal(segments):
    return _tril(segments).clone()


def mask_full(segments):
    t = segments.shape[1]
    return torch.ones(len(segments), t, t, dtype=torch.bool)


def mask_any_image(segments):
    image = segments > 0
    return _tril(segments) | (image[:, :, None] & image[:, None, :])


def mask_text_block(segments):
    return _tril(segments) | (segments[:, :, None] == segments[:, None, :])


def mask_image_forgets_caption(segments):
    return (_tril(segments) & (segments[:, :, None] == 0)) | _same(segments)


def mask_transposed(segments):
    return _tril(segments).transpose(1, 2) | _same(segments)


def mask_no_diagonal(segments):
    return _tril(segments, -1) | _same(segments)


def mask_inverted(segments):
    return ~(_tril(segments) | _same(segments))


def mask_additive(segments):
    allowed = _tril(segments) | _same(segments)
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))


def mask_additive_finfo(segments):  # the form transformers builds: the dtype's lowest number, not -inf
    allowed = _tril(segments) | _same(segments)
    return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)


def mask_no_batch(segments):
    return (_tril(segments) | _same(segments))[0]


def mask_in_place(segments):
    segments[segments > 0] = 1
    return _tril(segments) | _same(segments)


def mask_image_sees_next_text(segments):  # nobody listed this: an image also sees the word right after it
    nxt = torch.zeros_like(segments)
    nxt[:, 1:] = segments[:, :-1]
    return _tril(segments) | _same(segments) | ((segments[:, :, None] > 0) & (nxt[:, None, :] == segments[:, :, None])
                                                 & (segments[:, None, :] == 0))


@pytest.mark.parametrize("answer", [mask_loops, mask_int])
def test_mask_accepts_right_variants(answer):
    _passes("7.10", answer)


@pytest.mark.parametrize("answer, phrase", [
    (mask_causal, "plain causal mask"),
    (mask_full, "bidirectional encoder"),
    (mask_any_image, "later* image"),
    (mask_text_block, "text positions see later text"),
    (mask_image_forgets_caption, "not the caption"),
    (mask_transposed, "transposed"),
    (mask_no_diagonal, "cannot see itself"),
    (mask_inverted, "forbidden"),
    (mask_additive, "additive mask"),
    (mask_additive_finfo, "additive mask"),
    (mask_no_batch, "one mask per sequence"),
    (mask_in_place, "changed the segment labels"),
])
def test_mask_names_the_mistake(answer, phrase):
    failed_with("7.10", answer, phrase)


def test_mask_names_a_mistake_nobody_listed():
    result = evaluate("7.10", mask_image_sees_next_text)
    assert result.status == "failed" and result.named, result.message


def test_mask_probes_hold_for_the_reference():
    assert all_hold(phase7._mask_probes(reference("7.10"), phase7._segment_inputs()))
