"""Unit tests of the Phase 0 exercise self-checks (``utils/checks/phase0.py``).

Each wrong answer below is written the way a learner would write it (independently of the checker's own
reproductions of mistakes), and each test asserts that the check fails with the hint that names that
mistake. The parametrize ids document which mistake gets which hint: ``pytest --collect-only -q`` lists them.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils import attention as A
from utils.checks import check, evaluate, reference

EXERCISES = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8"]





# --- 0.1 a training step --------------------------------------------------------------------------------

def step_without_zero_grad(model, inputs, targets, optimizer):
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_without_optimizer_step(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    return loss.item()


def step_without_backward(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.step()
    return loss.item()


def step_zero_grad_between_backward_and_step(model, inputs, targets, optimizer):
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_returning_tensor(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def step_softmax_before_cross_entropy(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs).softmax(dim=-1), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_nll_on_raw_logits(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.nll_loss(model(inputs), targets)  # forgot log_softmax
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(step_without_zero_grad, "optimizer.zero_grad()` every step", id="no-zero_grad->gradients-accumulate"),
    pytest.param(step_without_optimizer_step, "call `optimizer.step()`", id="no-optimizer.step->weights-not-updated"),
    pytest.param(step_without_backward, "call `loss.backward()`", id="no-backward->no-gradients"),
    pytest.param(step_zero_grad_between_backward_and_step, "between `loss.backward()` and `optimizer.step()`",
                 id="zero_grad-after-backward->wrong-place"),
    pytest.param(step_returning_tensor, "as a Python float", id="returns-tensor->use-.item()"),
    pytest.param(step_softmax_before_cross_entropy, "applies log-softmax itself", id="softmax-before-CE->raw-logits"),
    pytest.param(step_nll_on_raw_logits, "applies log-softmax itself", id="nll-on-logits->use-cross_entropy"),
])
def test_train_step_mistakes(answer, phrase):
    failed_with("0.1", answer, phrase)


# --- 0.2 L2 normalisation -------------------------------------------------------------------------------

def l2_along_dim0(x):
    return x / x.norm(dim=0, keepdim=True)


def l2_by_squared_norm(x):
    return x / (x ** 2).sum(dim=-1, keepdim=True)


def l2_without_eps(x):
    return x / torch.sqrt((x ** 2).sum(dim=-1, keepdim=True))


def l2_by_sum(x):
    return x / x.sum(dim=-1, keepdim=True)


def l2_whole_tensor_norm(x):
    return x / x.norm()


def l2_without_keepdim(x):
    return x / x.norm(dim=-1).clamp_min(1e-12)


def l2_returns_norms(x):
    return x.norm(dim=-1)


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(l2_along_dim0, "each COLUMN has unit norm", id="dim=0->columns-normalised"),
    pytest.param(l2_by_squared_norm, "divided by the squared norm", id="squared-norm"),
    pytest.param(l2_without_eps, "zero vector gives NaN", id="no-eps->NaN-on-zero-vector"),
    pytest.param(l2_by_sum, "L1-style", id="sum-of-entries->L1"),
    pytest.param(l2_whole_tensor_norm, "norm of the whole tensor", id="x/x.norm()->whole-tensor"),
    pytest.param(l2_without_keepdim, "keepdim=True", id="no-keepdim->broadcast-error"),
    pytest.param(l2_returns_norms, "you returned the norms", id="returns-norms"),
])
def test_l2_normalize_mistakes(answer, phrase):
    failed_with("0.2", answer, phrase)


# --- 0.3 cosine-similarity matrix -----------------------------------------------------------------------

def _unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cos_without_normalising(a, b):
    return a @ b.T


def cos_transposed(a, b):
    return _unit(b) @ _unit(a).T


def cos_only_a_normalised(a, b):
    return _unit(a) @ b.T


def cos_only_b_normalised(a, b):
    return a @ _unit(b).T


def cos_normalised_along_dim0(a, b):
    return (a / a.norm(dim=0, keepdim=True)) @ (b / b.norm(dim=0, keepdim=True)).T


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(cos_without_normalising, "raw dot products", id="no-normalisation->raw-dot-products"),
    pytest.param(cos_transposed, "the result is transposed", id="b@a.T->transposed"),
    pytest.param(cos_only_a_normalised, "normalise `b` too", id="only-a-normalised"),
    pytest.param(cos_only_b_normalised, "normalise `a` too", id="only-b-normalised"),
    pytest.param(cos_normalised_along_dim0, "wrong axis", id="normalised-along-dim0"),
])
def test_cosine_mistakes(answer, phrase):
    failed_with("0.3", answer, phrase)


# --- 0.4 scaled dot-product attention -------------------------------------------------------------------

def _scores(q, k):
    return q @ k.transpose(-2, -1)


def sdpa_without_scaling(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def sdpa_scaled_by_d(q, k, v, mask=None):
    s = _scores(q, k) / q.shape[-1]
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def sdpa_softmax_over_queries(q, k, v, mask=None):
    s = _scores(q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-2) @ v


def sdpa_returns_weights(q, k, v, mask=None):
    s = _scores(q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1)


def sdpa_mask_ignored(q, k, v, mask=None):
    return torch.softmax(_scores(q, k) / math.sqrt(q.shape[-1]), dim=-1) @ v


def sdpa_mask_inverted(q, k, v, mask=None):
    s = _scores(q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def sdpa_mask_with_zero(q, k, v, mask=None):
    s = _scores(q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s * mask  # masked scores become 0, not -inf
    return torch.softmax(s, dim=-1) @ v


def sdpa_mask_after_softmax(q, k, v, mask=None):
    w = torch.softmax(_scores(q, k) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        w = w.masked_fill(~mask, 0.0)
    return w @ v


def sdpa_additive_bool_mask(q, k, v, mask=None):
    s = _scores(q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask  # a boolean mask is not an additive mask
    return torch.softmax(s, dim=-1) @ v


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(sdpa_without_scaling, "not scaled: divide", id="no-scaling"),
    pytest.param(sdpa_scaled_by_d, "you scaled by d", id="scaled-by-d-not-sqrt-d"),
    pytest.param(sdpa_softmax_over_queries, "softmax runs over the wrong axis", id="softmax-dim=-2"),
    pytest.param(sdpa_returns_weights, "multiply them by v", id="returns-weights"),
    pytest.param(sdpa_mask_ignored, "the mask is ignored", id="mask-ignored"),
    pytest.param(sdpa_mask_inverted, "the mask is inverted", id="mask-inverted"),
    pytest.param(sdpa_mask_with_zero, "score of 0 instead of -inf", id="mask-fills-0-not-minus-inf"),
    pytest.param(sdpa_mask_after_softmax, "masking after the softmax", id="mask-after-softmax"),
    pytest.param(sdpa_additive_bool_mask, "added the boolean mask", id="bool-mask-added-to-scores"),
])
def test_attention_mistakes(answer, phrase):
    failed_with("0.4", answer, phrase)


def sdpa_with_large_negative(q, k, v, mask=None):
    s = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        s = torch.where(mask == 0, torch.tensor(-1e9), s)
    return F.softmax(s, dim=-1) @ v


def test_attention_alternative_correct_answer_passes():
    assert evaluate("0.4", sdpa_with_large_negative).passed


# --- 0.5 multi-head attention ---------------------------------------------------------------------------

def _mha(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None, *, split="view", merge="transpose",
         scale="head", out_proj=True, kv_from_q=False, transpose_w=True, pass_mask=True):
    """A learner's multi-head attention with switches for the usual mistakes (default: correct)."""
    b, t_q, d = x_q.shape
    hd = d // n_heads
    lin = (lambda x, w: x @ w.T) if transpose_w else (lambda x, w: x @ w)
    src = x_q if kv_from_q else x_kv
    q, k, v = lin(x_q, w_q), lin(src, w_k), lin(src, w_v)

    def heads(t):
        if split == "reshape":  # bare reshape: heads cut across positions
            return t.reshape(b, n_heads, t.shape[1], hd)
        return t.view(b, t.shape[1], n_heads, hd).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(v)
    s = q @ k.transpose(-2, -1) / math.sqrt(hd if scale == "head" else d)
    if mask is not None and pass_mask:
        s = s.masked_fill(~mask, float("-inf"))
    o = s.softmax(dim=-1) @ v
    o = o.reshape(b, t_q, d) if merge == "reshape" else o.transpose(1, 2).reshape(b, t_q, d)
    return lin(o, w_o) if out_proj else o


def mha_single_head(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None):
    q, k, v = x_q @ w_q.T, x_kv @ w_k.T, x_kv @ w_v.T
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1) @ v) @ w_o.T


def _mha_variant(**mistake):
    return lambda *args, **kwargs: _mha(*args, **kwargs, **mistake)


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(_mha_variant(split="reshape"), "heads are split with a bare reshape", id="split-heads-bare-reshape"),
    pytest.param(_mha_variant(split="reshape", merge="reshape"), "split and merged with a bare reshape",
                 id="split-and-merge-bare-reshape"),
    pytest.param(_mha_variant(merge="reshape"), "heads are merged with a bare reshape", id="merge-heads-bare-reshape"),
    pytest.param(_mha_variant(scale="model"), "HEAD dimension", id="scaled-by-model-dim"),
    pytest.param(_mha_variant(out_proj=False), "output projection w_o is missing", id="no-output-projection"),
    pytest.param(_mha_variant(kv_from_q=True), "keys/values come from the query sequence", id="k-v-from-x_q"),
    pytest.param(_mha_variant(transpose_w=False), "x @ w.T", id="x@w-instead-of-x@w.T"),
    pytest.param(_mha_variant(pass_mask=False), "pass `mask` on", id="mask-dropped"),
    pytest.param(mha_single_head, "single-head attention", id="single-head"),
])
def test_multi_head_attention_mistakes(answer, phrase):
    failed_with("0.5", answer, phrase)


def test_multi_head_attention_learner_style_correct_answer_passes():
    assert evaluate("0.5", _mha_variant()).passed


# --- 0.6 BPE --------------------------------------------------------------------------------------------

def _learner_bpe(word_freqs, num_merges, *, weighted=True, every_occurrence=True, recount=True, tiebreak="rank"):
    """A learner's BPE (default: correct) with switches for the usual mistakes."""
    words = {tuple(w): (f if weighted else 1) for w, f in word_freqs.items()}
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}

    def count(words):
        counts = Counter()
        for symbols, f in words.items():
            for i in range(len(symbols) - 1):
                counts[symbols[i], symbols[i + 1]] += f
        return counts

    def merge(symbols, pair):
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                out.append(symbols[i] + symbols[i + 1])
                i += 2
                if not every_occurrence:
                    return tuple(out) + tuple(symbols[i:])
            else:
                out.append(symbols[i])
                i += 1
        return tuple(out)

    merges, counts = [], count(words)
    for _ in range(num_merges):
        if recount:
            counts = count(words)
        counts = Counter({p: c for p, c in counts.items() if c > 0})
        if not counts:
            break
        if tiebreak == "rank":
            best = min(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))
        elif tiebreak == "first_seen":
            best = counts.most_common(1)[0][0]
        elif tiebreak == "alphabetical":
            best = min(counts, key=lambda p: (-counts[p], p))
        else:  # lexicographically largest
            best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        if not recount:
            del counts[best]
        words = {merge(w, best): f for w, f in words.items()}
    return merges


def bpe_concatenated_corpus(word_freqs, num_merges):
    """Treats the corpus as one long string: pairs across word boundaries get counted and merged."""
    seq = [c for w, f in word_freqs.items() for _ in range(f) for c in w]
    rank = {c: i for i, c in enumerate(sorted(set(seq)))}
    merges = []
    for _ in range(num_merges):
        counts = Counter(zip(seq, seq[1:]))
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        out, i = [], 0
        while i < len(seq):
            if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                out.append(seq[i] + seq[i + 1])
                i += 2
            else:
                out.append(seq[i])
                i += 1
        seq = out
    return merges


def bpe_string_replace(word_freqs, num_merges):
    """Words as space-separated strings, merged with str.replace: 'aa b'.replace('a b', 'ab') matches across
    the boundary of the symbol 'aa'."""
    vocab = {" ".join(w): f for w, f in word_freqs.items()}
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, f in vocab.items():
            symbols = word.split()
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += f
        if not counts:
            break
        # .get: the stray replacements create symbols that were never a merge (and have no rank)
        best = min(counts, key=lambda p: (-counts[p], rank.get(p[0], len(rank)), rank.get(p[1], len(rank))))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        vocab = {w.replace(" ".join(best), "".join(best)): f for w, f in vocab.items()}
    return merges


def bpe_pairs_counted_once_per_word(word_freqs, num_merges):
    """Counts a pair once per word (a set of pairs), so 'aaab' holds ('a', 'a') once instead of twice."""
    words = {tuple(w): f for w, f in word_freqs.items()}
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for symbols, f in words.items():
            for pair in set(zip(symbols, symbols[1:])):
                counts[pair] += f
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        words = {_merge_all(w, best): f for w, f in words.items()}
    return merges


def _merge_all(symbols, pair):
    out, i = [], 0
    while i < len(symbols):
        if symbols[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def bpe_returns_strings(word_freqs, num_merges):
    return ["".join(p) for p in _learner_bpe(word_freqs, num_merges)]


def _bpe_variant(**mistake):
    return lambda word_freqs, num_merges: _learner_bpe(word_freqs, num_merges, **mistake)


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(_bpe_variant(weighted=False), "ignore how often each word occurs", id="word-frequencies-ignored"),
    pytest.param(_bpe_variant(every_occurrence=False), "only the first occurrence", id="merges-first-occurrence-only"),
    pytest.param(_bpe_variant(recount=False), "recount the pairs after every merge", id="counts-not-recomputed"),
    pytest.param(_bpe_variant(tiebreak="first_seen"), "ties are broken differently", id="tie-most_common-first-seen"),
    pytest.param(_bpe_variant(tiebreak="alphabetical"), "ties are broken differently",
                 id="tie-alphabetically-smallest"),
    pytest.param(_bpe_variant(tiebreak="largest"), "ties are broken differently", id="tie-lexicographically-largest"),
    pytest.param(bpe_concatenated_corpus, "across word boundaries", id="corpus-concatenated->cross-word-pairs"),
    pytest.param(bpe_string_replace, "across symbol boundaries", id="str.replace-merge->cross-symbol-match"),
    pytest.param(bpe_pairs_counted_once_per_word, "merge the most frequent pair", id="pair-counted-once-per-word"),
    pytest.param(bpe_returns_strings, "a list of merges", id="returns-merged-strings-not-pairs"),
])
def test_bpe_mistakes(answer, phrase):
    failed_with("0.6", answer, phrase)


def test_bpe_learner_style_correct_answer_passes():
    assert evaluate("0.6", _bpe_variant()).passed


# --- 0.7 next-token loss --------------------------------------------------------------------------------

def _ce(logits, labels, **kwargs):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), **kwargs)


def lm_loss_no_shift(logits, labels):
    return _ce(logits, labels, ignore_index=-100)


def lm_loss_shift_wrong_way(logits, labels):
    return _ce(logits[:, 1:], labels[:, :-1], ignore_index=-100)


def lm_loss_padding_counted(logits, labels):
    logp = logits[:, :-1].log_softmax(dim=-1)
    target = labels[:, 1:].clamp(min=0)  # clamp so gather does not crash on -100 ... but -100 still counts
    return -logp.gather(-1, target.unsqueeze(-1)).mean()


def lm_loss_sum(logits, labels):
    return _ce(logits[:, :-1], labels[:, 1:], ignore_index=-100, reduction="sum")


def lm_loss_mean_over_all_positions(logits, labels):
    per_token = _ce(logits[:, :-1], labels[:, 1:], ignore_index=-100, reduction="none")
    return per_token.mean()  # the ignored positions contribute 0 but are still counted


def lm_loss_per_token(logits, labels):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(lm_loss_no_shift, "no shift", id="no-shift"),
    pytest.param(lm_loss_shift_wrong_way, "shifted the wrong way", id="shift-wrong-direction"),
    pytest.param(lm_loss_padding_counted, "padding (-100) is counted", id="padding-not-ignored(clamp+gather)"),
    pytest.param(lm_loss_sum, "summed", id="sum-not-mean"),
    pytest.param(lm_loss_mean_over_all_positions, "number of real (non -100) labels", id="mean-over-padded-positions"),
    pytest.param(lm_loss_per_token, "return one number", id="per-token-losses"),
])
def test_lm_loss_mistakes(answer, phrase):
    failed_with("0.7", answer, phrase)


def lm_loss_transposed_cross_entropy(logits, labels):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100)


def test_lm_loss_alternative_correct_answer_passes():
    assert evaluate("0.7", lm_loss_transposed_cross_entropy).passed


# --- 0.8 ViT token counts -------------------------------------------------------------------------------

VIT_KEYS = [(224, 16), (336, 14), (64, 8), (32, 4)]
VIT_RIGHT = {(224, 16): 196, (336, 14): 576, (64, 8): 64, (32, 4): 64}


@pytest.mark.parametrize("answer, phrase", [
    pytest.param({k: k[0] // k[1] for k in VIT_KEYS}, "along ONE side", id="patches-per-side"),
    pytest.param({k: n + 1 for k, n in VIT_RIGHT.items()}, "the CLS token is extra", id="plus-one-CLS"),
    pytest.param({k: k[0] * k[0] // k[1] for k in VIT_KEYS}, "then multiply the two", id="size^2/patch"),
    pytest.param({**VIT_RIGHT, (336, 14): 500}, "How many 14×14 tiles", id="random-wrong-number"),
    pytest.param({(224, 16): 196, (336, 14): 576}, "exactly these keys", id="missing-keys"),
])
def test_vit_token_mistakes(answer, phrase):
    failed_with("0.8", answer, phrase)


def test_vit_right_numbers_pass():
    assert evaluate("0.8", dict(VIT_RIGHT)).passed


# --- property probes: wrong answers nobody listed get a hint naming the property they break -----------------
# Each answer below is a mistake a learner makes that the checks do not reproduce one by one (or reproduce for a
# clearer hint): the phrase asserted is that of the property (or the specific hint) that names it.

def step_summed_loss(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets, reduction="sum")
    loss.backward()
    optimizer.step()
    return loss.item()


def step_with_its_own_optimizer(model, inputs, targets, optimizer):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # a new optimizer each call: no momentum survives
    opt.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    opt.step()
    return loss.item()


def step_stepping_twice(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def step_returns_loss_after_update(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    F.cross_entropy(model(inputs), targets).backward()
    optimizer.step()
    return F.cross_entropy(model(inputs), targets).item()


def step_manual_sgd_update(model, inputs, targets, optimizer):
    model.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    return loss.item()


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(step_summed_loss, "repeated twice", id="reduction=sum->mean-over-batch-probe"),
    pytest.param(step_with_its_own_optimizer, "never stepped", id="new-optimizer-inside->optimizer-probe"),
    pytest.param(step_stepping_twice, "ran more than once", id="step-twice->one-update-probe"),
    pytest.param(step_returns_loss_after_update, "UPDATED model", id="loss-recomputed-after-step"),
    pytest.param(step_manual_sgd_update, "never stepped", id="hand-written-update->optimizer-probe"),
])
def test_train_step_property_probes(answer, phrase):
    failed_with("0.1", answer, phrase)


def step_zero_grad_at_the_end(model, inputs, targets, optimizer):
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def step_model_zero_grad_and_module_loss(model, inputs, targets, optimizer):
    model.zero_grad(set_to_none=False)
    loss = torch.nn.CrossEntropyLoss()(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def step_log_softmax_and_nll(model, inputs, targets, optimizer):
    optimizer.zero_grad()
    loss = F.nll_loss(F.log_softmax(model(inputs), dim=-1), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("answer", [step_zero_grad_at_the_end, step_model_zero_grad_and_module_loss,
                                    step_log_softmax_and_nll])
def test_train_step_valid_variants_pass(answer):
    assert evaluate("0.1", answer).passed


def l2_by_max_entry(x):
    return x / x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)


def l2_standardised(x):
    return (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True)


def l2_clamp_too_large(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1.0)


def l2_f_normalize_p1(x):
    return F.normalize(x, p=1, dim=-1)


def l2_of_absolute_values(x):
    return x.abs() / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(l2_by_max_entry, "do not have L2 norm 1", id="divide-by-max->unit-length-probe"),
    pytest.param(l2_standardised, "do not have L2 norm 1", id="standardised->unit-length-probe"),
    pytest.param(l2_clamp_too_large, "eps (or clamp) is far too large", id="clamp_min(1)->rescaling-probe"),
    pytest.param(l2_f_normalize_p1, "do not have L2 norm 1", id="F.normalize-p=1->unit-length-probe"),
    pytest.param(l2_of_absolute_values, "another direction", id="abs-values->direction-probe"),
])
def test_l2_normalize_property_probes(answer, phrase):
    failed_with("0.2", answer, phrase)


def l2_row_loop(x):
    return torch.stack([row / max(row.norm().item(), 1e-12) for row in x])


def l2_rsqrt_with_eps_inside(x):
    return x * torch.rsqrt((x * x).sum(dim=1, keepdim=True) + 1e-12)


@pytest.mark.parametrize("answer", [l2_row_loop, l2_rsqrt_with_eps_inside, lambda x: F.normalize(x, p=2, dim=1)],
                         ids=["row-loop", "rsqrt-eps-inside", "F.normalize-dim=1"])
def test_l2_normalize_valid_variants_pass(answer):
    assert evaluate("0.2", answer).passed
    assert evaluate("0.2", lambda x: answer(x.double()).float()).passed  # float64 inputs handled too


def cos_divided_by_whole_norms(a, b):
    return (a @ b.T) / (a.norm() * b.norm())


def cos_softmaxed(a, b):
    return (_unit(a) @ _unit(b).T).softmax(dim=-1)


def cos_with_temperature(a, b):
    return _unit(a) @ _unit(b).T / 0.07


def cos_row_by_row(a, b):
    return F.cosine_similarity(a, b)


def cos_norms_both_columns(a, b):
    return (a @ b.T) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True))


def cos_one_minus_distance(a, b):
    return 1 - torch.cdist(_unit(a), _unit(b))


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(cos_divided_by_whole_norms, "rescaling one row", id="whole-matrix-norms->rescaling-probe"),
    pytest.param(cos_softmaxed, "diagonal", id="softmax->self-similarity-probe"),
    pytest.param(cos_with_temperature, "outside [-1, 1]", id="temperature->range-probe"),
    pytest.param(cos_row_by_row, "row by row", id="F.cosine_similarity(a,b)->pairwise-only"),
    pytest.param(cos_norms_both_columns, "as a row (1, M)", id="norms-not-broadcast"),
    pytest.param(cos_one_minus_distance, "orthogonal vectors", id="1-distance->orthogonality-probe"),
])
def test_cosine_property_probes(answer, phrase):
    failed_with("0.3", answer, phrase)


def cos_einsum(a, b):
    return torch.einsum("nd,md->nm", F.normalize(a, dim=-1), F.normalize(b, dim=-1))


def cos_outer_norms(a, b):
    return (a @ b.T) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1))


def cos_broadcast_library(a, b):
    return F.cosine_similarity(a[:, None], b[None], dim=-1)


@pytest.mark.parametrize("answer", [cos_einsum, cos_outer_norms, cos_broadcast_library])
def test_cosine_valid_variants_pass(answer):
    assert evaluate("0.3", answer).passed


def _masked_scores(q, k, mask, scale):
    s = q @ k.transpose(-2, -1) / scale
    return s if mask is None else s.masked_fill(~mask, float("-inf"))


def sdpa_softmax_dim1(q, k, v, mask=None):
    return torch.softmax(_masked_scores(q, k, mask, math.sqrt(q.shape[-1])), dim=1) @ v


def sdpa_scaled_by_key_count(q, k, v, mask=None):
    return torch.softmax(_masked_scores(q, k, mask, math.sqrt(k.shape[-2])), dim=-1) @ v


def sdpa_softmax_over_all_scores(q, k, v, mask=None):
    s = _masked_scores(q, k, mask, math.sqrt(q.shape[-1]))
    return s.flatten(-2).softmax(-1).view_as(s) @ v


def sdpa_mask_small_negative(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, -1.0)
    return s.softmax(-1) @ v


def sdpa_returns_scores_as_weights(q, k, v, mask=None, return_weights=False):
    s = _masked_scores(q, k, mask, math.sqrt(q.shape[-1]))
    out = s.softmax(-1) @ v
    return (out, s) if return_weights else out


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(sdpa_softmax_dim1, "sum to 1 over the KEYS", id="softmax-dim=1(heads)->weights-sum-probe"),
    pytest.param(sdpa_scaled_by_key_count, "1/sqrt(d)", id="scaled-by-sqrt(Tk)->scale-probe"),
    pytest.param(sdpa_softmax_over_all_scores, "sum to 1 over the KEYS", id="softmax-over-all->weights-sum-probe"),
    pytest.param(sdpa_mask_small_negative, "masked key must get exactly zero weight", id="mask-fill-1->mask-probe"),
    pytest.param(sdpa_returns_scores_as_weights, "not the softmax weights", id="returns-scores-as-weights"),
])
def test_attention_property_probes(answer, phrase):
    failed_with("0.4", answer, phrase)


def sdpa_einsum_renormalised_mask(q, k, v, mask=None):
    w = torch.einsum("...qd,...kd->...qk", q, k).div(q.shape[-1] ** 0.5).softmax(-1)
    if mask is not None:
        w = w * mask
        w = w / w.sum(-1, keepdim=True)
    return torch.einsum("...qk,...kd->...qd", w, v)


def sdpa_log_mask(q, k, v, mask=None, return_weights=False):
    s = torch.matmul(q, k.mT) / math.sqrt(k.size(-1))
    if mask is not None:
        s = s + mask.float().log()
    w = s.softmax(-1)
    return (w @ v, w) if return_weights else w @ v


@pytest.mark.parametrize("answer", [sdpa_einsum_renormalised_mask, sdpa_log_mask, sdpa_with_large_negative])
def test_attention_valid_variants_pass(answer):
    assert evaluate("0.4", answer).passed


def mha_interleaved_heads(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, t_q, d = x_q.shape
    split = lambda x: x.view(b, x.shape[1], d // n_heads, n_heads).permute(0, 3, 1, 2)  # noqa: E731 - dims h, h+H..
    out = A.scaled_dot_product_attention(split(x_q @ w_q.T), split(x_kv @ w_k.T), split(x_kv @ w_v.T), mask)
    return out.transpose(1, 2).reshape(b, t_q, d) @ w_o.T


def mha_merge_with_permute(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, t_q, d = x_q.shape
    split = lambda x: x.view(b, x.shape[1], n_heads, d // n_heads).transpose(1, 2)  # noqa: E731
    out = A.scaled_dot_product_attention(split(x_q @ w_q.T), split(x_kv @ w_k.T), split(x_kv @ w_v.T), mask)
    return out.permute(0, 2, 3, 1).reshape(b, t_q, d) @ w_o.T  # (B, Tq, d, H): dimensions interleaved


def mha_weights_averaged_over_heads(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None, return_weights=False):
    out, weights = A.multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask, return_weights=True)
    return (out, weights.mean(dim=1)) if return_weights else out  # like nn.MultiheadAttention's default


def mha_unscaled_attention(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, t_q, d = x_q.shape
    split = lambda x: x.view(b, x.shape[1], n_heads, d // n_heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(x_q @ w_q.T), split(x_kv @ w_k.T), split(x_kv @ w_v.T)
    s = q @ k.transpose(-2, -1)  # forgot the 1/sqrt(d) of the head
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t_q, d) @ w_o.T


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(mha_interleaved_heads, "contiguous block", id="interleaved-head-split->head-block-probe"),
    pytest.param(mha_merge_with_permute, "contiguous block", id="merge-permute(0,2,3,1)->head-block-probe"),
    pytest.param(mha_weights_averaged_over_heads, "the weights should have shape", id="weights-averaged-over-heads"),
    pytest.param(mha_unscaled_attention, "with n_heads=1", id="no-scale->one-head-probe"),
])
def test_multi_head_attention_property_probes(answer, phrase):
    failed_with("0.5", answer, phrase)


def mha_with_torch_sdpa(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None):
    b, t_q, d = x_q.shape
    split = lambda x: x.reshape(b, -1, n_heads, d // n_heads).permute(0, 2, 1, 3)  # noqa: E731
    out = F.scaled_dot_product_attention(split(F.linear(x_q, w_q)), split(F.linear(x_kv, w_k)),
                                         split(F.linear(x_kv, w_v)), attn_mask=mask)
    return F.linear(out.permute(0, 2, 1, 3).reshape(b, t_q, d), w_o)


def mha_with_course_helpers(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None, return_weights=False):
    q, k, v = (A.split_heads(x @ w.T, n_heads) for x, w in ((x_q, w_q), (x_kv, w_k), (x_kv, w_v)))
    out, weights = A.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    out = A.merge_heads(out) @ w_o.T
    return (out, weights) if return_weights else out


@pytest.mark.parametrize("answer", [mha_with_torch_sdpa, mha_with_course_helpers])
def test_multi_head_attention_valid_variants_pass(answer):
    assert evaluate("0.5", answer).passed


def bpe_counts_once_before_the_loop(word_freqs, num_merges):
    words = {tuple(w): f for w, f in word_freqs.items()}
    pairs = Counter()
    for symbols, f in words.items():
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += f
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    for _ in range(num_merges):
        best = min(pairs, key=lambda p: (-pairs[p], rank.get(p[0], 99), rank.get(p[1], 99)))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        words = {_merge_all(w, best): f for w, f in words.items()}  # merged, but the counts are never redone
    return merges


def bpe_stops_when_best_is_rare(word_freqs, num_merges):
    words = {tuple(w): f for w, f in word_freqs.items()}
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for symbols, f in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], rank[p[0]], rank[p[1]]))
        if pairs[best] < 4:  # "not worth merging"
            break
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        words = {_merge_all(w, best): f for w, f in words.items()}
    return merges


def bpe_last_pair_not_counted(word_freqs, num_merges):
    words = {tuple(w): f for w, f in word_freqs.items()}
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for symbols, f in words.items():
            for i in range(len(symbols) - 2):  # off by one: the word's last pair is never counted
                pairs[symbols[i], symbols[i + 1]] += f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], rank[p[0]], rank[p[1]]))
        merges.append(best)
        rank.setdefault(best[0] + best[1], len(rank))
        words = {_merge_all(w, best): f for w, f in words.items()}
    return merges


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(bpe_counts_once_before_the_loop, "repeats merge", id="counts-once-never-updated->no-repeat-probe"),
    pytest.param(bpe_stops_when_best_is_rare, "multiplied by 3", id="frequency-threshold->scaling-probe"),
    pytest.param(bpe_last_pair_not_counted, "merge the most frequent pair", id="last-pair-of-word-not-counted"),
])
def test_bpe_property_probes(answer, phrase):
    failed_with("0.6", answer, phrase)


def bpe_with_max_and_a_while_loop(word_freqs, num_merges):
    words = [(list(w), f) for w, f in word_freqs.items()]
    rank = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges = []
    while len(merges) < num_merges:
        pairs = {}
        for symbols, f in words:
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] = pairs.get(pair, 0) + f
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], -rank[p[0]], -rank[p[1]]))
        merges.append(best)
        if best[0] + best[1] not in rank:
            rank[best[0] + best[1]] = len(rank)
        for symbols, _ in words:
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
                i += 1
    return merges


def test_bpe_valid_variant_passes():
    assert evaluate("0.6", bpe_with_max_and_a_while_loop).passed


def lm_loss_mean_per_sequence(logits, labels):
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
    real = (labels[:, 1:] != -100).float()
    return ((per_token * real).sum(1) / real.sum(1)).mean()


def lm_loss_detached(logits, labels):
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
    return torch.tensor(loss.item())


def lm_loss_rolled_labels(logits, labels):
    return _ce(logits, labels.roll(-1, dims=1), ignore_index=-100)


def lm_loss_padding_is_zero(logits, labels):
    return _ce(logits[:, :-1], labels[:, 1:], ignore_index=0)


def lm_loss_both_cut_at_the_front(logits, labels):
    return _ce(logits[:, 1:], labels[:, 1:], ignore_index=-100)


@pytest.mark.parametrize("answer, phrase", [
    pytest.param(lm_loss_mean_per_sequence, "not per sequence first", id="mean-per-sequence->token-mean-probe"),
    pytest.param(lm_loss_detached, "no gradient flows", id="torch.tensor(loss.item())->gradient-probe"),
    pytest.param(lm_loss_rolled_labels, "LAST position", id="labels.roll->last-logits-probe"),
    pytest.param(lm_loss_padding_is_zero, "ignore_index=-100", id="ignore_index=0->-100-out-of-bounds"),
    pytest.param(lm_loss_both_cut_at_the_front, "LAST position", id="no-shift-first-dropped->last-logits-probe"),
])
def test_lm_loss_property_probes(answer, phrase):
    failed_with("0.7", answer, phrase)


def lm_loss_by_hand(logits, labels):
    logp = logits[:, :-1].double().log_softmax(-1)
    target = labels[:, 1:]
    real = target != -100
    picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (-(picked * real).sum() / real.sum()).float()


def test_lm_loss_valid_variant_by_hand_passes():
    assert evaluate("0.7", lm_loss_by_hand).passed


@pytest.mark.parametrize("answer, phrase", [
    pytest.param({k: (k[0] // k[1] - 1) ** 2 for k in VIT_KEYS}, "without gaps", id="fencepost->tiling-probe"),
    pytest.param({k: 3 * n for k, n in VIT_RIGHT.items()}, "not a square number", id="x3-RGB->square-grid-probe"),
    pytest.param({**VIT_RIGHT, (224, 16): 224 // 16 ** 2}, "at least one", id="size//patch**2->positive-probe"),
    pytest.param({**VIT_RIGHT, (32, 4): 49}, "without gaps", id="one-count-off->tiling-probe"),
])
def test_vit_token_property_probes(answer, phrase):
    failed_with("0.8", answer, phrase)


# --- the probes never reject a right answer ------------------------------------------------------------------
# The checks run their probes only after a mismatch; here every probe runs on right answers (the reference and the
# valid variants above), so that a probe that fires always names a property the answer really breaks.

def _probes_of(exercise, answer):
    from utils.checks import phase0 as P

    if exercise == "0.1":
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(8, 3, 2, 2, generator=g), torch.randint(0, 3, (8,), generator=g)
        return P._train_step_probes(answer, x, y)
    if exercise == "0.2":
        x = torch.randn(5, 7) * torch.tensor([3.0, 0.05, 1.0, 10.0, 0.3])[:, None]
        return P._l2_probes(answer, x, answer(x))
    if exercise == "0.3":
        a, b = torch.randn(4, 6) * 2, torch.randn(3, 6) + 1
        return P._cos_probes(answer, a, b, answer(a, b))
    if exercise == "0.4":
        q, k, v, mask = P._attn_inputs()
        return P._attention_probes(answer, q, k, v) + P._mask_probes(answer, q, k, v, mask)
    if exercise == "0.5":
        g = torch.Generator().manual_seed(4)
        x_q, x_kv = torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)
        ws = [torch.randn(8, 8, generator=g) / math.sqrt(8) for _ in range(4)]
        return P._mha_probes(answer, x_q, x_kv, *ws, 2)
    if exercise == "0.6":
        return [p for corpus in P._corpora() for p in
                P._bpe_structure_probes(corpus, answer(corpus, 12)) + P._bpe_invariance_probes(answer, corpus, 12,
                                                                                               answer(corpus, 12))]
    logits, labels = torch.randn(3, 6, 11), torch.randint(0, 11, (3, 6))
    labels[0, 4:] = -100
    return P._lm_probes(answer, logits, labels)


@pytest.mark.parametrize("exercise, answer", [
    *(pytest.param(e, reference(e), id=f"{e}-reference") for e in EXERCISES if e != "0.8"),
    pytest.param("0.1", step_zero_grad_at_the_end, id="0.1-zero_grad-at-end"),
    pytest.param("0.1", step_log_softmax_and_nll, id="0.1-log_softmax+nll"),
    pytest.param("0.2", l2_row_loop, id="0.2-row-loop"),
    pytest.param("0.2", l2_rsqrt_with_eps_inside, id="0.2-rsqrt"),
    pytest.param("0.3", cos_einsum, id="0.3-einsum"),
    pytest.param("0.3", cos_outer_norms, id="0.3-outer-norms"),
    pytest.param("0.4", sdpa_einsum_renormalised_mask, id="0.4-einsum-renormalised"),
    pytest.param("0.4", sdpa_with_large_negative, id="0.4-minus-1e9"),
    pytest.param("0.5", mha_with_torch_sdpa, id="0.5-torch-sdpa"),
    pytest.param("0.6", bpe_with_max_and_a_while_loop, id="0.6-max-while"),
    pytest.param("0.7", lm_loss_by_hand, id="0.7-by-hand"),
])
def test_probes_hold_for_right_answers(exercise, answer):
    probes = _probes_of(exercise, answer)
    assert probes or exercise == "0.6"  # 0.6's structural probes exist only for merges that break them
    for probe in probes:  # called directly: a probe that crashes on a right answer would be useless too
        assert probe.holds(), probe.property


def test_vit_probes_hold_for_the_right_numbers():
    from utils.checks import phase0 as P

    assert P._vit_probes(dict(VIT_RIGHT)) == []


# --- the hint ladders ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("exercise", EXERCISES)
def test_every_exercise_has_a_three_level_hint_ladder(exercise):
    from utils.checks import REGISTRY

    hints = REGISTRY[exercise].hints
    assert len(hints) == 3 and all(len(h) >= 40 for h in hints)
    assert any("Section" in h for h in hints), "one level points to the notebook's section"


# --- unsolved, crashes, check() -------------------------------------------------------------------------

def not_implemented(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("exercise, answer", [
    # 0.8 asks for a dict, not a function: its starters are `...` and a dict of `...` (below)
    *(pytest.param(e, not_implemented, id=f"{e}-raises-NotImplementedError") for e in EXERCISES if e != "0.8"),
    *(pytest.param(e, ..., id=f"{e}-ellipsis") for e in EXERCISES),
])
def test_starter_answers_are_unsolved(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "unsolved", result.message
    assert "not attempted yet" in result.message


def test_dict_with_ellipsis_values_is_unsolved():
    assert evaluate("0.8", {k: ... for k in VIT_KEYS}).status == "unsolved"
    assert evaluate("0.8", {**VIT_RIGHT, (32, 4): ...}).status == "unsolved"


def crashes(*args, **kwargs):
    raise RuntimeError("shape mismatch in my code")


@pytest.mark.parametrize("exercise", [e for e in EXERCISES if e != "0.8"])
def test_crash_in_learner_code_is_a_failure_naming_the_error(exercise):
    result = evaluate(exercise, crashes)
    assert result.status == "failed"
    assert "RuntimeError" in result.message and "shape mismatch in my code" in result.message


def test_check_returns_answer_when_passed(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    assert check("0.2", l2_normalize_ok) is l2_normalize_ok
    assert "✓" in capsys.readouterr().out


def l2_normalize_ok(x):
    return F.normalize(x, dim=-1)


@pytest.mark.parametrize("answer", [l2_along_dim0, not_implemented], ids=["failed", "unsolved"])
def test_check_falls_back_to_reference_with_notice(answer, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    assert check("0.2", answer) is reference("0.2")
    out = capsys.readouterr().out
    assert "reference answer" in out


@pytest.mark.parametrize("answer", [l2_along_dim0, not_implemented], ids=["failed", "unsolved"])
def test_strict_mode_raises(answer, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError, match="strict mode"):
        check("0.2", answer)


def test_strict_mode_passes_a_right_answer(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert check("0.2", l2_normalize_ok) is l2_normalize_ok


# --- the notebook's own starters read as "not attempted", and the reviewer's mistakes get hints ----------

def _starter_returns_none(x, *args, **kwargs):
    ...  # what `#> ...  # your code` leaves behind


def _starter_attention(q, k, v, mask=None, return_weights=False):
    # the notebook's `scores = ...` line leaves nothing that is used: the `weights = ...` below is what fails
    weights = ...
    out = weights @ v
    return (out, weights) if return_weights else out


@pytest.mark.parametrize("exercise, answer", [("0.2", _starter_returns_none), ("0.3", _starter_returns_none),
                                              ("0.7", _starter_returns_none), ("0.4", _starter_attention)],
                         ids=["0.2-none", "0.3-none", "0.7-none", "0.4-ellipsis"])
def test_notebook_starters_are_unsolved(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "unsolved", result.message


def _attention_with_wrong_weights(q, k, v, mask=None, return_weights=False):
    out = A.scaled_dot_product_attention(q, k, v, mask)
    return (out, torch.ones(*q.shape[:-1], k.shape[-2])) if return_weights else out


def _attention_k_dot_T(q, k, v, mask=None, return_weights=False):
    w = (q @ k.T / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v


def _mha_split_with_query_length(x_q, x_kv, w_q, w_k, w_v, w_o, n_heads, mask=None, return_weights=False):
    B, Tq, D = x_q.shape
    split = lambda x: x.view(B, Tq, n_heads, D // n_heads).transpose(1, 2)  # noqa: E731 - wrong for x_kv
    out = A.scaled_dot_product_attention(split(x_q @ w_q.T), split(x_kv @ w_k.T), split(x_kv @ w_v.T), mask)
    return out.transpose(1, 2).reshape(B, Tq, D) @ w_o.T


@pytest.mark.parametrize("exercise, answer, phrase", [
    ("0.4", _attention_with_wrong_weights, "returned weights are not the softmax weights"),
    ("0.4", _attention_k_dot_T, "k.transpose(-2, -1)"),
    ("0.5", _mha_split_with_query_length, "x_q and x_kv have different lengths"),
    ("0.8", {**VIT_RIGHT, (64, 8): "64"}, "whole number"),
], ids=["weights-not-softmax", "k.T-on-4d", "split-with-Tq", "string-prediction"])
def test_reviewer_mistakes_get_specific_hints(exercise, answer, phrase):
    failed_with(exercise, answer, phrase)
