"""Audio as a model sees it: waveforms batched, the mel front end, spectrogram patches, a spectrogram CNN.
Introduced in Phase 2 (the references of its audio exercises; torchaudio is the oracle there).

The clips themselves are the world's: :mod:`utils.world.speech` (``load_speech``, ``voice_split``, ``WORDS``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .world.speech import SAMPLE_RATE


def pad_or_trim(wave: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Make a 1-D waveform exactly ``n_samples`` long: zero-pad at the end, or cut the end off.
    Introduced in Phase 2."""
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(wave.shape)}")
    if len(wave) >= n_samples:
        return wave[:n_samples]
    return torch.cat([wave, wave.new_zeros(n_samples - len(wave))])


def batch_waveforms(waves: Sequence[torch.Tensor], n_samples: int = SAMPLE_RATE) -> torch.Tensor:
    """Stack waveforms of different lengths into one float32 tensor (N, n_samples) with :func:`pad_or_trim`
    (default 1 s). Introduced in Phase 2."""
    if len(waves) == 0:
        return torch.zeros(0, n_samples)
    return torch.stack([pad_or_trim(w, n_samples) for w in waves]).float()


# ----------------------------------------------------------------------------------------------------------
# Spectrograms (references of the Phase 2 audio exercises; torchaudio is the oracle)

def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """The HTK mel scale: 2595 · log10(1 + f / 700) (torchaudio's default ``mel_scale="htk"``)."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular mel filters, (n_freqs, n_mels): column m rises linearly from mel point m to m + 1 and falls
    to m + 2, where the n_mels + 2 points are evenly spaced on the mel scale between f_min and f_max.
    Equals ``torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate)``."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    points = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)).item(), hz_to_mel(torch.tensor(f_max)).item(),
                                      n_mels + 2))
    left, centre, right = points[:-2], points[1:-1], points[2:]
    rising = (freqs[:, None] - left) / (centre - left)
    falling = (right - freqs[:, None]) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def power_spectrogram(wave: torch.Tensor, n_fft: int = 400, hop_length: int = 160) -> torch.Tensor:
    """|STFT|² with a periodic Hann window, centred frames (reflect padding): (..., n_fft // 2 + 1, frames).
    Equals ``torchaudio.transforms.Spectrogram(n_fft, hop_length=hop_length)``."""
    spec = torch.stft(wave, n_fft, hop_length=hop_length, window=torch.hann_window(n_fft, device=wave.device),
                      center=True, pad_mode="reflect", return_complex=True)
    return spec.abs() ** 2


def mel_spectrogram(wave: torch.Tensor, n_fft: int = 400, hop_length: int = 160, n_mels: int = 64,
                    sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Mel power spectrogram (..., n_mels, frames): the power spectrogram pooled by :func:`mel_filterbank`.
    Equals ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length=hop_length, n_mels=n_mels)``."""
    fb = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate).to(wave.device)
    return (power_spectrogram(wave, n_fft, hop_length).transpose(-1, -2) @ fb).transpose(-1, -2)


def log_mel(wave: torch.Tensor, eps: float = 1e-6, **kwargs) -> torch.Tensor:
    """log(mel spectrogram + eps): the input representation of Whisper-style audio encoders."""
    return torch.log(mel_spectrogram(wave, **kwargs) + eps)


def spectrogram_cnn(n_outputs: int, dropout: float = 0.0, widths: Sequence[int] = (16, 32, 64)) -> nn.Sequential:
    """A small CNN for (B, 1, mel bands, frames) spectrograms: blocks of conv 3×3 → BatchNorm → ReLU → max-pool
    ×2, global average pooling, (dropout,) a linear layer to ``n_outputs``. Phase 2's spoken-word classifier
    and Phase 3's ImageBind-style audio tower."""
    blocks, c_in = [], 1
    for c_out in widths:
        blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                    nn.MaxPool2d(2)))
        c_in = c_out
    head = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head, nn.Linear(c_in, n_outputs))


def spectrogram_tokens(spec: torch.Tensor, patch_freq: int, patch_time: int) -> torch.Tensor:
    """Cut spectrograms (B, n_mels, frames) into patch_freq × patch_time patches, in raster order over the
    (frequency band, time step) grid, lowest band first: (B, N, patch_freq · patch_time).
    The audio counterpart of :func:`utils.vision.patchify` (AST, Whisper-style audio tokens; Exercise 2.6)."""
    b, f, t = spec.shape
    nf, nt = f // patch_freq, t // patch_time
    x = spec[:, : nf * patch_freq, : nt * patch_time].reshape(b, nf, patch_freq, nt, patch_time)
    return x.permute(0, 1, 3, 2, 4).reshape(b, nf * nt, patch_freq * patch_time)


def players(waves: Sequence[torch.Tensor], labels: Sequence[str], rate: int = SAMPLE_RATE):
    """Audio players in a row, each under its label, for a notebook (``IPython.display.Audio`` embedded as WAV).
    Introduced in Phase 6: listen to what a model hears, codes or says."""
    from html import escape

    from IPython.display import HTML, Audio

    cells = []
    for wave, label in zip(waves, labels):
        audio = Audio(wave.detach().cpu().float().numpy(), rate=rate, normalize=True)._repr_html_()
        cells.append(f'<div style="display:inline-block;margin:0 14px 8px 0;font-size:12px">{escape(label)}<br>'
                     f"{audio}</div>")
    return HTML("".join(cells))
