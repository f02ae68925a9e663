"""Unit tests of the Phase 8 exercise self-checks (``utils/checks/phase8.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake (or the property it breaks), right ones
written another way must pass, and the starter reads as unsolved."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.checks_testing import failed_with
from utils.checks import evaluate, reference

EXERCISES = ["8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7", "8.8", "8.9"]


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


# --- 8.2 a perceptual hash ----------------------------------------------------------------------------------------

def _cells(image, hash_size, resample=Image.LANCZOS, grey="L"):
    pil = Image.fromarray(image)
    if grey == "mean":
        pil = Image.fromarray(image.mean(-1).astype(np.uint8))
    else:
        pil = pil.convert("L")
    return np.asarray(pil.resize((hash_size, hash_size), resample), dtype=float)


def hash_right_torch(image, hash_size):  # the same bits, computed with a tensor: right
    cells = torch.tensor(_cells(image, hash_size))
    return (cells > cells.mean()).flatten()


def hash_median(image, hash_size):
    c = _cells(image, hash_size)
    return (c > np.median(c)).flatten()


def hash_ge(image, hash_size):
    c = _cells(image, hash_size)
    return (c >= c.mean()).flatten()


def hash_channel_mean(image, hash_size):
    c = _cells(image, hash_size, grey="mean")
    return (c > c.mean()).flatten()


def hash_bilinear(image, hash_size):
    c = _cells(image, hash_size, Image.BILINEAR)
    return (c > c.mean()).flatten()


def hash_not_flat(image, hash_size):
    c = _cells(image, hash_size)
    return c > c.mean()


def hash_fixed_level(image, hash_size):  # compares with 128, not the image's own mean
    return (_cells(image, hash_size) > 128).flatten()


def hash_always_8(image, hash_size):
    c = _cells(image, 8)
    return (c > c.mean()).flatten()


def hash_column_major(image, hash_size):
    c = _cells(image, hash_size)
    return (c > c.mean()).flatten(order="F")


def test_hash_right_variant_passes():
    _passes("8.2", hash_right_torch)


@pytest.mark.parametrize("answer, phrase", [
    (hash_median, "median"), (hash_ge, "strictly brighter"), (hash_channel_mean, "convert('L')"),
    (hash_bilinear, "bilinear"), (hash_not_flat, "flatten"), (hash_fixed_level, "brightening"),
    (hash_always_8, "hash_size"), (hash_column_major, "row by row"),
])
def test_hash_mistakes_are_named(answer, phrase):
    failed_with("8.2", answer, phrase)


# --- 8.3 keep the first copy ----------------------------------------------------------------------------------------

def copies_vectorised(d, threshold):  # the same walk with a Python list: right
    kept = []
    for i in range(len(d)):
        if all(d[i][j] > threshold for j in kept):
            kept.append(i)
    return np.isin(np.arange(len(d)), kept)


def copies_chain(d, threshold):
    return np.array([not (d[i, :i] <= threshold).any() for i in range(len(d))])


def copies_drop_both(d, threshold):
    near = (d <= threshold) & ~np.eye(len(d), dtype=bool)
    return ~near.any(1)


def copies_strict(d, threshold):
    keep = np.zeros(len(d), bool)
    for i in range(len(d)):
        keep[i] = not (d[i, :i][keep[:i]] < threshold).any()
    return keep


def copies_whole_row(d, threshold):
    keep = np.zeros(len(d), bool)
    for i in range(len(d)):
        keep[i] = not (d[i][keep] <= threshold).any() and not (d[i, i] <= threshold)
    return keep


def copies_drop_mask(d, threshold):
    keep = np.zeros(len(d), bool)
    for i in range(len(d)):
        keep[i] = not (d[i, :i][keep[:i]] <= threshold).any()
    return ~keep


def test_copies_right_variant_passes():
    _passes("8.3", copies_vectorised)


@pytest.mark.parametrize("answer, phrase", [
    (copies_chain, "*kept*"), (copies_drop_both, "both copies"), (copies_strict, "<="),
    (copies_whole_row, "before"), (copies_drop_mask, "keep-mask"),
])
def test_copies_mistakes_are_named(answer, phrase):
    failed_with("8.3", answer, phrase)


# --- 8.1 precision and recall ---------------------------------------------------------------------------------------

def pr_swapped(flagged, truth):
    hits = (flagged & truth).sum()
    return hits / truth.sum(), hits / flagged.sum()


def pr_over_all(flagged, truth):
    hits = (flagged & truth).sum()
    return hits / len(truth), hits / len(truth)


def pr_no_guard(flagged, truth):  # divides by zero when nothing is flagged
    hits = (flagged & truth).sum()
    return float(hits / flagged.sum()), float(hits / truth.sum())


def pr_sklearn(flagged, truth):  # sklearn with the exercise's conventions: right
    from sklearn.metrics import precision_score, recall_score

    return precision_score(truth, flagged, zero_division=1.0), recall_score(truth, flagged, zero_division=1.0)


def test_pr_right_variant_passes():
    _passes("8.1", pr_sklearn)


@pytest.mark.parametrize("answer, phrase", [
    (pr_swapped, "(precision, recall)"), (pr_over_all, "number of records"), (pr_no_guard, "division by zero"),
])
def test_pr_mistakes_are_named(answer, phrase):
    with np.errstate(divide="ignore", invalid="ignore"):
        failed_with("8.1", answer, phrase)


# --- 8.4 CHAIR ------------------------------------------------------------------------------------------------------

def chair_all_captions(mentioned, present):
    wrong = [len(m - p) for m, p in zip(mentioned, present)]
    return sum(wrong) / sum(len(m) for m in mentioned), sum(w > 0 for w in wrong) / len(wrong)


def chair_mean_rate(mentioned, present):
    rates = [len(m - p) / len(m) for m, p in zip(mentioned, present) if m]
    naming = [len(m - p) > 0 for m, p in zip(mentioned, present) if m]
    return float(np.mean(rates)), sum(naming) / len(naming)


def chair_over_present(mentioned, present):
    wrong = [len(m - p) for m, p in zip(mentioned, present)]
    naming = [w > 0 for w, m in zip(wrong, mentioned) if m]
    return sum(wrong) / sum(len(p) for p in present), sum(naming) / len(naming)


def chair_missing_objects(mentioned, present):
    missing = sum(len(p - m) for m, p in zip(mentioned, present))
    naming = [len(m - p) > 0 for m, p in zip(mentioned, present) if m]
    return missing / sum(len(m) for m in mentioned), sum(naming) / len(naming)


def chair_swapped(mentioned, present):
    from utils.curation import chair

    return chair(mentioned, present)[::-1]


def test_chair_right_variant_passes():
    def chair_loop(mentioned, present):  # counters in one loop: right
        named = wrong = naming = bad = 0
        for m, p in zip(mentioned, present):
            w = len([o for o in m if o not in p])
            named, wrong = named + len(m), wrong + w
            if m:
                naming, bad = naming + 1, bad + (w > 0)
        return wrong / named if named else 0.0, bad / naming if naming else 0.0

    _passes("8.4", chair_loop)


@pytest.mark.parametrize("answer, phrase", [
    (chair_all_captions, "names nothing"), (chair_mean_rate, "pools"), (chair_over_present, "*present*"),
    (chair_missing_objects, "mentioned − present"), (chair_swapped, "(CHAIRi, CHAIRs)"),
])
def test_chair_mistakes_are_named(answer, phrase):
    failed_with("8.4", answer, phrase)


# --- 8.5 training FLOPs -----------------------------------------------------------------------------------------------

def flops_forward_only(n_params, tokens, layers=0, context=0, width=0):
    return 2 * n_params * tokens + 4 * layers * context * width * tokens


def flops_no_attention(n_params, tokens, layers=0, context=0, width=0):
    return 6 * n_params * tokens


def flops_quadratic(n_params, tokens, layers=0, context=0, width=0):
    return 6 * n_params * tokens + 12 * layers * context ** 2 * width * tokens


def flops_attention_6(n_params, tokens, layers=0, context=0, width=0):
    return 6 * n_params * tokens + 6 * layers * context * width * tokens


def flops_per_token(n_params, tokens, layers=0, context=0, width=0):  # forgets to multiply by the tokens
    return 6 * n_params + 12 * layers * context * width


@pytest.mark.parametrize("answer, phrase", [
    (flops_forward_only, "forward pass only"), (flops_no_attention, "left out attention"),
    (flops_quadratic, "square"), (flops_attention_6, "times 3"), (flops_per_token, "cost of one token"),
])
def test_flops_mistakes_are_named(answer, phrase):
    failed_with("8.5", answer, phrase)


# --- 8.6 gradient accumulation ------------------------------------------------------------------------------------

def _flat_grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def accumulate_no_division(model, loss_fn, micro_batches):
    model.zero_grad()
    for batch in micro_batches:
        loss_fn(model, batch).backward()
    return _flat_grads(model)


def accumulate_zero_each(model, loss_fn, micro_batches):
    for batch in micro_batches:
        model.zero_grad()
        (loss_fn(model, batch) / len(micro_batches)).backward()
    return _flat_grads(model)


def accumulate_no_zero(model, loss_fn, micro_batches):
    micro_batches = list(micro_batches)
    for batch in micro_batches:
        (loss_fn(model, batch) / len(micro_batches)).backward()
    return _flat_grads(model)


def accumulate_autograd(model, loss_fn, micro_batches):  # torch.autograd.grad, summed by hand: right
    micro_batches = list(micro_batches)
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for batch in micro_batches:
        for t, g in zip(total, torch.autograd.grad(loss_fn(model, batch) / len(micro_batches), params)):
            t += g
    return torch.cat([t.flatten() for t in total])


def test_accumulation_right_variant_passes():
    _passes("8.6", accumulate_autograd)


@pytest.mark.parametrize("answer, phrase", [
    (accumulate_no_division, "k = 4 times"), (accumulate_zero_each, "last micro-batch"),
    (accumulate_no_zero, "left in .grad"),
])
def test_accumulation_mistakes_are_named(answer, phrase):
    failed_with("8.6", answer, phrase)


# --- 8.7 a data-parallel rank's share -----------------------------------------------------------------------------

def _padded(order, world):
    total = -(-len(order) // world) * world
    return list(order) + list(order)[:total - len(order)], total


def shard_blocks(order, rank, world_size):
    padded, total = _padded(order, world_size)
    per = total // world_size
    return padded[rank * per:(rank + 1) * per]


def shard_unpadded(order, rank, world_size):
    return list(order)[rank::world_size]


def shard_drop_last(order, rank, world_size):
    order = list(order)
    return order[:len(order) // world_size * world_size][rank::world_size]


def shard_pad_last(order, rank, world_size):
    order = list(order)
    total = -(-len(order) // world_size) * world_size
    return (order + [order[-1]] * (total - len(order)))[rank::world_size]


def shard_one_based(order, rank, world_size):
    padded, total = _padded(order, world_size)
    return padded[(rank + 1) % world_size::world_size][:total // world_size]


def shard_sampler(order, rank, world_size):  # DistributedSampler itself: right
    sampler = torch.utils.data.DistributedSampler(range(len(order)), num_replicas=world_size, rank=rank,
                                                  shuffle=False)
    return torch.tensor([order[i] for i in sampler])


def test_shard_right_variant_passes():
    _passes("8.7", shard_sampler)


@pytest.mark.parametrize("answer, phrase", [
    (shard_blocks, "contiguous block"), (shard_unpadded, "different lengths"), (shard_drop_last, "dropped"),
    (shard_pad_last, "*last* index"), (shard_one_based, "ranks count from 0"),
])
def test_shard_mistakes_are_named(answer, phrase):
    failed_with("8.7", answer, phrase)


# --- 8.9 the DPO loss -----------------------------------------------------------------------------------------------

def dpo_no_beta(pc, pr, rc, rr, beta):
    return -F.logsigmoid((pc - rc) - (pr - rr)).mean()


def dpo_swapped(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean()


def dpo_no_reference(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * (pc - pr)).mean()


def dpo_sigmoid(pc, pr, rc, rr, beta):
    return (1 - torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()


def dpo_sum(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum()


def dpo_item(pc, pr, rc, rr, beta):  # right value, but a float: no gradient
    return torch.tensor(-F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean().item())


def dpo_detached_rejected(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr.detach() - rr))).mean()


def dpo_log_of_sigmoid(pc, pr, rc, rr, beta):  # log(sigmoid(x)) instead of logsigmoid: right (less stable)
    return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()


def dpo_softplus(pc, pr, rc, rr, beta):  # −log σ(x) = softplus(−x): right
    return F.softplus(-beta * ((pc - pr) - (rc - rr))).mean()


def dpo_shifted(pc, pr, rc, rr, beta):  # a mistake nobody listed: an extra constant inside
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr)) + 0.3).mean()


def test_dpo_right_variants_pass():
    _passes("8.9", dpo_log_of_sigmoid)
    _passes("8.9", dpo_softplus)


@pytest.mark.parametrize("answer, phrase", [
    (dpo_no_beta, "β is missing"), (dpo_swapped, "wrong way round"), (dpo_no_reference, "reference model is missing"),
    (dpo_sigmoid, "−log σ"), (dpo_sum, "summed"), (dpo_item, "no gradient"), (dpo_detached_rejected, "detach"),
    (dpo_shifted, "log 2"),
])
def test_dpo_mistakes_are_named(answer, phrase):
    failed_with("8.9", answer, phrase)


# --- 8.8 POPE's numbers -----------------------------------------------------------------------------------------------

def _pope(said, truth, **override):
    from utils.dpo import yes_no_metrics

    return {**yes_no_metrics(said, truth), **override}


def pope_truth_ratio(said, truth):
    return _pope(said, truth, yes_ratio=float(np.mean(truth)))


def pope_fdr(said, truth):
    m = _pope(said, truth)
    return {**m, "hallucination": 1 - m["precision"]}


def pope_over_all(said, truth):
    return _pope(said, truth, hallucination=float((said & ~truth).mean()))


def pope_swapped(said, truth):
    m = _pope(said, truth)
    return {**m, "precision": m["recall"], "recall": m["precision"]}


def pope_arithmetic_f1(said, truth):
    m = _pope(said, truth)
    return {**m, "f1": (m["precision"] + m["recall"]) / 2}


def pope_missing_key(said, truth):
    m = _pope(said, truth)
    del m["hallucination"]
    return m


@pytest.mark.parametrize("answer, phrase", [
    (pope_truth_ratio, "*model's* answers"), (pope_fdr, "1 − precision"), (pope_over_all, "divided the wrong yeses"),
    (pope_swapped, "swapped"), (pope_arithmetic_f1, "harmonic mean"), (pope_missing_key, "missing hallucination"),
])
def test_pope_mistakes_are_named(answer, phrase):
    failed_with("8.8", answer, phrase)
