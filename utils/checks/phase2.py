"""Checks for the Phase 2 exercises (encoders for each modality).

Oracles: ``F.unfold`` and a strided ``nn.Conv2d`` (patchify), ``torchaudio.functional.melscale_fbanks`` and
``torchaudio.transforms.MelSpectrogram`` (audio front end), ``nn.Conv3d`` (video tubelets).

2.1 patchify, 2.2 the ViT input embedding, 2.3 masked mean pooling, 2.4 mel filterbank, 2.5 mel spectrogram,
2.6 spectrogram tokens, 2.7 tubelets.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import audio as AU
from .. import embeddings as E
from .. import video as VI
from .. import vision as V
from . import CheckFailed, register
from .oracles import diagnose, require_tensor

# --- 2.1 patchify ---------------------------------------------------------------------------------------

@register("2.1", "patchify", V.patchify)
def _check_patchify(fn) -> str:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 8, generator=g)  # not square: rows and columns must not be confused
    got = require_tensor(fn(x, 4), "patchify")
    expected = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, C*p*p)
    b, c = 2, 3
    grid = x.reshape(b, c, 3, 4, 2, 4)
    mistakes = {
        "inside each patch the values are ordered (row, column, channel): flatten channel first — (C, p, p), "
        "the order of F.unfold and of a conv's weight — so a linear layer on your patches equals the conv.":
            grid.permute(0, 2, 4, 3, 5, 1).reshape(b, 6, 48),
        "the patches are in column-major order: go row by row (all patches of the top row first), as a "
        "conv's output flattened with .flatten(2) does.": grid.permute(0, 4, 2, 1, 3, 5).reshape(b, 6, 48),
        "the rows and columns inside each patch are swapped (a transpose too many): keep (C, row, column).":
            grid.permute(0, 2, 4, 1, 5, 3).reshape(b, 6, 48),
        "you returned (B, C·p·p, N), F.unfold's raw layout: transpose to one row per patch, (B, N, C·p·p).":
            expected.transpose(1, 2),
    }
    if got.shape == (2, 3, 4, 2, 4, 4) or got.ndim > 3:
        raise CheckFailed(f"flatten each patch into one vector: expected shape (B, N, C·p·p) = "
                          f"{tuple(expected.shape)}, got {tuple(got.shape)}.")
    diagnose(got, expected, mistakes, "your patches differ from F.unfold(x, p, stride=p).transpose(1, 2).")
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4)
    with torch.no_grad():
        linear = fn(x, 4) @ conv.weight.reshape(5, -1).T + conv.bias
        if not torch.allclose(linear, conv(x).flatten(2).transpose(1, 2), atol=1e-5):
            raise CheckFailed("equal to F.unfold, but a linear layer on your patches should also equal the "
                              "strided conv.")
    counts = {(224, 16): 196, (336, 14): 576, (32, 4): 64}
    for (size, p), n in counts.items():
        tokens = fn(torch.zeros(1, 3, size, size), p)
        if tokens.shape[1] != n:
            raise CheckFailed(f"a {size}×{size} image with {p}×{p} patches should give {n} tokens, "
                              f"got {tokens.shape[1]}.")
    return ("Equal to F.unfold and, through a linear layer, to the strided-conv patch embedding; token counts "
            "right for 224/16 (196), 336/14 (576) and 32/4 (64).")


# --- 2.2 the ViT input embedding ---------------------------------------------------------------------------

@register("2.2", "ViT input embedding", V.vit_embed)
def _check_vit_embed(fn) -> str:
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)
    cls = torch.randn(1, 1, 8)
    pos = torch.randn(1, 17, 8)
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        got = require_tensor(fn(images, conv, cls, pos), "vit_embed")
        tokens = conv(images).flatten(2).transpose(1, 2)
        c = cls.expand(3, -1, -1)
        expected = torch.cat([c, tokens], 1) + pos
        mistakes = {
            "the position embeddings are missing: add pos_embed (shape (1, N + 1, D)) to the whole sequence.":
                torch.cat([c, tokens], 1),
            "the [CLS] token goes FIRST (position 0), before the patch tokens.": torch.cat([tokens, c], 1) + pos,
            "the position embeddings were added to the patches only: add them after prepending [CLS], so [CLS] "
            "gets position 0.": torch.cat([c, tokens + pos[:, 1:]], 1),
        }
    if got.shape == (3, 16, 8):
        raise CheckFailed("the [CLS] token is missing: prepend cls_token (expanded to the batch) to the patch tokens.")
    diagnose(got, expected, mistakes, "the embedded sequence differs from [CLS] + patch tokens, plus positions.")
    return "[CLS] first, then the 16 patch tokens from the conv, plus learned positions: (B, N + 1, D)."


# --- 2.3 masked mean pooling -------------------------------------------------------------------------------

@register("2.3", "masked mean pooling", E.masked_mean)
def _check_masked_mean(fn) -> str:
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = require_tensor(fn(hidden, mask), "masked_mean")
    m = mask[..., None].float()
    mistakes = {
        "the padding tokens are averaged in: multiply by the mask and divide by the number of REAL tokens "
        "per sentence (mask.sum(1)), not by the padded length.": hidden.mean(1),
        "you zeroed the padding but still divided by the padded length: divide by mask.sum(1).":
            (hidden * m).sum(1) / 5,
        "you took the last position, which is padding for short sentences: average the real tokens.": hidden[:, -1],
        "you averaged over the feature dimension: average over the tokens (dim 1), keeping (B, D).":
            (hidden * m).mean(-1),
    }
    diagnose(got, E.masked_mean(hidden, mask), mistakes, "the pooled vectors differ from the mean over real tokens.")
    return "One vector per sentence, the mean over its real tokens only."


# --- 2.4 mel filterbank ------------------------------------------------------------------------------------

@register("2.4", "mel filterbank", AU.mel_filterbank)
def _check_fbank(fn) -> str:
    import torchaudio

    got = require_tensor(fn(201, 40, 16000), "mel_filterbank")
    expected = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 40, 16000)
    freqs = torch.linspace(0, 8000, 201)
    lin = torch.linspace(0, 8000, 42)  # linearly spaced points: the mistake of skipping the mel scale
    linear_fb = torch.clamp(torch.minimum((freqs[:, None] - lin[:-2]) / (lin[1:-1] - lin[:-2]),
                                          (lin[2:] - freqs[:, None]) / (lin[2:] - lin[1:-1])), min=0)
    mel_pts = torch.linspace(0, 2595 * math.log10(1 + 8000 / 700), 42)  # edges left in mel units: no way back
    mel_units_fb = torch.clamp(torch.minimum((freqs[:, None] - mel_pts[:-2]) / (mel_pts[1:-1] - mel_pts[:-2]),
                                             (mel_pts[2:] - freqs[:, None]) / (mel_pts[2:] - mel_pts[1:-1])), min=0)
    mistakes = {
        "the filters are evenly spaced in Hz: space the n_mels + 2 edge points evenly on the MEL scale "
        "(2595·log10(1 + f/700)), then convert them back to Hz.": linear_fb,
        "your edge points are still in mel units while the FFT bins are in Hz: convert the evenly spaced mel "
        "points back to Hz (700·(10^(m/2595) − 1)) before building the triangles.": mel_units_fb,
        "you returned (n_mels, n_freqs): return one column per mel band, shape (n_freqs, n_mels), like "
        "torchaudio's melscale_fbanks.": expected.T,
    }
    if got.shape == (201, 38) or got.shape == (201, 42):
        raise CheckFailed("n_mels triangles need n_mels + 2 edge points (each triangle uses three consecutive "
                          "points); you used a different number.")
    diagnose(got, expected, mistakes, "the filters differ from torchaudio.functional.melscale_fbanks.")
    return "Equal to torchaudio.functional.melscale_fbanks (HTK mel scale, no normalisation)."


# --- 2.5 mel spectrogram -------------------------------------------------------------------------------------

@register("2.5", "mel spectrogram", AU.mel_spectrogram)
def _check_melspec(fn) -> str:
    import torchaudio

    g = torch.Generator().manual_seed(5)
    t = torch.arange(8000) / 16000
    wave = torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.randn(8000, generator=g)
    got = require_tensor(fn(wave, n_fft=400, hop_length=160, n_mels=40), "mel_spectrogram")
    expected = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(wave)
    spec = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400), return_complex=True)
    fb = AU.mel_filterbank(201, 40)
    no_window = torch.stft(wave, 400, hop_length=160, window=torch.ones(400), return_complex=True)
    not_centred = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400), center=False,
                             return_complex=True)
    mistakes = {
        "you used the magnitude |STFT|, not the power |STFT|²: square it (torchaudio's default power=2).":
            fb.T @ spec.abs(),
        "no window: pass window=torch.hann_window(n_fft) to torch.stft (a rectangular window smears energy "
        "across frequencies).": fb.T @ no_window.abs() ** 2,
        "the frames are not centred: torch.stft(..., center=True) pads half a window on each side, so frame "
        "k is centred on sample k·hop.": fb.T @ not_centred.abs() ** 2,
        "this is the log-mel: return the mel power spectrogram itself (take the log afterwards).":
            torch.log(expected + 1e-6),
        "you returned (frames, n_mels): return (n_mels, frames), like torchaudio.": expected.T,
    }
    for hint, wrong in mistakes.items():
        if got.shape == wrong.shape and torch.allclose(got, wrong, rtol=1e-3, atol=1e-3):
            raise CheckFailed(hint)
    if got.shape != expected.shape:
        raise CheckFailed(f"expected shape (n_mels, frames) = {tuple(expected.shape)}, got {tuple(got.shape)}.")
    if not torch.allclose(got, expected, rtol=1e-3, atol=1e-3):
        err = ((got - expected).abs().max() / expected.abs().max()).item()
        raise CheckFailed(f"your mel spectrogram differs from torchaudio's MelSpectrogram (largest relative "
                          f"difference {err:.2g}).")
    batch = torch.stack([wave, wave.flip(0), 0.5 * wave])  # (3, samples): the notebook calls it on batches
    try:
        got_batch = require_tensor(fn(batch, n_fft=400, hop_length=160, n_mels=40), "mel_spectrogram")
    except RuntimeError as exc:
        raise CheckFailed(f"right for one clip but it fails on a batch of shape (3, samples) ({exc}): write the "
                          "matrix product for any leading dimensions, e.g. (power.transpose(-1, -2) @ fb)"
                          ".transpose(-1, -2).") from None
    expected_batch = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(batch)
    if got_batch.shape != expected_batch.shape or not torch.allclose(got_batch, expected_batch, rtol=1e-3, atol=1e-3):
        raise CheckFailed(f"right for one clip but not for a batch (3, samples): expected shape "
                          f"{tuple(expected_batch.shape)}, got {tuple(got_batch.shape)}; use dims -1 and -2, not .T.")
    return ("Equal to torchaudio.transforms.MelSpectrogram (Hann window, centred frames, power 2, HTK mel), for one "
            "clip and for a batch.")


# --- 2.6 audio tokens ------------------------------------------------------------------------------------------

@register("2.6", "spectrogram tokens", V.spectrogram_tokens)
def _check_spec_tokens(fn) -> str:
    g = torch.Generator().manual_seed(6)
    spec = torch.randn(2, 16, 12, generator=g)  # (B, n_mels, frames)
    got = require_tensor(fn(spec, 8, 4), "spectrogram_tokens")
    expected = F.unfold(spec[:, None], kernel_size=(8, 4), stride=(8, 4)).transpose(1, 2)
    x = spec.reshape(2, 2, 8, 3, 4)
    mistakes = {
        "your tokens go time-first over the grid: go band by band (lowest frequency band first, left to right "
        "in time), like F.unfold on the (1, n_mels, frames) image.": x.permute(0, 3, 1, 2, 4).reshape(2, 6, 32),
        "inside each patch time and frequency are swapped: flatten (frequency, time), rows of the spectrogram "
        "first.": x.permute(0, 1, 3, 4, 2).reshape(2, 6, 32),
        "you cut (time × frequency) = (8 × 4) patches: the patch is patch_freq mel bands tall and patch_time "
        "frames wide.": F.unfold(spec[:, None], kernel_size=(4, 8), stride=(4, 8)).transpose(1, 2),
    }
    diagnose(got, expected, mistakes,
             "the tokens differ from F.unfold with kernel = stride = (patch_freq, patch_time).")
    ragged = torch.randn(2, 18, 13, generator=g)  # 18 bands, 13 frames: leftovers that fill no 8 × 4 patch
    try:
        got_ragged = require_tensor(fn(ragged, 8, 4), "spectrogram_tokens")
    except RuntimeError as exc:
        raise CheckFailed(f"it fails when the patches do not tile the spectrogram exactly ({exc}): drop the "
                          "leftover bands and frames first, "
                          "e.g. spec[:, :nf * patch_freq, :nt * patch_time].") from None
    expected_ragged = F.unfold(ragged[:, None], kernel_size=(8, 4), stride=(8, 4)).transpose(1, 2)
    if got_ragged.shape != expected_ragged.shape or not torch.allclose(got_ragged, expected_ragged):
        raise CheckFailed("right when the patches tile the spectrogram exactly, wrong when there are leftover "
                          "bands or frames (18 × 13 with 8 × 4 patches should give 2 × 3 = 6 tokens).")
    return ("Equal to F.unfold over the spectrogram seen as a one-channel image (6 tokens of 8 × 4 values here), "
            "leftover bands and frames dropped.")


# --- 2.7 video tubelets -------------------------------------------------------------------------------------

@register("2.7", "tubelets", VI.tubelets)
def _check_tubelets(fn) -> str:
    g = torch.Generator().manual_seed(7)
    video = torch.randn(2, 4, 3, 8, 12, generator=g)  # (B, T, C, H, W), not square
    got = require_tensor(fn(video, 2, 4), "tubelets")
    expected = VI.tubelets(video, 2, 4)
    b = 2
    x = video.reshape(b, 2, 2, 3, 2, 4, 3, 4)  # (B, nt, t, C, nh, p, nw, p)
    mistakes = {
        "inside each tubelet the values are ordered (t, C, p, p): put the channel first — (C, t, p, p), the "
        "order of nn.Conv3d's weight, so a linear layer on your tokens equals the 3-D conv.":
            x.permute(0, 1, 4, 6, 2, 3, 5, 7).reshape(b, 12, 96),
        "the tokens are ordered space first, then time: put time outermost (all patches of the first t frames, "
        "then the next), as Conv3d's output flattened with .flatten(2) does.":
            x.permute(0, 4, 6, 1, 3, 2, 5, 7).reshape(b, 12, 96),
        "these are per-frame patches (t = 1), not tubelets: each token must span t consecutive frames.":
            VI.tubelets(video, 1, 4),
    }
    diagnose(got, expected, mistakes, "your tubelets differ from the Conv3d tubelet embedding's layout.")
    conv = nn.Conv3d(3, 5, kernel_size=(2, 4, 4), stride=(2, 4, 4))
    with torch.no_grad():
        linear = got @ conv.weight.reshape(5, -1).T + conv.bias
        if not torch.allclose(linear, conv(video.transpose(1, 2)).flatten(2).transpose(1, 2), atol=1e-5):
            raise CheckFailed("a linear layer on your tubelets should equal nn.Conv3d "
                              "with kernel = stride = (t, p, p).")
    return "Same tokens as a Conv3d tubelet embedding (kernel = stride = (t, p, p)): 12 tokens of 96 numbers here."
