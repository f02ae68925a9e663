"""Unit tests of the Phase 9 exercise self-checks (``utils/checks/phase9.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake (or the property it breaks), right ones
written another way must pass, and the starter reads as unsolved."""
from __future__ import annotations

import numpy as np
import pytest

from tests.checks_testing import failed_with
from utils.checks import evaluate, reference

EXERCISES = ["9.1", "9.2", "9.3", "9.4", "9.6", "9.8", "9.5", "9.7", "9.9"]


def _passes(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "passed", result.message


def _starter(*args, **kwargs):
    ...


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_starter_reads_as_unsolved(exercise):
    assert evaluate(exercise, _starter).status == "unsolved"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_passes(exercise):
    _passes(exercise, reference(exercise))


# --- 9.1 a bootstrap confidence interval ---------------------------------------------------------------------------

def ci_loop(values, resamples=2000, confidence=0.95, seed=0):  # a loop and rng.choice: right
    rng = np.random.default_rng(seed)
    values = np.asarray(values, float)
    means = [rng.choice(values, len(values), replace=True).mean() for _ in range(resamples)]
    tail = (1 - confidence) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def ci_no_replacement(values, resamples=2000, confidence=0.95, seed=0):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, float)
    means = [rng.permutation(values).mean() for _ in range(resamples)]
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def ci_ninety(values, resamples=2000, confidence=0.95, seed=0):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, float)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.quantile(means, 1 - confidence)), float(np.quantile(means, confidence))


def ci_of_the_data(values, resamples=2000, confidence=0.95, seed=0):
    values = np.asarray(values, float)
    return float(values.mean()), float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def ci_pair_only(values, resamples=2000, confidence=0.95, seed=0):
    return ci_loop(values, resamples, confidence, seed)[1:]


def ci_global_rng(values, resamples=2000, confidence=0.95, seed=0):  # ignores the seed
    values = np.asarray(values, float)
    means = values[np.random.randint(0, len(values), (resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def ci_fixed_confidence(values, resamples=2000, confidence=0.95, seed=0):
    return ci_loop(values, resamples, 0.95, seed)


def ci_small_resamples(values, resamples=2000, confidence=0.95, seed=0):  # resamples of 10 examples each
    rng = np.random.default_rng(seed)
    values = np.asarray(values, float)
    means = values[rng.integers(0, len(values), (resamples, 10))].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def test_ci_right_variant_passes():
    _passes("9.1", ci_loop)


@pytest.mark.parametrize("answer, phrase", [
    (ci_no_replacement, "with* replacement"),
    (ci_ninety, "90 % interval"),
    (ci_of_the_data, "data's own spread"),
    (ci_pair_only, "(mean, low, high)"),
    (ci_global_rng, "same seed"),
    (ci_fixed_confidence, "`confidence` argument"),
    (ci_small_resamples, "as many examples as the data"),
])
def test_ci_mistakes_are_named(answer, phrase):
    np.random.seed(0)
    failed_with("9.1", answer, phrase)


# --- 9.2 a paired comparison ---------------------------------------------------------------------------------------

def paired_loop(a, b, resamples=2000, confidence=0.95, seed=0):  # a loop over resamples: right
    rng = np.random.default_rng(seed)
    d = np.asarray(a, float) - np.asarray(b, float)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(resamples)])
    tail = (1 - confidence) / 2
    return {"difference": float(d.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1 - tail)), "p_not_better": float((means <= 0).mean())}


def paired_unpaired(a, b, resamples=2000, confidence=0.95, seed=0):
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    means = a[rng.integers(0, len(a), (resamples, len(a)))].mean(1) - b[rng.integers(0, len(b), (resamples,
                                                                                              len(b)))].mean(1)
    return {"difference": float(a.mean() - b.mean()), "low": float(np.quantile(means, 0.025)),
            "high": float(np.quantile(means, 0.975)), "p_not_better": float((means <= 0).mean())}


def paired_b_minus_a(a, b, resamples=2000, confidence=0.95, seed=0):
    return paired_loop(b, a, resamples, confidence, seed)


def paired_p_better(a, b, resamples=2000, confidence=0.95, seed=0):
    out = paired_loop(a, b, resamples, confidence, seed)
    return {**out, "p_not_better": 1 - out["p_not_better"]}


def paired_missing_key(a, b, resamples=2000, confidence=0.95, seed=0):
    out = paired_loop(a, b, resamples, confidence, seed)
    del out["p_not_better"]
    return out


def test_paired_right_variant_passes():
    _passes("9.2", paired_loop)


@pytest.mark.parametrize("answer, phrase", [
    (paired_unpaired, "unpaired"),
    (paired_b_minus_a, "wrong sign"),
    (paired_p_better, "does *not* beat"),
    (paired_missing_key, "missing p_not_better"),
])
def test_paired_mistakes_are_named(answer, phrase):
    failed_with("9.2", answer, phrase)


# --- 9.3 POPE's negatives ------------------------------------------------------------------------------------------

def _scores(present, candidates, split, frequency, together):
    if split == "popular":
        return frequency[candidates]
    return together[np.asarray(present)][:, candidates].sum(0)


def neg_sorted_python(present, candidates, split, frequency, together, k):  # Python's sorted is stable: right
    if split == "random":
        return list(candidates[:k])
    score = _scores(present, candidates, split, frequency, together)
    return [int(c) for _, c in sorted(zip(-score, candidates), key=lambda t: t[0])][:k]


def neg_ascending(present, candidates, split, frequency, together, k):
    if split == "random":
        return [int(c) for c in candidates[:k]]
    score = _scores(present, candidates, split, frequency, together)
    return [int(c) for c in candidates[np.argsort(score, kind="stable")[:k]]]


def neg_positions(present, candidates, split, frequency, together, k):
    if split == "random":
        return list(range(k))
    score = _scores(present, candidates, split, frequency, together)
    return [int(i) for i in np.argsort(-score, kind="stable")[:k]]


def neg_adversarial_by_frequency(present, candidates, split, frequency, together, k):
    if split == "random":
        return [int(c) for c in candidates[:k]]
    return [int(c) for c in candidates[np.argsort(-frequency[candidates], kind="stable")[:k]]]


def neg_first_present_only(present, candidates, split, frequency, together, k):
    if split != "adversarial":
        return neg_sorted_python(present, candidates, split, frequency, together, k)
    return [int(c) for c in candidates[np.argsort(-together[present[0]][candidates], kind="stable")[:k]]]


def neg_max_not_sum(present, candidates, split, frequency, together, k):
    if split != "adversarial":
        return neg_sorted_python(present, candidates, split, frequency, together, k)
    score = together[np.asarray(present)][:, candidates].max(0)
    return [int(c) for c in candidates[np.argsort(-score, kind="stable")[:k]]]


def neg_unstable(present, candidates, split, frequency, together, k):  # breaks ties by the smaller class id
    if split == "random":
        return [int(c) for c in candidates[:k]]
    score = _scores(present, candidates, split, frequency, together)
    return [int(c) for c in sorted(candidates, key=lambda c: (-score[list(candidates).index(c)], c))][:k]


def neg_random_resorted(present, candidates, split, frequency, together, k):
    if split == "random":
        return sorted(int(c) for c in candidates)[:k]
    return neg_sorted_python(present, candidates, split, frequency, together, k)


def test_negatives_right_variant_passes():
    _passes("9.3", neg_sorted_python)


@pytest.mark.parametrize("answer, phrase", [
    (neg_ascending, "*most*"),
    (neg_positions, "positions"),
    (neg_adversarial_by_frequency, "popular split"),
    (neg_first_present_only, "first present class only"),
    (neg_max_not_sum, "largest single"),
    (neg_unstable, "stable sort"),
    (neg_random_resorted, "keeps the candidates' order"),
])
def test_negatives_mistakes_are_named(answer, phrase):
    failed_with("9.3", answer, phrase)


# --- 9.4 BLEU ------------------------------------------------------------------------------------------------------

def _ngrams(words, n):
    out = {}
    for i in range(len(words) - n + 1):
        out[tuple(words[i:i + n])] = out.get(tuple(words[i:i + n]), 0) + 1
    return out


def _bleu(hyps, refs, clip=True, brevity=True, geometric=True, scale=100.0, max_n=4):
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    for h, ref in zip(hyps, refs):
        hw, rw = h.split(), ref.split()
        c, r = c + len(hw), r + len(rw)
        for n in range(1, max_n + 1):
            hc, rc = _ngrams(hw, n), _ngrams(rw, n)
            matches[n - 1] += sum(min(k, rc.get(g, 0)) if clip else k * (g in rc) for g, k in hc.items())
            totals[n - 1] += max(len(hw) - n + 1, 0)
    p = [m / t for m, t in zip(matches, totals)]
    mean = float(np.exp(np.mean(np.log(p)))) if geometric else float(np.mean(p))
    return scale * (1.0 if c > r or not brevity else float(np.exp(1 - r / c))) * mean


def bleu_collections(hypotheses, references, max_n=4):  # collections.Counter's & clips: right
    from collections import Counter

    logs, c, r = [], 0, 0
    pairs = [(h.split(), ref.split()) for h, ref in zip(hypotheses, references)]
    c, r = sum(len(h) for h, _ in pairs), sum(len(ref) for _, ref in pairs)
    for n in range(1, max_n + 1):
        hit = total = 0
        for h, ref in pairs:
            hc = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            hit += sum((hc & rc).values())
            total += sum(hc.values())
        if hit == 0:
            return 0.0
        logs.append(np.log(hit / total))
    return 100 * (1.0 if c > r else np.exp(1 - r / c)) * float(np.exp(np.mean(logs)))


def bleu_unclipped(hypotheses, references, max_n=4):
    return _bleu(hypotheses, references, clip=False)


def bleu_no_brevity(hypotheses, references, max_n=4):
    return _bleu(hypotheses, references, brevity=False)


def bleu_arithmetic(hypotheses, references, max_n=4):
    return _bleu(hypotheses, references, geometric=False)


def bleu_fraction(hypotheses, references, max_n=4):
    return _bleu(hypotheses, references, scale=1.0)


def bleu_sentence_average(hypotheses, references, max_n=4):
    import sacrebleu

    return float(np.mean([sacrebleu.sentence_bleu(h, [r], tokenize="none", smooth_method="none").score
                          for h, r in zip(hypotheses, references)]))


def bleu_unigram_only(hypotheses, references, max_n=4):
    return _bleu(hypotheses, references, max_n=1)


def test_bleu_right_variant_passes():
    _passes("9.4", bleu_collections)


@pytest.mark.parametrize("answer, phrase", [
    (bleu_unclipped, "clip"),
    (bleu_no_brevity, "brevity penalty"),
    (bleu_arithmetic, "*geometric* mean"),
    (bleu_fraction, "multiply by 100"),
    (bleu_sentence_average, "averaged sentence-level"),
])
def test_bleu_mistakes_are_named(answer, phrase):
    failed_with("9.4", answer, phrase)


def test_bleu_unlisted_mistake_breaks_a_named_property():
    failed_with("9.4", bleu_unigram_only, "every n from 1 to max_n")


# --- 9.6 Cohen's kappa ---------------------------------------------------------------------------------------------

def kappa_confusion(a, b):  # from a confusion matrix: right
    labels = sorted(set(a) | set(b))
    m = np.array([[np.sum((np.asarray(a) == x) & (np.asarray(b) == y)) for y in labels] for x in labels], float)
    m /= m.sum()
    p_o, p_e = np.trace(m), float(m.sum(1) @ m.sum(0))
    return (p_o - p_e) / (1 - p_e)


def kappa_raw(a, b):
    return float((np.asarray(a) == np.asarray(b)).mean())


def kappa_scott(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pooled = np.concatenate([a, b])
    p_o = (a == b).mean()
    p_e = sum((pooled == label).mean() ** 2 for label in np.unique(pooled))
    return float((p_o - p_e) / (1 - p_e))


def kappa_uniform(a, b):
    a, b = np.asarray(a), np.asarray(b)
    k = len(np.union1d(a, b))
    return float(((a == b).mean() - 1 / k) / (1 - 1 / k))


def kappa_over_pe(a, b):
    a, b = np.asarray(a), np.asarray(b)
    p_e = sum((a == label).mean() * (b == label).mean() for label in np.union1d(a, b))
    return float(((a == b).mean() - p_e) / p_e)


def kappa_yes_no_only(a, b):  # hard-codes two labels
    a, b = np.asarray(a), np.asarray(b)
    p_e = (a == "y").mean() * (b == "y").mean() + (a == "n").mean() * (b == "n").mean()
    return float(((a == b).mean() - p_e) / (1 - p_e))


def test_kappa_right_variant_passes():
    _passes("9.6", kappa_confusion)


@pytest.mark.parametrize("answer, phrase", [
    (kappa_raw, "raw agreement"),
    (kappa_scott, "Scott's π"),
    (kappa_uniform, "1 / (number of labels)"),
    (kappa_over_pe, "denominator"),
    (kappa_yes_no_only, "any set of labels"),
])
def test_kappa_mistakes_are_named(answer, phrase):
    failed_with("9.6", answer, phrase)


# --- 9.8 a contamination detector ----------------------------------------------------------------------------------

def _words(text, lower=True, strip=True):
    words = text.split()
    if strip:
        words = [w.strip(".,;:!?\"'()") for w in words]
    if lower:
        words = [w.lower() for w in words]
    return [w for w in words if w]


def _grams(words, n, last=True):
    return {tuple(words[i:i + n]) for i in range(len(words) - n + (1 if last else 0))}


def detect_regex(texts, benchmark, n=8):  # regex words, a set per item: right
    import re

    def grams(t):
        words = re.findall(r"[a-z0-9']+", t.lower())
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    items = [grams(b) for b in benchmark]
    return np.array([any(grams(t) & g for g in items) for t in texts])


def detect_exact(texts, benchmark, n=8):
    return np.array([t in benchmark for t in texts])


def detect_off_by_one(texts, benchmark, n=8):
    planted = set().union(*(_grams(_words(b), n, last=False) for b in benchmark)) if benchmark else set()
    return np.array([bool(_grams(_words(t), n, last=False) & planted) for t in texts])


def detect_case_sensitive(texts, benchmark, n=8):
    planted = set().union(*(_grams(_words(b, lower=False, strip=False), n) for b in benchmark)) if benchmark else set()
    return np.array([bool(_grams(_words(t, lower=False, strip=False), n) & planted) for t in texts])


def detect_bag_of_words(texts, benchmark, n=8):
    items = [set(_words(b)) for b in benchmark]
    return np.array([any(len(set(_words(t)) & item) >= n for item in items) for t in texts])


def detect_nothing(texts, benchmark, n=8):
    return np.zeros(len(texts), bool)


def test_detector_right_variant_passes():
    _passes("9.8", detect_regex)


@pytest.mark.parametrize("answer, phrase", [
    (detect_exact, "exact copy"),
    (detect_off_by_one, "range(len(words) − n + 1)"),
    (detect_case_sensitive, "lower-case"),
    (detect_bag_of_words, "bag of words"),
    (detect_nothing, "nothing was flagged"),
])
def test_detector_mistakes_are_named(answer, phrase):
    failed_with("9.8", answer, phrase)


# --- 9.5 CLIPScore -------------------------------------------------------------------------------------------------

def clip_torch(image, text, weight=2.5):  # torch, normalise then dot: right
    import torch

    a = torch.nn.functional.normalize(torch.as_tensor(image, dtype=torch.float64), dim=1)
    b = torch.nn.functional.normalize(torch.as_tensor(text, dtype=torch.float64), dim=1)
    return weight * (a * b).sum(1).clamp(min=0)


def _cos(image, text):
    image, text = np.asarray(image, float), np.asarray(text, float)
    return (image * text).sum(1) / (np.linalg.norm(image, axis=1) * np.linalg.norm(text, axis=1))


def clip_no_clamp(image, text, weight=2.5):
    return weight * _cos(image, text)


def clip_no_weight(image, text, weight=2.5):
    return np.maximum(_cos(image, text), 0)


def clip_hundred(image, text, weight=2.5):
    return 100 * np.maximum(_cos(image, text), 0)


def clip_unnormalised(image, text, weight=2.5):
    return weight * np.maximum((np.asarray(image) * np.asarray(text)).sum(1), 0)


def clip_matrix(image, text, weight=2.5):
    a = np.asarray(image, float) / np.linalg.norm(image, axis=1, keepdims=True)
    b = np.asarray(text, float) / np.linalg.norm(text, axis=1, keepdims=True)
    return weight * np.maximum(a @ b.T, 0)


def clip_mean(image, text, weight=2.5):
    return float(weight * np.maximum(_cos(image, text), 0).mean())


def clip_fixed_weight(image, text, weight=2.5):  # ignores the weight argument
    return 2.5 * np.maximum(_cos(image, text), 0)


def test_clip_score_right_variant_passes():
    _passes("9.5", clip_torch)


@pytest.mark.parametrize("answer, phrase", [
    (clip_no_clamp, "clips the cosine at 0"),
    (clip_no_weight, "w = 2.5"),
    (clip_hundred, "torchmetrics' scale"),
    (clip_unnormalised, "not unit vectors"),
    (clip_matrix, "you returned a matrix"),
    (clip_mean, "one score per (image, text) pair"),
])
def test_clip_score_mistakes_are_named(answer, phrase):
    failed_with("9.5", answer, phrase)


def test_clip_score_unlisted_mistake_breaks_a_named_property():
    failed_with("9.5", clip_fixed_weight, "proportional to `weight`")


# --- 9.7 a judge's verdicts in both orders --------------------------------------------------------------------------

def swap_loop(ab, ba):  # a loop with a lookup table: right
    table = {("first", "second"): "A", ("second", "first"): "B"}
    return [table.get((a, b), "tie") for a, b in zip(ab, ba)]


def swap_unmapped(ab, ba):  # "first" read as A in both orders
    return ["A" if a == b == "first" else "B" if a == b == "second" else "tie" for a, b in zip(ab, ba)]


def swap_first_order_only(ab, ba):
    return ["A" if a == "first" else "B" for a in ab]


def swap_none_for_ties(ab, ba):  # ties left out as None
    return ["A" if (a, b) == ("first", "second") else "B" if (a, b) == ("second", "first") else None
            for a, b in zip(ab, ba)]


def swap_booleans(ab, ba):
    return [a == "first" and b == "second" for a, b in zip(ab, ba)]


def swap_a_favoured(ab, ba):  # A wins if either order picks it
    return ["A" if a == "first" or b == "second" else "B" for a, b in zip(ab, ba)]


def test_swap_right_variant_passes():
    _passes("9.7", swap_loop)


@pytest.mark.parametrize("answer, phrase", [
    (swap_unmapped, "B is shown first"),
    (swap_first_order_only, "first order's verdict alone"),
    (swap_none_for_ties, "\"A\", \"B\" or \"tie\""),
    (swap_booleans, "\"A\", \"B\" or \"tie\""),
])
def test_swap_mistakes_are_named(answer, phrase):
    failed_with("9.7", answer, phrase)


def test_swap_unlisted_mistake_fails():
    failed_with("9.7", swap_a_favoured, "a tie, not a win")


# --- 9.9 exact match and mean log-probability -----------------------------------------------------------------------

def sequence_torch(token_logprobs, token_right):  # torch, flattened mean (the rows are equally long): right
    import torch

    lp, right = torch.as_tensor(token_logprobs), torch.as_tensor(token_right)
    return right.all(dim=1).float().mean().item(), lp.mean().item()


def sequence_swapped(token_logprobs, token_right):
    return float(np.mean(token_logprobs)), float(np.all(token_right, 1).mean())


def sequence_token_accuracy(token_logprobs, token_right):
    return float(np.mean(token_right)), float(np.mean(token_logprobs))


def sequence_any(token_logprobs, token_right):
    return float(np.any(token_right, 1).mean()), float(np.mean(token_logprobs))


def sequence_summed(token_logprobs, token_right):
    return float(np.all(token_right, 1).mean()), float(np.sum(token_logprobs, 1).mean())


def sequence_nll(token_logprobs, token_right):
    return float(np.all(token_right, 1).mean()), float(-np.mean(token_logprobs))


def sequence_probability(token_logprobs, token_right):
    return float(np.all(token_right, 1).mean()), float(np.exp(token_logprobs).mean())


def sequence_per_row(token_logprobs, token_right):
    return np.all(token_right, 1).astype(float), np.mean(token_logprobs, 1)


def sequence_last_token(token_logprobs, token_right):  # exact match judged on the last token only
    return float(np.asarray(token_right)[:, -1].mean()), float(np.mean(token_logprobs))


def test_sequence_scores_right_variant_passes():
    _passes("9.9", sequence_torch)


@pytest.mark.parametrize("answer, phrase", [
    (sequence_swapped, "swapped"),
    (sequence_token_accuracy, "token accuracy"),
    (sequence_any, "*any*"),
    (sequence_summed, "sum over its tokens"),
    (sequence_nll, "sign is flipped"),
    (sequence_probability, "a probability, not a log-probability"),
    (sequence_per_row, "one number for all the answers"),
])
def test_sequence_scores_mistakes_are_named(answer, phrase):
    failed_with("9.9", answer, phrase)


def test_sequence_scores_unlisted_mistake_breaks_a_named_property():
    failed_with("9.9", sequence_last_token, "wherever it sits")
