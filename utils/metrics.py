"""The course's metrics, one home for every phase: retrieval (Recall@K, in blocks), accuracy per kind, box IoU,
word error rate, PSNR, POPE's yes/no numbers, bootstrap confidence intervals and paired comparisons, corpus BLEU,
and a plain-text results table. Introduced in Phase 1 (Recall@K); Phase 4 (per-kind tables), Phase 5 (IoU), Phase 6
(WER), Phase 7 (PSNR), Phase 8 (POPE's numbers); Phase 9's evaluation suite grows here.

Each is small and exact; where a library computes the same thing it is the oracle in the tests
(``torchvision.ops.box_iou`` for IoU, ``jiwer`` for WER, ``scikit-learn`` for POPE's numbers, ``scipy.stats.bootstrap``
for the intervals, ``sacrebleu`` for BLEU).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def recall_at_k(query: torch.Tensor, keys: torch.Tensor, k: int = 1) -> float:
    """Share of queries whose matching key (same index) is among their ``k`` most similar keys (dot product:
    pass L2-normalised embeddings for cosine similarity). Exercise 1.7."""
    top = (query @ keys.T).topk(k, dim=-1).indices
    return (top == torch.arange(len(query))[:, None]).any(-1).float().mean().item()


def recall_in_blocks(query: torch.Tensor, keys: torch.Tensor, block: int = 100, k: int = 1) -> float:
    """Recall@k with each query searched among the ``block`` keys of its own block (rows i·block…), averaged
    over the blocks: "R@1 among 100" on a long list of pairs. Introduced in Phase 1."""
    return float(np.mean([recall_at_k(query[b:b + block], keys[b:b + block], k) for b in range(0, len(query), block)]))


def per_kind_accuracy(correct: Sequence[bool], kinds: Sequence[str], order: Sequence[str] | None = None
                      ) -> dict[str, float]:
    """Accuracy per kind (e.g. question kind), in ``order`` (default: sorted; kinds outside ``order`` are left
    out), and over everything ("all")."""
    ok, kinds = np.asarray(correct, dtype=bool), np.asarray(kinds)
    order = sorted(set(kinds.tolist())) if order is None else order
    out = {k: float(ok[kinds == k].mean()) for k in order if (kinds == k).any()}
    out["all"] = float(ok.mean())
    return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1); 0 when the union is empty. Exercise 5.6."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def word_edits(reference: str, hypothesis: str) -> int:
    """The fewest word substitutions, deletions and insertions that turn ``reference`` into ``hypothesis``
    (Levenshtein distance over whitespace-separated words). Introduced in Phase 6."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(ref, start=1):
        prev_diag, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev_diag, row[j] = row[j], min(row[j] + 1,                 # delete r
                                            row[j - 1] + 1,             # insert h
                                            prev_diag + (r != h))       # substitute (or match)
    return row[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate: all edits (:func:`word_edits`) over all reference words — not the mean of each
    utterance's rate, which would weigh a two-word command like a ten-word sentence. Exercise 6.3; equals
    ``jiwer.wer(references, hypotheses)``. Can exceed 1 when the hypotheses insert many words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    words = sum(len(r.split()) for r in references)
    if words == 0:
        raise ValueError("the references have no words")
    return sum(word_edits(r, h) for r, h in zip(references, hypotheses)) / words


def accuracy_table(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    """A plain-text table: one row per entry of ``rows`` (name -> {column: value}), numbers to 3 decimals,
    integers with thousands separators, a missing value as "—"; each column at least 12 characters wide, wider for
    a longer name."""
    width = max(len(n) for n in rows) + 2
    widths = [max(12, len(c) + 2) for c in columns]
    lines = ["".ljust(width) + "".join(c.rjust(w) for c, w in zip(columns, widths))]
    for name, values in rows.items():
        cells = []
        for c, w in zip(columns, widths):
            v = values.get(c)
            text = ("—" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.0f}" if abs(v) >= 100
                    else f"{v:.3f}")
            cells.append(text.rjust(w))
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)


def psnr(reference: torch.Tensor, images: torch.Tensor, data_range: float = 2.0, low: float = -1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10·log10(range² / MSE) over a whole batch, with ``images`` clamped to
    [low, low + data_range] first. The defaults are for images in [-1, 1] (the same number as on [0, 1] pixels
    with ``data_range=1, low=0``). Introduced in Phase 7 (VQ-VAE reconstructions, diffusion)."""
    mse = torch.mean((images.float().clamp(low, low + data_range) - reference.float()) ** 2)
    return float(10 * torch.log10(data_range ** 2 / mse))


# ----------------------------------------------------------------------------------------------------------
# Phases 8–9: yes/no probes, error bars and a captioning metric

def yes_no_metrics(said_yes: Sequence[bool], truth_yes: Sequence[bool]) -> dict[str, float]:
    """POPE's numbers, with "yes" as the positive class: ``accuracy``, ``precision``, ``recall``, ``f1``,
    ``yes_ratio`` (share answered yes) and ``hallucination`` (share of the absent-object questions answered yes)."""
    said, truth = np.asarray(said_yes, bool), np.asarray(truth_yes, bool)
    tp, fp = int((said & truth).sum()), int((said & ~truth).sum())
    fn = int((~said & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"accuracy": float((said == truth).mean()), "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "yes_ratio": float(said.mean()), "hallucination": float(said[~truth].mean()) if (~truth).any() else 0.0}


def sequence_scores(token_logprobs, token_right) -> tuple[float, float]:
    """Answers of L tokens each, scored two ways from their tokens' teacher-forced log-probabilities (N, L) and
    whether each token was the model's first choice (N, L): the **exact match** (the share of answers whose every
    token is right: what greedy decoding writes word for word, all or nothing) and the **mean log-probability** (per
    answer the mean over its tokens, then the mean over answers: a continuous score that moves with every token).
    Returns (exact_match, mean_logprob)."""
    logprobs, right = np.asarray(token_logprobs, dtype=float), np.asarray(token_right, dtype=bool)
    return float(right.all(1).mean()), float(logprobs.mean(1).mean())


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                 ) -> tuple[float, float, float]:
    """The mean of per-example ``values`` (1/0 for right/wrong, or any score) and its percentile-bootstrap
    confidence interval: resample the examples with replacement ``resamples`` times, take each resample's mean, and
    cut the middle ``confidence`` share of those means. Returns (mean, low, high)."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(x.mean()), float(low), float(high)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """Whether model ``a`` beats model ``b`` on the same examples: the mean difference a − b, its percentile-bootstrap
    interval (the same resampled examples for both models, so the pairing is kept), and ``p_not_better``, the share of
    resamples in which a does not beat b (a one-sided bootstrap p-value). The difference is real at that confidence
    when the interval excludes 0."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"difference": float(d.mean()), "low": float(low), "high": float(high),
            "p_not_better": float((means <= 0).mean())}


def ngram_counts(words: Sequence[str], n: int) -> dict[tuple[str, ...], int]:
    """How often each n-gram (a tuple of ``n`` consecutive words) occurs in ``words``."""
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        counts[gram] = counts.get(gram, 0) + 1
    return counts


def bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) on 0–100, one reference per hypothesis, words split on spaces: the
    geometric mean of the clipped n-gram precisions for n = 1..``max_n`` (each n-gram counted at most as often as
    the reference has it), pooled over the corpus, times the brevity penalty exp(1 − r/c) when the hypotheses are
    shorter (c words) than the references (r). No smoothing: a corpus with no matching 4-gram scores 0. This is
    sacrebleu's ``corpus_bleu(..., tokenize="none", smooth_method="none")``, its oracle in the tests."""
    matches, totals = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_n + 1):
            hc, rc = ngram_counts(h, n), ngram_counts(r, n)
            matches[n - 1] += sum(min(c, rc.get(g, 0)) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or (matches == 0).any():
        return 0.0
    log_precision = np.log(matches / totals).mean()
    brevity = 1.0 if hyp_len > ref_len else float(np.exp(1 - ref_len / hyp_len))
    return float(100 * brevity * np.exp(log_precision))


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's κ: how much two raters (a judge and the reference ratings) agree beyond chance,
    (p_o − p_e) / (1 − p_e), with p_o the share of items they label the same and p_e the agreement expected if each
    labelled at random with its own label frequencies. 1 is perfect agreement, 0 chance level. scikit-learn's
    ``cohen_kappa_score`` is its oracle in the tests."""
    a, b = np.asarray(a), np.asarray(b)
    labels = np.union1d(a, b)
    observed = float((a == b).mean())
    expected = float(sum((a == label).mean() * (b == label).mean() for label in labels))
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def clip_score(image_embeddings, text_embeddings, weight: float = 2.5) -> np.ndarray:
    """CLIPScore (Hessel et al., 2021) of each (image, text) pair, a caption metric with no reference caption:
    ``weight`` · max(cos(image, text), 0), one number per row of the two (N, D) embedding arrays (any scale: they
    are L2-normalised here). The paper's weight 2.5 stretches the cosines CLIP gives real pairs onto roughly 0–1."""
    a = np.asarray(image_embeddings, dtype=np.float64)
    b = np.asarray(text_embeddings, dtype=np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return weight * np.maximum(cos, 0.0)
