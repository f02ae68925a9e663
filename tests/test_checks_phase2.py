"""Unit tests of the Phase 2 exercise self-checks (``utils/checks/phase2.py``), with wrong answers written the
way a learner would write them, and of the Phase 2 references in ``utils`` against torchaudio."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils.checks import evaluate

# --- 2.1 patchify -------------------------------------------------------------------------------------

def patchify_hwc(x, p):  # flattens each patch as (row, column, channel), the NumPy-image habit
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def patchify_column_major(x, p):
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(b, -1, c * p * p)


def patchify_unfold_raw(x, p):
    return F.unfold(x, p, stride=p)


def patchify_unflattened(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)


def patchify_with_unfold(x, p):  # correct: the library route
    return F.unfold(x, p, stride=p).transpose(1, 2)


def patchify_tensor_unfold(x, p):  # correct: Tensor.unfold twice
    b, c, _, _ = x.shape
    t = x.unfold(2, p, p).unfold(3, p, p)            # (B, C, nh, nw, p, p)
    return t.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)


@pytest.mark.parametrize("answer, phrase", [
    (patchify_hwc, "(row, column, channel)"),
    (patchify_column_major, "column-major"),
    (patchify_unfold_raw, "F.unfold's raw layout"),
    (patchify_unflattened, "flatten each patch"),
])
def test_patchify_mistakes(answer, phrase):
    failed_with("2.1", answer, phrase)


@pytest.mark.parametrize("answer", [patchify_with_unfold, patchify_tensor_unfold])
def test_patchify_correct_variants_pass(answer):
    assert evaluate("2.1", answer).passed


# --- 2.4 mel filterbank ---------------------------------------------------------------------------------

def _triangles(freqs, pts):
    left, centre, right = pts[:-2], pts[1:-1], pts[2:]
    return torch.clamp(torch.minimum((freqs[:, None] - left) / (centre - left),
                                     (right - freqs[:, None]) / (right - centre)), min=0)


def fbank_linear_hz(n_freqs, n_mels, sample_rate):
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), torch.linspace(0, sample_rate / 2, n_mels + 2))


def fbank_transposed(n_freqs, n_mels, sample_rate):
    import torchaudio
    return torchaudio.functional.melscale_fbanks(n_freqs, 0.0, sample_rate / 2, n_mels, sample_rate).T


def _mel(f):  # Hz -> mel (the HTK formula)
    return 2595 * torch.log10(1 + f / 700)


def _hz(m):  # mel -> Hz
    return 700 * (10 ** (m / 2595) - 1)


def fbank_too_few_points(n_freqs, n_mels, sample_rate):
    pts = _hz(torch.linspace(0, _mel(torch.tensor(sample_rate / 2)).item(), n_mels))
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), pts)


def fbank_by_hand(n_freqs, n_mels, sample_rate):  # correct, written independently
    pts = _hz(torch.linspace(0, _mel(torch.tensor(sample_rate / 2)).item(), n_mels + 2))
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), pts)


@pytest.mark.parametrize("answer, phrase", [
    (fbank_linear_hz, "evenly spaced in Hz"),
    (fbank_transposed, "(n_mels, n_freqs)"),
    (fbank_too_few_points, "n_mels + 2 edge points"),
])
def test_fbank_mistakes(answer, phrase):
    failed_with("2.4", answer, phrase)


def test_fbank_by_hand_passes():
    assert evaluate("2.4", fbank_by_hand).passed


# --- 2.5 mel spectrogram -----------------------------------------------------------------------------------

def _fb(n_fft, n_mels):
    import torchaudio
    return torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, 8000.0, n_mels, 16000)


def mel_magnitude(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True).abs()
    return _fb(n_fft, n_mels).T @ s


def mel_no_window(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.ones(n_fft), return_complex=True).abs() ** 2
    return _fb(n_fft, n_mels).T @ s


def mel_not_centred(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), center=False, return_complex=True)
    return _fb(n_fft, n_mels).T @ s.abs() ** 2


def mel_log(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    return torch.log(_fb(n_fft, n_mels).T @ s + 1e-6)


def mel_time_major(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    return s.T @ _fb(n_fft, n_mels)


def mel_manual_frames(wave, n_fft=400, hop_length=160, n_mels=64):  # correct: framing by hand + rfft
    x = wave if wave.ndim > 1 else wave[None]
    padded = F.pad(x[:, None], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0]
    frames = padded.unfold(-1, n_fft, hop_length) * torch.hann_window(n_fft)   # (B, frames, n_fft)
    power = torch.fft.rfft(frames, dim=-1).abs() ** 2                         # (B, frames, n_fft//2 + 1)
    out = (power @ _fb(n_fft, n_mels)).transpose(-1, -2)
    return out if wave.ndim > 1 else out[0]


@pytest.mark.parametrize("answer, phrase", [
    (mel_magnitude, "magnitude"),
    (mel_no_window, "no window"),
    (mel_not_centred, "not centred"),
    (mel_log, "log-mel"),
    (mel_time_major, "(frames, n_mels)"),
])
def test_melspec_mistakes(answer, phrase):
    failed_with("2.5", answer, phrase)


def test_melspec_by_hand_passes():
    assert evaluate("2.5", mel_manual_frames).passed


# --- 2.7 tubelets -----------------------------------------------------------------------------------------------

def tubelets_time_inside(v, t, p):
    b, T, c, h, w = v.shape
    x = v.reshape(b, T // t, t, c, h // p, p, w // p, p).permute(0, 1, 4, 6, 2, 3, 5, 7)
    return x.reshape(b, -1, t * c * p * p)


def tubelets_space_first(v, t, p):
    b, T, c, h, w = v.shape
    x = v.reshape(b, T // t, t, c, h // p, p, w // p, p).permute(0, 4, 6, 1, 3, 2, 5, 7)
    return x.reshape(b, -1, c * t * p * p)


def tubelets_per_frame(v, t, p):
    b, T, c, h, w = v.shape
    x = v.reshape(b, T, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, -1, c * p * p)


def tubelets_with_unfold(v, t, p):  # correct: Tensor.unfold over time, rows and columns
    b, T, c, h, w = v.shape
    x = v.transpose(1, 2).unfold(2, t, t).unfold(3, p, p).unfold(4, p, p)  # (B, C, nt, nh, nw, t, p, p)
    return x.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(b, -1, c * t * p * p)


@pytest.mark.parametrize("answer, phrase", [
    (tubelets_time_inside, "(t, C, p, p)"),
    (tubelets_space_first, "space first"),
    (tubelets_per_frame, "per-frame patches"),
])
def test_tubelet_mistakes(answer, phrase):
    failed_with("2.7", answer, phrase)


def test_tubelets_unfold_variant_passes():
    assert evaluate("2.7", tubelets_with_unfold).passed


# --- the utils references agree with torchaudio on real speech -------------------------------------------------

def test_log_mel_matches_torchaudio_on_a_spoken_word():
    import torchaudio

    from utils.audio import load_speech, log_mel
    wave = load_speech(words=["circle"], voices=["us"]).waveforms[0]
    ours = log_mel(wave, n_mels=64)
    theirs = torch.log(torchaudio.transforms.MelSpectrogram(16000, 400, hop_length=160, n_mels=64)(wave) + 1e-6)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-3)


# --- 2.2 ViT embedding -----------------------------------------------------------------------------------

def _tokens(images, conv):
    return conv(images).flatten(2).transpose(1, 2)


def embed_no_pos(images, conv, cls, pos):
    return torch.cat([cls.expand(len(images), -1, -1), _tokens(images, conv)], 1)


def embed_cls_last(images, conv, cls, pos):
    return torch.cat([_tokens(images, conv), cls.expand(len(images), -1, -1)], 1) + pos


def embed_pos_patches_only(images, conv, cls, pos):
    return torch.cat([cls.expand(len(images), -1, -1), _tokens(images, conv) + pos[:, 1:]], 1)


def embed_no_cls(images, conv, cls, pos):
    return _tokens(images, conv) + pos[:, 1:]


def embed_repeat(images, conv, cls, pos):  # correct: repeat instead of expand
    return torch.cat([cls.repeat(len(images), 1, 1), _tokens(images, conv)], 1) + pos


@pytest.mark.parametrize("answer, phrase", [
    (embed_no_pos, "position embeddings are missing"),
    (embed_cls_last, "goes FIRST"),
    (embed_pos_patches_only, "patches only"),
    (embed_no_cls, "[CLS] token is missing"),
])
def test_vit_embed_mistakes(answer, phrase):
    failed_with("2.2", answer, phrase)


def test_vit_embed_repeat_passes():
    assert evaluate("2.2", embed_repeat).passed


# --- 2.3 masked mean ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, phrase", [
    (lambda h, m: h.mean(1), "padding tokens are averaged in"),
    (lambda h, m: (h * m[..., None]).sum(1) / h.shape[1], "still divided by the padded length"),
    (lambda h, m: h[:, -1], "last position"),
    (lambda h, m: (h * m[..., None]).mean(-1), "feature dimension"),
])
def test_masked_mean_mistakes(answer, phrase):
    failed_with("2.3", answer, phrase)


def test_masked_mean_index_variant_passes():
    def by_loop(h, m):
        return torch.stack([h[i, m[i].bool()].mean(0) for i in range(len(h))])
    assert evaluate("2.3", by_loop).passed


# --- 2.6 spectrogram tokens ------------------------------------------------------------------------------------

def spec_time_first(spec, pf, pt):
    b, f, t = spec.shape
    x = spec.reshape(b, f // pf, pf, t // pt, pt).permute(0, 3, 1, 2, 4)
    return x.reshape(b, -1, pf * pt)


def spec_inner_swapped(spec, pf, pt):
    b, f, t = spec.shape
    x = spec.reshape(b, f // pf, pf, t // pt, pt).permute(0, 1, 3, 4, 2)
    return x.reshape(b, -1, pf * pt)


def spec_patch_swapped(spec, pf, pt):
    return F.unfold(spec[:, None], (pt, pf), stride=(pt, pf)).transpose(1, 2)


def spec_with_patchify(spec, pf, pt):  # correct: F.unfold on a 1-channel image
    return F.unfold(spec[:, None], (pf, pt), stride=(pf, pt)).transpose(1, 2)


@pytest.mark.parametrize("answer, phrase", [
    (spec_time_first, "time-first"),
    (spec_inner_swapped, "time and frequency are swapped"),
    (spec_patch_swapped, "(time × frequency)"),
])
def test_spec_token_mistakes(answer, phrase):
    failed_with("2.6", answer, phrase)


def test_spec_tokens_unfold_passes():
    assert evaluate("2.6", spec_with_patchify).passed


def test_tiny_vit_shapes_and_cls_attention():
    from utils.vision import TinyViT
    model = TinyViT(image_size=32, patch_size=8, dim=16, depth=2, heads=2, n_classes=3)
    x = torch.randn(4, 3, 32, 32)
    assert model(x).shape == (4, 3)
    assert model.features(x).shape == (4, 17, 16)
    attn = model.cls_attention(x)
    assert attn.shape == (4, 16) and bool((attn >= 0).all()) and bool((attn.sum(-1) <= 1 + 1e-5).all())


def mel_unbatched(wave, n_fft=400, hop_length=160, n_mels=64):  # right for one clip, breaks on a batch
    power = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    return (power.T @ _fb(n_fft, n_mels)).T


def spec_no_crop(spec, pf, pt):  # right when patches tile exactly, crashes otherwise
    b, f, t = spec.shape
    return spec.reshape(b, f // pf, pf, t // pt, pt).permute(0, 1, 3, 2, 4).reshape(b, -1, pf * pt)


def test_melspec_must_handle_batches():
    failed_with("2.5", mel_unbatched, "batch")


def test_spec_tokens_must_drop_leftovers():
    failed_with("2.6", spec_no_crop, "leftover")


def test_filterbank_with_edges_left_in_mel_units_is_named():
    """Learner-trial finding: forgetting the mel -> Hz conversion got a generic hint."""
    import math

    def fbank_mel_units(n_freqs, n_mels, sample_rate):
        freqs = torch.linspace(0, sample_rate / 2, n_freqs)
        pts = torch.linspace(0, 2595 * math.log10(1 + sample_rate / 2 / 700), n_mels + 2)
        up = (freqs[:, None] - pts[:-2]) / (pts[1:-1] - pts[:-2])
        down = (pts[2:] - freqs[:, None]) / (pts[2:] - pts[1:-1])
        return torch.clamp(torch.minimum(up, down), min=0)

    failed_with("2.4", fbank_mel_units, "still in mel units")

