"""Unit tests of the Phase 2 exercise self-checks (``utils/checks/phase2.py``), with wrong answers written the
way a learner would write them, and of the Phase 2 references in ``utils`` against torchaudio."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchaudio

from tests.checks_testing import failed_with
from utils import audio as uaudio
from utils import embeddings as uembeddings
from utils import vision as uvision
from utils.checks import evaluate, phase2
from utils.checks.oracles import broken

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

    from utils.audio import log_mel
    from utils.world.speech import load_speech
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



# --- property probes: wrong answers nobody listed as a mistake, and right ones the probes must let through ------
# Each wrong answer below is caught by a property (utils/checks/phase2.py's probes), not by a list of mistakes;
# each right variant must pass the check AND keep every property (the probes are called on it directly).

def assert_keeps_every_property(probes):
    probe = broken(probes)
    assert probe is None, f"a right answer breaks the property {probe.property!r}: {probe.hint}"


# 2.1
def patchify_straight_reshape(x, p):  # no permute: each "patch" is a run of memory
    b, c, h, w = x.shape
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def patchify_strided_pixels(x, p):  # (p, H/p) instead of (H/p, p): every p-th pixel, not a p × p square
    b, c, h, w = x.shape
    return x.reshape(b, c, p, h // p, p, w // p).permute(0, 3, 5, 1, 2, 4).reshape(b, -1, c * p * p)


def patchify_batch_moved(x, p):  # the grid axes put before the batch axis
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(2, 4, 0, 1, 3, 5).reshape(b, -1, c * p * p)


def patchify_normalised(x, p):  # normalises each patch on the way (a preprocessing step, not a cut)
    t = F.unfold(x, p, stride=p).transpose(1, 2)
    return (t - t.mean(-1, keepdim=True)) / t.std(-1, keepdim=True)


def patchify_of_transposed_image(x, p):  # (H, W) swapped before cutting
    return F.unfold(x.transpose(2, 3), p, stride=p).transpose(1, 2)


def patchify_as_float64(x, p):
    b, c, h, w = x.shape
    return x.double().reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)


def patchify_loop(x, p):  # correct: slice every patch
    b, c, h, w = x.shape
    return torch.stack([x[:, :, i:i + p, j:j + p].reshape(b, -1) for i in range(0, h, p) for j in range(0, w, p)], 1)


@pytest.mark.parametrize("answer, phrase", [
    (patchify_straight_reshape, "changed several tokens"),
    (patchify_strided_pixels, "changed several tokens"),
    (patchify_batch_moved, "other examples of the batch"),
    (patchify_normalised, "values that are not in the input"),
    (patchify_of_transposed_image, "not in raster order"),
    (patchify_as_float64, "keep the images' dtype"),
])
def test_patchify_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.1", answer, phrase)


def test_patchify_right_variants_keep_every_property():
    x = torch.randn(2, 3, 12, 8)
    for answer in (uvision.patchify, patchify_loop, patchify_with_unfold, patchify_tensor_unfold):
        assert_keeps_every_property(phase2._patchify_probes(answer, x))
        assert_keeps_every_property(phase2._patchify_probes(answer, x.double()))  # float64 images too
    assert evaluate("2.1", patchify_loop).passed


# 2.2
def embed_reshaped(images, conv, cls, pos):  # reshape (B, D, h, w) -> (B, N, D) instead of moving D last
    t = conv(images)
    b, d = t.shape[:2]
    return torch.cat([cls.expand(b, -1, -1), t.reshape(b, -1, d)], 1) + pos


def embed_pos_shifted(images, conv, cls, pos):  # positions 0 … N - 1 given to the patches, none to [CLS]
    return torch.cat([cls.expand(len(images), -1, -1), _tokens(images, conv) + pos[:, :-1]], 1)


def embed_without_bias(images, conv, cls, pos):  # the conv's weight as a matrix, its bias forgotten
    p = conv.kernel_size[0]
    patches = F.unfold(images, p, stride=p).transpose(1, 2)
    tokens = patches @ conv.weight.reshape(conv.out_channels, -1).T
    return torch.cat([cls.expand(len(images), -1, -1), tokens], 1) + pos


def embed_cls_added_to_patches(images, conv, cls, pos):
    return torch.cat([cls.expand(len(images), -1, -1), _tokens(images, conv) + cls], 1) + pos


def embed_pos_twice(images, conv, cls, pos):
    return torch.cat([cls.expand(len(images), -1, -1), _tokens(images, conv) + pos[:, 1:]], 1) + pos


def embed_column_major(images, conv, cls, pos):
    tokens = conv(images).transpose(2, 3).flatten(2).transpose(1, 2)
    return torch.cat([cls.expand(len(images), -1, -1), tokens], 1) + pos


def embed_permute_reshape(images, conv, cls, pos):  # correct: D last by permute, then reshape
    t = conv(images).permute(0, 2, 3, 1)
    return torch.cat([cls.expand(len(images), -1, -1), t.reshape(len(images), -1, t.shape[-1])], 1) + pos


def embed_positions_first(images, conv, cls, pos):  # correct: add the two parts of pos_embed separately
    return torch.cat([(cls + pos[:, :1]).expand(len(images), -1, -1), _tokens(images, conv) + pos[:, 1:]], 1)


@pytest.mark.parametrize("answer, phrase", [
    (embed_reshaped, "changed several tokens"),
    (embed_pos_shifted, "adding Δ to pos_embed"),
    (embed_without_bias, "the conv's bias"),
    (embed_cls_added_to_patches, "changing cls_token should change token 0"),
    (embed_pos_twice, "adding Δ to pos_embed"),
    (embed_column_major, "not in raster order"),
])
def test_vit_embed_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.2", answer, phrase)


def test_vit_embed_right_variants_keep_every_property():
    conv = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4)
    images, cls, pos = torch.randn(3, 3, 16, 16), torch.randn(1, 1, 8), torch.randn(1, 17, 8)
    for answer in (uvision.vit_embed, embed_repeat, embed_permute_reshape, embed_positions_first):
        assert_keeps_every_property(phase2._vit_embed_probes(answer, images, conv, cls, pos))
        assert evaluate("2.2", answer).passed


# 2.3
def mean_over_batch_count(h, m):  # divides by the real tokens of the whole batch
    return (h * m[..., None]).sum(1) / m.sum()


def first_token(h, m):  # [CLS]-style pooling
    return h[:, 0]


def last_real_token(h, m):  # the causal encoder's pooling, not a mean
    return h[torch.arange(len(h)), m.sum(1) - 1]


def masked_max(h, m):
    return h.masked_fill(m[..., None] == 0, float("-inf")).max(1).values


def normalised_mean(h, m):
    return F.normalize((h * m[..., None]).sum(1) / m.sum(1, keepdim=True), dim=-1)


def masked_sum(h, m):
    return (h * m[..., None]).sum(1)


def mean_of_padding(h, m):  # the mask read the wrong way round
    return (h * (1 - m)[..., None]).sum(1) / (1 - m).sum(1, keepdim=True).clamp_min(1)


def mean_einsum(h, m):  # correct
    return torch.einsum("btd,bt->bd", h, m.to(h.dtype)) / m.sum(1, keepdim=True)


def mean_masked_fill(h, m):  # correct
    return h.masked_fill(m[..., None] == 0, 0).sum(1) / m.sum(-1)[:, None]


@pytest.mark.parametrize("answer, phrase", [
    (mean_over_batch_count, "other sentences are in the batch"),
    (first_token, "reordering the real tokens"),
    (last_real_token, "reordering the real tokens"),
    (masked_max, "a mean is linear"),
    (normalised_mean, "no normalising"),
    (masked_sum, "the same vector v"),
    (mean_of_padding, "padded positions"),
])
def test_masked_mean_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.3", answer, phrase)


def test_masked_mean_right_variants_keep_every_property():
    for answer in (uembeddings.masked_mean, mean_einsum, mean_masked_fill):
        assert_keeps_every_property(phase2._masked_mean_probes(answer, torch.randn(3, 5, 4),
                                                               torch.Generator().manual_seed(1)))
        assert evaluate("2.3", answer).passed


# 2.4
def _edges(sample_rate, n_mels):
    return _hz(torch.linspace(0, _mel(torch.tensor(sample_rate / 2)).item(), n_mels + 2))


def fbank_hard_coded_16k(n_freqs, n_mels, sample_rate=16000):  # right at 16 kHz only
    return _triangles(torch.linspace(0, 8000, n_freqs), _edges(16000, n_mels))


def fbank_top_edge_hard_coded(n_freqs, n_mels, sample_rate=16000):  # bins follow sample_rate, edges stop at 8 kHz
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), _edges(16000, n_mels))


def fbank_slaney(n_freqs, n_mels, sample_rate=16000):  # librosa's area normalisation
    pts = _edges(sample_rate, n_mels)
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), pts) * 2 / (pts[2:] - pts[:-2])


def fbank_falling_over_whole_width(n_freqs, n_mels, sample_rate=16000):
    pts, f = _edges(sample_rate, n_mels), torch.linspace(0, sample_rate // 2, n_freqs)[:, None]
    rising = (f - pts[:-2]) / (pts[1:-1] - pts[:-2])
    falling = (pts[2:] - f) / (pts[2:] - pts[:-2])
    return torch.clamp(torch.minimum(rising, falling), min=0)


def fbank_bins_up_to_sample_rate(n_freqs, n_mels, sample_rate=16000):
    return _triangles(torch.linspace(0, sample_rate, n_freqs), _edges(sample_rate, n_mels))


def fbank_ln_then_power_of_10(n_freqs, n_mels, sample_rate=16000):  # natural log one way, 10^x back
    top = 2595 * math.log(1 + sample_rate / 2 / 700)
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), _hz(torch.linspace(0, top, n_mels + 2)))


def fbank_natural_log(n_freqs, n_mels, sample_rate=16000):  # correct: 1127·ln(1 + f/700) both ways
    top = 1127 * math.log(1 + sample_rate / 2 / 700)
    pts = 700 * (torch.exp(torch.linspace(0, top, n_mels + 2) / 1127) - 1)
    return _triangles(torch.linspace(0, sample_rate // 2, n_freqs), pts)


def fbank_rfftfreq(n_freqs, n_mels, sample_rate=16000):  # correct: the bins from torch.fft.rfftfreq
    return _triangles(torch.fft.rfftfreq(2 * (n_freqs - 1), 1 / sample_rate), _edges(sample_rate, n_mels))


def fbank_loop(n_freqs, n_mels, sample_rate=16000):  # correct: one column at a time, float64
    f, pts = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64), _edges(sample_rate, n_mels).double()
    out = torch.zeros(n_freqs, n_mels, dtype=torch.float64)
    for k in range(n_mels):
        left, centre, right = pts[k], pts[k + 1], pts[k + 2]
        up, down = (f >= left) & (f <= centre), (f > centre) & (f <= right)
        out[up, k] = (f[up] - left) / (centre - left)
        out[down, k] = (right - f[down]) / (right - centre)
    return out


@pytest.mark.parametrize("answer, phrase", [
    (fbank_hard_coded_16k, "the same for sample_rate = 16000 and 8000"),
    (fbank_top_edge_hard_coded, "Nyquist"),
    (fbank_slaney, "height 1"),
    (fbank_falling_over_whole_width, "OWN width"),
    (fbank_bins_up_to_sample_rate, "not up to the sample rate itself"),
    (fbank_ln_then_power_of_10, "Nyquist"),
])
def test_fbank_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.4", answer, phrase)


def test_fbank_right_variants_keep_every_property():
    for answer in (uaudio.mel_filterbank, fbank_by_hand, fbank_natural_log, fbank_rfftfreq, fbank_loop):
        assert_keeps_every_property(phase2._fbank_probes(answer))
        assert evaluate("2.4", answer).passed


# 2.5
def _power(wave, n_fft, hop, **kwargs):
    return torch.stft(wave, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True, **kwargs).abs() ** 2


def _pool(power, fb):
    return (power.transpose(-1, -2) @ fb).transpose(-1, -2)


def mel_decibels(wave, n_fft=400, hop_length=160, n_mels=64):
    return 10 * torch.log10(_pool(_power(wave, n_fft, hop_length), _fb(n_fft, n_mels)) + 1e-10)


def mel_zero_padded(wave, n_fft=400, hop_length=160, n_mels=64):
    return _pool(_power(wave, n_fft, hop_length, pad_mode="constant"), _fb(n_fft, n_mels))


def mel_normalized_stft(wave, n_fft=400, hop_length=160, n_mels=64):
    return _pool(_power(wave, n_fft, hop_length, normalized=True), _fb(n_fft, n_mels))


def mel_slaney_filters(wave, n_fft=400, hop_length=160, n_mels=64):
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, 8000.0, n_mels, 16000, norm="slaney")
    return _pool(_power(wave, n_fft, hop_length), fb)


def mel_filters_of_22k(wave, n_fft=400, hop_length=160, n_mels=64):  # a filterbank built for 22.05 kHz audio
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, 11025.0, n_mels, 22050)
    return _pool(_power(wave, n_fft, hop_length), fb)


def mel_squared_after_pooling(wave, n_fft=400, hop_length=160, n_mels=64):
    return _pool(_power(wave, n_fft, hop_length) ** 0.5, _fb(n_fft, n_mels)) ** 2


def mel_symmetric_hann(wave, n_fft=400, hop_length=160, n_mels=64):
    s = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft, periodic=False), return_complex=True)
    return _pool(s.abs() ** 2, _fb(n_fft, n_mels))


def mel_fb_first(wave, n_fft=400, hop_length=160, n_mels=64):  # correct: (n_mels, F) @ (..., F, T) broadcasts
    return _fb(n_fft, n_mels).T @ _power(wave, n_fft, hop_length)


def mel_einsum(wave, n_fft=400, hop_length=160, n_mels=64):  # correct
    return torch.einsum("...ft,fm->...mt", _power(wave, n_fft, hop_length), _fb(n_fft, n_mels))


@pytest.mark.parametrize("answer, phrase", [
    (mel_decibels, "negative values"),
    (mel_zero_padded, "BY REFLECTION"),
    (mel_normalized_stft, "times a constant"),
    (mel_slaney_filters, "its own factor"),
    (mel_filters_of_22k, "2 kHz tone"),
    (mel_squared_after_pooling, "squared afterwards"),
    (mel_symmetric_hann, "symmetric Hann"),
])
def test_melspec_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.5", answer, phrase)


def test_melspec_right_variants_keep_every_property():
    wave = torch.sin(2 * torch.pi * 300 * torch.arange(8000) / 16000) + 0.1 * torch.randn(8000)
    for answer in (uaudio.mel_spectrogram, mel_fb_first, mel_einsum, mel_manual_frames):
        assert_keeps_every_property(phase2._melspec_probes(answer, wave))
        assert evaluate("2.5", answer).passed


# 2.6
def spec_straight_reshape(spec, pf, pt):
    b, f, t = spec.shape
    nf, nt = f // pf, t // pt
    return spec[:, :nf * pf, :nt * pt].reshape(b, nf * nt, pf * pt)


def spec_as_frames_by_bands(spec, pf, pt):  # cut the (frames, bands) transpose
    b, f, t = spec.shape
    nf, nt = f // pf, t // pt
    x = spec[:, :nf * pf, :nt * pt].transpose(1, 2).reshape(b, nt, pt, nf, pf).permute(0, 1, 3, 2, 4)
    return x.reshape(b, -1, pf * pt)


def spec_zero_padded(spec, pf, pt):  # pads the leftovers instead of dropping them
    s = F.pad(spec, (0, (-spec.shape[2]) % pt, 0, (-spec.shape[1]) % pf))
    return F.unfold(s[:, None], (pf, pt), stride=(pf, pt)).transpose(1, 2)


def spec_strided(spec, pf, pt):  # (pf, F/pf) instead of (F/pf, pf)
    b, f, t = spec.shape
    nf, nt = f // pf, t // pt
    x = spec[:, :nf * pf, :nt * pt].reshape(b, pf, nf, pt, nt).permute(0, 2, 4, 1, 3)
    return x.reshape(b, -1, pf * pt)


def spec_loop(spec, pf, pt):  # correct
    b, f, t = spec.shape
    return torch.stack([spec[:, i:i + pf, j:j + pt].reshape(b, -1)
                        for i in range(0, f - pf + 1, pf) for j in range(0, t - pt + 1, pt)], 1)


def spec_tensor_unfold(spec, pf, pt):  # correct: Tensor.unfold drops the leftovers by itself
    return spec.unfold(1, pf, pf).unfold(2, pt, pt).reshape(spec.shape[0], -1, pf * pt)


@pytest.mark.parametrize("answer, phrase", [
    (spec_straight_reshape, "changed several tokens"),
    (spec_as_frames_by_bands, "not in raster order"),
    (spec_zero_padded, "leftovers dropped"),
    (spec_strided, "changed several tokens"),
])
def test_spec_tokens_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.6", answer, phrase)


def test_spec_tokens_right_variants_keep_every_property():
    spec = torch.randn(2, 16, 12)
    for answer in (uaudio.spectrogram_tokens, spec_with_patchify, spec_loop, spec_tensor_unfold):
        assert_keeps_every_property(phase2._spec_token_probes(answer, spec))
        assert evaluate("2.6", answer).passed


# 2.7
def tubelets_straight_reshape(v, t, p):
    b, T, c, h, w = v.shape
    return v.reshape(b, -1, c * t * p * p)


def tubelets_read_as_bcthw(v, t, p):  # splits the clip as if it were (B, C, T, H, W), Conv3d's layout
    b, T, c, h, w = v.shape
    x = v.reshape(b, c, T // t, t, h // p, p, w // p, p).permute(0, 2, 4, 6, 1, 3, 5, 7)
    return x.reshape(b, -1, c * t * p * p)


def tubelets_columns_before_rows(v, t, p):
    b, T, c, h, w = v.shape
    x = v.reshape(b, T // t, t, c, h // p, p, w // p, p).permute(0, 1, 6, 4, 3, 2, 5, 7)
    return x.reshape(b, -1, c * t * p * p)


def tubelets_pixels_transposed(v, t, p):  # (C, t, column, row) inside a token
    b, T, c, h, w = v.shape
    x = v.reshape(b, T // t, t, c, h // p, p, w // p, p).permute(0, 1, 4, 6, 3, 2, 7, 5)
    return x.reshape(b, -1, c * t * p * p)


def tubelets_time_averaged(v, t, p):  # averages the t frames of a tubelet and repeats the average
    b, T, c, h, w = v.shape
    x = v.reshape(b, T // t, t, c, h // p, p, w // p, p).mean(2, keepdim=True).expand(-1, -1, t, -1, -1, -1, -1, -1)
    return x.permute(0, 1, 4, 6, 3, 2, 5, 7).reshape(b, -1, c * t * p * p)


def tubelets_unfold_per_time_block(v, t, p):  # correct: fold (C, t) into channels, F.unfold each block of frames
    b, T, c, h, w = v.shape
    blocks = [v[:, a * t:(a + 1) * t].transpose(1, 2).reshape(b, c * t, h, w) for a in range(T // t)]
    return torch.cat([F.unfold(x, p, stride=p).transpose(1, 2) for x in blocks], 1)


@pytest.mark.parametrize("answer, phrase", [
    (tubelets_straight_reshape, "changed several tokens"),
    (tubelets_read_as_bcthw, "changed several tokens"),
    (tubelets_columns_before_rows, "tubelets are not in order"),
    (tubelets_pixels_transposed, "frame by frame, then row by row"),
    (tubelets_time_averaged, "values that are not in the input"),
])
def test_tubelet_properties_name_unlisted_mistakes(answer, phrase):
    failed_with("2.7", answer, phrase)


def test_tubelet_right_variants_keep_every_property():
    video = torch.randn(2, 4, 3, 8, 12)
    for answer in (uvision.tubelets, tubelets_with_unfold, tubelets_unfold_per_time_block):
        assert_keeps_every_property(phase2._tubelet_probes(answer, video))
        assert evaluate("2.7", answer).passed
