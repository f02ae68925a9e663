"""Checks for the Phase 6 exercises (audio, speech and video).

Oracles: ``transformers``' ``WhisperFeatureExtractor`` (6.1), ``model.generate`` of the zoo recogniser (6.2),
``jiwer`` (6.3), best-path decoding written out per frame (6.4), the residual vector quantiser of
``transformers``' ``EncodecModel`` with the same codebooks (6.5, 6.6), and ``transformers``'
``TemperatureLogitsWarper`` and ``TopKLogitsWarper`` followed by a softmax (6.9).

6.1 Whisper's log-mel input, 6.2 greedy decoding, 6.3 word error rate, 6.4 greedy CTC decoding, 6.5 residual
vector quantisation: encoding, 6.6 residual vector quantisation: decoding, 6.7 frame stacking for a speech LLM,
6.8 pooling video tokens, 6.9 the sampling distribution (temperature and top-k).

Besides the known mistakes, each check probes properties every right answer has: Whisper's features ignore what
lies past the window and zero padding at its end, span exactly 2 in a clip that ends in silence (the floor 8 below
the clip's own maximum), shift by exactly 0.5 when the audio gets 10× louder and keep each clip of a batch to itself;
greedy decoding appends, at every step, the model's most likely token after the ones before it (re-read by teacher
forcing) and gives each utterance the same words alone or in a batch; WER is 0 for a perfect transcript and 1 for an
empty one, counts a substitution or an inserted word as one error over the *reference's* length, takes word order
and the words as written into account, pools the errors of the corpus and is not rounded; CTC decoding keeps two
equal words that a blank separates, tokens that come back, and the first and last frames; RVQ's first level is the
nearest codeword, each later level codes what *all* the earlier ones left, the latents given are not modified, and
decoding adds one codeword per level, for as many levels as the codes have.
"""
from __future__ import annotations

import functools
import numbers
from collections.abc import Callable

import torch

from .. import asr
from .. import codec as ucodec
from .. import metrics as umetrics
from .. import speechlm as uspeechlm
from .. import tts as utts
from .. import videolm as uvideolm
from . import CheckFailed, Mismatch, register
from .oracles import (
    Probe,
    batch_independent,
    call,
    close,
    describe,
    diagnose,
    never_raises,
    require_properties,
    require_tensor,
    sums_to_one,
    unchanged_when,
)

# References captured at import: a notebook rebinds names to a learner's passing version, and later checks must
# still compare with the course's answer.
_ctc, _greedy, _sampling = asr.ctc_greedy_decode, asr.greedy_decode, utts.sampling_distribution


def _tensor(out) -> torch.Tensor:
    """A probe's answer must be a tensor; anything else makes the probe raise (and be skipped)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"not a tensor: {type(out).__name__}")
    return out


# --- 6.1 Whisper's input ----------------------------------------------------------------------------------------

def _clips(n_samples: int) -> torch.Tensor:
    """Three test waveforms (3, 24000) at 16 kHz: a chirp with noise, a quiet tone that stops early, and noise."""
    g = torch.Generator().manual_seed(61)
    t = torch.arange(24000) / 16000
    chirp = torch.sin(2 * torch.pi * (200 + 900 * t) * t) + 0.05 * torch.randn(24000, generator=g)
    tone = 0.01 * torch.sin(2 * torch.pi * 660 * t) * (t < 0.8)
    noise = 0.3 * torch.randn(24000, generator=g)
    return torch.stack([chirp, tone, noise]).float()


@functools.lru_cache(maxsize=1)
def _extractor():
    return asr.feature_extractor(window_s=2, n_mels=40)  # a 2-second, 40-band window: not the notebook's sizes


def _whisper_oracle(waves: torch.Tensor) -> torch.Tensor:
    fe = _extractor()
    return fe([w.numpy() for w in waves], sampling_rate=16000, return_tensors="pt").input_features.float()


@register("6.1", "Whisper's log-mel input", asr.log_mel_features, hints=(
    "Seven steps, in the statement's order: pad or cut, STFT power, drop the last frame, mel bands, log10 with a "
    "floor, the per-clip dynamic-range clamp, then the affine scaling. Print the shape after each one.",
    "Section 2, 'Whisper's front end': it is the mel spectrogram of Phase 2 (Exercise 2.5) with Whisper's "
    "conventions: a fixed window (pad with zeros at the end, cut what is longer), log base 10, values below the "
    "clip's own maximum minus 8 raised to it (80 dB of range), and (x + 4) / 4 so the values sit around [-1, 1].",
    "Worked sub-step: for waves (B, samples), `waves = F.pad(waves[:, :n_samples], (0, n_samples - ...))`; "
    "`torch.stft(waves, 400, 160, window=torch.hann_window(400), return_complex=True)` is (B, 201, n/160 + 1); "
    "`[..., :-1]` keeps n/160 frames; `mel_filters.T @ power` is (B, n_mels, frames); the clamp's maximum is per "
    "clip: `log_spec.amax(dim=(1, 2), keepdim=True)`.",
))
def _check_whisper_features(fn) -> str:
    fe = _extractor()
    n_samples, mel = fe.n_samples, torch.from_numpy(fe.mel_filters).float()
    waves = _clips(n_samples)
    expected = _whisper_oracle(waves)
    got = call(fn, waves, mel, n_samples)
    require_tensor(got, "your function")
    probes = _whisper_probes(fn, waves, mel, n_samples)
    if close(got, expected, atol=1e-4):  # float64 arithmetic differs from the extractor's by ~3e-5
        require_properties(probes)  # the clips are shorter than the window: a longer one must be cut
        return f"equal to WhisperFeatureExtractor on a batch of 3 clips ({tuple(got.shape)})."
    power = _power(waves, n_samples)
    stft = torch.stft(_pad(waves, n_samples), 400, 160, window=torch.hann_window(400), return_complex=True)[..., :-1]
    mels = mel.T @ power
    log10 = torch.clamp(mels, min=1e-10).log10()
    clamped = torch.maximum(log10, log10.amax(dim=(1, 2), keepdim=True) - 8.0)
    ln = torch.clamp(mels, min=1e-10).log()
    ln_clamped = torch.maximum(ln, ln.amax(dim=(1, 2), keepdim=True) - 8.0)
    batch_max = torch.maximum(log10, log10.max() - 8.0)
    log_eps = torch.log10(mels + 1e-10)
    magnitude = torch.clamp(mel.T @ power.sqrt(), min=1e-10).log10()
    magnitude = torch.maximum(magnitude, magnitude.amax(dim=(1, 2), keepdim=True) - 8.0)
    mistakes = {
        "these are natural logarithms: Whisper takes log10 of the mel power (torch.log10), then clamps and scales.":
            (ln_clamped + 4.0) / 4.0,
        "the dynamic-range clamp is missing: raise every value below the clip's maximum minus 8 to that level "
        "(torch.maximum(log_spec, log_spec.amax(...) - 8.0)) before scaling.": (log10 + 4.0) / 4.0,
        "the clamp uses one maximum for the whole batch: Whisper takes each clip's own maximum "
        "(amax over the mel and time axes, keepdim=True), so a loud clip does not change a quiet one's features.":
            (batch_max + 4.0) / 4.0,
        "the clamp's maximum is taken per frame (over the mel axis only): Whisper takes one maximum per clip, over "
        "the mel AND time axes (amax(dim=(1, 2), keepdim=True)), so a quiet frame keeps its distance from the loud "
        "ones.": (torch.maximum(log10, log10.amax(dim=1, keepdim=True) - 8.0) + 4.0) / 4.0,
        "the clamp's maximum is taken per mel band (over the time axis only): Whisper takes one maximum per clip, "
        "over the mel AND time axes (amax(dim=(1, 2), keepdim=True)).":
            (torch.maximum(log10, log10.amax(dim=2, keepdim=True) - 8.0) + 4.0) / 4.0,
        "the last step is missing: scale with (x + 4) / 4.": clamped,
        "the scaling is (x - 4) / 4 or x / 4 + 4: Whisper's is (x + 4) / 4.": (clamped - 4.0) / 4.0,
        "the scaling is x / 4 + 4: Whisper's is (x + 4) / 4.": clamped / 4.0 + 4.0,
        "you standardised each clip (mean and standard deviation): Whisper's scaling is the fixed (x + 4) / 4, "
        "so that loudness still shows in the features.":
            (clamped - clamped.mean((1, 2), keepdim=True)) / clamped.std((1, 2), keepdim=True),
        "you used the magnitude |STFT|: Whisper pools the power |STFT|² into mel bands.": (magnitude + 4.0) / 4.0,
        "you added 1e-10 before the log (log10(mel + 1e-10)): Whisper *clamps* at 1e-10 (torch.clamp(mel, "
        "min=1e-10)), which differs in the silence of a quiet clip, where the mel power is 0.":
            (torch.maximum(log_eps, log_eps.amax(dim=(1, 2), keepdim=True) - 8.0) + 4.0) / 4.0,
        "the STFT has no window (torch.stft's default is a rectangular one): pass window=torch.hann_window(400).":
            _whisper_scaled(mel.T @ _power(waves, n_samples, window=torch.ones(400))),
        "the STFT's window is the symmetric Hann window: Whisper's is the periodic one, torch.hann_window(400) "
        "(periodic=True, the default).":
            _whisper_scaled(mel.T @ _power(waves, n_samples, window=torch.hann_window(400, periodic=False))),
        "you dropped the STFT's *first* frame: drop the last one (`[..., :-1]`); the first frame is centred on "
        "the first sample.": _whisper_scaled(mel.T @ _power(waves, n_samples, drop=0)),
        f"there is one frame too many: drop the STFT's last frame (`[..., :-1]`), so {n_samples} samples give "
        f"{n_samples // 160} frames.": _whisper_scaled(mel.T @ _power(waves, n_samples, drop=None)),
        "the power is |STFT|² = real² + imaginary²: (stft ** 2).real is real² - imaginary². Take stft.abs() ** 2.":
            _whisper_scaled(mel.T @ (stft ** 2).real),
        "the power is |STFT|² = real² + imaginary²: yours keeps the real part only. Take stft.abs() ** 2.":
            _whisper_scaled(mel.T @ stft.real ** 2),
        "the mel filters were reshaped, not transposed: mel_filters is (n_freqs, n_mels); mel_filters.T (or "
        "torch.einsum) pools the frequency bins into bands, while a reshape to (n_mels, n_freqs) scrambles them.":
            _whisper_scaled(mel.reshape(mel.shape[1], mel.shape[0]) @ power),
        "the layout is (B, frames, n_mels): Whisper's encoder reads (B, n_mels, frames), the mel bands on axis 1 "
        "(mel_filters.T @ power, not power.mT @ mel_filters).": expected.transpose(1, 2),
    }
    if isinstance(got, torch.Tensor) and got.shape[:2] == expected.shape[:2] and got.shape[2] != expected.shape[2]:
        if got.shape[2] == waves.shape[1] // 160:
            raise CheckFailed(f"the window is not fixed: pad with zeros (or cut) every clip to n_samples = {n_samples} "
                              f"first, so the output always has {n_samples // 160} frames (your answer followed the "
                              f"clips' own length: {got.shape[2]}).")
        if got.shape[2] in ((n_samples - 400) // 160, (n_samples - 400) // 160 + 1):
            raise CheckFailed(f"{got.shape[2]} frames instead of {n_samples // 160}: the STFT's frames are centred "
                              "(torch.stft's center=True, the default, pads 200 samples by reflection at each end); "
                              "then drop the last frame.")
    diagnose(got, expected, mistakes, "your features differ from WhisperFeatureExtractor's.", probes=probes)
    return f"equal to WhisperFeatureExtractor on a batch of 3 clips ({tuple(got.shape)})."


def _whisper_probes(fn, waves: torch.Tensor, mel: torch.Tensor, n_samples: int) -> list[Probe]:
    """The properties of every right answer to 6.1, on clips (B, samples) shorter than the window ``n_samples``
    (each then ends in silence)."""
    run = lambda w: _tensor(fn(w, mel, n_samples)).float()  # noqa: E731

    def spans_two() -> bool:
        out = run(waves)
        return torch.allclose(out.amax(dim=(1, 2)) - out.amin(dim=(1, 2)), torch.full((len(waves),), 2.0), atol=1e-3)

    g = torch.Generator().manual_seed(62)
    longer = torch.cat([waves, 0.3 * torch.randn(len(waves), n_samples + 5000 - waves.shape[1], generator=g)], 1)

    return [
        Probe("zero padding", unchanged_when(run, waves[:, :16000], lambda w: torch.cat([w, torch.zeros(len(w), 8000)],
                                                                                        1), atol=1e-4),
              "a clip and the same clip followed by silence should give the same features: pad with zeros at the end "
              "(F.pad(waves, (0, missing))) — not at the front, and not by repeating or reflecting the audio."),
        Probe("window", unchanged_when(run, longer, lambda w: w[:, :n_samples], atol=1e-4),
              f"samples after the first n_samples = {n_samples} changed your features: cut every clip to the window "
              "before the STFT."),
        Probe("range", spans_two,
              "a clip that ends in silence should span exactly 2 after the scaling: its floor is its own maximum "
              "minus 8 in log10 units (80 dB: minus 8, not minus 10 or minus 80), over the whole clip (mel and time "
              "axes), and (x + 4) / 4 turns those 8 into 2. Check the floor, the axes of its maximum and the "
              "scaling."),
        Probe("gain", lambda: close(run(10 * waves), run(waves) + 0.5, atol=1e-3),
              "making the audio 10× louder (+20 dB, the power ×100) should add exactly 2 to every log10 value and so "
              "exactly 0.5 after the scaling (x + 4) / 4; yours changed otherwise. Check the base of the logarithm, "
              "the power (not magnitude) and the scaling."),
        Probe("clips apart", batch_independent(run, waves, split=1, atol=1e-4),
              "the features of the first clip change when other clips are in the batch: take the clamp's maximum per "
              "clip (amax over the mel and time axes with keepdim=True), not over the whole batch."),
    ]


def _pad(waves: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Cut or zero-pad (B, samples) to n_samples."""
    waves = waves[:, :n_samples]
    return torch.nn.functional.pad(waves, (0, n_samples - waves.shape[1]))


def _power(waves: torch.Tensor, n_samples: int, window: torch.Tensor | None = None, drop: int | None = -1
           ) -> torch.Tensor:
    """|STFT|² of the clips cut or padded to n_samples, one frame dropped (the last; ``drop=0``: the first; None:
    none)."""
    window = torch.hann_window(400) if window is None else window
    power = torch.stft(_pad(waves, n_samples), 400, 160, window=window, return_complex=True).abs() ** 2
    return power if drop is None else power[..., :-1] if drop == -1 else power[..., 1:]


def _whisper_scaled(mels: torch.Tensor) -> torch.Tensor:
    """log10 with the 1e-10 floor, the per-clip clamp at the maximum minus 8, (x + 4) / 4."""
    log10 = torch.clamp(mels, min=1e-10).log10()
    return (torch.maximum(log10, log10.amax(dim=(1, 2), keepdim=True) - 8.0) + 4.0) / 4.0


# --- 6.2 greedy decoding ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _zoo_whisper():
    """The zoo recogniser and the features of six test utterances (short and long, both held-out voices)."""
    from ..world import speech

    model, extractor, _ = asr.load_whisper()
    test = speech.load_phrases("test")
    pick = [0, 3, 31, 40, 61, 79]  # six different sentences, short and long, both voices
    return model, asr.features([test.waveforms[i] for i in pick], extractor)


def _as_rows(out, n: int) -> list[list[int]]:
    """The answer as a list of n lists of ints, or CheckFailed saying what it returned instead."""
    if isinstance(out, torch.Tensor):
        raise CheckFailed(f"return a list with one list of token ids per utterance (`.tolist()` and cut each row at "
                          f"end-of-text); your answer returned {describe(out)}.")
    if isinstance(out, (list, tuple)) and out and all(isinstance(r, str) for r in out):
        raise CheckFailed("return the token ids, one list of ints per utterance, not transcripts: decoding them "
                          "into words is the tokenizer's job, afterwards.")
    if not isinstance(out, (list, tuple)) or len(out) != n or not all(
            isinstance(r, (list, tuple)) or (isinstance(r, torch.Tensor) and r.dim() == 1) for r in out):
        raise CheckFailed(f"return a list with one list of token ids per utterance ({n} here); your answer returned "
                          f"{describe(out)}.")
    try:
        return [[int(t) for t in row] for row in out]
    except (TypeError, ValueError):
        raise CheckFailed("each utterance's tokens should be ints (token ids).") from None


@register("6.2", "greedy decoding", asr.greedy_decode, hints=(
    "Encode once, then loop: the decoder reads the tokens so far and its last position's logits give the next "
    "token. Keep going until every row has produced end-of-text.",
    "Section 3, 'Decoding, one token at a time': `model.get_encoder()(input_features).last_hidden_state` is the "
    "audio's encoding; `model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1]` scores the next "
    "token; the loop starts from `model.config.decoder_start_token_id` and stops at `model.config.eos_token_id`.",
    "Worked sub-step: `tokens = torch.full((B, 1), start)`; in the loop, `nxt = logits.argmax(-1)`; a row that "
    "has finished must stay finished (give it end-of-text again); `tokens = torch.cat([tokens, nxt[:, None]], 1)`. "
    "At the end, for each row drop the start token and cut before the first end-of-text.",
))
def _check_greedy(fn) -> str:
    model, feats = _zoo_whisper()
    expected = _generated(model, feats, 40)
    with torch.no_grad():
        got = _as_rows(call(fn, model, feats, 40), len(feats))
    if got != expected:
        _diagnose_greedy(model, feats, got, expected, 40)
    alone = _as_rows(fn(model, feats[2:3], 40), 1)
    if alone != expected[2:3]:
        raise CheckFailed("one utterance decoded alone gives other tokens than in the batch: each row's "
                          "tokens may depend only on its own audio.")
    # A trained model forgives some mistakes (it writes the same words from a wrong start token); an untrained one
    # forgives nothing, and never says end-of-text, so max_new_tokens is reached too.
    untrained, noise = _untrained_whisper()
    expected = _greedy(untrained, noise, 7)  # the course's loop, itself equal to generate (tests/test_asr.py)
    with torch.no_grad():
        got = _as_rows(fn(untrained, noise, 7), len(noise))
    if got != expected:
        _diagnose_greedy(untrained, noise, got, expected, 7, where=" (on an untrained model, which never stops by "
                         "itself: right on the zoo model's utterances)")
    return f"the same tokens as model.generate for {len(feats)} utterances, and on an untrained model."


@functools.lru_cache(maxsize=1)
def _untrained_whisper():
    """A randomly initialised tiny Whisper with the zoo's vocabulary, and three windows of noise features."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    zoo, _ = _zoo_whisper()
    cfg = WhisperConfig(**{**zoo.config.to_dict(), "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
                           "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_source_positions": 50})
    torch.manual_seed(62)
    model = WhisperForConditionalGeneration(cfg).eval()
    # Its own output layer, untied from the input embeddings: well-separated logits (no near-ties for two correct
    # loops to break differently), and the special tokens never most likely (it never writes the start token or
    # end-of-text), while the start token's input embedding still differs from end-of-text's.
    out = torch.nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
    with torch.no_grad():
        out.weight.copy_(torch.randn(cfg.vocab_size, cfg.d_model, generator=torch.Generator().manual_seed(63)))
        out.weight[[cfg.pad_token_id, cfg.decoder_start_token_id, cfg.eos_token_id]] = 0.0
    model.proj_out = out
    return model, torch.randn(3, cfg.num_mel_bins, 100, generator=torch.Generator().manual_seed(62))


def _diagnose_greedy(model, feats: torch.Tensor, got: list[list[int]], expected: list[list[int]], max_new: int,
                     where: str = "") -> None:
    """Raise CheckFailed naming how ``got`` differs from greedy decoding's ``expected`` rows."""
    cfg = model.config
    start, eos = cfg.decoder_start_token_id, cfg.eos_token_id
    if any(got) and _first_non_greedy(model, feats, got, start) is not None:
        for name, other in (("end-of-text", eos), ("padding", cfg.pad_token_id)):
            if other != start and _first_non_greedy(model, feats, got, other) is None:
                raise CheckFailed(f"your loop starts from the {name} token ({other}): the decoder's first input is "
                                  f"model.config.decoder_start_token_id ({start}), Whisper's "
                                  f"<|startoftranscript|>{where}.")
    if all(row[:1] == [start] for row in got) and [row[1:] for row in got] == expected:
        raise CheckFailed("every row begins with the decoder start token: return only the generated tokens (drop "
                          f"tokens[:, 0]){where}.")
    if [row[:len(e)] for row, e in zip(got, expected)] == expected:
        if all(row == e + [eos] for row, e in zip(got, expected)):
            raise CheckFailed(f"the end-of-text token is still there: cut each row *before* its first "
                              f"end-of-text{where}.")
        raise CheckFailed("a row goes on after its end-of-text, or past max_new_tokens: cut each row before its first "
                          f"end-of-text (and keep a finished row finished while the others go on){where}.")
    if all(e[:len(row)] == row for row, e in zip(got, expected)):
        raise CheckFailed("some rows stop too early: the loop must go on until *every* row has produced "
                          f"end-of-text or max_new_tokens = {max_new} tokens, not stop when the first one does{where}.")
    if all(len(set(row)) <= 1 for row in got if row) and any(len(set(e)) > 1 for e in expected):
        raise CheckFailed("each row repeats one token: feed the growing sequence back to the decoder at every step "
                          "(decoder_input_ids = all tokens so far), and take the logits of the *last* "
                          f"position{where}.")
    if any(not 0 <= t < cfg.vocab_size for row in got for t in row) or any(len(row) > max_new for row in got):
        raise CheckFailed(f"each row should hold at most max_new_tokens = {max_new} token ids, each in "
                          f"0..{cfg.vocab_size - 1} (the model's vocabulary){where}.")
    wrong = _first_non_greedy(model, feats, got, start)
    if wrong is None:  # every token is the argmax after the ones before it: the rows end in the wrong places
        for i, (row, e) in enumerate(zip(got, expected)):
            if len(row) < len(e):
                raise CheckFailed(f"utterance {i + 1} stops after {len(row)} tokens, where the model's next token is "
                                  "not end-of-text: a row ends when *it* produces end-of-text (or after "
                                  f"max_new_tokens), whatever the other rows do{where}.")
            if len(row) > len(e):
                raise CheckFailed(f"utterance {i + 1} goes on after its end-of-text: cut each row before its first "
                                  f"end-of-text{where}.")
    else:
        i, k, token, best = wrong
        raise CheckFailed(f"token {k + 1} of utterance {i + 1} ({token}) is not the most likely next token after "
                          f"the ones before it (that is {best}): greedy decoding appends the argmax of the last "
                          f"position's logits at every step, for each row on its own — no sampling, no "
                          f"temperature{where}.")
    raise Mismatch("your tokens differ from model.generate's (greedy) for some utterances: take the argmax of the "
                   f"last position's logits at each step, starting from decoder_start_token_id{where}.")


def _generated(model, feats: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
    """``model.generate``'s greedy tokens per row, without the start token, end-of-text and padding: Whisper's
    ``generate`` (transformers 5) leaves the start token out and pads the finished rows with the padding token."""
    cfg = model.config
    with torch.no_grad():
        out = asr.generate(model, feats, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1).tolist()
    rows = []
    for row in out:
        row = row[1:] if row[:1] == [cfg.decoder_start_token_id] else row
        row = row[:row.index(cfg.eos_token_id)] if cfg.eos_token_id in row else row
        while row and row[-1] == cfg.pad_token_id:
            row = row[:-1]
        rows.append(row)
    return rows


def _first_non_greedy(model, feats: torch.Tensor, rows: list[list[int]], start: int
                      ) -> tuple[int, int, int, int] | None:
    """(utterance, position, token, the argmax there) of the first token of ``rows`` that is not the model's most
    likely next token after ``start`` and the row's tokens before it (teacher forcing), or None."""
    with torch.no_grad():
        encoded = model.get_encoder()(feats).last_hidden_state
        for i, row in enumerate(rows):
            ids = torch.tensor([[start] + row])
            best = model(encoder_outputs=(encoded[i:i + 1],), decoder_input_ids=ids).logits[0].argmax(-1).tolist()
            for k, token in enumerate(row):
                if best[k] != token:
                    return i, k, token, best[k]
    return None


# --- 6.3 word error rate ----------------------------------------------------------------------------------------

_REFS = ["is there a red square", "a small blue circle to the left of a large green diamond", "seven three nine",
         "what color is the triangle"]
_HYPS = ["is there a red square", "a small blue circle left of a large green diamond", "seven three five nine one",
         "what colour is triangle"]


def _number(out, what: str = "your word_error_rate") -> float:
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out)
    if isinstance(out, bool) or not isinstance(out, numbers.Real):  # ints, floats and NumPy's scalars
        raise CheckFailed(f"{what} should return one number; it returned {describe(out)}.")
    return float(out)


@register("6.3", "word error rate", umetrics.word_error_rate, hints=(
    "WER = (substitutions + deletions + insertions) / number of reference words, with the fewest edits that turn "
    "the reference into the hypothesis — an edit distance over words, then pooled over the corpus.",
    "Section 4, 'Word error rate': the edit distance is dynamic programming (Levenshtein) over word lists: d[i][j] "
    "= the fewest edits between the first i reference words and the first j hypothesis words. Sum the edits of "
    "every utterance and divide by the sum of their reference lengths.",
    "Worked sub-step: d[0][j] = j, d[i][0] = i; d[i][j] = min(d[i-1][j] + 1, d[i][j-1] + 1, d[i-1][j-1] + "
    "(ref[i-1] != hyp[j-1])); the utterance's edits are d[len(ref)][len(hyp)]. For 'a b c' vs 'a x b c' that is 1.",
))
def _check_wer(fn) -> str:
    import jiwer

    expected = jiwer.wer(_REFS, _HYPS)
    got = _number(call(fn, _REFS, _HYPS))
    probes = _wer_probes(fn)
    if abs(got - expected) < 1e-6:  # float32 (a tensor's) is close enough
        require_properties(probes)
        extra = [(["a b c d"], ["a b c d"], 0.0), (["a b c"], ["x y z w v u"], 2.0), (["one two"], ["two"], 0.5)]
        for refs, hyps, want in extra:
            value = _number(fn(refs, hyps))
            if abs(value - want) > 1e-6:
                raise CheckFailed(f"right on the check's corpus but word_error_rate({refs}, {hyps}) = {value:.6g}, "
                                  f"expected {want:g}.")
        return f"{got:.4f}, the same as jiwer.wer on a corpus of {len(_REFS)} utterances."
    per_utt = sum(jiwer.wer(r, h) for r, h in zip(_REFS, _HYPS)) / len(_REFS)
    edits = [jiwer.process_words(r, h) for r, h in zip(_REFS, _HYPS)]
    total = sum(e.substitutions + e.deletions + e.insertions for e in edits)
    n_hyp = sum(len(h.split()) for h in _HYPS)
    no_ins = sum(e.substitutions + e.deletions for e in edits) / sum(len(r.split()) for r in _REFS)
    positional = sum(sum(a != b for a, b in zip(r.split(), h.split())) + abs(len(r.split()) - len(h.split()))
                     for r, h in zip(_REFS, _HYPS)) / sum(len(r.split()) for r in _REFS)
    mistakes = {
        "this is the mean of each utterance's WER: pool instead — all edits over all reference words, so a "
        "two-word command does not weigh as much as a twelve-word sentence.": per_utt,
        "you divided by the number of hypothesis words: WER divides by the number of *reference* words.":
            total / n_hyp,
        "this is 1 - WER (word accuracy): return the error rate.": 1 - expected,
        "insertions are not counted: an extra word in the hypothesis is an error too (S + D + I).": no_ins,
        "you compared the words position by position: one inserted or missing word then shifts every later "
        "word. Use the edit distance (the fewest substitutions, deletions and insertions).": positional,
        "this is the character error rate: split the sentences into words (str.split()), not characters.":
            jiwer.cer(_REFS, _HYPS),
        "this is the number of edits, not a rate: divide by the number of reference words.": float(total),
        "this is a percentage: return the rate as a fraction (0.25 for one error in four words), as jiwer does.":
            100 * expected,
    }
    for hint, wrong in mistakes.items():
        if abs(got - wrong) < 1e-6:
            raise CheckFailed(hint)
    require_properties(probes)
    raise Mismatch(f"your WER is {got:.4f}, jiwer's is {expected:.4f}.")


def _wer_probes(fn) -> list[Probe]:
    """The properties of every right word error rate, each on a corpus built for it."""
    def scores(refs: list[str], hyps: list[str], want: float) -> Callable[[], bool]:
        return lambda: abs(_number(fn(refs, hyps)) - want) < 1e-6

    return [
        Probe("perfect", scores(["a b c"], ["a b c"], 0.0), "a perfect transcript must score 0."),
        Probe("empty transcript", scores(["a b c"], [""], 1.0),
              "an empty transcript misses every reference word: 3 deletions for 3 words, WER 1. The edit distance "
              "from i words to none is i (d[i][0] = i, and d[0][j] = j)."),
        Probe("word order", scores(["a b"], ["b a"], 1.0),
              "word order counts: 'b a' for 'a b' is two errors in two words (WER 1). Compare the sequences of "
              "words with the edit distance, not the sets of words."),
        Probe("substitution", scores(["a b c d"], ["a x c d"], 0.25),
              "one wrong word in a four-word reference is one error in four: 0.25. A substitution is one edit, not "
              "a deletion plus an insertion (cost 1 on the diagonal of the edit-distance table)."),
        Probe("insertion", scores(["a b c d"], ["a b x c d"], 0.25),
              "one inserted word in a four-word reference is one error in four: 0.25. Count insertions, and divide "
              "by the reference's length."),
        Probe("deletion", scores(["a b c d"], ["a c d"], 0.25),
              "one missing word in a four-word reference is one error in four: 0.25 — the later words still match "
              "(align with the edit distance, not by position)."),
        Probe("pooling", scores(["a", "b c d e f g h"], ["x", "b c d e f g h"], 0.125),
              "one error in a corpus of eight reference words is 0.125 whichever sentence it is in: sum the edits of "
              "all utterances and divide by the sum of their lengths."),
        Probe("above one", scores(["a"], ["x y z"], 3.0),
              "WER can exceed 1: 'x y z' for 'a' is one substitution and two insertions, 3 errors for 1 word."),
        Probe("words as written", scores(["Red square", "a b."], ["red square", "a b"], 0.5),
              "WER compares the words exactly as written, as jiwer.wer does: 'Red' is not 'red' and 'b.' is not "
              "'b' (2 errors in 4 words here). Normalise case or punctuation before calling it, not inside."),
        Probe("spaces", scores(["a  b c "], [" a b c"], 0.0),
              "extra spaces are not words: split on runs of whitespace with str.split() (no argument), not "
              ".split(' '), which makes empty words."),
        Probe("unrounded", scores(["a b c"], ["a x c"], 1 / 3),
              "one error in three words is 1/3 = 0.3333...: return the rate unrounded (round when you print it)."),
    ]


# --- 6.4 greedy CTC decoding ----------------------------------------------------------------------------------

def _ctc_scores() -> tuple[torch.Tensor, int]:
    """(4, 12, 6) log-probabilities whose best paths need every rule: repeats to merge, blanks to drop, a word
    said twice with a blank between, and tokens that come back later; the blank is 0."""
    paths = [[0, 3, 3, 0, 0, 4, 4, 4, 0, 5, 0, 0],      # -> 3 4 5
             [2, 2, 0, 2, 0, 0, 1, 1, 0, 1, 1, 0],      # -> 2 2 1 1: blanks separate equal tokens
             [0, 0, 0, 5, 5, 5, 5, 0, 0, 0, 3, 3],      # -> 5 3
             [4, 4, 0, 1, 1, 0, 4, 0, 0, 1, 0, 0]]      # -> 4 1 4 1: tokens come back
    g = torch.Generator().manual_seed(64)
    scores = torch.randn(len(paths), 12, 6, generator=g)
    for b, path in enumerate(paths):
        for t, tok in enumerate(path):
            scores[b, t, tok] += 6.0
    return scores.log_softmax(-1), 0


def _scores_of(path: list[int], vocab: int = 6) -> torch.Tensor:
    """(1, frames, vocab) log-probabilities whose best path is ``path``."""
    scores = torch.full((1, len(path), vocab), -5.0)
    scores[0, torch.arange(len(path)), torch.tensor(path)] = 5.0
    return scores.log_softmax(-1)


def _ctc_probes(fn) -> list[Probe]:
    """The properties of every right best-path decoding, each on a one-utterance path built for it (blank 0)."""
    def decodes(path: list[int], want: list[int]) -> Callable[[], bool]:
        return lambda: _as_rows(fn(_scores_of(path), 0), 1) == [want]

    return [
        Probe("tokens come back", decodes([0, 3, 0, 4, 4, 3, 0], [3, 4, 3]),
              "frames [_, 3, _, 4, 4, 3, _] decode to [3, 4, 3]: merge only runs of *adjacent* equal frames; a token "
              "can come back later in the utterance (no set, no dict.fromkeys, no unique())."),
        Probe("a word said twice", decodes([0, 2, 0, 2, 0], [2, 2]),
              "'_ 2 _ 2 _' is the word 2 said twice: [2, 2]. Merge runs of equal frames first, then drop the blanks, "
              "so that a blank keeps the two apart."),
        Probe("last frame", decodes([0, 3, 0, 4], [3, 4]),
              "frames [_, 3, _, 4] decode to [3, 4]: the last frame's token counts too (a run that ends the "
              "utterance is a token like any other)."),
        Probe("first frame", decodes([3, 3, 0, 4], [3, 4]),
              "frames [3, 3, _, 4] decode to [3, 4]: the first frame's token counts too (compare each frame with "
              "the one before it, and keep frame 0 when it is not a blank)."),
        Probe("all blank", decodes([0, 0, 0], []),
              "an utterance of blanks only decodes to no tokens at all: an empty list."),
    ]


@register("6.4", "greedy CTC decoding", asr.ctc_greedy_decode, hints=(
    "Three moves per utterance: the best token of each frame, then merge runs of the same token, then remove the "
    "blanks. The order of the last two matters.",
    "Section 5, 'CTC': a CTC model emits one symbol per frame, mostly blanks; a word held over several frames "
    "repeats, and the blank is how it says the same word twice ('red red' is 'red _ red'). Best-path decoding "
    "undoes exactly that (Graves et al., 2006; the Hugging Face audio course's CTC chapter).",
    "Worked sub-step: frames [_, 3, 3, _, _, 4, 4, _, 4] → merge runs: [_, 3, _, 4, _, 4] → drop blanks: [3, 4, 4]. "
    "Dropping blanks first would give [3, 3, 4, 4, 4] → [3, 4]: one 4 lost.",
))
def _check_ctc(fn) -> str:
    scores, blank = _ctc_scores()
    expected = _ctc(scores, blank)
    got = call(fn, scores, blank)
    if isinstance(got, torch.Tensor):
        raise CheckFailed(f"return a list with one list of token ids per utterance (their lengths differ); your "
                          f"answer returned {describe(got)}.")
    got = _as_rows(got, len(scores))
    probes = _ctc_probes(fn)
    if got == expected:
        shifted = [[t for t in row] for row in _ctc(scores, 5)]
        if _as_rows(fn(scores, 5), len(scores)) != shifted:
            raise CheckFailed("right with blank = 0 but not with blank = 5: use the `blank` argument, not a fixed id.")
        require_properties(probes)
        return f"decodes {len(scores)} utterances as best-path CTC does: {expected}."
    path = scores.argmax(-1).tolist()
    drop_first = []
    for row in path:
        kept = [t for t in row if t != blank]
        drop_first.append([t for i, t in enumerate(kept) if i == 0 or t != kept[i - 1]])
    mistakes = {
        "you dropped the blanks before merging repeats: then two equal words that a blank separates ('2 _ 2') "
        "merge into one. Merge runs of the same token first, then drop the blanks.": drop_first,
        "repeats are not merged: a token held over several frames is one token (merge runs of the same token).":
            [[t for t in row if t != blank] for row in path],
        "the blanks are still there: drop them after merging repeats.":
            [[t for i, t in enumerate(row) if i == 0 or t != row[i - 1]] for row in path],
        "this is the best token of every frame: merge runs of the same token, then drop the blanks.": path,
        "each token is kept once only: a token can come back later ('4 _ 1 _ 4' is 4 1 4). Merge only runs of "
        "*adjacent* equal frames (no set, no dict.fromkeys, no unique()).":
            [list(dict.fromkeys(row)) for row in _ctc(scores, blank)],
        "you took the *least* likely token of each frame (argmin): the best path takes the argmax of the "
        "log-probabilities over the vocabulary.": _ctc(-scores, blank),
        "the argmax runs over the frames (dim=1): take the best token of each frame, the argmax over the last "
        "axis (the vocabulary).": _ctc(scores.transpose(1, 2), blank),
    }
    for hint, wrong in mistakes.items():
        if got == wrong:
            raise CheckFailed(hint)
    require_properties(probes)
    raise Mismatch(f"your tokens {got} differ from best-path CTC's {expected}: take the argmax of each frame, "
                   "merge runs of the same token, drop the blank.")


# --- 6.5 and 6.6 residual vector quantisation --------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _quantizer():
    """A residual vector quantiser of transformers' EncodecModel (4 levels of 32 codes in 8 dimensions) with random
    codebooks, each level smaller than the one before (as trained ones are), and latents (2, 8, 20) to code."""
    from transformers import EncodecConfig
    from transformers.models.encodec.modeling_encodec import EncodecResidualVectorQuantizer

    cfg = EncodecConfig(sampling_rate=16000, upsampling_ratios=[8, 5, 4, 2], codebook_size=32, hidden_size=8,
                        target_bandwidths=[0.25, 0.5, 1.0], num_filters=4)
    rvq = EncodecResidualVectorQuantizer(cfg)
    g = torch.Generator().manual_seed(65)
    for q, layer in enumerate(rvq.layers):
        layer.codebook.embed.copy_(torch.randn(32, 8, generator=g) * 0.5 ** q)
    codebooks = torch.stack([layer.codebook.embed for layer in rvq.layers])
    x = torch.randn(2, 8, 20, generator=g)
    return rvq, codebooks, x


def _rvq_probes(run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], codebooks: torch.Tensor,
                x: torch.Tensor) -> list[Probe]:
    def nearest(v: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
        return torch.cdist(v.transpose(1, 2), book[None].expand(len(v), -1, -1)).argmin(-1)  # (B, T)

    def first_level_nearest() -> bool:
        return torch.equal(run(x, codebooks)[0], nearest(x, codebooks[0]))

    def every_level_codes_the_residual() -> bool:
        codes = run(x, codebooks)
        residual = x.clone()
        for q in range(1, len(codebooks)):
            residual = residual - codebooks[q - 1][codes[q - 1]].transpose(1, 2)
            if not torch.equal(codes[q], nearest(residual, codebooks[q])):
                return False
        return True

    def a_codeword_codes_itself() -> bool:
        v = codebooks[0][[3, 7]].T[None]  # (1, D, 2): two codewords of level 0
        return run(v, codebooks)[0].tolist() == [[3, 7]]

    return [
        Probe("level 1", first_level_nearest,
              "the first level should pick, for every time step, the codeword *nearest* to the latent vector "
              "(smallest Euclidean distance over the D channels) — check the axis you compare over, argmin vs "
              "argmax, and the sign of the -2 v·c term if you expand the distance."),
        Probe("a codeword is its own code", a_codeword_codes_itself,
              "a latent that *is* codeword 3 of level 1 must get code 3: compare by distance (a dot product alone "
              "prefers long codewords)."),
        Probe("residual", every_level_codes_the_residual,
              "each level should code the residual — the latent minus the codewords *all* earlier levels chose: "
              "level 2 codes x - c1, level 3 codes x - c1 - c2, ... Subtract each level's codeword once from the "
              "running residual, then quantise again."),
    ]


@register("6.5", "residual vector quantisation: encoding", ucodec.rvq_encode, hints=(
    "A loop over the codebooks: find the nearest codeword to what is left, write down its index, subtract it, go "
    "on with the remainder.",
    "Section 8, 'A neural audio codec': EnCodec and SoundStream quantise each latent frame with RVQ (Zeghidour et "
    "al., 2021). Latents are (B, D, T), codebooks (Q, K, D); for each frame, the distance to each of the K "
    "codewords of a level is over the D channels.",
    "Worked sub-step: `v = residual.transpose(1, 2)` is (B, T, D); `torch.cdist(v, book[None].expand(B, -1, -1))` "
    "is (B, T, K); `.argmin(-1)` gives the codes (B, T); `book[codes]` is (B, T, D) — transpose it back and "
    "subtract it from the residual. Stack the Q code tensors into (Q, B, T).",
))
def _check_rvq_encode(fn) -> str:
    rvq, codebooks, x = _quantizer()
    with torch.no_grad():
        expected = rvq.encode(x)  # (Q, B, T)
    x_in, books_in = x.clone(), codebooks.clone()
    got = require_tensor(call(fn, x_in, books_in), "rvq_encode")
    if not torch.equal(x_in, x) or not torch.equal(books_in, codebooks):
        raise CheckFailed("your function changed the tensors it was given: an in-place `-=` on "
                          "`latents.transpose(1, 2)` (a view) writes into the caller's latents. Start from a copy "
                          "(.clone()) or write `residual = residual - ...`.")
    if got.dtype.is_floating_point:
        raise CheckFailed(f"return the codes — integer indices into each codebook (torch.long) — not vectors; your "
                          f"answer returned {describe(got)}.")
    if got.shape == (x.shape[0], len(codebooks), x.shape[2]) and torch.equal(got.transpose(0, 1), expected):
        raise CheckFailed("the codes are right but laid out (B, Q, T): return (Q, B, T), one (B, T) code tensor per "
                          "level, stacked on a new first axis (torch.stack(codes)), as EnCodec's quantiser does.")
    same_x = torch.stack([torch.cdist(x.transpose(1, 2), c[None].expand(len(x), -1, -1)).argmin(-1) for c in codebooks])
    farthest = []
    residual = x.clone()
    for c in codebooks:
        idx = torch.cdist(residual.transpose(1, 2), c[None].expand(len(x), -1, -1)).argmax(-1)
        farthest.append(idx)
        residual = residual - c[idx].transpose(1, 2)
    dot = []
    residual = x.clone()
    for c in codebooks:
        idx = (residual.transpose(1, 2) @ c.T).argmax(-1)
        dot.append(idx)
        residual = residual - c[idx].transpose(1, 2)
    cosine = []
    residual = x.clone()
    for c in codebooks:
        unit = torch.nn.functional.normalize
        idx = (unit(residual.transpose(1, 2), dim=-1) @ unit(c, dim=-1).T).argmax(-1)
        cosine.append(idx)
        residual = residual - c[idx].transpose(1, 2)
    mistakes = {
        "every level quantises the original latent: the next level must quantise the *residual* (the latent minus "
        "the codewords chosen so far).": same_x,
        "you took the farthest codeword: the code is the argmin of the distance.": torch.stack(farthest),
        "you picked the codeword with the largest dot product: that favours long codewords. Use the Euclidean "
        "distance (torch.cdist, or |v|² - 2 v·c + |c|²).": torch.stack(dot),
        "you picked the codeword with the largest cosine similarity: that ignores the codewords' lengths, and RVQ "
        "subtracts the codeword itself. Use the Euclidean distance (torch.cdist, or |v|² - 2 v·c + |c|²).":
            torch.stack(cosine),
    }
    for hint, wrong in mistakes.items():
        if got.shape == wrong.shape and torch.equal(got.long(), wrong):
            raise CheckFailed(hint)
    if got.shape != expected.shape:
        raise CheckFailed(f"expected codes of shape (Q, B, T) = {tuple(expected.shape)}; your answer returned "
                          f"{describe(got)}.")
    run = lambda v, books: require_tensor(fn(v.clone(), books.clone()), "rvq_encode")  # noqa: E731
    probes = _rvq_probes(run, codebooks, x)
    if torch.equal(got.long(), expected):
        require_properties(probes)
        return f"the same codes as EnCodec's residual vector quantiser for {len(codebooks)} levels {tuple(got.shape)}."
    require_properties(probes)
    raise Mismatch(f"{int((got.long() != expected).sum())} of {expected.numel()} codes differ from EnCodec's "
                   "quantiser's.")


@register("6.6", "residual vector quantisation: decoding", ucodec.rvq_decode, builds_on=("6.5",), hints=(
    "Decoding is a lookup per level and a sum.",
    "Section 8, 'A neural audio codec': level q's code at each frame picks one of its K codewords; the quantised "
    "latent is the sum over the levels (the encoder subtracted them one by one). Return it as (B, D, T), the "
    "layout the codec's decoder reads.",
    "Worked sub-step: `codebooks[q][codes[q]]` is (B, T, D) for codes (Q, B, T); sum over q, then "
    "`.transpose(1, 2)`.",
))
def _check_rvq_decode(fn) -> str:
    rvq, codebooks, x = _quantizer()
    with torch.no_grad():
        codes = rvq.encode(x)
        expected = rvq.decode(codes)  # (B, D, T)
    got = call(fn, codes.clone(), codebooks.clone())
    first_book = sum(codebooks[0][c] for c in codes).transpose(1, 2)
    looked_up = codebooks[torch.arange(len(codes))[:, None, None], codes]  # (Q, B, T, D)
    b, d, t = expected.shape
    mistakes = {
        "you averaged the levels: add them (each level codes what the ones before left).":
            expected / len(codebooks),
        "only the first level's codewords: add every level's.": codebooks[0][codes[0]].transpose(1, 2),
        "only the last level's codewords: add every level's.": codebooks[-1][codes[-1]].transpose(1, 2),
        "the last level is missing: add the codewords of every level in `codes`, the last one too (a range that "
        "stops one short?).": looked_up[:-1].sum(0).transpose(1, 2),
        "every level looked up in the first codebook: level q's codes index codebooks[q].": first_book,
        "the layout is (B, T, D): return (B, D, T), channels first, as the codec's decoder reads it.":
            expected.transpose(1, 2),
        "you reshaped (B, T, D) into (B, D, T): that scrambles the numbers. Swap the two axes with .transpose(1, 2) "
        "(or .permute(0, 2, 1)).": looked_up.sum(0).reshape(b, d, t),
        "you summed over the batch axis: the lookup codebooks[q][codes[q]] stacked over the levels is (Q, B, T, D); "
        "sum over the levels, axis 0.": looked_up.sum(1),
        "you summed over the time axis: the lookup codebooks[q][codes[q]] stacked over the levels is (Q, B, T, D); "
        "sum over the levels, axis 0.": looked_up.sum(2),
        "you summed over the channels: the lookup codebooks[q][codes[q]] stacked over the levels is (Q, B, T, D); "
        "sum over the levels, axis 0, and keep the D channels of each codeword.": looked_up.sum(3),
    }
    probes = _rvq_decode_probes(fn, codes, codebooks)
    diagnose(got, expected, mistakes, "your decoded latents differ from EnCodec's quantiser's.", probes=probes)
    require_properties(probes)
    err = (x - got).norm() / x.norm()
    return (f"the same latents as EnCodec's quantiser from {len(codebooks)} levels; they are {err:.0%} away from the "
            "latents that were coded (relative error).")


def _rvq_decode_probes(fn, codes: torch.Tensor, codebooks: torch.Tensor) -> list[Probe]:
    """The properties of every right RVQ decoding, for codes (Q, B, T) of codebooks (Q, K, D)."""
    def decode(c: torch.Tensor, books: torch.Tensor) -> torch.Tensor:
        return _tensor(call(fn, c.clone(), books.clone()))

    level = lambda q: codebooks[q][codes[q]].transpose(1, 2)  # noqa: E731 - (B, D, T)
    return [
        Probe("one level", lambda: close(decode(codes[:1], codebooks[:1]), level(0)),
              "with one level, decoding should return level 1's codewords themselves."),
        Probe("adds levels", lambda: close(decode(codes[:2], codebooks[:2]) - decode(codes[:1], codebooks[:1]),
                                           level(1)),
              "adding a second level should add exactly its codewords to the first level's decoding."),
        Probe("fewer levels than codebooks", never_raises(lambda: close(decode(codes[:2], codebooks),
                                                                       level(0) + level(1))),
              "codes of the first 2 levels with all the codebooks should decode to the coarser latent, level 1's "
              "codeword plus level 2's: loop over the levels that `codes` has, not over the codebooks (a codec "
              "sends fewer levels at a lower bitrate)."),
    ]


# --- 6.7 frame stacking -----------------------------------------------------------------------------------------

def _stack_inputs() -> torch.Tensor:
    """(2, 23, 3) encoder states: 23 frames, so that 23 // 4 = 5 tokens leave 3 frames over."""
    return torch.randn(2, 23, 3, generator=torch.Generator().manual_seed(67))


def _stack_probes(fn, x: torch.Tensor, k: int) -> list[Probe]:
    """The properties of every right frame stacking of (B, T, D) states by ``k``."""
    run = lambda s: _tensor(call(fn, s.clone(), k))  # noqa: E731
    d = x.shape[2]

    def token_is_frames() -> bool:
        out = run(x)
        return close(out[0, 1], torch.cat([x[0, k + i] for i in range(k)]))

    return [
        Probe("clips apart", batch_independent(run, x, split=1),
              "the tokens of the first clip change when other clips are in the batch: stack each clip's frames on "
              "its own (reshape within the batch axis, never across it)."),
        Probe("one token, k frames in time order", token_is_frames,
              f"output token 2 should be frames {k + 1} to {2 * k} laid end to end, each frame's {d} numbers whole "
              "and in time order: the first D numbers are the earlier frame, the next D the one after (reshape the "
              "time axis into (T // k, k) and flatten those two last axes, without moving the channel axis "
              "between them)."),
        Probe("shift by k frames", lambda: close(run(x[:, k:])[:, : x.shape[1] // k - 1], run(x)[:, 1:]),
              f"dropping the first {k} frames should drop exactly the first output token: each token is one block "
              f"of {k} consecutive frames, counted from the first frame."),
    ]


@register("6.7", "frame stacking", uspeechlm.stack_frames, hints=(
    "Only a reshape: k neighbouring frames become one longer vector, so there are k times fewer of them, each k "
    "times wider.",
    "Section 7, 'A VLM that hears': speech LLMs (Ultravox, SLAM-ASR) cut the 50 encoder vectors a second by stacking "
    "neighbours: nothing is averaged away, the projector sees every number. Drop the frames left over at the end "
    "(T is rarely a multiple of k).",
    "Worked sub-step: states (B, T, D) with T = 23, k = 4: keep states[:, :20]; view it as (B, 5, 4, D) — 5 blocks "
    "of 4 frames — then merge the last two axes into 4·D.",
))
def _check_stack(fn) -> str:
    x, k = _stack_inputs(), 4
    expected = uspeechlm.stack_frames(x, k)
    got = call(fn, x.clone(), k)
    b, t, d = x.shape
    n = t // k
    kept = x[:, : n * k]
    padded = torch.cat([x, x.new_zeros(b, (n + 1) * k - t, d)], 1).reshape(b, n + 1, k * d)
    mistakes = {
        "you averaged the k frames: stacking keeps all of them, laid end to end (k·D numbers per token), so the "
        "projector can still tell their order.": kept.reshape(b, n, k, d).mean(2),
        "the numbers inside a token are interleaved channel by channel (frame 1's channel 1, frame 2's channel 1, "
        "…): lay whole frames end to end — don't move the channel axis before the k frames are merged.":
            kept.reshape(b, n, k, d).transpose(2, 3).reshape(b, n, k * d),
        f"the frames left over at the end were padded into an extra token: drop them (T // k = {n} tokens).": padded,
        "each token takes every n-th frame (a stride over the whole clip), not k neighbouring ones: reshape the time "
        "axis as (T // k, k), blocks of consecutive frames.": kept.reshape(b, k, n, d).transpose(1, 2).reshape(
            b, n, k * d),
        "the frames were not stacked: every token is still one frame.": kept,
    }
    probes = _stack_probes(fn, x, k)
    diagnose(got, expected, mistakes, "your stacked frames differ from the expected ones.", probes=probes)
    require_properties(probes)
    return f"{tuple(x.shape)} states stacked by {k} into {tuple(got.shape)} tokens."


# --- 6.8 pooling video tokens over time and space --------------------------------------------------------------

def _video_tokens() -> torch.Tensor:
    """(2, 8, 16, 3) clip tokens: 8 frames of a 4x4 grid, 3 channels, no two values equal."""
    return torch.randn(2, 8, 16, 3, generator=torch.Generator().manual_seed(68))


def _pool_probes(fn, x: torch.Tensor, time: int, space: int) -> list[Probe]:
    """The properties of every right pooling of (B, T, N, C) clip tokens by (``time``, ``space``)."""
    run = lambda v, tm=time, sp=space: _tensor(call(fn, v.clone(), tm, sp))  # noqa: E731
    b, t, n, c = x.shape
    side = int(n ** 0.5)
    frozen = x[:, :1].expand(b, t, n, c).contiguous()  # a still clip: every frame the same

    def grid_windows() -> bool:  # one frame, space pooling only: token 0 averages the top-left s x s window
        out = run(x[:, :1], 1, space)
        window = x[0, 0].reshape(side, side, c)[:space, :space].reshape(-1, c).mean(0)
        return close(out[0, 0, 0], window)

    return [
        Probe("clips apart", batch_independent(run, x, split=1),
              "the tokens of the first clip change when other clips are in the batch: pool each clip on its own."),
        Probe("a still clip pools to one frame", lambda: close(run(frozen, time, 1)[:, 0], x[:, 0]),
              f"if all {t} frames are the same, averaging over time must give that frame back (each output frame "
              "is the mean of its group, not a sum, a max or a pick)."),
        Probe("s x s windows of the grid", never_raises(grid_windows),
              f"with space={space}, the first output token of a frame should average the top-left {space}x{space} "
              f"square of its {side}x{side} grid (tokens 0, 1, {side}, {side + 1} for 2x2), not {space * space} "
              "consecutive tokens of the row-major list: view N as (rows, columns) before pooling."),
        Probe("the mean is kept", lambda: close(run(x).mean(dim=(1, 2)), x.mean(dim=(1, 2))),
              "the average over all tokens of a clip should not change: every input token belongs to exactly one "
              "group, and each group is averaged."),
        Probe("nothing to pool is the identity", lambda: close(run(x, 1, 1), x),
              "with time=1 and space=1 the tokens should come back unchanged."),
    ]


@register("6.8", "pooling video tokens", uvideolm.pool_video_tokens, hints=(
    "Averages, nothing learned: each output token is the mean of `time` consecutive frames' tokens over one "
    "`space` x `space` window of the grid.",
    "Section 10, 'The token budget': LLaVA-Video average-pools each frame's grid; here time is pooled the same way. "
    "Reshape (B, T, N, C) into (B, T // time, time, side // space, space, side // space, space, C), with "
    "side = √N, then average the three axes of size time and space.",
    "Worked sub-step: tokens (1, 8, 16, C), time=2, space=2: frames (0, 1), (2, 3), … form 4 groups; in a 4x4 grid "
    "the 2x2 windows are tokens {0, 1, 4, 5}, {2, 3, 6, 7}, {8, 9, 12, 13}, {10, 11, 14, 15}. Output (1, 4, 4, C).",
))
def _check_pool(fn) -> str:
    x, time, space = _video_tokens(), 2, 2
    expected = uvideolm.pool_video_tokens(x, time, space)
    got = call(fn, x.clone(), time, space)
    b, t, n, c = x.shape
    side = int(n ** 0.5)
    grid = x.reshape(b, t, side, side, c)
    by_time = x.reshape(b, t // time, time, n, c)
    mistakes = {
        "only time was pooled: the grid still has all its tokens. Average each space x space window too.":
            by_time.mean(2),
        "only space was pooled: every frame is still there. Average each group of `time` consecutive frames too.":
            uvideolm.pool_video_tokens(x, 1, space),
        "you kept one frame of each group (subsampling) instead of averaging the group: a pooled token is the mean "
        "of its frames.": uvideolm.pool_video_tokens(x[:, ::time], 1, space),
        "you took the maximum: average pooling takes the mean of each group.":
            grid.reshape(b, t // time, time, side // space, space, side // space, space, c).amax(dim=(2, 4, 6))
            .reshape(b, t // time, -1, c),
        "you summed each group: divide by its size (average pooling), so the tokens keep the scale the LM was "
        "trained on.": expected * (time * space * space),
        f"space pooling averaged {space * space} consecutive tokens of the row-major list (a strip of one row), not "
        f"a {space}x{space} square: view N as (rows, columns) first.":
            x.reshape(b, t // time, time, n // space ** 2, space ** 2, c).mean(dim=(2, 4)),
        "time groups are strided (frames 0, 4; 1, 5; …) instead of consecutive frames: reshape the time axis as "
        "(T // time, time), the group index first.":
            uvideolm.pool_video_tokens(x.reshape(b, time, t // time, n, c).transpose(1, 2).reshape(b, t, n, c),
                                       time, space),
        "the output keeps the pooled grid as two axes: flatten it back to one token axis, (B, T // time, "
        "N // space², C).": expected.reshape(b, t // time, side // space, side // space, c),
        "every clip collapsed to one frame: pool `time` frames at a time, not the whole clip.":
            uvideolm.pool_video_tokens(x, t, space),
    }
    probes = _pool_probes(fn, x, time, space)
    diagnose(got, expected, mistakes, "your pooled tokens differ from the expected ones.", probes=probes)
    require_properties(probes)
    return (f"{tuple(x.shape)} clip tokens pooled by time={time}, space={space} into {tuple(got.shape)}: "
            f"{t * n} tokens became {got.shape[1] * got.shape[2]}.")


# --- 6.9 the sampling distribution: temperature and top-k -------------------------------------------------------

def _logits() -> torch.Tensor:
    """(4, 10) next-token scores, no two equal in a row."""
    return torch.randn(4, 10, generator=torch.Generator().manual_seed(69)) * 2


def _warped(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """The oracle: ``transformers``' own logits warpers (the ones ``generate(do_sample=True)`` applies), then a
    softmax."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper

    scaled = TemperatureLogitsWarper(temperature)(None, logits.clone())
    return TopKLogitsWarper(top_k)(None, scaled).softmax(-1)


def _sampling_probes(fn, x: torch.Tensor, temperature: float, top_k: int) -> list[Probe]:
    """The properties of every right sampling distribution of (B, C) logits."""
    run = lambda v, t=temperature, k=top_k: _tensor(call(fn, v.clone(), t, k))  # noqa: E731
    c = x.shape[1]

    def kept_are_largest() -> bool:
        out = run(x)
        return bool(((out > 0) == (x >= x.topk(top_k, dim=-1).values[:, -1:])).all())

    def logits_untouched() -> bool:
        given = x.clone()
        call(fn, given, temperature, top_k)
        return torch.equal(given, x)

    return [
        Probe("a distribution per row", lambda: sums_to_one(run(x)),
              "each row should be a probability distribution: non-negative numbers summing to 1 (a softmax over the "
              "classes, after the classes outside the top k are removed — not before)."),
        Probe("the k largest kept", kept_are_largest,
              f"with top_k={top_k}, exactly the {top_k} classes with the largest logits of each row should keep a "
              "probability above 0, and every other class 0: compare each logit with the row's k-th largest "
              "(`topk(...).values[:, -1:]`) and remove the ones below it (set them to -inf before the softmax)."),
        Probe("rows apart", batch_independent(run, x, split=1),
              "the first row's distribution changes when other rows are in the batch: the k-th largest logit and the "
              "softmax are per row (dim=-1), never over the whole batch."),
        Probe("temperature 1, every class: the softmax", never_raises(lambda: close(run(x, 1.0, c), x.softmax(-1))),
              f"with temperature 1 and top_k = {c} (every class), the answer should be the plain softmax of the "
              "logits."),
        Probe("top_k above the vocabulary", never_raises(lambda: close(run(x, 1.0, c + 5), x.softmax(-1))),
              f"top_k = {c + 5} with only {c} classes should keep them all (transformers uses min(top_k, C)); "
              "torch.topk raises if k is larger than the axis."),
        Probe("a low temperature is nearly greedy",
              lambda: close(run(x, 1e-3, c).argmax(-1), x.argmax(-1)) and bool((run(x, 1e-3, c).amax(-1) > 0.99).all()),
              "as the temperature goes to 0 the distribution should pile onto the largest logit (divide the logits by "
              "the temperature: a small temperature makes the gaps huge)."),
        Probe("the logits given are not modified", never_raises(logits_untouched),
              "your function changed the logits it was given (an in-place masked_fill_ or `logits[...] = -inf`): the "
              "caller may still need them — work on a copy (`masked_fill` without the underscore)."),
    ]


@register("6.9", "the sampling distribution", utts.sampling_distribution, hints=(
    "Two knobs, then a softmax: the temperature rescales every logit, top-k removes all but the k most likely "
    "classes.",
    "Section 9, 'Speech as tokens': the same two knobs as `generate(do_sample=True, temperature=…, top_k=…)` "
    "(transformers' TemperatureLogitsWarper and TopKLogitsWarper). Divide the logits by the temperature; find each "
    "row's k-th largest value; set the logits below it to -inf; softmax over the last axis.",
    "Worked sub-step: logits [[2.0, 1.0, 0.5, -1.0]], temperature 0.5, top_k 2: scaled [[4, 2, 1, -2]]; the 2nd "
    "largest is 2, so [[4, 2, -inf, -inf]]; softmax [[0.881, 0.119, 0, 0]].",
))
def _check_sampling(fn) -> str:
    x, temperature, top_k = _logits(), 0.7, 3
    expected = _warped(x, temperature, top_k)
    if not close(expected, _sampling(x, temperature, top_k)):  # the course's reference agrees with the oracle
        raise AssertionError("utils.tts.sampling_distribution disagrees with transformers' logits warpers")
    got = call(fn, x.clone(), temperature, top_k)
    probs, scaled = x.softmax(-1), x / temperature
    kth = scaled.topk(top_k, dim=-1).values[:, -1:]
    keep = scaled >= kth
    top = lambda z, k=top_k: z.masked_fill(z < z.topk(k, dim=-1).values[:, -1:], float("-inf"))  # noqa: E731
    mistakes = {
        "the logits were multiplied by the temperature: divide them (a temperature below 1 must sharpen the "
        "distribution, above 1 flatten it).": top(x * temperature).softmax(-1),
        "the temperature is ignored: divide the logits by it before the softmax.": top(x).softmax(-1),
        "top-k is ignored: every class still has a probability. Keep only the k largest logits of each row.":
            scaled.softmax(-1),
        "you kept the k *smallest* logits: top-k keeps the most likely classes.":
            scaled.masked_fill(scaled > (-scaled).topk(top_k, dim=-1).values[:, -1:].neg(), float("-inf")).softmax(-1),
        "the probabilities outside the top k were zeroed after the softmax but not renormalised: the rows no longer "
        "sum to 1. Remove the classes before the softmax (logits to -inf), or divide by the new sum.":
            scaled.softmax(-1) * keep,
        "the removed classes were set to 0 instead of -inf: a logit of 0 still gets probability after the softmax. "
        "Use float('-inf').": scaled.masked_fill(~keep, 0.0).softmax(-1),
        f"one class too few: the comparison with the k-th largest logit must keep it (`< kth` removes, not `<= "
        f"kth`): {top_k} classes survive, not {top_k - 1}.": top(scaled, top_k - 1).softmax(-1),
        f"one class too many: keep the {top_k} largest, not {top_k + 1} (the k-th largest is "
        "`topk(k).values[:, -1]`, index k - 1).": top(scaled, top_k + 1).softmax(-1),
        "the softmax ran over the batch axis (dim=0): each row is one distribution over the classes, dim=-1.":
            top(scaled).softmax(0),
        "the temperature was applied to the probabilities, after the softmax: divide the logits, before it.":
            top(x).softmax(-1) / temperature,
        "you returned the logits (scaled and filtered), not probabilities: finish with a softmax over the classes.":
            top(scaled),
        "you returned log-probabilities: the sampler wants probabilities (softmax, not log_softmax).":
            top(scaled).log_softmax(-1),
        "the k-th largest logit was taken over the whole batch, not per row: each row keeps its own top k "
        "(`topk(k, dim=-1)`).": scaled.masked_fill(scaled < scaled.flatten().topk(top_k).values[-1], float("-inf"))
        .softmax(-1),
    }
    if isinstance(got, torch.Tensor) and got.is_floating_point() and bool(got.isnan().any()):
        for hint, wrong in mistakes.items():  # some mistakes leave a row or column all -inf: NaN after the softmax
            if got.shape == wrong.shape and close(got.nan_to_num(), wrong.nan_to_num()):
                raise CheckFailed(hint)
        raise CheckFailed("your distribution contains NaN: a softmax met a slice whose every entry is -inf. Softmax "
                          "over the classes (dim=-1) of each row, which always keeps at least its k largest logits.")
    probes = _sampling_probes(fn, x, temperature, top_k)
    diagnose(got, expected, mistakes, "your distribution differs from transformers' temperature and top-k warpers.",
             probes=probes)
    require_properties(probes)
    kept = int((got[0] > 0).sum())
    return (f"{tuple(x.shape)} logits at temperature {temperature}, top-{top_k}: row 1 keeps {kept} classes, its "
            f"largest probability {float(got[0].max()):.3f} (plain softmax, T=1, all classes: "
            f"{float(probs[0].max()):.3f}); the same as transformers' warpers.")
