"""Unit tests of the Phase 6 exercise self-checks (``utils/checks/phase6.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake (or the property it breaks), right ones
written another way must pass, and every property a check probes must hold for the course's reference."""
from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils import asr
from utils import codec as ucodec
from utils import metrics as umetrics
from utils.checks import evaluate, phase6, reference
from utils.checks.oracles import all_hold


def _passes(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "passed", result.message


def _starter(*args, **kwargs):  # a notebook's starter: the body is `...`, so it returns None
    ...


@pytest.mark.parametrize("exercise", ["6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9"])
def test_the_starter_reads_as_unsolved(exercise):
    assert evaluate(exercise, _starter).status == "unsolved"


@pytest.mark.parametrize("exercise", ["6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9"])
def test_the_reference_passes(exercise):
    _passes(exercise, reference(exercise))


# --- 6.1 Whisper's log-mel input --------------------------------------------------------------------------------
# The learner's function is f(waves (B, samples), mel_filters (n_freqs, n_mels), n_samples) -> (B, n_mels, frames).

def _fit(waves, n):  # cut or zero-pad at the end: right
    waves = waves[:, :n]
    return F.pad(waves, (0, n - waves.shape[1]))


def _stft(waves, window=None, **kwargs):
    window = torch.hann_window(400, dtype=waves.dtype) if window is None else window
    return torch.stft(waves, 400, 160, window=window, return_complex=True, **kwargs)


def _power(waves, n):  # |STFT|² of the fitted clips, last frame dropped: right
    return _stft(_fit(waves, n))[..., :-1].abs() ** 2


def _finish(mels, floor=8.0, dims=(1, 2)):  # log10, clamp at the maximum over `dims` minus `floor`, (x + 4) / 4
    log_spec = torch.clamp(mels, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=dims, keepdim=True) - floor)
    return (log_spec + 4.0) / 4.0


# mistakes the check lists by name
def mel_natural_log(waves, mel_filters, n_samples):
    log_spec = torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log()
    return (torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0) + 4.0) / 4.0


def mel_no_clamp(waves, mel_filters, n_samples):
    return (torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log10() + 4.0) / 4.0


def mel_batch_max(waves, mel_filters, n_samples):
    log_spec = torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log10()
    return (torch.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0


def mel_clamp_min_of_batch(waves, mel_filters, n_samples):  # .clamp(min=...) with one float: the batch's max
    log_spec = torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log10()
    return (log_spec.clamp(min=float(log_spec.max()) - 8.0) + 4.0) / 4.0


def mel_unscaled(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples)) * 4.0 - 4.0


def mel_minus_four(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples)) - 2.0  # (x - 4) / 4


def mel_over_four_plus_four(waves, mel_filters, n_samples):
    return (_finish(mel_filters.T @ _power(waves, n_samples)) * 4.0 - 4.0) / 4.0 + 4.0


def mel_magnitude(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples))[..., :-1].abs())


def mel_all_frames(waves, mel_filters, n_samples):  # forgot to drop the last frame
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples)).abs() ** 2)


def mel_not_padded(waves, mel_filters, n_samples):  # cut, never padded: the clips' own length
    return _finish(mel_filters.T @ _stft(waves[:, :n_samples])[..., :-1].abs() ** 2)


# mistakes the check did not list before these tests
def mel_front_padded(waves, mel_filters, n_samples):
    waves = waves[:, :n_samples]
    waves = F.pad(waves, (n_samples - waves.shape[1], 0))
    return _finish(mel_filters.T @ _stft(waves)[..., :-1].abs() ** 2)


def mel_repeat_padded(waves, mel_filters, n_samples):  # fills the window by looping the clip
    reps = math.ceil(n_samples / waves.shape[1])
    return _finish(mel_filters.T @ _stft(waves.repeat(1, reps)[:, :n_samples])[..., :-1].abs() ** 2)


def mel_not_cut(waves, mel_filters, n_samples):  # pads a short clip, keeps all of a long one
    waves = F.pad(waves, (0, max(0, n_samples - waves.shape[1])))
    return _finish(mel_filters.T @ _stft(waves)[..., :-1].abs() ** 2)


def mel_clamp_at_max_minus_10(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples), floor=10.0)


def mel_decibels(waves, mel_filters, n_samples):  # Phase 2's dB habit: 10 log10 and 80 dB
    log_spec = 10 * torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log10()
    return (torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 80.0) + 4.0) / 4.0


def mel_clamped_from_above(waves, mel_filters, n_samples):  # torch.minimum for torch.maximum
    log_spec = torch.clamp(mel_filters.T @ _power(waves, n_samples), min=1e-10).log10()
    return (torch.minimum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0) + 4.0) / 4.0


def mel_per_frame_max(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples), dims=1)


def mel_per_band_max(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples), dims=2)


def mel_per_band_over_the_batch(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _power(waves, n_samples), dims=(0, 2))


def mel_frames_first(waves, mel_filters, n_samples):  # the filters on the right: (B, frames, n_mels)
    return _finish(_power(waves, n_samples).transpose(1, 2) @ mel_filters, dims=(1, 2))


def mel_filters_reshaped(waves, mel_filters, n_samples):  # "(n_mels, n_freqs)" by reshape, not by .T
    return _finish(mel_filters.reshape(mel_filters.shape[1], -1) @ _power(waves, n_samples))


def mel_standardised(waves, mel_filters, n_samples):
    x = _finish(mel_filters.T @ _power(waves, n_samples))
    return (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True)


def mel_log_plus_eps(waves, mel_filters, n_samples):  # log10(x + 1e-10), Phase 2's habit, for the clamp
    log_spec = torch.log10(mel_filters.T @ _power(waves, n_samples) + 1e-10)
    return (torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0) + 4.0) / 4.0


def mel_no_window(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples), window=torch.ones(400))[..., :-1].abs() ** 2)


def mel_symmetric_hann(waves, mel_filters, n_samples):
    window = torch.hann_window(400, periodic=False)
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples), window=window)[..., :-1].abs() ** 2)


def mel_first_frame_dropped(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples))[..., 1:].abs() ** 2)


def mel_not_centred(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples), center=False)[..., :-1].abs() ** 2)


def mel_complex_squared(waves, mel_filters, n_samples):  # stft ** 2 is complex: .real to get a float
    return _finish(mel_filters.T @ (_stft(_fit(waves, n_samples))[..., :-1] ** 2).real)


def mel_real_part(waves, mel_filters, n_samples):
    return _finish(mel_filters.T @ _stft(_fit(waves, n_samples))[..., :-1].real ** 2)


@pytest.mark.parametrize("answer, phrase", [
    (mel_natural_log, "natural logarithms"),
    (mel_no_clamp, "clamp is missing"),
    (mel_batch_max, "one maximum for the whole batch"),
    (mel_clamp_min_of_batch, "one maximum for the whole batch"),
    (mel_unscaled, "last step is missing"),
    (mel_minus_four, "(x - 4) / 4"),
    (mel_over_four_plus_four, "x / 4 + 4"),
    (mel_magnitude, "magnitude |STFT|"),
    (mel_all_frames, "one frame too many"),
    (mel_not_padded, "the window is not fixed"),
    (mel_front_padded, "not at the front"),
    (mel_repeat_padded, "not by repeating"),
    (mel_not_cut, "samples after the first n_samples"),
    (mel_clamp_at_max_minus_10, "span exactly 2"),
    (mel_decibels, "not minus 10 or minus 80"),
    (mel_clamped_from_above, "span exactly 2"),
    (mel_per_frame_max, "per frame"),
    (mel_per_band_max, "per mel band"),
    (mel_per_band_over_the_batch, "over the whole clip"),
    (mel_frames_first, "(B, frames, n_mels)"),
    (mel_filters_reshaped, "reshaped, not transposed"),
    (mel_standardised, "standardised"),
    (mel_log_plus_eps, "*clamps* at 1e-10"),
    (mel_no_window, "no window"),
    (mel_symmetric_hann, "symmetric Hann"),
    (mel_first_frame_dropped, "*first* frame"),
    (mel_not_centred, "centred"),
    (mel_complex_squared, "(stft ** 2).real"),
    (mel_real_part, "real part only"),
])
def test_whisper_features_mistakes(answer, phrase):
    failed_with("6.1", answer, phrase)


def mel_float64(waves, mel_filters, n_samples):  # right, in float64 (differs from the extractor by ~3e-5)
    return _finish(mel_filters.double().T @ _power(waves.double(), n_samples))


def mel_einsum(waves, mel_filters, n_samples):  # right
    return _finish(torch.einsum("bft,fm->bmt", _power(waves, n_samples), mel_filters))


def mel_loop(waves, mel_filters, n_samples):  # right: one clip at a time, filters applied frame by frame
    out = []
    for wave in waves:
        wave = F.pad(wave[:n_samples], (0, max(0, n_samples - len(wave))))
        spec = torch.stft(wave, 400, 160, window=torch.hann_window(400), return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        mels = torch.stack([mel_filters.T @ power[:, t] for t in range(power.shape[1] - 1)], 1)
        log_spec = torch.log10(torch.clamp(mels, min=1e-10))
        out.append((torch.clamp(log_spec, min=float(log_spec.max()) - 8.0) + 4.0) / 4.0)
    return torch.stack(out)


@pytest.mark.parametrize("answer", [asr.log_mel_features, mel_float64, mel_einsum, mel_loop])
def test_whisper_features_right_variants_pass_and_keep_every_property(answer):
    _passes("6.1", answer)
    fe = phase6._extractor()
    mel = torch.from_numpy(fe.mel_filters).float()
    probes = phase6._whisper_probes(answer, phase6._clips(fe.n_samples), mel, fe.n_samples)
    assert all_hold(probes), [p.property for p in probes if not p.holds()]


# --- 6.3 word error rate ------------------------------------------------------------------------------------------
# The learner's function is f(references: list[str], hypotheses: list[str]) -> float.

def _levenshtein(ref, hyp, substitution=1, borders=True):  # over word lists; right with the defaults
    d = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    if borders:
        for i in range(len(ref) + 1):
            d[i][0] = i
        for j in range(len(hyp) + 1):
            d[0][j] = j
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (substitution if ref[i - 1] != hyp[j - 1] else 0))
    return d[-1][-1]


def _edits(refs, hyps):
    return sum(_levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps))


def _n_words(texts):
    return sum(len(t.split()) for t in texts)


# mistakes the check lists by name
def wer_mean_of_utterances(refs, hyps):
    return sum(_levenshtein(r.split(), h.split()) / len(r.split()) for r, h in zip(refs, hyps)) / len(refs)


def wer_over_hypothesis_words(refs, hyps):
    return _edits(refs, hyps) / _n_words(hyps)


def wer_arguments_swapped(refs, hyps):  # jiwer.wer(hypotheses, references)
    import jiwer

    return jiwer.wer(hyps, refs)


def wer_accuracy(refs, hyps):
    return 1 - _edits(refs, hyps) / _n_words(refs)


def wer_without_insertions(refs, hyps):  # the words of the reference that the hypothesis lost or changed
    import jiwer

    out = [jiwer.process_words(r, h) for r, h in zip(refs, hyps)]
    return sum(o.substitutions + o.deletions for o in out) / _n_words(refs)


def wer_positional(refs, hyps):
    errors = 0
    for r, h in zip(refs, hyps):
        r, h = r.split(), h.split()
        errors += sum(a != b for a, b in zip(r, h)) + abs(len(r) - len(h))
    return errors / _n_words(refs)


def wer_characters(refs, hyps):
    return sum(_levenshtein(list(r), list(h)) for r, h in zip(refs, hyps)) / sum(len(r) for r in refs)


def wer_edit_count(refs, hyps):
    return _edits(refs, hyps)


# mistakes the check did not list before these tests
def wer_percent(refs, hyps):
    return 100 * _edits(refs, hyps) / _n_words(refs)


def wer_lowercased(refs, hyps):
    return sum(_levenshtein(r.lower().split(), h.lower().split()) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_stripped_words(refs, hyps):  # punctuation stripped from each word, case folded
    def words(t):
        return [w.strip(".,?!").lower() for w in t.split()]

    return sum(_levenshtein(words(r), words(h)) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_split_on_space(refs, hyps):
    return (sum(_levenshtein(r.split(" "), h.split(" ")) for r, h in zip(refs, hyps))
            / sum(len(r.split(" ")) for r in refs))


def wer_over_longer(refs, hyps):  # divides by max(len(ref), len(hyp)) so it stays under 1
    return _edits(refs, hyps) / sum(max(len(r.split()), len(h.split())) for r, h in zip(refs, hyps))


def wer_substitution_costs_two(refs, hyps):
    return sum(_levenshtein(r.split(), h.split(), substitution=2) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_no_borders(refs, hyps):  # the table's first row and column left at 0
    return sum(_levenshtein(r.split(), h.split(), borders=False) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_word_sets(refs, hyps):  # the words one side has and the other has not
    return sum(len(set(r.split()) ^ set(h.split())) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_rounded(refs, hyps):
    return round(_edits(refs, hyps) / _n_words(refs), 3)


@pytest.mark.parametrize("answer, phrase", [
    (wer_mean_of_utterances, "mean of each utterance's WER"),
    (wer_over_hypothesis_words, "number of hypothesis words"),
    (wer_arguments_swapped, "number of hypothesis words"),
    (wer_accuracy, "1 - WER"),
    (wer_without_insertions, "insertions are not counted"),
    (wer_positional, "position by position"),
    (wer_characters, "character error rate"),
    (wer_edit_count, "not a rate"),
    (wer_percent, "percentage"),
    (wer_lowercased, "exactly as written"),
    (wer_stripped_words, "exactly as written"),
    (wer_split_on_space, "str.split() (no argument)"),
    (wer_over_longer, "divide by the reference's length"),
    (wer_substitution_costs_two, "A substitution is one edit"),
    (wer_no_borders, "empty transcript"),
    (wer_word_sets, "word order counts"),
    (wer_rounded, "unrounded"),
])
def test_wer_mistakes(answer, phrase):
    failed_with("6.3", answer, phrase)


def test_wer_that_returns_a_string_is_told_to_return_a_number():
    failed_with("6.3", lambda refs, hyps: f"{_edits(refs, hyps) / _n_words(refs):.1%}", "one number")


def wer_memoised(refs, hyps):  # right: the recursion, memoised
    def distance(ref, hyp):
        @functools.lru_cache(maxsize=None)
        def d(i, j):
            if i == 0 or j == 0:
                return i + j
            return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]))

        return d(len(ref), len(hyp))

    return sum(distance(tuple(r.split()), tuple(h.split())) for r, h in zip(refs, hyps)) / _n_words(refs)


def wer_from_jiwer_alignment(refs, hyps):  # right: jiwer's counts of each kind of edit
    import jiwer

    out = jiwer.process_words(list(refs), list(hyps))
    return (out.substitutions + out.deletions + out.insertions) / (out.hits + out.substitutions + out.deletions)


def wer_torchaudio(refs, hyps):  # right: torchaudio's edit distance, and a float32 tensor back
    import torchaudio

    edits = sum(torchaudio.functional.edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    return torch.tensor(edits / _n_words(refs))


def wer_numpy(refs, hyps):  # right: one row of the table at a time, NumPy float32 back
    import numpy as np

    total = 0
    for r, h in zip(refs, hyps):
        r, h = r.split(), h.split()
        row = np.arange(len(h) + 1)
        for i, word in enumerate(r, 1):
            new = np.empty_like(row)
            new[0] = i
            for j in range(1, len(h) + 1):
                new[j] = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (word != h[j - 1]))
            row = new
        total += int(row[-1])
    return np.float32(total / _n_words(refs))


@pytest.mark.parametrize("answer", [umetrics.word_error_rate, wer_memoised, wer_from_jiwer_alignment,
                                    wer_torchaudio, wer_numpy])
def test_wer_right_variants_pass_and_keep_every_property(answer):
    _passes("6.3", answer)
    probes = phase6._wer_probes(answer)
    assert all_hold(probes), [p.property for p in probes if not p.holds()]


# --- 6.4 greedy CTC decoding --------------------------------------------------------------------------------------
# The learner's function is f(log_probs (B, frames, vocabulary), blank) -> list of lists of token ids.

def _merge(row):  # runs of equal tokens merged: right
    return [t for i, t in enumerate(row) if i == 0 or t != row[i - 1]]


# mistakes the check lists by name
def ctc_blanks_dropped_first(log_probs, blank):
    return [_merge([t for t in row if t != blank]) for row in log_probs.argmax(-1).tolist()]


def ctc_compares_with_last_kept(log_probs, blank):  # a loop whose `prev` only moves when a token is kept
    out = []
    for row in log_probs.argmax(-1).tolist():
        tokens, prev = [], None
        for t in row:
            if t != blank and t != prev:
                tokens.append(t)
                prev = t
        out.append(tokens)
    return out


def ctc_not_merged(log_probs, blank):
    return [[t for t in row if t != blank] for row in log_probs.argmax(-1).tolist()]


def ctc_only_blank_runs_merged(log_probs, blank):  # collapses runs of blanks only, then drops the blanks
    out = []
    for row in log_probs.argmax(-1).tolist():
        collapsed = [t for i, t in enumerate(row) if not (i and t == blank and row[i - 1] == blank)]
        out.append([t for t in collapsed if t != blank])
    return out


def ctc_blanks_kept(log_probs, blank):
    return [_merge(row) for row in log_probs.argmax(-1).tolist()]


def ctc_frame_path(log_probs, blank):
    return log_probs.argmax(-1).tolist()


def ctc_padded_tensor(log_probs, blank):
    rows = [torch.tensor(r) for r in asr.ctc_greedy_decode(log_probs, blank)]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=blank)


def ctc_blank_zero(log_probs, blank):
    return [[t for t in _merge(row) if t != 0] for row in log_probs.argmax(-1).tolist()]


# mistakes the check did not list before these tests
def ctc_argmin(log_probs, blank):
    return [[t for t in _merge(row) if t != blank] for row in log_probs.argmin(-1).tolist()]


def ctc_argmax_over_frames(log_probs, blank):
    return [[t for t in _merge(row) if t != blank] for row in log_probs.argmax(1).tolist()]


def ctc_each_token_once(log_probs, blank):
    return [list(dict.fromkeys(t for t in _merge(row) if t != blank)) for row in log_probs.argmax(-1).tolist()]


def ctc_first_frame_lost(log_probs, blank):  # starts comparing at frame 1
    out = []
    for row in log_probs.argmax(-1).tolist():
        out.append([row[i] for i in range(1, len(row)) if row[i] != row[i - 1] and row[i] != blank])
    return out


def ctc_last_frame_lost(log_probs, blank):  # keeps a token where its run ends, never looks at the last frame
    out = []
    for row in log_probs.argmax(-1).tolist():
        out.append([row[i] for i in range(len(row) - 1) if row[i] != row[i + 1] and row[i] != blank])
    return out


def ctc_list_of_tensors_unique(log_probs, blank):  # torch.unique sorts and forgets the order and the repeats
    out = []
    for row in log_probs.argmax(-1):
        row = torch.unique(row)
        out.append(row[row != blank].tolist())
    return out


@pytest.mark.parametrize("answer, phrase", [
    (ctc_blanks_dropped_first, "dropped the blanks before merging"),
    (ctc_compares_with_last_kept, "dropped the blanks before merging"),
    (ctc_not_merged, "repeats are not merged"),
    (ctc_only_blank_runs_merged, "repeats are not merged"),
    (ctc_blanks_kept, "blanks are still there"),
    (ctc_frame_path, "best token of every frame"),
    (ctc_padded_tensor, "one list of token ids per utterance"),
    (ctc_blank_zero, "use the `blank` argument"),
    (ctc_argmin, "argmin"),
    (ctc_argmax_over_frames, "runs over the frames"),
    (ctc_each_token_once, "come back later"),
    (ctc_first_frame_lost, "first frame's token counts"),
    (ctc_last_frame_lost, "last frame's token counts"),
    (ctc_list_of_tensors_unique, "*adjacent* equal frames"),
])
def test_ctc_mistakes(answer, phrase):
    failed_with("6.4", answer, phrase)


def ctc_groupby(log_probs, blank):  # right
    return [[k for k, _ in itertools.groupby(row) if k != blank] for row in log_probs.argmax(-1).tolist()]


def ctc_unique_consecutive(log_probs, blank):  # right: on probabilities, a list of 1-D tensors back
    out = []
    for row in log_probs.exp().argmax(-1):
        row = torch.unique_consecutive(row)
        out.append(row[row != blank])
    return out


def ctc_vectorised(log_probs, blank):  # right: a mask of the frames that start a run and are not blank
    path = log_probs.argmax(-1)
    starts = torch.ones_like(path, dtype=torch.bool)
    starts[:, 1:] = path[:, 1:] != path[:, :-1]
    keep = starts & (path != blank)
    return [path[b][keep[b]].tolist() for b in range(len(path))]


@pytest.mark.parametrize("answer", [asr.ctc_greedy_decode, ctc_groupby, ctc_unique_consecutive, ctc_vectorised])
def test_ctc_right_variants_pass_and_keep_every_property(answer):
    _passes("6.4", answer)
    probes = phase6._ctc_probes(answer)
    assert all_hold(probes), [p.property for p in probes if not p.holds()]


# --- 6.5 residual vector quantisation: encoding -------------------------------------------------------------------
# The learner's function is f(latents (B, D, T), codebooks (Q, K, D)) -> codes (Q, B, T).

def _nearest(v, book):  # v (B, T, D) -> (B, T): right
    return torch.cdist(v, book[None].expand(len(v), -1, -1)).argmin(-1)


def _rvq(latents, codebooks, pick=_nearest, update=lambda r, x, c: r - c):
    """RVQ written out, with the choice of codeword and the residual's update swappable: right with the defaults."""
    x = latents.transpose(1, 2)
    residual, codes = x, []
    for book in codebooks:
        idx = pick(residual, book)
        codes.append(idx)
        residual = update(residual, x, book[idx])
    return codes


# mistakes the check lists by name
def rvq_original_every_level(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, update=lambda r, x, c: x))


def rvq_farthest(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: torch.cdist(v, b[None].expand(len(v), -1, -1))
                            .argmax(-1)))


def rvq_dot_product(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: (v @ b.T).argmax(-1)))


def rvq_expansion_without_codeword_norm(latents, codebooks):  # -2 v·c alone: the dot product again
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: (-2 * v @ b.T).argmin(-1)))


def rvq_batch_first(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks), dim=1)


def rvq_codewords(latents, codebooks):  # the quantised vectors, not their indices
    x = latents.transpose(1, 2)
    residual, out = x, []
    for book in codebooks:
        q = book[_nearest(residual, book)]
        out.append(q)
        residual = residual - q
    return torch.stack(out)


# mistakes the check did not list before these tests
def rvq_cosine(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: (F.normalize(v, dim=-1) @ F.normalize(b, dim=-1).T)
                            .argmax(-1)))


def rvq_residual_of_previous_level_only(latents, codebooks):  # residual = latent - this level's codeword
    return torch.stack(_rvq(latents, codebooks, update=lambda r, x, c: x - c))


def rvq_running_total_subtracted(latents, codebooks):  # the sum so far subtracted from the residual, every level
    x = latents.transpose(1, 2)
    residual, total, codes = x, torch.zeros_like(x), []
    for book in codebooks:
        idx = _nearest(residual, book)
        codes.append(idx)
        total = total + book[idx]
        residual = residual - total
    return torch.stack(codes)


def rvq_residual_added(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, update=lambda r, x, c: r + c))


def rvq_in_place(latents, codebooks):  # `-=` on a transposed view writes into the caller's latents
    residual, codes = latents.transpose(1, 2), []
    for book in codebooks:
        idx = _nearest(residual, book)
        codes.append(idx)
        residual -= book[idx]
    return torch.stack(codes)


def rvq_time_last(latents, codebooks):  # (B, T, Q)
    return torch.stack(_rvq(latents, codebooks), dim=-1)


def rvq_argmin_over_time(latents, codebooks):  # the codes' argmin over the wrong axis of the (B, T, K) distances
    x = latents.transpose(1, 2)
    residual, codes = x, []
    for book in codebooks:
        dist = torch.cdist(residual, book[None].expand(len(x), -1, -1))
        codes.append(dist.argmin(1))
        residual = residual - book[dist.argmin(-1)]
    return torch.stack(codes)


def rvq_not_transposed(latents, codebooks):  # (B, D, T) flattened to frames without the transpose
    b, d, t = latents.shape
    residual, codes = latents.reshape(-1, d), []
    for book in codebooks:
        idx = torch.cdist(residual, book).argmin(-1)
        codes.append(idx.view(b, t))
        residual = residual - book[idx]
    return torch.stack(codes)


def rvq_l1(latents, codebooks):
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: torch.cdist(v, b[None].expand(len(v), -1, -1), p=1)
                            .argmin(-1)))


def rvq_expansion_sign(latents, codebooks):  # |v|² + 2 v·c + |c|²
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: ((v ** 2).sum(-1, keepdim=True) + 2 * v @ b.T
                                                                  + (b ** 2).sum(-1)).argmin(-1)))


@pytest.mark.parametrize("answer, phrase", [
    (rvq_original_every_level, "every level quantises the original latent"),
    (rvq_farthest, "farthest codeword"),
    (rvq_dot_product, "largest dot product"),
    (rvq_expansion_without_codeword_norm, "largest dot product"),
    (rvq_batch_first, "laid out (B, Q, T)"),
    (rvq_codewords, "not vectors"),
    (rvq_cosine, "cosine similarity"),
    (rvq_residual_of_previous_level_only, "*all* earlier levels"),
    (rvq_running_total_subtracted, "*all* earlier levels"),
    (rvq_residual_added, "*all* earlier levels"),
    (rvq_in_place, "changed the tensors it was given"),
    (rvq_time_last, "expected codes of shape (Q, B, T)"),
    (rvq_argmin_over_time, "expected codes of shape (Q, B, T)"),
    (rvq_not_transposed, "check the axis you compare over"),
    (rvq_l1, "smallest Euclidean distance"),
    (rvq_expansion_sign, "the sign of the -2 v·c term"),
])
def test_rvq_encode_mistakes(answer, phrase):
    failed_with("6.5", answer, phrase)


def test_an_in_place_answer_leaves_the_checks_own_latents_alone():
    _, _, x = phase6._quantizer()
    before = x.clone()
    failed_with("6.5", rvq_in_place, "changed the tensors it was given")
    assert torch.equal(x, before)
    _passes("6.5", ucodec.rvq_encode)


def rvq_expansion(latents, codebooks):  # right: |v|² - 2 v·c + |c|², no square root needed
    return torch.stack(_rvq(latents, codebooks, pick=lambda v, b: ((v ** 2).sum(-1, keepdim=True) - 2 * v @ b.T
                                                                  + (b ** 2).sum(-1)).argmin(-1)))


def rvq_frame_loop(latents, codebooks):  # right: one frame at a time, int32 codes
    b, _, t = latents.shape
    codes = torch.zeros(len(codebooks), b, t, dtype=torch.int32)
    for i in range(b):
        for j in range(t):
            residual = latents[i, :, j].clone()
            for q, book in enumerate(codebooks):
                k = int(((book - residual) ** 2).sum(-1).argmin())
                codes[q, i, j] = k
                residual = residual - book[k]
    return codes


def rvq_negative_distance(latents, codebooks):  # right: argmax of minus the squared distance, broadcast
    x = latents.transpose(1, 2)
    residual, codes = x, []
    for book in codebooks:
        idx = (-((residual[:, :, None, :] - book) ** 2).sum(-1)).argmax(-1)
        codes.append(idx)
        residual = residual - book[idx]
    return torch.stack(codes)


@pytest.mark.parametrize("answer", [ucodec.rvq_encode, rvq_expansion, rvq_frame_loop, rvq_negative_distance])
def test_rvq_encode_right_variants_pass_and_keep_every_property(answer):
    _passes("6.5", answer)
    _, codebooks, x = phase6._quantizer()
    probes = phase6._rvq_probes(lambda v, books: answer(v.clone(), books), codebooks, x)
    assert all_hold(probes), [p.property for p in probes if not p.holds()]


# --- 6.6 residual vector quantisation: decoding -------------------------------------------------------------------
# The learner's function is f(codes (Q, B, T), codebooks (Q, K, D)) -> latents (B, D, T).

def _looked_up(codes, codebooks):  # (Q, B, T, D): each level's codewords
    return torch.stack([codebooks[q][c] for q, c in enumerate(codes)])


# mistakes the check lists by name
def decode_mean(codes, codebooks):
    return _looked_up(codes, codebooks).mean(0).transpose(1, 2)


def decode_first_level(codes, codebooks):
    return codebooks[0][codes[0]].transpose(1, 2)


def decode_last_level(codes, codebooks):  # `=` for `+=` in the loop
    for q, c in enumerate(codes):
        out = codebooks[q][c]
    return out.transpose(1, 2)


def decode_first_codebook(codes, codebooks):
    return sum(codebooks[0][c] for c in codes).transpose(1, 2)


def decode_frames_first(codes, codebooks):
    return _looked_up(codes, codebooks).sum(0)


# mistakes the check did not list before these tests
def decode_sum_over_batch(codes, codebooks):
    return _looked_up(codes, codebooks).sum(1)


def decode_sum_over_channels(codes, codebooks):
    return _looked_up(codes, codebooks).sum(-1)


def decode_reshaped(codes, codebooks):
    out = _looked_up(codes, codebooks).sum(0)
    b, t, d = out.shape
    return out.reshape(b, d, t)


def decode_one_level_short(codes, codebooks):
    return sum(codebooks[q][codes[q]] for q in range(len(codes) - 1)).transpose(1, 2)


def decode_subtracting(codes, codebooks):  # "the encoder subtracted them"
    out = codebooks[0][codes[0]]
    for q in range(1, len(codes)):
        out = out - codebooks[q][codes[q]]
    return out.transpose(1, 2)


def decode_halving(codes, codebooks):  # each level weighted by 1/2^q, as the codebooks shrink
    return sum(codebooks[q][c] * 0.5 ** q for q, c in enumerate(codes)).transpose(1, 2)


def decode_over_the_codebooks(codes, codebooks):  # loops over the codebooks, not over the levels sent
    return sum(codebooks[q][codes[q]] for q in range(len(codebooks))).transpose(1, 2)


def decode_partial_sums(codes, codebooks):  # every prefix's latent, stacked
    return _looked_up(codes, codebooks).cumsum(0).transpose(-1, -2)


@pytest.mark.parametrize("answer, phrase", [
    (decode_mean, "averaged the levels"),
    (decode_first_level, "only the first level's"),
    (decode_last_level, "only the last level's"),
    (decode_first_codebook, "looked up in the first codebook"),
    (decode_frames_first, "(B, T, D)"),
    (decode_sum_over_batch, "summed over the batch axis"),
    (decode_sum_over_channels, "summed over the channels"),
    (decode_reshaped, "reshaped (B, T, D) into (B, D, T)"),
    (decode_one_level_short, "the last level is missing"),
    (decode_subtracting, "add exactly its codewords"),
    (decode_halving, "add exactly its codewords"),
    (decode_over_the_codebooks, "loop over the levels that `codes` has"),
    (decode_partial_sums, "wrong shape"),
])
def test_rvq_decode_mistakes(answer, phrase):
    failed_with("6.6", answer, phrase)


def decode_einsum(codes, codebooks):  # right: one-hot codes and an einsum
    one_hot = F.one_hot(codes, codebooks.shape[1]).to(codebooks.dtype)  # (Q, B, T, K)
    return torch.einsum("qbtk,qkd->bdt", one_hot, codebooks[:len(codes)])


def decode_gather(codes, codebooks):  # right: torch.gather on the flattened frames
    q, b, t = codes.shape
    idx = codes.reshape(q, b * t, 1).expand(-1, -1, codebooks.shape[-1])
    return torch.gather(codebooks[:q], 1, idx).sum(0).reshape(b, t, -1).permute(0, 2, 1)


def decode_loop(codes, codebooks):  # right: a running sum, float64
    out = torch.zeros(codes.shape[1], codes.shape[2], codebooks.shape[-1], dtype=torch.float64)
    for q in range(codes.shape[0]):
        out += codebooks[q][codes[q]].double()
    return out.transpose(1, 2)


@pytest.mark.parametrize("answer", [ucodec.rvq_decode, decode_einsum, decode_gather, decode_loop])
def test_rvq_decode_right_variants_pass_and_keep_every_property(answer):
    _passes("6.6", answer)
    rvq, codebooks, x = phase6._quantizer()
    with torch.no_grad():
        codes = rvq.encode(x)
    probes = phase6._rvq_decode_probes(answer, codes, codebooks)
    assert all_hold(probes), [p.property for p in probes if not p.holds()]


# --- 6.2 greedy decoding ------------------------------------------------------------------------------------------
# The learner's function is f(model, input_features (B, n_mels, frames), max_new_tokens) -> list of lists of ids,
# judged against the zoo recogniser data/models/tiny-whisper-shapes.

def _greedy_tokens(model, input_features, max_new_tokens, step=None, stop="all", start=None):
    """The decoding loop with its parts swappable; returns the (B, 1 + steps) tensor of tokens, start included.
    ``step(model, encoded, tokens) -> next tokens (B,)``; ``stop``: "all" (right), "first" (when one row ends),
    "never"; a finished row is given end-of-text again."""
    cfg = model.config
    encoded = model.get_encoder()(input_features).last_hidden_state
    tokens = torch.full((len(input_features), 1), cfg.decoder_start_token_id if start is None else start)
    done = torch.zeros(len(input_features), dtype=torch.bool)
    for _ in range(max_new_tokens):
        if step is None:
            nxt = model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1].argmax(-1)
        else:
            nxt = step(model, encoded, tokens)
        nxt = torch.where(done, torch.full_like(nxt, cfg.eos_token_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_token_id
        if (stop == "all" and done.all()) or (stop == "first" and done.any()):
            break
    return tokens


def _cut(model, tokens):  # each row without its start token and cut before end-of-text: right
    eos = model.config.eos_token_id
    return [row[:row.index(eos)] if eos in row else row for row in tokens[:, 1:].tolist()]


# mistakes the check lists by name
@torch.no_grad()
def greedy_keeps_start(model, input_features, max_new_tokens=40):
    tokens = _greedy_tokens(model, input_features, max_new_tokens)
    return [[int(tokens[i, 0])] + row for i, row in enumerate(_cut(model, tokens))]


@torch.no_grad()
def greedy_keeps_end_of_text(model, input_features, max_new_tokens=40):
    eos = model.config.eos_token_id
    return [row[:row.index(eos) + 1] for row in _greedy_tokens(model, input_features, max_new_tokens)[:, 1:].tolist()]


@torch.no_grad()
def greedy_never_cut(model, input_features, max_new_tokens=40):  # the loop stops, the rows are not cut
    return _greedy_tokens(model, input_features, max_new_tokens)[:, 1:].tolist()


@torch.no_grad()
def greedy_cut_at_last_end_of_text(model, input_features, max_new_tokens=40):
    rows = _greedy_tokens(model, input_features, max_new_tokens)[:, 1:].tolist()
    eos = model.config.eos_token_id
    return [row[:len(row) - row[::-1].index(eos) - 1] if eos in row else row for row in rows]


@torch.no_grad()
def greedy_never_stops(model, input_features, max_new_tokens=40):  # no end-of-text test at all: max_new_tokens each
    cfg = model.config
    encoded = model.get_encoder()(input_features).last_hidden_state
    tokens = torch.full((len(input_features), 1), cfg.decoder_start_token_id)
    for _ in range(max_new_tokens):
        nxt = model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1].argmax(-1)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    return tokens[:, 1:].tolist()


@torch.no_grad()
def greedy_stops_with_the_first_row(model, input_features, max_new_tokens=40):
    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, stop="first"))


@torch.no_grad()
def greedy_start_token_only(model, input_features, max_new_tokens=40):  # the previous tokens never fed back
    start = torch.full((len(input_features), 1), model.config.decoder_start_token_id)

    def step(model, encoded, tokens):
        return model(encoder_outputs=(encoded,), decoder_input_ids=start).logits[:, -1].argmax(-1)

    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, step=step))


@torch.no_grad()
def greedy_first_position(model, input_features, max_new_tokens=40):  # logits[:, 0]: always the first prediction
    def step(model, encoded, tokens):
        return model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, 0].argmax(-1)

    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, step=step))


@torch.no_grad()
def greedy_tensor(model, input_features, max_new_tokens=40):
    return _greedy_tokens(model, input_features, max_new_tokens)[:, 1:]


# mistakes the check did not list before these tests
@torch.no_grad()
def greedy_sampled(model, input_features, max_new_tokens=40):  # multinomial sampling from the softmax
    g = torch.Generator().manual_seed(0)

    def step(model, encoded, tokens):
        logits = model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1]
        return torch.multinomial((logits / 1.5).softmax(-1), 1, generator=g)[:, 0]

    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, step=step))


@torch.no_grad()
def greedy_generate_sampled(model, input_features, max_new_tokens=40):  # generate() with do_sample=True
    torch.manual_seed(1)
    out = model.generate(input_features, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.5, top_k=0)
    special = {model.config.decoder_start_token_id, model.config.eos_token_id, model.config.pad_token_id}
    return [[t for t in row if t not in special] for row in out.tolist()]


@torch.no_grad()
def greedy_from_end_of_text(model, input_features, max_new_tokens=40):  # starts from the wrong special token
    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, start=model.config.eos_token_id))


@torch.no_grad()
def greedy_decoded_text(model, input_features, max_new_tokens=40):  # transcripts instead of token ids
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(asr.WHISPER_DIR)
    return [asr.words_only(tokenizer, row) for row in _cut(model, _greedy_tokens(model, input_features,
                                                                                  max_new_tokens))]


@torch.no_grad()
def greedy_first_utterance_only(model, input_features, max_new_tokens=40):  # one row, not a list of rows
    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens))[0]


@torch.no_grad()
def greedy_softmax_over_batch(model, input_features, max_new_tokens=40):  # the argmax over the batch axis
    def step(model, encoded, tokens):
        logits = model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1]
        return logits.softmax(0).argmax(-1)

    return _cut(model, _greedy_tokens(model, input_features, max_new_tokens, step=step))


@pytest.mark.parametrize("answer, phrase", [
    (greedy_keeps_start, "begins with the decoder start token"),
    (greedy_keeps_end_of_text, "end-of-text token is still there"),
    (greedy_never_cut, "goes on after its end-of-text"),
    (greedy_cut_at_last_end_of_text, "goes on after its end-of-text"),
    (greedy_never_stops, "goes on after its end-of-text"),
    (greedy_stops_with_the_first_row, "stop too early"),
    (greedy_start_token_only, "repeats one token"),
    (greedy_first_position, "repeats one token"),
    (greedy_tensor, "one list of token ids per utterance"),
    (greedy_sampled, "no sampling"),
    (greedy_generate_sampled, "no sampling"),
    (greedy_from_end_of_text, "decoder_start_token_id"),
    (greedy_decoded_text, "not transcripts"),
    (greedy_first_utterance_only, "one list of token ids per utterance"),
    (greedy_softmax_over_batch, "for each row on its own"),
])
def test_greedy_mistakes(answer, phrase):
    failed_with("6.2", answer, phrase)


@torch.no_grad()
def greedy_generate(model, input_features, max_new_tokens=40):  # right: generate() without sampling, cleaned up
    cfg = model.config
    out = model.generate(input_features, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    special = {cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id}
    return [[t for t in row if t not in special] for row in out.tolist()]


@torch.no_grad()
def greedy_cached(model, input_features, max_new_tokens=40):  # right: one new token a step, with the KV cache
    cfg = model.config
    encoded = model.get_encoder()(input_features).last_hidden_state
    nxt = torch.full((len(input_features), 1), cfg.decoder_start_token_id)
    past, rows = None, [[] for _ in input_features]
    done = torch.zeros(len(input_features), dtype=torch.bool)
    for _ in range(max_new_tokens):
        out = model(encoder_outputs=(encoded,), decoder_input_ids=nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)  # (B, 1)
        for i, t in enumerate(nxt[:, 0].tolist()):
            if not done[i] and t != cfg.eos_token_id:
                rows[i].append(t)
        done |= nxt[:, 0] == cfg.eos_token_id
        if done.all():
            break
    return rows


@torch.no_grad()
def greedy_one_at_a_time(model, input_features, max_new_tokens=40):  # right: each utterance alone, re-encoded
    out = []
    for feats in input_features:
        tokens = [model.config.decoder_start_token_id]
        for _ in range(max_new_tokens):
            logits = model(input_features=feats[None], decoder_input_ids=torch.tensor([tokens])).logits
            t = int(logits[0, -1].softmax(-1).argmax())
            if t == model.config.eos_token_id:
                break
            tokens.append(t)
        out.append(tokens[1:])
    return out


@pytest.mark.parametrize("answer", [asr.greedy_decode, greedy_generate, greedy_cached, greedy_one_at_a_time])
def test_greedy_right_variants_pass(answer):
    _passes("6.2", answer)


def test_the_reference_is_greedy_under_teacher_forcing():
    """The check's last test before the fallback re-reads each row token by token: the reference's rows must be the
    argmax at every step after the decoder start token."""
    model, feats = phase6._zoo_whisper()
    rows = asr.greedy_decode(model, feats, 40)
    assert rows == phase6._generated(model, feats, 40)
    assert phase6._first_non_greedy(model, feats, rows, model.config.decoder_start_token_id) is None


@torch.no_grad()
def greedy_stops_with_the_first_row_uncut(model, input_features, max_new_tokens=40):  # two mistakes at once
    return _greedy_tokens(model, input_features, max_new_tokens, stop="first")[:, 1:].tolist()


def test_greedy_rows_that_end_in_the_wrong_places_are_told_which():
    """Some rows too short, the one that finished with its end-of-text still on: no rule of the check's list fits,
    but every token is the model's argmax, so the hint can say which row ends where it should not."""
    failed_with("6.2", greedy_stops_with_the_first_row_uncut, "utterance 1 stops after")


# --- 6.7 frame stacking ------------------------------------------------------------------------------------------
# The learner's function is f(states (B, T, D), k) -> (B, T // k, k·D).

def stack_mean(states, k):  # averages the k frames
    b, t, d = states.shape
    return states[:, : t // k * k].reshape(b, t // k, k, d).mean(2)


def stack_interleaved(states, k):  # channel-major inside a token
    b, t, d = states.shape
    return states[:, : t // k * k].reshape(b, t // k, k, d).transpose(2, 3).reshape(b, t // k, k * d)


def stack_unfold(states, k):  # Tensor.unfold puts the window last: interleaved too
    return states.unfold(1, k, k).flatten(2)


def stack_padded(states, k):  # pads the remainder into an extra token
    b, t, d = states.shape
    n = -(-t // k)
    return F.pad(states, (0, 0, 0, n * k - t)).reshape(b, n, k * d)


def stack_strided(states, k):  # every n-th frame instead of neighbours
    b, t, d = states.shape
    n = t // k
    return states[:, : n * k].reshape(b, k, n, d).transpose(1, 2).reshape(b, n, k * d)


def stack_nothing(states, k):
    b, t, d = states.shape
    return states[:, : t // k * k]


def stack_reversed_frames(states, k):  # the k frames of a token in reverse order
    b, t, d = states.shape
    return states[:, : t // k * k].reshape(b, t // k, k, d).flip(2).reshape(b, t // k, k * d)


def stack_across_batch(states, k):  # time-major reshape without transposing back: clips mix
    b, t, d = states.shape
    return states[:, : t // k * k].transpose(0, 1).reshape(b, t // k, k * d)


def stack_from_the_end(states, k):  # drops the leftover frames at the start instead of the end
    b, t, d = states.shape
    return states[:, t - t // k * k:].reshape(b, t // k, k * d)


@pytest.mark.parametrize("answer, phrase", [
    (stack_mean, "averaged"),
    (stack_interleaved, "interleaved"),
    (stack_unfold, "interleaved"),
    (stack_padded, "padded"),
    (stack_strided, "every n-th frame"),
    (stack_nothing, "not stacked"),
    (stack_reversed_frames, "time order"),
    (stack_across_batch, "other clips"),
    (stack_from_the_end, "frames 5 to 8"),
])
def test_stack_mistakes(answer, phrase):
    failed_with("6.7", answer, phrase)


def stack_loop(states, k):  # right: a loop over blocks
    b, t, d = states.shape
    return torch.stack([torch.cat([states[:, j * k + i] for i in range(k)], -1) for j in range(t // k)], 1)


def stack_unfold_transposed(states, k):  # right: unfold, then put the window before the channels
    return states.unfold(1, k, k).transpose(2, 3).flatten(2)


@pytest.mark.parametrize("answer", [stack_loop, stack_unfold_transposed])
def test_stack_right_variants_pass(answer):
    _passes("6.7", answer)
    assert all_hold(phase6._stack_probes(answer, phase6._stack_inputs(), 4))


def test_stack_probes_hold_for_the_reference():
    assert all_hold(phase6._stack_probes(reference("6.7"), phase6._stack_inputs(), 4))


# --- 6.8 pooling video tokens -------------------------------------------------------------------------------------
# The learner's function is f(tokens (B, T, N, C), time, space) -> (B, T // time, N // space², C).

def _grid(tokens, space):
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    return tokens.reshape(b, t, side // space, space, side // space, space, c), side


def pool_time_only(tokens, time, space):
    b, t, n, c = tokens.shape
    return tokens.reshape(b, t // time, time, n, c).mean(2)


def pool_space_only(tokens, time, space):
    g, side = _grid(tokens, space)
    return g.mean(dim=(3, 5)).flatten(2, 3)


def pool_subsample_time(tokens, time, space):  # every time-th frame, then space pooling
    g, side = _grid(tokens[:, ::time], space)
    return g.mean(dim=(3, 5)).flatten(2, 3)


def pool_max(tokens, time, space):
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(b, t // time, time, side // space, space, side // space, space, c)
    return x.amax(dim=(2, 4, 6)).reshape(b, t // time, -1, c)


def pool_sum(tokens, time, space):
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(b, t // time, time, side // space, space, side // space, space, c)
    return x.sum(dim=(2, 4, 6)).reshape(b, t // time, -1, c)


def pool_row_strips(tokens, time, space):  # s² consecutive tokens of the flat list
    b, t, n, c = tokens.shape
    return tokens.reshape(b, t // time, time, n // space ** 2, space ** 2, c).mean(dim=(2, 4))


def pool_strided_time(tokens, time, space):  # groups frames (0, 4), (1, 5), ...
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(b, time, t // time, side // space, space, side // space, space, c)
    return x.mean(dim=(1, 4, 6)).reshape(b, t // time, -1, c)


def pool_grid_kept(tokens, time, space):  # forgets to flatten the pooled grid
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(b, t // time, time, side // space, space, side // space, space, c)
    return x.mean(dim=(2, 4, 6))


def pool_whole_clip(tokens, time, space):
    g, side = _grid(tokens.mean(1, keepdim=True), space)
    return g.mean(dim=(3, 5)).flatten(2, 3)


def pool_avgpool2d_wrong_layout(tokens, time, space):  # avg_pool2d on (B·T', N, C) as if N, C were the image
    b, t, n, c = tokens.shape
    x = tokens.reshape(b, t // time, time, n, c).mean(2).reshape(-1, 1, n, c)
    return F.avg_pool2d(x, (space * space, 1)).reshape(b, t // time, n // space ** 2, c)


def pool_mixing_clips(tokens, time, space):  # reshape as if time came first, without transposing: clips mix
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(t // time, time, b, side // space, space, side // space, space, c)
    return x.mean(dim=(1, 4, 6)).reshape(t // time, b, -1, c).transpose(0, 1)


def pool_ignores_arguments(tokens, time, space):  # hard-codes time=2, space=1
    b, t, n, c = tokens.shape
    return tokens.reshape(b, t // 2, 2, n, c).mean(2)


@pytest.mark.parametrize("answer, phrase", [
    (pool_time_only, "only time was pooled"),
    (pool_space_only, "only space was pooled"),
    (pool_subsample_time, "kept one frame of each group"),
    (pool_max, "maximum"),
    (pool_sum, "summed"),
    (pool_row_strips, "strip of one row"),
    (pool_avgpool2d_wrong_layout, "strip of one row"),
    (pool_strided_time, "strided"),
    (pool_grid_kept, "flatten it back"),
    (pool_whole_clip, "collapsed to one frame"),
    (pool_mixing_clips, "other clips"),
    (pool_ignores_arguments, "only time was pooled"),
])
def test_pool_mistakes(answer, phrase):
    failed_with("6.8", answer, phrase)


def pool_loops(tokens, time, space):  # right: loops over groups and windows
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    out = []
    for g in range(t // time):
        frame = tokens[:, g * time:(g + 1) * time].mean(1).reshape(b, side, side, c)
        out.append(torch.stack([frame[:, r:r + space, q:q + space].mean(dim=(1, 2))
                                for r in range(0, side, space) for q in range(0, side, space)], 1))
    return torch.stack(out, 1)


def pool_with_avg_pool3d(tokens, time, space):  # right: F.avg_pool3d over (T, rows, columns)
    b, t, n, c = tokens.shape
    side = int(n ** 0.5)
    x = tokens.reshape(b, t, side, side, c).permute(0, 4, 1, 2, 3)
    y = F.avg_pool3d(x, (time, space, space))
    return y.permute(0, 2, 3, 4, 1).reshape(b, t // time, -1, c)


@pytest.mark.parametrize("answer", [pool_loops, pool_with_avg_pool3d])
def test_pool_right_variants_pass(answer):
    _passes("6.8", answer)
    assert all_hold(phase6._pool_probes(answer, phase6._video_tokens(), 2, 2))


def test_pool_probes_hold_for_the_reference():
    assert all_hold(phase6._pool_probes(reference("6.8"), phase6._video_tokens(), 2, 2))


# --- 6.9 the sampling distribution ------------------------------------------------------------------------------
# The learner's function is f(logits (B, C), temperature, top_k) -> probabilities (B, C).

def _top(z, k):
    return z.masked_fill(z < z.topk(k, dim=-1).values[:, -1:], float("-inf"))


def dist_times_temperature(logits, temperature, top_k):
    return _top(logits * temperature, top_k).softmax(-1)


def dist_no_temperature(logits, temperature, top_k):
    return _top(logits, top_k).softmax(-1)


def dist_no_top_k(logits, temperature, top_k):
    return (logits / temperature).softmax(-1)


def dist_smallest(logits, temperature, top_k):  # topk(largest=False)
    z = logits / temperature
    kth = z.topk(top_k, dim=-1, largest=False).values[:, -1:]
    return z.masked_fill(z > kth, float("-inf")).softmax(-1)


def dist_not_renormalised(logits, temperature, top_k):
    p = (logits / temperature).softmax(-1)
    kth = p.topk(top_k, dim=-1).values[:, -1:]
    return torch.where(p >= kth, p, torch.zeros_like(p))


def dist_masked_with_zero(logits, temperature, top_k):
    z = logits / temperature
    return z.masked_fill(z < z.topk(top_k, dim=-1).values[:, -1:], 0.0).softmax(-1)


def dist_strict(logits, temperature, top_k):  # <= kth removes the k-th too
    z = logits / temperature
    return z.masked_fill(z <= z.topk(top_k, dim=-1).values[:, -1:], float("-inf")).softmax(-1)


def dist_index_k(logits, temperature, top_k):  # values[:, k] is the (k+1)-th largest
    z = logits / temperature
    return z.masked_fill(z < z.sort(-1, descending=True).values[:, top_k:top_k + 1], float("-inf")).softmax(-1)


def dist_softmax_dim0(logits, temperature, top_k):
    return _top(logits / temperature, top_k).softmax(0)


def dist_temperature_on_probs(logits, temperature, top_k):
    return _top(logits, top_k).softmax(-1) / temperature


def dist_returns_logits(logits, temperature, top_k):
    return _top(logits / temperature, top_k)


def dist_log_probs(logits, temperature, top_k):
    return F.log_softmax(_top(logits / temperature, top_k), -1)


def dist_batch_kth(logits, temperature, top_k):
    z = logits / temperature
    return z.masked_fill(z < z.flatten().topk(top_k).values[-1], float("-inf")).softmax(-1)


def dist_in_place(logits, temperature, top_k):  # right numbers, but the caller's logits are overwritten
    logits /= temperature
    logits.masked_fill_(logits < logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:], float("-inf"))
    return logits.softmax(-1)


def dist_topk_raises(logits, temperature, top_k):  # right at the check's k, but torch.topk fails for k > C
    z = logits / temperature
    values, _ = torch.topk(z, top_k)
    return z.masked_fill(z < values[:, -1:], float("-inf")).softmax(-1)


def dist_probability_top_p(logits, temperature, top_k):  # an unlisted mistake: keeps 90 % of the mass (top-p)
    p = (logits / temperature).softmax(-1)
    s, order = p.sort(-1, descending=True)
    keep = (s.cumsum(-1) - s) < 0.9
    mask = torch.zeros_like(p, dtype=torch.bool).scatter(1, order, keep)
    z = (logits / temperature).masked_fill(~mask, float("-inf"))
    return z.softmax(-1)


@pytest.mark.parametrize("answer, phrase", [
    (dist_times_temperature, "multiplied by the temperature"),
    (dist_no_temperature, "temperature is ignored"),
    (dist_no_top_k, "top-k is ignored"),
    (dist_smallest, "*smallest*"),
    (dist_not_renormalised, "not renormalised"),
    (dist_masked_with_zero, "instead of -inf"),
    (dist_strict, "one class too few"),
    (dist_index_k, "one class too many"),
    (dist_softmax_dim0, "batch axis"),
    (dist_temperature_on_probs, "applied to the probabilities"),
    (dist_returns_logits, "returned the logits"),
    (dist_log_probs, "log-probabilities"),
    (dist_batch_kth, "whole batch"),
    (dist_in_place, "changed the logits it was given"),
    (dist_topk_raises, "should keep them all"),
    (dist_probability_top_p, "exactly the 3 classes"),
])
def test_sampling_mistakes(answer, phrase):
    failed_with("6.9", answer, phrase)


def dist_warpers(logits, temperature, top_k):  # right: transformers' own processors
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper

    z = TopKLogitsWarper(top_k)(None, TemperatureLogitsWarper(temperature)(None, logits))
    return z.softmax(-1)


def dist_scatter(logits, temperature, top_k):  # right: keep the top-k by index, renormalise the probabilities
    p = (logits / temperature).softmax(-1)
    values, index = p.topk(min(top_k, p.shape[-1]), dim=-1)
    out = torch.zeros_like(p).scatter(-1, index, values)
    return out / out.sum(-1, keepdim=True)


def dist_loops(logits, temperature, top_k):  # right: row by row, sorted
    rows = []
    for row in logits:
        z = row / temperature
        kth = z.sort(descending=True).values[min(top_k, len(z)) - 1]
        rows.append(torch.where(z >= kth, z, torch.tensor(float("-inf"))).softmax(0))
    return torch.stack(rows)


@pytest.mark.parametrize("answer", [dist_warpers, dist_scatter, dist_loops])
def test_sampling_right_variants_pass(answer):
    _passes("6.9", answer)
    assert all_hold(phase6._sampling_probes(answer, phase6._logits(), 0.7, 3))


def test_sampling_probes_hold_for_the_reference():
    assert all_hold(phase6._sampling_probes(reference("6.9"), phase6._logits(), 0.7, 3))


def test_the_reference_agrees_with_transformers_warpers():
    x = phase6._logits()
    for temperature, top_k in [(0.7, 3), (1.0, 10), (1.5, 1), (0.3, 20)]:
        assert torch.allclose(reference("6.9")(x, temperature, top_k), phase6._warped(x, temperature, top_k),
                              atol=1e-6)
