"""Checks for the Phase 9 exercises (evaluation: error bars, POPE's splits, metrics that lie, judges, contamination).

Oracles: ``scipy.stats.bootstrap`` (percentile method, many resamples) for the bootstrap interval (9.1) and the
course's paired bootstrap run with many resamples (9.2), POPE's construction by its definition on hand-made class
statistics with ties (9.3), ``sacrebleu.corpus_bleu`` with ``tokenize="none"`` and no smoothing (9.4), the CLIPScore
paper's formula on torch's cosine similarity (9.5), ``sklearn.metrics.cohen_kappa_score`` (9.6), MT-Bench's rule on
hand-made pairs of every kind (9.7), planted benchmark items of known positions (9.8), and the definitions on
hand-made token scores (9.9).

9.1 a bootstrap confidence interval, 9.2 a paired comparison, 9.3 POPE's negatives, 9.4 BLEU, 9.5 CLIPScore,
9.6 Cohen's κ, 9.7 a judge's verdicts in both orders, 9.8 a contamination detector, 9.9 exact match and mean
log-probability (the notebook's order).

A bootstrap draws random resamples, so 9.1 and 9.2 ask for 20,000 of them and compare with a tolerance several times
their Monte Carlo spread (measured over 200 seeds of the reference). Besides the known mistakes, each check probes
properties every right answer has: the interval holds the mean, moves with the data when every value shifts,
narrows by half with four times the data, follows the confidence asked for and repeats itself for one seed; a model
compared with itself differs by exactly 0 and swapping the models flips the sign; POPE's splits return ``k`` ids;
BLEU is 100 for a perfect corpus and does not depend on the order of the sentence pairs; κ is 1 for identical
ratings, symmetric in the two raters and works for any labels; with no benchmark items nothing is flagged; exact
match of one-token answers is token accuracy.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import evaluation as uevaluation
from .. import metrics as umetrics
from . import CheckFailed, Mismatch, Unsolved, register
from .oracles import Probe, describe, int_list, number, number_dict, require_properties

# References captured at import: a notebook rebinds names to a learner's passing version.
_bootstrap_ci, _paired = umetrics.bootstrap_ci, umetrics.paired_bootstrap


_number = number


def _triple(out, what: str) -> tuple[float, float, float]:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, (tuple, list)) and len(out) == 2:
        raise CheckFailed(f"{what} should return three numbers, (mean, low, high); it returned a pair. Put the mean "
                          "first: a reader wants the estimate and its interval together.")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"{what} should return (mean, low, high); it returned {describe(out)}.")
    return tuple(_number(x, f"{what}'s {name}") for x, name in zip(out, ("mean", "low", "high")))


# --- 9.1 a bootstrap confidence interval ---------------------------------------------------------------------------

_SCORES = np.round(np.random.default_rng(91).normal(0.6, 0.3, 50), 4)   # continuous per-example scores
_TOL = 0.005   # 7 × the Monte Carlo spread of a 20,000-resample percentile end on these 50 scores (0.0007 over seeds)


def _scipy_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy.stats import bootstrap

    ci = bootstrap((values,), np.mean, n_resamples=40000, confidence_level=confidence, method="percentile",
                   random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


@register("9.1", "a bootstrap confidence interval", umetrics.bootstrap_ci, hints=(
    "Pretend the test set is the world: draw new test sets from it, each example picked at random *with "
    "replacement*, score each one, and see how much the score moves.",
    "Section 1, a score is a sample: resample indices rng.integers(0, n, size=(resamples, n)), take the mean of each "
    "resample, and cut the middle `confidence` share of those means with np.quantile at (1 − c)/2 and 1 − (1 − c)/2 "
    "(the percentile bootstrap). Return (the data's mean, low, high).",
    "Worked sub-step: for 95 % the two quantiles are 0.025 and 0.975; draw from np.random.default_rng(seed) so "
    "that the same seed gives the same interval.",
))
def _check_bootstrap(fn) -> str:
    mean, low, high = _triple(fn(_SCORES.copy(), 20000, 0.95, 0), "bootstrap_ci")
    want_low, want_high = _scipy_interval(_SCORES, 0.95)
    true_mean = float(_SCORES.mean())
    if abs(mean - true_mean) > 0.003:
        raise CheckFailed(f"the first number should be the mean of the values, {true_mean:.4f}; got {mean:.4f}.")
    if abs(low - want_low) <= _TOL and abs(high - want_high) <= _TOL:
        require_properties(_bootstrap_probes(fn))
        return (f"({mean:.3f}, {low:.3f}, {high:.3f}) — scipy.stats.bootstrap gives ({want_low:.3f}, "
                f"{want_high:.3f}) with 40,000 resamples.")
    width, want_width = high - low, want_high - want_low
    if width < 1e-9:
        raise CheckFailed("your interval has no width: every resample had the same mean. Draw the examples *with* "
                          "replacement (rng.integers or rng.choice(..., replace=True)); a permutation of the data "
                          "always has the data's mean.")
    sd = float(_SCORES.std())
    if abs(width - 2 * 1.96 * sd) < 0.1 * width or abs(low - np.quantile(_SCORES, 0.025)) < 0.02:
        raise CheckFailed("your interval is as wide as the data's own spread: that is where single examples fall, "
                          "not where the *mean* of a test set of this size falls. Take the quantiles of the "
                          "resamples' means.")
    narrow = _scipy_interval(_SCORES, 0.90)
    if abs(low - narrow[0]) <= _TOL and abs(high - narrow[1]) <= _TOL:
        raise CheckFailed("that is a 90 % interval: for confidence 0.95 cut 2.5 % off each end (quantiles 0.025 and "
                          "0.975), not 5 %.")
    wide = _scipy_interval(_SCORES, 0.99)
    if abs(low - wide[0]) <= _TOL and abs(high - wide[1]) <= _TOL:
        raise CheckFailed("that is a 99 % interval: for confidence c cut (1 − c)/2 off each end, 2.5 % for 0.95.")
    if low > high:
        raise CheckFailed(f"your low end {low:.4f} is above your high end {high:.4f}: return (mean, low, high).")
    require_properties(_bootstrap_probes(fn))
    raise Mismatch(f"got ({low:.4f}, {high:.4f}); the percentile bootstrap gives ({want_low:.4f}, {want_high:.4f}) "
                   f"± {_TOL} (width {want_width:.4f}).")


def _bootstrap_probes(fn) -> list[Probe]:
    x = _SCORES

    def ci(values, seed=0, confidence=0.95):
        return _triple(fn(values, 4000, confidence, seed), "bootstrap_ci")

    return [
        Probe("holds the mean", lambda: ci(x)[1] < ci(x)[0] < ci(x)[2],
              "the interval should hold the mean: low < mean < high."),
        Probe("one seed, one interval", lambda: ci(x, seed=3) == ci(x, seed=3),
              "the same seed should give the same interval: draw from np.random.default_rng(seed), not from the "
              "global random state."),
        Probe("shifts with the data", lambda: all(abs(a - b - 1.0) < 1e-6 for a, b in zip(ci(x + 1.0), ci(x))),
              "adding 1 to every value should move the mean and both ends by exactly 1 (with the same seed)."),
        Probe("narrows with data", lambda: abs((ci(np.tile(x, 4))[2] - ci(np.tile(x, 4))[1])
                                               / (ci(x)[2] - ci(x)[1]) - 0.5) < 0.1,
              "with four times the examples the interval should be about half as wide (it shrinks as 1/√n): "
              "each resample should have as many examples as the data."),
        Probe("follows confidence", lambda: (ci(x, confidence=0.5)[2] - ci(x, confidence=0.5)[1])
              < 0.5 * (ci(x)[2] - ci(x)[1]),
              "a 50 % interval should be much narrower than a 95 % one: use the `confidence` argument."),
    ]


# --- 9.2 a paired comparison ---------------------------------------------------------------------------------------

def _paired_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(92)
    easy = rng.random(300) < 0.55                    # both models get these right
    a, b = easy.astype(float), easy.astype(float)
    a[rng.choice(np.flatnonzero(~easy), 14, replace=False)] = 1.0
    b[rng.choice(np.flatnonzero(~easy), 4, replace=False)] = 1.0
    return a, b


PAIRED_KEYS = ("difference", "low", "high", "p_not_better")


def _paired_dict(out) -> dict[str, float]:
    return number_dict(out, PAIRED_KEYS, "paired_bootstrap")


@register("9.2", "a paired comparison", umetrics.paired_bootstrap, hints=(
    "Both models answered the same questions, so resample *questions*, and score both models on each resampled "
    "set: the difference a − b per resample is what varies.",
    "Section 2, is the difference real?: d = a − b per example; resample the indices of d with replacement, take "
    "each resample's mean difference, cut the middle `confidence` share for the interval, and report the share of "
    "resamples whose mean difference is ≤ 0 as p_not_better.",
    "Worked sub-step: two separate intervals overlap far more often than the paired one crosses 0 — here model a "
    "gets 10 more of the 300 questions right than b, and the two models' intervals overlap.",
))
def _check_paired(fn) -> str:
    a, b = _paired_data()
    got = _paired_dict(fn(a.copy(), b.copy(), 20000, 0.95, 0))
    want = _paired(a, b, 40000, 0.95, 0)
    if abs(got["difference"] - want["difference"]) > 1e-9:
        if abs(got["difference"] + want["difference"]) < 1e-9:
            raise CheckFailed("your difference has the wrong sign: it is a − b (how much better the first model is), "
                              "and the interval and p_not_better follow it.")
        raise CheckFailed(f"the difference should be mean(a) − mean(b) = {want['difference']:.4f}; got "
                          f"{got['difference']:.4f}.")
    ends = abs(got["low"] - want["low"]) <= 0.008 and abs(got["high"] - want["high"]) <= 0.008
    if ends and abs(got["p_not_better"] - want["p_not_better"]) <= 0.01:
        require_properties(_paired_probes(fn))
        return (f"a − b = {got['difference']:.4f}, interval ({got['low']:.4f}, {got['high']:.4f}), p_not_better "
                f"{got['p_not_better']:.4f}: the difference is real at 95 %.")
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(a), (2, 20000, len(a)))
    unpaired = a[i].mean(1) - b[j].mean(1)
    if abs(got["low"] - np.quantile(unpaired, 0.025)) <= 0.01 and abs(got["high"] - np.quantile(unpaired, 0.975)) \
            <= 0.01:
        raise CheckFailed("your interval is the unpaired one: you resampled a and b separately. Draw one set of "
                          "indices per resample and use it for both models, so each question is compared with "
                          "itself; that pairing is what makes the interval narrow.")
    if ends and abs(got["p_not_better"] - (1 - want["p_not_better"])) <= 0.01:
        raise CheckFailed("p_not_better is the share of resamples in which a does *not* beat b (mean difference ≤ 0); "
                          "yours looks like the share in which it does.")
    require_properties(_paired_probes(fn))
    raise Mismatch(f"got interval ({got['low']:.4f}, {got['high']:.4f}) and p_not_better {got['p_not_better']:.4f}; "
                   f"expected ({want['low']:.4f}, {want['high']:.4f}) ± 0.008 and {want['p_not_better']:.4f} ± 0.01.")


def _paired_probes(fn) -> list[Probe]:
    a, b = _paired_data()

    def run(x, y):
        return _paired_dict(fn(x, y, 4000, 0.95, 0))

    return [
        Probe("self", lambda: (lambda r: r["difference"] == 0 and r["low"] == 0 and r["high"] == 0
                               and r["p_not_better"] == 1)(run(b, b)),
              "a model compared with itself should differ by exactly 0 in every resample: difference, low and high "
              "0, and p_not_better 1 (it never beats itself)."),
        Probe("swapped", lambda: abs(run(b, a)["difference"] + run(a, b)["difference"]) < 1e-9,
              "swapping the two models should flip the sign of the difference."),
    ]


# --- 9.3 POPE's negatives ------------------------------------------------------------------------------------------

# Eight classes; 0 and 1 are in the image, 7, 4, 6 and 5 are the candidates (in that random order). Frequencies and
# co-occurrences chosen so that each rule, and each mistake, picks a different pair; ties are broken by the
# candidates' order (a stable sort).
_FREQ = np.array([50, 40, 20, 20, 30, 90, 90, 10])
_TOGETHER = np.zeros((8, 8), dtype=np.int64)
for (_p, _c), _n in {(0, 7): 9, (0, 4): 1, (0, 5): 5, (1, 4): 5, (1, 6): 7, (1, 5): 5, (0, 1): 4}.items():
    _TOGETHER[_p, _c] = _TOGETHER[_c, _p] = _n
_PRESENT = [0, 1]
_CANDIDATES = np.array([7, 4, 6, 5])
# right: random [7, 4], popular [6, 5], adversarial [5, 7] (sums 9, 6, 7, 10)
_POPE_MISTAKES = {
    ("popular", (7, 4)): "the popular split wants the *most* frequent classes first; you took the least frequent "
                         "(sort descending: np.argsort(-scores)).",
    ("popular", (5, 6)): "on a tie keep the candidates' order (classes 6 and 5 are equally frequent, and 6 comes first "
                         "among the candidates): use a stable sort, np.argsort(-scores, kind=\"stable\").",
    ("adversarial", (4, 6)): "the adversarial split wants the classes that co-occur *most* with the present ones; you "
                             "took the least (sort descending).",
    ("adversarial", (6, 5)): "your adversarial split ranks by overall frequency, which is the popular split. "
                             "Adversarial ranks by how often each candidate appeared *together with* the present "
                             "classes: together[present][:, candidates].sum(0).",
    ("adversarial", (7, 5)): "your adversarial split counts co-occurrence with the first present class only; add the "
                             "counts over every class in the image.",
    ("adversarial", (7, 6)): "your adversarial ranking takes the largest single co-occurrence count; POPE adds the "
                             "counts over the present classes.",
}


def _ids(out, k: int) -> list[int]:
    return int_list(out, f"pope_negatives should return a list of {k} class ids")


@register("9.3", "POPE's negatives", uevaluation.pope_negatives, hints=(
    "Three ways to pick what to ask about that is not in the image: at random, the most common classes overall, "
    "or the classes that usually come with what *is* in the image.",
    "Section 4, POPE: `candidates` are the absent class ids in a random order. random keeps that order; popular "
    "ranks them by frequency[c], highest first; adversarial by the co-occurrence counts together[p, c] added over "
    "the present classes p. Keep the candidates' order among ties (a stable sort) and return the first k ids.",
    "Worked sub-step: scores = frequency[candidates] (popular); order = np.argsort(-scores, kind=\"stable\"); "
    "return candidates[order][:k] as a list of ints.",
))
def _check_pope_negatives(fn) -> str:
    ref = uevaluation.pope_negatives
    results = {}
    for split in ("random", "popular", "adversarial"):
        got = _ids(fn(list(_PRESENT), _CANDIDATES.copy(), split, _FREQ.copy(), _TOGETHER.copy(), 2), 2)
        want = ref(_PRESENT, _CANDIDATES, split, _FREQ, _TOGETHER, 2)
        results[split] = (got, want)
    wrong = [s for s, (got, want) in results.items() if got != want]
    if not wrong:
        require_properties(_pope_probes(fn))
        return ("random keeps the candidates' order, popular picks " + str(results["popular"][1]) + ", adversarial "
                + str(results["adversarial"][1]) + " — POPE's three splits.")
    split = wrong[0]
    got, want = results[split]
    if got == [list(_CANDIDATES).index(w) for w in want]:
        raise CheckFailed("you returned positions in `candidates`; return the class ids themselves (candidates[i], "
                          "not i).")
    if len(got) != 2:
        raise CheckFailed(f"ask about k = 2 classes; you returned {len(got)}.")
    if any(g not in _CANDIDATES for g in got):
        raise CheckFailed("every negative must be one of the candidates: a class that is absent from the image.")
    if (split, tuple(got)) in _POPE_MISTAKES:
        raise CheckFailed(_POPE_MISTAKES[(split, tuple(got))])
    if split == "random":
        raise CheckFailed("the random split keeps the candidates' order (they are already shuffled): take the "
                          "first k.")
    raise Mismatch(f"the {split} split should ask about {want}; yours asks about {got}.")


def _pope_probes(fn) -> list[Probe]:
    def run(split, k):
        return _ids(fn(list(_PRESENT), _CANDIDATES.copy(), split, _FREQ.copy(), _TOGETHER.copy(), k), k)

    return [
        Probe("k", lambda: all(len(run(s, 3)) == 3 for s in ("random", "popular", "adversarial")),
              "each split should return exactly k class ids."),
    ]


# --- 9.4 BLEU ------------------------------------------------------------------------------------------------------

_HYPS = ["a small red circle left of a large blue square", "the the the red red circle",
         "a green triangle", "two objects : a purple diamond above a small yellow circle"]
_REFS = ["a small red circle left of a large blue square", "the red circle is above the blue circle",
         "there is a large green triangle on the left", "two objects : a purple diamond above a large yellow circle"]


def _sacrebleu(hyps, refs) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize="none", smooth_method="none").score)


def _bleu_variant(hyps, refs, clip=True, brevity=True, geometric=True, scale=100.0) -> float:
    matches, totals = np.zeros(4), np.zeros(4)
    c = r = 0
    for h, ref in zip(hyps, refs):
        hw, rw = h.split(), ref.split()
        c, r = c + len(hw), r + len(rw)
        for n in range(1, 5):
            hc, rc = umetrics.ngram_counts(hw, n), umetrics.ngram_counts(rw, n)
            matches[n - 1] += sum((min(k, rc.get(g, 0)) if clip else k * (g in rc)) for g, k in hc.items())
            totals[n - 1] += max(len(hw) - n + 1, 0)
    p = matches / totals
    mean = float(np.exp(np.log(p).mean())) if geometric else float(p.mean())
    bp = 1.0 if (c > r or not brevity) else float(np.exp(1 - r / c))
    return scale * bp * mean


@register("9.4", "BLEU", umetrics.bleu, hints=(
    "BLEU counts how many of the hypothesis's n-grams (n = 1..4) appear in the reference, pooled over the corpus, "
    "and punishes hypotheses that are too short.",
    "Section 5, metrics that lie: for each n, clip each hypothesis n-gram's count at its count in the "
    "reference, add the clipped matches and the hypothesis n-gram totals over the corpus, and take the precision. "
    "BLEU = 100 · BP · exp(mean over n of log precision), with BP = exp(1 − r/c) when the hypotheses' c words are "
    "fewer than the references' r, else 1.",
    "Worked sub-step: \"the the the red red circle\" against \"the red circle is above the blue circle\" has 3 "
    "unigram \"the\"s but the reference only 2, so \"the\" scores 2 matches, not 3.",
))
def _check_bleu(fn) -> str:
    got = _number(fn(list(_HYPS), list(_REFS)), "bleu")
    want = _sacrebleu(_HYPS, _REFS)
    if abs(got - want) < 1e-6:
        require_properties(_bleu_probes(fn))
        return f"{got:.4f}, as sacrebleu.corpus_bleu gives with tokenize=\"none\" and no smoothing."
    mistakes = {
        "you did not clip: an n-gram of the hypothesis counts at most as often as it appears in the reference "
        "(\"the the the\" must not score three matches against a reference with two).":
            _bleu_variant(_HYPS, _REFS, clip=False),
        "no brevity penalty: precision alone rewards short hypotheses; multiply by exp(1 − r/c) when the "
        "hypotheses (c words) are shorter than the references (r words).": _bleu_variant(_HYPS, _REFS, brevity=False),
        "BLEU takes the *geometric* mean of the four precisions (exp of the mean of their logs), not the arithmetic "
        "mean.": _bleu_variant(_HYPS, _REFS, geometric=False),
        "BLEU is reported on 0–100 here (as sacrebleu does): multiply by 100.": _bleu_variant(_HYPS, _REFS, scale=1.0),
        "you averaged sentence-level scores; corpus BLEU pools the n-gram matches and totals (and the lengths) over "
        "all sentences first, then computes one score.":
            float(np.mean([_sacrebleu([h], [r]) for h, r in zip(_HYPS, _REFS)])),
    }
    for hint, wrong in mistakes.items():
        if abs(got - wrong) < 1e-4:
            raise CheckFailed(hint)
    require_properties(_bleu_probes(fn))
    raise Mismatch(f"got {got:.4f}; sacrebleu gives {want:.4f}.")


def _bleu_probes(fn) -> list[Probe]:
    return [
        Probe("perfect", lambda: abs(_number(fn(list(_REFS), list(_REFS)), "bleu") - 100) < 1e-6,
              "hypotheses equal to their references should score 100."),
        Probe("word order", lambda: _number(fn(["square blue the of left circle red a"],
                                               ["a red circle left of the blue square"]), "bleu") < 1e-6,
              "the right words in the wrong order share no 4-gram with the reference, so BLEU without smoothing "
              "is 0: count the n-grams for every n from 1 to max_n, not only single words."),
        Probe("order", lambda: abs(_number(fn(_HYPS[::-1], _REFS[::-1]), "bleu")
                                   - _number(fn(list(_HYPS), list(_REFS)), "bleu")) < 1e-9,
              "corpus BLEU should not depend on the order of the (hypothesis, reference) pairs."),
    ]


# --- 9.6 Cohen's kappa ---------------------------------------------------------------------------------------------

_JUDGE = np.array(list("yyyyyyyynnyyyynnnyyy"))
_HUMAN = np.array(list("yyyyyynnnnyyyyynnnny"))


@register("9.6", "Cohen's κ", umetrics.cohen_kappa, hints=(
    "Two raters who both say \"yes\" 80 % of the time agree often by chance alone; κ counts only the agreement "
    "beyond that.",
    "Section 6, a model as judge: p_o = share of items rated the same; p_e = Σ over labels of P(judge says it) · "
    "P(human says it), each rater with its own label frequencies; κ = (p_o − p_e) / (1 − p_e).",
    "Worked sub-step: with labels in NumPy arrays a and b, p_e = sum((a == l).mean() * (b == l).mean() for l in "
    "np.union1d(a, b)).",
))
def _check_kappa(fn) -> str:
    from sklearn.metrics import cohen_kappa_score

    got = _number(fn(_JUDGE.copy(), _HUMAN.copy()), "cohen_kappa")
    want = float(cohen_kappa_score(_JUDGE, _HUMAN))
    if abs(got - want) < 1e-6:
        require_properties(_kappa_probes(fn))
        return f"κ = {got:.4f}, as sklearn.metrics.cohen_kappa_score gives."
    p_o = float((_JUDGE == _HUMAN).mean())
    pooled = np.concatenate([_JUDGE, _HUMAN])
    p_pooled = sum(float((pooled == label).mean()) ** 2 for label in ("y", "n"))
    p_e = sum(float((_JUDGE == label).mean() * (_HUMAN == label).mean()) for label in ("y", "n"))
    mistakes = {
        "that is the raw agreement p_o; κ corrects it for the agreement expected by chance: (p_o − p_e) / (1 − p_e).":
            p_o,
        "you pooled the two raters' labels to get the chance agreement (that is Scott's π). Cohen's κ uses each "
        "rater's own label frequencies: p_e = Σ P(judge = l) · P(human = l).": (p_o - p_pooled) / (1 - p_pooled),
        "chance agreement is not 1 / (number of labels): it depends on how often each rater uses each label.":
            (p_o - 0.5) / 0.5,
        "the denominator is 1 − p_e (the most agreement possible beyond chance), not p_e.": (p_o - p_e) / p_e,
    }
    for hint, wrong in mistakes.items():
        if abs(got - wrong) < 1e-6:
            raise CheckFailed(hint)
    require_properties(_kappa_probes(fn))
    raise Mismatch(f"got {got:.4f}; cohen_kappa_score gives {want:.4f}.")


def _kappa_probes(fn) -> list[Probe]:
    return [
        Probe("identical", lambda: abs(_number(fn(_HUMAN.copy(), _HUMAN.copy()), "cohen_kappa") - 1) < 1e-9,
              "two raters who agree on every item should have κ = 1."),
        Probe("symmetric", lambda: abs(_number(fn(_HUMAN.copy(), _JUDGE.copy()), "cohen_kappa")
                                       - _number(fn(_JUDGE.copy(), _HUMAN.copy()), "cohen_kappa")) < 1e-9,
              "κ should not depend on which rater comes first."),
        Probe("three labels", lambda: abs(_number(fn(np.array(list("abcabcab")), np.array(list("abcabcca"))),
                                                  "cohen_kappa") - 0.627906976744186) < 1e-6,
              "κ should work for any set of labels, not only yes/no: sum the chance agreement over every label "
              "either rater used."),
    ]


# --- 9.8 a contamination detector ----------------------------------------------------------------------------------

_BENCH = ["is the red circle left of the blue square?", "how many objects are there in the picture?",
          "what color is the small circle?"]
_SHARD = ["photo of my cat",                                                            # clean
          "is the red circle left of the blue square?",                                 # the item itself
          "Q: is the red circle left of the blue square? A: yes",                       # inside other words
          "great pics! what color is the small circle?",                                # a 6-word item, at the end
          "WHAT COLOR IS THE SMALL CIRCLE",                                             # other case and punctuation
          "the red circle and the blue square are left of a tree",                      # shared words only
          "there are objects in the picture, and how many is a question"]               # shared words only
_PLANTED = np.array([False, True, True, True, True, False, False])


def _flags(out, n: int) -> np.ndarray:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, torch.Tensor):
        out = out.numpy()
    out = np.asarray(out)
    if out.shape != (n,) or out.dtype != bool:
        if out.shape == (n,) and set(np.unique(out).tolist()) <= {0, 1}:
            return out.astype(bool)
        raise CheckFailed(f"ngram_contamination should return one boolean per text ({n}); it returned "
                          f"{describe(out if out.ndim else out.item())}.")
    return out


@register("9.8", "a contamination detector", uevaluation.ngram_contamination, hints=(
    "A benchmark item copied into training data shows up as a long run of the same words, wherever it sits in the "
    "text and whatever its case or punctuation.",
    "Section 7, contamination: turn every text and every item into its set of n-word sequences (lower-cased, "
    "punctuation stripped from the ends of words), and flag a text when its set shares at least one n-gram with "
    "the items' (GPT-3 used n = 13 on its training data).",
    "Worked sub-step: words = [w.strip(\".,;:!?\\\"'()\").lower() for w in text.split()]; "
    "grams = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)} — note the + 1: the last n-gram counts.",
))
def _check_contamination(fn) -> str:
    got = _flags(fn(list(_SHARD), list(_BENCH), 6), len(_SHARD))
    if (got == _PLANTED).all():
        require_properties(_contamination_probes(fn))
        return "every planted item found (whole, wrapped in other words, in other case), and no false alarm."
    missed, false_alarm = _PLANTED & ~got, got & ~_PLANTED
    if not got.any():
        raise CheckFailed("nothing was flagged, not even a text that *is* a benchmark item: compare n-gram sets, and "
                          "make sure the n-grams of a text and of an item are built the same way.")
    if got[1] and missed[2]:
        raise CheckFailed("only an exact copy was flagged: an item inside a longer text (a question wrapped as "
                          "\"Q: ... A: yes\") is contamination too. Compare n-grams, not whole strings.")
    if got[1] and got[2] and missed[3]:
        raise CheckFailed("a 6-word item was never found with n = 6: a sequence of n words has exactly one n-gram. "
                          "The last n-gram starts at len(words) − n, so the range is range(len(words) − n + 1).")
    if missed[4]:
        raise CheckFailed("\"WHAT COLOR IS THE SMALL CIRCLE\" is the third item: lower-case the words and strip "
                          "punctuation from their ends before making n-grams.")
    if false_alarm[5] or false_alarm[6]:
        raise CheckFailed("a text that only shares loose words with an item (\"the red circle and the blue square "
                          "...\") was flagged: contamination is a long run of the item's words in order — n-grams, "
                          "not a bag of words.")
    require_properties(_contamination_probes(fn))
    raise Mismatch(f"flags {got.astype(int).tolist()}; expected {_PLANTED.astype(int).tolist()}.")


def _contamination_probes(fn) -> list[Probe]:
    return [
        Probe("empty benchmark", lambda: not _flags(fn(list(_SHARD), [], 6), len(_SHARD)).any(),
              "with no benchmark items nothing should be flagged."),
    ]


# --- 9.5 CLIPScore -------------------------------------------------------------------------------------------------

_IMAGE_EMB = np.array([[3.0, 0.0, 4.0], [1.0, 2.0, 2.0], [0.0, -1.0, 0.0], [2.0, 2.0, 1.0]])
_TEXT_EMB = np.array([[0.6, 0.0, 0.8], [2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [-2.0, -2.0, -1.0]])


def _torch_clip_score(image, text, weight: float = 2.5) -> np.ndarray:
    cos = torch.nn.functional.cosine_similarity(torch.as_tensor(image, dtype=torch.float64),
                                                torch.as_tensor(text, dtype=torch.float64), dim=1)
    return (weight * cos.clamp(min=0)).numpy()


def _scores(out, n: int) -> np.ndarray:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.shape == (n, n):
        raise CheckFailed("you returned a matrix: every image against every text. CLIPScore scores each image with "
                          "its own caption, one number per pair (the diagonal of that matrix).")
    if out.shape != (n,):
        raise CheckFailed(f"clip_score should return one score per (image, text) pair, {n} numbers; it returned "
                          f"{describe(out if out.ndim else out.item())}.")
    return out


@register("9.5", "CLIPScore", umetrics.clip_score, hints=(
    "A caption is good when CLIP puts it close to its image: the score is how aligned the two embeddings are, with "
    "anti-aligned pairs counted as no alignment at all.",
    "Section 5, metrics that lie: normalise each embedding to length 1, take the cosine of each image with its "
    "own text (row by row), clip it at 0 from below and multiply by the weight (2.5 in the paper).",
    "Worked sub-step: image (3, 0, 4) and text (0.6, 0, 0.8) have lengths 5 and 1 and a dot product of 5, so their "
    "cosine is 5 / (5 · 1) = 1 and the pair scores 2.5 · 1 = 2.5; a pair with cosine −0.3 scores 0.",
))
def _check_clip_score(fn) -> str:
    got = _scores(fn(_IMAGE_EMB.copy(), _TEXT_EMB.copy()), len(_IMAGE_EMB))
    want = _torch_clip_score(_IMAGE_EMB, _TEXT_EMB)
    if np.allclose(got, want, atol=1e-6):
        require_properties(_clip_score_probes(fn))
        return f"{np.round(got, 4).tolist()}: 2.5 · max(cos, 0) per pair, as the paper defines it."
    cos = want / 2.5
    raw_cos = np.array([float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in
                        zip(_IMAGE_EMB, _TEXT_EMB)])
    mistakes = {
        "a pair whose embeddings point apart scored below 0: CLIPScore clips the cosine at 0 (max(cos, 0)), so an "
        "unrelated caption scores 0, not a penalty.": 2.5 * raw_cos,
        "the cosines are right, but the paper rescales them: CLIPScore = w · max(cos, 0) with w = 2.5.": cos,
        "that is 100 · max(cos, 0), torchmetrics' scale; the paper's CLIPScore, and this exercise, use the `weight` "
        "argument (2.5 by default).": 100 * cos,
        "the embeddings are not unit vectors here: divide each by its length first, or the score grows with the "
        "embeddings' norms (a dot product, not a cosine).":
            2.5 * np.maximum((_IMAGE_EMB * _TEXT_EMB).sum(1), 0),
    }
    for hint, wrong in mistakes.items():
        if np.allclose(got, wrong, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_clip_score_probes(fn))
    raise Mismatch(f"got {np.round(got, 4).tolist()}; expected {np.round(want, 4).tolist()}.")


def _clip_score_probes(fn) -> list[Probe]:
    def run(a, b, *weight):
        return _scores(fn(a.copy(), b.copy(), *weight), len(a))

    return [
        Probe("scale", lambda: np.allclose(run(3 * _IMAGE_EMB, 0.5 * _TEXT_EMB), run(_IMAGE_EMB, _TEXT_EMB)),
              "the score should not change when an embedding is scaled: it is a cosine, so normalise both."),
        Probe("weight", lambda: np.allclose(run(_IMAGE_EMB, _TEXT_EMB, 1.0) * 2.5, run(_IMAGE_EMB, _TEXT_EMB)),
              "the score should be proportional to `weight`: weight · max(cos, 0)."),
        Probe("identical", lambda: np.allclose(run(_IMAGE_EMB, _IMAGE_EMB), 2.5),
              "an image paired with its own embedding has cos = 1, so it should score exactly the weight."),
    ]


# --- 9.7 both orders ------------------------------------------------------------------------------------------------

_AB = ["first", "second", "first", "second", "first", "second"]
_BA = ["second", "first", "first", "second", "second", "first"]
_SWAP_WANT = ["A", "B", "tie", "tie", "A", "B"]


def _verdicts(out, n: int) -> list[str]:
    if out is None or out is Ellipsis:
        raise Unsolved
    values = list(np.asarray(out).tolist()) if not isinstance(out, str) else [out]
    if len(values) != n or any(v not in ("A", "B", "tie") for v in values):
        raise CheckFailed(f"swap_verdicts should return one of \"A\", \"B\" or \"tie\" per pair ({n} of them); it "
                          f"returned {describe(out)}.")
    return values


@register("9.7", "a judge's verdicts in both orders", uevaluation.swap_verdicts, hints=(
    "A judge that prefers whatever it sees first gives one answer when A comes first and the other when B does. "
    "Only a preference that survives the swap is a preference.",
    "Section 6, a model as judge: `ab` holds the position the judge picked with A shown first, `ba` with B shown "
    "first. In `ba` the first answer shown is B. A wins when both orders point at A, B when both point at B, "
    "otherwise it is a tie.",
    "Worked sub-step: ab = \"first\" and ba = \"second\" both mean A; ab = \"first\" and ba = \"first\" means the "
    "judge picked the first answer both times, whichever it was: a tie.",
))
def _check_swap(fn) -> str:
    got = _verdicts(fn(list(_AB), list(_BA)), len(_AB))
    if got == _SWAP_WANT:
        require_properties(_swap_probes(fn))
        return "A or B only when both orders agree; ties where the judge followed the position."
    unmapped = ["A" if a == b == "first" else "B" if a == b == "second" else "tie" for a, b in zip(_AB, _BA)]
    first_order = ["A" if a == "first" else "B" for a in _AB]
    mistakes = [
        (unmapped, "in the second order B is shown first, so \"first\" in `ba` means B: A wins when `ab` says first "
                   "and `ba` says second."),
        (first_order, "that is the first order's verdict alone; judge each pair in both orders and keep a verdict only "
                      "when they agree."),
    ]
    for wrong, hint in mistakes:
        if got == wrong:
            raise CheckFailed(hint)
    if got[2] != "tie" or got[3] != "tie":
        raise CheckFailed("when the two orders disagree (the judge picked the same *position* both times), the "
                          "verdict is a tie, not a win for either answer.")
    require_properties(_swap_probes(fn))
    raise Mismatch(f"got {got}; expected {_SWAP_WANT}.")


def _swap_probes(fn) -> list[Probe]:
    flip = {"A": "B", "B": "A", "tie": "tie"}
    return [
        Probe("roles", lambda: _verdicts(fn(list(_BA), list(_AB)), len(_AB)) == [flip[v] for v in _SWAP_WANT],
              "swapping the roles of A and B (passing ba as ab and ab as ba) should swap every win and keep the ties."),
    ]


# --- 9.9 exact match and mean log-probability -----------------------------------------------------------------------

# six answers of four tokens: log-probabilities of the right tokens, and whether each was the model's first choice
_LOGPROBS = np.array([[-0.1, -0.2, -0.05, -0.3], [-0.9, -0.1, -2.0, -0.2], [-3.0, -2.5, -1.8, -4.0],
                      [-0.01, -0.02, -0.4, -0.03], [-1.2, -0.6, -0.7, -2.2], [-0.2, -0.3, -0.1, -0.6]])
_RIGHT = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)


def _pair(out, what: str = "sequence_scores") -> tuple[float, float]:
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"{what} should return two numbers, (exact_match, mean_logprob); it returned "
                          f"{describe(out)}.")
    for x, name in zip(out, ("exact_match", "mean_logprob")):
        if np.ndim(x) != 0:
            raise CheckFailed(f"{name} should be one number for all the answers together; it is "
                              f"{describe(x)}. Average over the answers.")
    return tuple(_number(x, f"{what}'s {name}") for x, name in zip(out, ("exact_match", "mean_logprob")))


@register("9.9", "exact match and mean log-probability", umetrics.sequence_scores, hints=(
    "An answer of several tokens is either written exactly or not: one wrong token spoils it. A continuous score "
    "instead gives credit for every token the model makes more likely, right or not yet.",
    "Section 10, emergence or a metric that jumps: a row is one answer, a column one of its tokens. Exact match is "
    "the share of rows whose tokens are all right; the mean log-probability averages each row over its tokens, "
    "then averages the rows.",
    "Worked sub-step: a row with first-choice flags (True, True, False, True) is not an exact match, although three "
    "of its four tokens are right; its log-probabilities (−0.9, −0.1, −2.0, −0.2) average to −0.8 nats per token.",
))
def _check_sequence_scores(fn) -> str:
    got = _pair(fn(_LOGPROBS.copy(), _RIGHT.copy()))
    want = (float(_RIGHT.all(1).mean()), float(_LOGPROBS.mean(1).mean()))
    if np.allclose(got, want, atol=1e-9):
        require_properties(_sequence_probes(fn))
        return (f"exact match {got[0]:.3f} (2 of 6 boxes), mean log-probability {got[1]:.3f} nats per token: exact "
                "match ignores that three of the other four boxes had most of their tokens right; the log-probability "
                "does not.")
    exact, mean = want
    mistakes = [
        (lambda g: np.isclose(g[0], mean) and np.isclose(g[1], exact),
         "the two numbers are swapped: return (exact_match, mean_logprob) in that order."),
        (lambda g: np.isclose(g[0], _RIGHT.mean()),
         "that exact match is the share of *tokens* that are right (token accuracy); an answer counts only when all "
         "its tokens are right."),
        (lambda g: np.isclose(g[0], _RIGHT.any(1).mean()),
         "an answer counted as a match when *any* of its tokens is right; it must be *all* of them."),
        (lambda g: np.isclose(g[1], _LOGPROBS.sum(1).mean()),
         "that is the log-probability of the whole answer (the sum over its tokens); average over the tokens "
         "instead: the score is per token (nats per token)."),
        (lambda g: np.isclose(g[1], -mean),
         "the sign is flipped: a log-probability is at most 0, and a better model has a higher (closer to 0) one."),
        (lambda g: np.isclose(g[1], np.exp(_LOGPROBS).mean()) or np.isclose(g[1], np.exp(mean)),
         "that is a probability, not a log-probability: keep the tokens' log-probabilities as they are and average "
         "them."),
    ]
    for matches, hint in mistakes:
        if matches(got):
            raise CheckFailed(hint)
    require_properties(_sequence_probes(fn))
    raise Mismatch(f"got {tuple(round(x, 4) for x in got)}; expected {tuple(round(x, 4) for x in want)}.")


def _sequence_probes(fn) -> list[Probe]:
    def run(logprobs, right):
        return _pair(fn(logprobs.copy(), right.copy()))

    order = np.random.default_rng(9).permutation(len(_LOGPROBS))
    return [
        Probe("one token", lambda: np.isclose(run(_LOGPROBS[:, :1], _RIGHT[:, :1])[0], _RIGHT[:, 0].mean()),
              "with answers of one token each, exact match should equal the share of right tokens."),
        Probe("order", lambda: np.allclose(run(_LOGPROBS[order], _RIGHT[order]), run(_LOGPROBS, _RIGHT)),
              "both scores should not depend on the order of the answers."),
        Probe("all right", lambda: np.isclose(run(_LOGPROBS, np.ones_like(_RIGHT))[0], 1.0),
              "when every token of every answer is right, exact match should be 1."),
        Probe("one wrong token", lambda: all(np.isclose(run(_LOGPROBS, np.eye(4, dtype=bool)[j] ^ True
                                                            | np.zeros_like(_RIGHT))[0], 0.0) for j in range(4)),
              "one wrong token, wherever it sits in the answer, should make every answer a miss: exact match 0."),
        Probe("certain", lambda: np.isclose(run(np.zeros_like(_LOGPROBS), _RIGHT)[1], 0.0),
              "a model certain of every right token (log-probability 0) should have a mean log-probability of 0."),
    ]
