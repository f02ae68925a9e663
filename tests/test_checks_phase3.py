"""Unit tests of the Phase 3 exercise self-checks (``utils/checks/phase3.py``), with wrong answers written
the way a learner would write them; plus the agreement of ``utils.contrastive`` with open_clip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils.checks import evaluate, reference

# --- 3.1 ------------------------------------------------------------------------------------------------

def _labels(x):
    return torch.arange(len(x))


def infonce_one_way(img, txt, scale):
    return F.cross_entropy(scale * img @ txt.T, _labels(img))


def infonce_summed(img, txt, scale):
    logits = scale * img @ txt.T
    return F.cross_entropy(logits, _labels(img)) + F.cross_entropy(logits.t(), _labels(img))


def infonce_divides(img, txt, scale):
    logits = img @ txt.T / scale
    return (F.cross_entropy(logits, _labels(img)) + F.cross_entropy(logits.t(), _labels(img))) / 2


def infonce_no_scale(img, txt, scale):
    logits = img @ txt.T
    return (F.cross_entropy(logits, _labels(img)) + F.cross_entropy(logits.t(), _labels(img))) / 2


def infonce_zero_labels(img, txt, scale):
    logits = scale * img @ txt.T
    z = torch.zeros(len(img), dtype=torch.long)
    return (F.cross_entropy(logits, z) + F.cross_entropy(logits.t(), z)) / 2


def infonce_item(img, txt, scale):
    logits = scale * img @ txt.T
    return ((F.cross_entropy(logits, _labels(img)) + F.cross_entropy(logits.t(), _labels(img))) / 2).item()


def infonce_hardcoded(img, txt, scale):
    logits = scale * img @ txt.T
    labels = torch.arange(6)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def infonce_manual_logsoftmax(img, txt, scale):  # correct, written by hand: must pass
    logits = scale * img @ txt.T
    li = -(logits.log_softmax(1).diagonal()).mean()
    lt = -(logits.log_softmax(0).diagonal()).mean()
    return (li + lt) / 2


@pytest.mark.parametrize("answer, phrase", [
    (infonce_one_way, "only the image→text direction"),
    (infonce_summed, "summed"),
    (infonce_divides, "temperature is inverted"),
    (infonce_no_scale, "logit_scale is not applied"),
    (infonce_zero_labels, "torch.arange(N)"),
    (infonce_item, "scalar tensor"),
])
def test_infonce_mistakes(answer, phrase):
    failed_with("3.1", answer, phrase)


def test_infonce_hardcoded_batch_fails():
    result = evaluate("3.1", infonce_hardcoded)
    assert result.status == "failed" and ("hard-code" in result.message or "raised" in result.message), result.message


def test_infonce_by_hand_passes():
    assert evaluate("3.1", infonce_manual_logsoftmax).passed


def infonce_sum_reduction(img, txt, scale):  # sums over the batch instead of averaging
    logits = scale * img @ txt.T
    return (F.cross_entropy(logits, _labels(img), reduction="sum")
            + F.cross_entropy(logits.T, _labels(img), reduction="sum")) / 2


def infonce_scale_one_side(img, txt, scale):  # the temperature only in the image→text direction
    return (F.cross_entropy(scale * img @ txt.T, _labels(img)) + F.cross_entropy(txt @ img.T, _labels(img))) / 2


def infonce_double_softmax(img, txt, scale):  # probabilities fed to cross_entropy, which applies its own softmax
    logits = scale * img @ txt.T
    return (F.cross_entropy(logits.softmax(-1), _labels(img)) + F.cross_entropy(logits.T.softmax(-1), _labels(img))) / 2


def infonce_mean_over_matrix(img, txt, scale):  # picks the diagonal with a mask, then averages all N² entries
    logits = scale * img @ txt.T
    eye = torch.eye(len(img))
    return -((logits.log_softmax(1) * eye).mean() + (logits.log_softmax(0) * eye).mean()) / 2


def infonce_negated(img, txt, scale):  # log-probabilities of the targets without the minus sign
    logits = scale * img @ txt.T
    return (logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2


@pytest.mark.parametrize("answer, phrase", [
    (infonce_sum_reduction, "the mean over the batch, not the sum"),
    (infonce_scale_one_side, "swap roles"),
    (infonce_double_softmax, "don't apply a softmax"),
    (infonce_mean_over_matrix, "log N"),
    (infonce_negated, "rewards mismatches"),
])
def test_infonce_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.1", answer, phrase)


def infonce_einsum(img, txt, scale):
    logits = scale * torch.einsum("id,jd->ij", img, txt)
    return (F.cross_entropy(logits, _labels(img)) + F.cross_entropy(scale * txt @ img.T, _labels(img))) / 2


def infonce_float64(img, txt, scale):  # computes in float64, returns float32
    logits = scale * img.double() @ txt.double().T
    return ((F.cross_entropy(logits, _labels(img)) + F.cross_entropy(logits.T, _labels(img))) / 2).float()


def infonce_loop(img, txt, scale):
    logits = scale * img @ txt.T
    rows = [-(logits[i].log_softmax(0)[i]) for i in range(len(img))]
    cols = [-(logits[:, j].log_softmax(0)[j]) for j in range(len(img))]
    return (torch.stack(rows).mean() + torch.stack(cols).mean()) / 2


def infonce_renormalised(img, txt, scale):  # normalises the (already normalised) features again
    i, t = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    return (F.cross_entropy(scale * i @ t.T, _labels(img)) + F.cross_entropy(scale * t @ i.T, _labels(img))) / 2


def siglip_renormalised(img, txt, scale, bias):
    i, t = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    return -F.logsigmoid(_pm(img) * (scale * i @ t.T + bias)).sum() / len(img)


def test_normalising_the_features_again_is_named():
    """Same value as the oracle, another gradient: once called "detached or in-place?", now named."""
    failed_with("3.1", infonce_renormalised, "normalising twice changes the gradient")
    failed_with("3.2", siglip_renormalised, "normalising twice changes the gradient")


@pytest.mark.parametrize("answer", [infonce_einsum, infonce_float64, infonce_loop])
def test_infonce_valid_variants_pass(answer):
    result = evaluate("3.1", answer)
    assert result.passed, result.message


# --- 3.2 ------------------------------------------------------------------------------------------------

def siglip_mean(img, txt, scale, bias):
    logits = scale * img @ txt.T + bias
    labels = 2 * torch.eye(len(img)) - 1
    return -F.logsigmoid(labels * logits).mean()


def siglip_01(img, txt, scale, bias):
    logits = scale * img @ txt.T + bias
    return -F.logsigmoid(torch.eye(len(img)) * logits).sum() / len(img)


def siglip_bce(img, txt, scale, bias):
    return F.binary_cross_entropy_with_logits(scale * img @ txt.T + bias, torch.eye(len(img)))


def siglip_no_bias(img, txt, scale, bias):
    labels = 2 * torch.eye(len(img)) - 1
    return -F.logsigmoid(labels * (scale * img @ txt.T)).sum() / len(img)


def siglip_bce_sum(img, txt, scale, bias):  # correct: BCE summed / N is the same loss
    logits = scale * img @ txt.T + bias
    return F.binary_cross_entropy_with_logits(logits, torch.eye(len(img)), reduction="sum") / len(img)


@pytest.mark.parametrize("answer, phrase", [
    (siglip_mean, "all N² pairs"),
    (siglip_01, "labels are 0/1"),
    (siglip_bce, "BCE's default 'mean' reduction"),
    (siglip_no_bias, "bias is missing"),
    (lambda img, txt, scale, bias: reference("3.1")(img, txt, scale), "softmax loss"),
])
def test_siglip_mistakes(answer, phrase):
    failed_with("3.2", answer, phrase)


def test_siglip_bce_sum_passes():
    assert evaluate("3.2", siglip_bce_sum).passed


def _pm(x):
    return 2 * torch.eye(len(x)) - 1


def siglip_no_minus(img, txt, scale, bias):
    return F.logsigmoid(_pm(img) * (scale * img @ txt.T + bias)).sum() / len(img)


def siglip_inverted_labels(img, txt, scale, bias):  # −1 on the diagonal, +1 elsewhere
    return -F.logsigmoid(-_pm(img) * (scale * img @ txt.T + bias)).sum() / len(img)


def siglip_bias_before_scale(img, txt, scale, bias):
    return -F.logsigmoid(_pm(img) * (scale * (img @ txt.T + bias))).sum() / len(img)


def siglip_sum_only(img, txt, scale, bias):  # "sum over the N² pairs", and forgot to divide by N
    return -F.logsigmoid(_pm(img) * (scale * img @ txt.T + bias)).sum()


@pytest.mark.parametrize("answer, phrase", [
    (siglip_no_minus, "minus sign"),
    (siglip_inverted_labels, "rewards mismatches"),
    (siglip_bias_before_scale, "AFTER the scaling"),
    (siglip_sum_only, "divided by N"),
])
def test_siglip_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.2", answer, phrase)


def siglip_log_of_sigmoid(img, txt, scale, bias):  # less stable than logsigmoid, same value here
    return -torch.log(torch.sigmoid(_pm(img) * (scale * img @ txt.T + bias))).sum() / len(img)


def siglip_both_directions(img, txt, scale, bias):  # averaging over both directions changes nothing: symmetric
    one = -F.logsigmoid(_pm(img) * (scale * img @ txt.T + bias)).sum() / len(img)
    other = -F.logsigmoid(_pm(img) * (scale * txt @ img.T + bias)).sum() / len(img)
    return (one + other) / 2


def siglip_row_loop(img, txt, scale, bias):
    total = 0
    for i in range(len(img)):
        labels = -torch.ones(len(txt))
        labels[i] = 1
        total = total - F.logsigmoid(labels * (scale * txt @ img[i] + bias)).sum()
    return total / len(img)


@pytest.mark.parametrize("answer", [siglip_log_of_sigmoid, siglip_both_directions, siglip_row_loop])
def test_siglip_valid_variants_pass(answer):
    result = evaluate("3.2", answer)
    assert result.passed, result.message


# --- 3.3 ------------------------------------------------------------------------------------------------

def logits_unnormalised(model, images, tokens):
    return model.logit_scale.exp() * model.encode_image(images) @ model.encode_text(tokens).T


def logits_log_scale(model, images, tokens):
    i, t = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(tokens), dim=-1)
    return model.logit_scale * i @ t.T


def logits_per_text(model, images, tokens):
    i, t = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(tokens), dim=-1)
    return model.logit_scale.exp() * t @ i.T


def logits_via_forward(model, images, tokens):  # correct: uses open_clip's forward
    i, t, s = model(images, tokens)[:3]
    return s * i @ t.T


@pytest.mark.parametrize("answer, phrase", [
    (logits_unnormalised, "not L2-normalised"),
    (logits_log_scale, "stored as a log"),
    (logits_per_text, "texts × images"),
])
def test_logits_mistakes(answer, phrase):
    failed_with("3.3", answer, phrase)


def test_logits_via_forward_passes():
    assert evaluate("3.3", logits_via_forward).passed


def logits_normalised_over_batch(model, images, tokens):  # dim=0: each feature normalised across the batch
    i, t = F.normalize(model.encode_image(images), dim=0), F.normalize(model.encode_text(tokens), dim=0)
    return model.logit_scale.exp() * i @ t.T


def logits_fixed_scale(model, images, tokens):  # CLIP's clamp value instead of the model's own scale
    i, t = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(tokens), dim=-1)
    return 100 * i @ t.T


def logits_image_side_normalised(model, images, tokens):
    return model.logit_scale.exp() * F.normalize(model.encode_image(images), dim=-1) @ model.encode_text(tokens).T


def logits_softmax(model, images, tokens):  # probabilities, not logits
    i, t = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(tokens), dim=-1)
    return (model.logit_scale.exp() * i @ t.T).softmax(-1)


@pytest.mark.parametrize("answer, phrase", [
    (logits_normalised_over_batch, "not across the batch"),
    (logits_fixed_scale, "instead of a fixed number"),
    (logits_image_side_normalised, "BOTH sides"),
    (logits_softmax, "no softmax"),
])
def test_logits_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.3", answer, phrase)


def logits_normalize_flag(model, images, tokens):  # open_clip's own normalize=True
    return model.logit_scale.exp() * model.encode_image(images, normalize=True) @ model.encode_text(
        tokens, normalize=True).T


def logits_manual_einsum(model, images, tokens):
    i, t = model.encode_image(images), model.encode_text(tokens)
    i, t = i / i.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
    return torch.einsum("id,jd->ij", i, t) * model.logit_scale.exp()


@pytest.mark.parametrize("answer", [logits_normalize_flag, logits_manual_einsum])
def test_logits_valid_variants_pass(answer):
    result = evaluate("3.3", answer)
    assert result.passed, result.message


# --- 3.4 ------------------------------------------------------------------------------------------------

def _prompt_embeddings(model, tokenizer, name, templates):
    return model.encode_text(tokenizer([t.format(name) for t in templates]))


def zs_no_final_norm(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=-1).mean(0) for n in names])


def zs_norm_after_mean_only(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates).mean(0), dim=0) for n in names])


def zs_first_template(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates[:1])[0], dim=0) for n in names])


def zs_no_average(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=-1) for n in names])


@pytest.mark.parametrize("answer, phrase", [
    (zs_no_final_norm, "not re-normalised"),
    (zs_norm_after_mean_only, "averaged before being normalised"),
    (zs_first_template, "only the first template"),
    (zs_no_average, "one embedding per prompt"),
])
def test_zero_shot_mistakes(answer, phrase):
    failed_with("3.4", answer, phrase)


def zs_normalised_over_templates(model, tokenizer, names, templates):  # dim=0 of (T, D): across the prompts
    return torch.stack([F.normalize(F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=0).mean(0),
                                    dim=0) for n in names])


def zs_sum_no_final_norm(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=-1).sum(0) for n in names])


def zs_last_template(model, tokenizer, names, templates):
    return torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates)[-1], dim=0) for n in names])


def zs_normalised_across_classes(model, tokenizer, names, templates):  # final normalisation along the classes
    means = torch.stack([F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=-1).mean(0)
                         for n in names])
    return F.normalize(means, dim=0)


@pytest.mark.parametrize("answer, phrase", [
    (zs_normalised_over_templates, "each prompt's embedding on its own"),
    (zs_sum_no_final_norm, "not unit length"),
    (zs_last_template, "another order"),
    (zs_normalised_across_classes, "not unit length"),
])
def test_zero_shot_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.4", answer, phrase)


def zs_sum_then_normalise(model, tokenizer, names, templates):  # the sum points the same way as the mean
    return torch.stack([F.normalize(F.normalize(_prompt_embeddings(model, tokenizer, n, templates), dim=-1).sum(0),
                                    dim=0) for n in names])


def zs_one_batched_call(model, tokenizer, names, templates):  # every prompt of every class in one call
    prompts = [t.format(n) for n in names for t in templates]
    emb = F.normalize(model.encode_text(tokenizer(prompts)), dim=-1).reshape(len(names), len(templates), -1)
    return F.normalize(emb.mean(1), dim=-1)


def zs_course_helper(model, tokenizer, names, templates):
    from utils.clip import encode_texts
    return torch.stack([F.normalize(encode_texts(model, tokenizer, [t.format(n) for t in templates]).mean(0), dim=0)
                        for n in names])


@pytest.mark.parametrize("answer", [zs_sum_then_normalise, zs_one_batched_call, zs_course_helper])
def test_zero_shot_valid_variants_pass(answer):
    result = evaluate("3.4", answer)
    assert result.passed, result.message


# --- 3.5 ------------------------------------------------------------------------------------------------

def hn_including_self(emb, anchors, k):
    e = F.normalize(emb, dim=-1)
    return (e[anchors] @ e.T).topk(k, dim=-1).indices


def hn_dot(emb, anchors, k):
    s = emb[anchors] @ emb.T
    s[torch.arange(len(anchors)), anchors] = float("-inf")
    return s.topk(k, dim=-1).indices


def hn_easiest(emb, anchors, k):
    e = F.normalize(emb, dim=-1)
    s = e[anchors] @ e.T
    s[torch.arange(len(anchors)), anchors] = float("inf")
    return s.topk(k, dim=-1, largest=False).indices


def hn_unsorted(emb, anchors, k):
    e = F.normalize(emb, dim=-1)
    s = e[anchors] @ e.T
    s[torch.arange(len(anchors)), anchors] = float("-inf")
    return s.topk(k, dim=-1).indices.flip(-1)


@pytest.mark.parametrize("answer, phrase", [
    (hn_including_self, "its own hard negative"),
    (hn_dot, "raw dot products"),
    (hn_easiest, "EASIEST"),
    (hn_unsorted, "wrong order"),
])
def test_hard_negative_mistakes(answer, phrase):
    failed_with("3.5", answer, phrase)


def hn_masks_every_anchor(emb, anchors, k):  # masks the column of EVERY anchor in every row
    e = F.normalize(emb, dim=-1)
    s = e[anchors] @ e.T
    s[:, anchors] = float("-inf")
    return s.topk(k, dim=-1).indices


def hn_euclidean(emb, anchors, k):  # "most similar = nearest", on the raw vectors
    d = torch.cdist(emb[anchors], emb)
    d[torch.arange(len(anchors)), anchors] = float("inf")
    return d.topk(k, dim=-1, largest=False).indices


def hn_normalised_over_rows(emb, anchors, k):  # dim=0: each feature normalised across the rows
    e = F.normalize(emb, dim=0)
    s = e[anchors] @ e.T
    s[torch.arange(len(anchors)), anchors] = float("-inf")
    return s.topk(k, dim=-1).indices


def hn_fixed_k(emb, anchors, k):
    e = F.normalize(emb, dim=-1)
    s = e[anchors] @ e.T
    s[torch.arange(len(anchors)), anchors] = float("-inf")
    return s.topk(4, dim=-1).indices


@pytest.mark.parametrize("answer, phrase", [
    (hn_masks_every_anchor, "not the columns of every anchor"),
    (hn_euclidean, "rescaled"),
    (hn_normalised_over_rows, "rescaled"),
    (hn_fixed_k, "the k you are given"),
])
def test_hard_negative_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.5", answer, phrase)


def hn_candidates_normalised_only(emb, anchors, k):  # the anchor's own length scales its whole row: same ranking
    s = emb[anchors] @ F.normalize(emb, dim=-1).T
    s[torch.arange(len(anchors)), anchors] = float("-inf")
    return s.topk(k, dim=-1).indices


def hn_cdist_on_unit_vectors(emb, anchors, k):  # on unit vectors, nearest = most similar by cosine
    e = F.normalize(emb, dim=-1)
    d = torch.cdist(e[anchors], e)
    d[torch.arange(len(anchors)), anchors] = float("inf")
    return d.topk(k, dim=-1, largest=False).indices


def hn_loop_argsort(emb, anchors, k):
    e = F.normalize(emb, dim=-1)
    rows = []
    for a in anchors.tolist():
        s = F.cosine_similarity(e[a][None], e, dim=-1)
        s[a] = float("-inf")
        rows.append(s.argsort(descending=True)[:k])
    return torch.stack(rows)


@pytest.mark.parametrize("answer", [hn_candidates_normalised_only, hn_cdist_on_unit_vectors, hn_loop_argsort])
def test_hard_negative_valid_variants_pass(answer):
    result = evaluate("3.5", answer)
    assert result.passed, result.message


# --- 3.6 ------------------------------------------------------------------------------------------------

def _mask(scores, n):
    m = torch.zeros(len(scores), dtype=torch.bool)
    m[scores.topk(n).indices] = True
    return m


def filter_lowest(img, txt, keep):
    s = F.cosine_similarity(img, txt, dim=-1)
    return ~_mask(s, len(s) - round(keep * len(s)))


def filter_dot(img, txt, keep):
    s = (img * txt).sum(-1)
    return _mask(s, round(keep * len(s)))


def filter_best_in_batch(img, txt, keep):
    s = (F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T).max(-1).values
    return _mask(s, round(keep * len(s)))


def filter_threshold(img, txt, keep):
    s = F.cosine_similarity(img, txt, dim=-1)
    return s > s.quantile(keep)


def filter_indices(img, txt, keep):
    s = F.cosine_similarity(img, txt, dim=-1)
    return s.topk(round(keep * len(s))).indices


def filter_numpy_quantile(img, txt, keep):  # correct: keep scores at or above the right order statistic
    s = F.cosine_similarity(img, txt, dim=-1).numpy()
    cut = np.sort(s)[::-1][round(keep * len(s)) - 1]
    return torch.from_numpy(s >= cut)


@pytest.mark.parametrize("answer, phrase", [
    (filter_lowest, "LOWEST"),
    (filter_dot, "raw dot products"),
    (filter_best_in_batch, "score each PAIR"),
    (filter_threshold, "should keep 15"),
    (filter_indices, "boolean mask"),
])
def test_filter_mistakes(answer, phrase):
    failed_with("3.6", answer, phrase)


def test_filter_numpy_variant_passes():
    assert evaluate("3.6", filter_numpy_quantile).passed


def filter_int(img, txt, keep):  # int() truncates: 0.28 · 20 = 5.6 keeps 5
    s = F.cosine_similarity(img, txt, dim=-1)
    return _mask(s, int(keep * len(s)))


def filter_captions_normalised_only(img, txt, keep):  # "the captions are the unnormalised side"
    s = (img * F.normalize(txt, dim=-1)).sum(-1)
    return _mask(s, round(keep * len(s)))


def filter_first_positions(img, txt, keep):  # sorts the scores, then marks the first positions
    s = F.cosine_similarity(img, txt, dim=-1).sort(descending=True).values
    return torch.arange(len(s)) < round(keep * len(s))


def filter_quantile_at_least(img, txt, keep):  # a threshold at the (1 − keep) quantile: off by one for some keeps
    s = F.cosine_similarity(img, txt, dim=-1)
    return s >= s.quantile(1 - keep)


@pytest.mark.parametrize("answer, phrase", [
    (filter_int, "int() truncates"),
    (filter_captions_normalised_only, "normalise BOTH sides"),
    (filter_first_positions, "does not follow the pairs"),
    (filter_quantile_at_least, "round(keep · N)"),
])
def test_filter_mistakes_named_by_their_property(answer, phrase):
    failed_with("3.6", answer, phrase)


def filter_argsort_manual_cosine(img, txt, keep):
    s = (img * txt).sum(-1) / (img.norm(dim=-1) * txt.norm(dim=-1))
    mask = torch.zeros(len(s), dtype=torch.bool)
    mask[s.argsort(descending=True)[:round(keep * len(s))]] = True
    return mask


def filter_float64(img, txt, keep):
    s = F.cosine_similarity(img.double(), txt.double(), dim=-1)
    return s >= s.sort(descending=True).values[round(keep * len(s)) - 1]


@pytest.mark.parametrize("answer", [filter_argsort_manual_cosine, filter_float64])
def test_filter_valid_variants_pass(answer):
    result = evaluate("3.6", answer)
    assert result.passed, result.message


# --- utils.contrastive agrees with open_clip -------------------------------------------------------------------

def test_losses_match_open_clip_at_several_sizes():
    from open_clip.loss import ClipLoss, SigLipLoss

    from utils.contrastive import clip_loss, siglip_loss
    for n, seed in ((2, 0), (17, 1), (128, 2)):
        g = torch.Generator().manual_seed(seed)
        img, txt = (F.normalize(torch.randn(n, 32, generator=g), dim=-1) for _ in range(2))
        assert torch.allclose(clip_loss(img, txt, 30.0), ClipLoss()(img, txt, 30.0), atol=1e-5)
        assert torch.allclose(siglip_loss(img, txt, 10.0, -10.0), SigLipLoss()(img, txt, 10.0, -10.0), atol=1e-5)


def test_hard_negatives_that_drop_the_first_of_topk_fail_on_duplicates():
    """Learner-trial finding: `topk(k + 1)[:, 1:]` assumes the anchor ranks first; an exact copy ties with it."""
    def drop_first(emb, anchors, k):
        unit = F.normalize(emb, dim=-1)
        return (unit[anchors] @ unit.T).topk(k + 1, dim=-1).indices[:, 1:]

    failed_with("3.5", drop_first, "copies tie")



# --- the property probes never reject a right answer ------------------------------------------------------------

@pytest.mark.parametrize("exercise, answer", [
    ("3.1", reference("3.1")), ("3.1", infonce_manual_logsoftmax), ("3.1", infonce_einsum), ("3.1", infonce_loop),
    ("3.2", reference("3.2")), ("3.2", siglip_bce_sum), ("3.2", siglip_row_loop), ("3.2", siglip_both_directions),
    ("3.3", reference("3.3")), ("3.3", logits_via_forward), ("3.3", logits_normalize_flag),
    ("3.4", reference("3.4")), ("3.4", zs_one_batched_call), ("3.4", zs_sum_then_normalise),
])
def test_right_answers_keep_every_probed_property(exercise, answer, monkeypatch):
    """The probes of 3.1-3.4 only run on a wrong value; run them on right answers too (3.5 and 3.6 always do)."""
    from utils.checks import oracles, phase3

    def diagnose_and_probe(got, expected, mistakes, default, probes=()):
        assert len(probes) >= 4
        for probe in probes:  # called directly: a probe that crashes on a right answer fails here too
            assert probe.holds(), f"a right answer broke the property {probe.property!r}"
        oracles.diagnose(got, expected, mistakes, default, probes)

    monkeypatch.setattr(phase3, "diagnose", diagnose_and_probe)
    result = evaluate(exercise, answer)
    assert result.passed, result.message


@pytest.mark.parametrize("answer", [reference("3.5"), hn_candidates_normalised_only, hn_cdist_on_unit_vectors,
                                    hn_loop_argsort])
def test_right_hard_negative_miners_keep_every_probed_property(answer):
    from utils.checks.phase3 import _mining_probes

    assert all(probe.holds() for probe in _mining_probes(answer))  # called directly: a crash fails too


@pytest.mark.parametrize("answer", [reference("3.6"), filter_numpy_quantile, filter_argsort_manual_cosine,
                                    filter_float64])
def test_right_filters_keep_every_probed_property(answer):
    from utils.checks.phase3 import _filter_pairs, _filter_probes

    assert all(probe.holds() for probe in _filter_probes(answer, *_filter_pairs()))  # a crash fails too


def test_siglip_with_the_bias_outside_the_label_product_is_told_where_the_bias_goes():
    def bias_outside(image_features, text_features, logit_scale, logit_bias):  # found by the independent audit
        img, txt = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        labels = 2 * torch.eye(len(img)) - 1
        return -F.logsigmoid(labels * (logit_scale * img @ txt.T) + logit_bias).sum() / len(img)

    failed_with("3.2", bias_outside, "the label multiplies the WHOLE logit, bias included")
