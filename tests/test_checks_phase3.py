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

