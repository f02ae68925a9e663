"""Checks for the Phase 2 exercises (encoders for each modality).

Oracles: ``F.unfold`` and a strided ``nn.Conv2d`` (patchify), ``torchaudio.functional.melscale_fbanks`` and
``torchaudio.transforms.MelSpectrogram`` (audio front end), ``nn.Conv3d`` (video tubelets).

2.1 patchify, 2.2 the ViT input embedding, 2.3 masked mean pooling, 2.4 mel filterbank, 2.5 mel spectrogram,
2.6 spectrogram tokens, 2.7 tubelets.

Besides the known mistakes, each check probes properties every right answer has: a cut into patches, tiles or
tubelets only moves values, keeps the examples of a batch apart, puts each piece whole into one token, in
raster order, with a fixed layout inside the token; the ViT input adds the positions once and keeps [CLS] in
front; a masked mean ignores padding, is linear and does not care about the order of the tokens; a filterbank
is triangles of height 1 that add up to 1, evenly spaced in mel from 0 Hz to Nyquist; a power spectrogram is
non-negative and quadratic in the waveform.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import audio
from .. import embeddings as uembeddings
from .. import vision as uvision
from . import CheckFailed, Mismatch, register
from .oracles import (
    Probe,
    batch_independent,
    changes_when,
    close,
    describe,
    diagnose,
    invariant,
    require_properties,
    require_tensor,
    unchanged_when,
)

# References captured at import: a notebook may rebind a module's function to a learner's passing version, and
# the checks must still compare with the course's answer.
_masked_mean, _fbank, _tubelets = uembeddings.masked_mean, audio.mel_filterbank, uvision.tubelets


# --- probes shared by 2.1, 2.6 and 2.7: cutting an input into tokens ----------------------------------------------
# (a generic "one piece of the input -> one whole token, at this index" builder that oracles.py does not have)

def _bumped(x: torch.Tensor, region: tuple) -> torch.Tensor:
    """``x`` with 1 added to ``region`` (an index into its first example)."""
    y = x.clone()
    y[(0, *region)] += 1.0
    return y


def _changed_tokens(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, region: tuple):
    """The first example's tokens that change when ``region`` of that example changes: (their indices, changes)."""
    d = f(_bumped(x, region))[0] - f(x)[0]
    rows = (d.abs() > 1e-6).any(-1).nonzero().flatten()
    return rows.tolist(), d[rows]


def _cutting_probes(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, blocks: Sequence[tuple[tuple, int]],
                    order_hint: str, layouts: Sequence[tuple[torch.Tensor, torch.Tensor, str]], piece: str,
                    pieces: str) -> list[Probe]:
    """Probes for an answer that cuts ``x`` (B, ...) into tokens (B, N, K) by moving values only. ``blocks``:
    (the index of one piece inside an example, the token number that piece must become); ``layouts``: (an input,
    the vector that every one of its tokens must be, the hint when it is not) — the order inside a token."""

    def one_piece_one_token() -> bool:
        for region, _ in blocks:
            rows, d = _changed_tokens(f, x, region)
            if len(rows) != 1 or not torch.allclose(d, torch.ones_like(d), atol=1e-5):
                return False
        return True

    def in_order() -> bool:
        return all(_changed_tokens(f, x, region)[0] == [index] for region, index in blocks)

    def every_token_is(inp: torch.Tensor, want: torch.Tensor) -> Callable[[], bool]:
        def holds() -> bool:
            out = f(inp)
            return close(out, want.expand(out.shape))
        return holds

    probes = [
        Probe("values only moved", lambda: close(f(x).flatten().sort().values, x.flatten().sort().values),
              "your tokens hold values that are not in the input (or some values twice, some never): cutting into "
              f"{pieces} only moves numbers around — reshape, permute, slicing; no arithmetic, no overlap, no "
              "padding."),
        Probe("examples kept apart", batch_independent(f, x),
              "the tokens of the first example change when the other examples of the batch change: keep the batch "
              "axis first in every reshape and permute, so no example mixes with another."),
        Probe(f"one {piece}, one whole token", one_piece_one_token,
              f"changing the values of one {piece} changed several tokens, or only part of one: each token must "
              f"hold exactly one {piece}, whole. Split every axis into (how many {pieces} fit, the size of one) and "
              f"permute before flattening; a reshape straight to (B, N, ...) cuts rows of memory, not {pieces}."),
        Probe("tokens in raster order", in_order, order_hint),
    ]
    probes += [Probe("layout inside a token", every_token_is(inp, want), hint) for inp, want, hint in layouts]
    return probes


# --- 2.1 patchify ---------------------------------------------------------------------------------------

def _patchify_probes(fn, x: torch.Tensor) -> list[Probe]:
    """The properties of every right patchify, read with p = 4 on images ``x`` of shape (2, 3, 12, 8)."""
    inside = torch.arange(16.0).reshape(4, 4).repeat(3, 2)  # (12, 8): the value is row·p + column inside its patch
    layouts = [
        (torch.arange(3.0)[None, :, None, None].expand(1, 3, 12, 8).contiguous(),
         torch.arange(3.0).repeat_interleave(16),
         "inside each patch the values are not channel first: on an image whose channel c is filled with c, every "
         "token should read 16 zeros, 16 ones, 16 twos — the (C, p, p) order of F.unfold and of a conv's weight."),
        (inside[None, None].expand(1, 3, 12, 8).contiguous(), torch.arange(16.0).repeat(3),
         "inside each channel of a patch the pixels should go row by row (the p values of the patch's top row, then "
         "the next row): yours are in another order — a transpose of the p × p block?"),
    ]
    return _cutting_probes(
        lambda imgs: fn(imgs, 4), x,
        blocks=[((slice(None), slice(8, 12), slice(0, 4)), 4), ((slice(None), slice(0, 4), slice(4, 8)), 1)],
        order_hint="the patches are not in raster order: the patch in grid row i, grid column j should be token "
                   "i·(W/p) + j — the top row of patches left to right, then the next row (grid rows outside, "
                   "grid columns inside; and H/p rows, W/p columns, not the other way round).",
        layouts=layouts, piece="p × p patch", pieces="patches")


@register("2.1", "patchify", uvision.patchify, hints=(
    "Check the shapes first: two 3-channel 12×8 images with p = 4 give 3 rows × 2 columns = 6 patches of "
    "3·4·4 = 48 numbers each, so (2, 6, 48). Print the shape after every step.",
    "Section 1, 'Images as sequences of patches': split each spatial axis into (number of patches, p), so the "
    "image becomes a 6-D tensor (B, C, H/p, p, W/p, p); then permute so the two patch-grid axes (rows, then "
    "columns) come right after B and the patch's own (C, p, p) axes come last, and only then flatten.",
    "Worked sub-step, for a 12×8 image and p = 4: token 0 is rows 0–3 × columns 0–3, token 1 is rows 0–3 × "
    "columns 4–7, token 2 starts the second row of patches (rows 4–7). Inside a token the first 16 numbers are "
    "channel 0, row by row, then channel 1, then channel 2.",
))
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
    probes = _patchify_probes(fn, x)
    diagnose(got, expected, mistakes, "your patches differ from F.unfold(x, p, stride=p).transpose(1, 2).",
             probes=probes)
    if got.dtype != x.dtype:
        raise CheckFailed(f"the right patches, but as {str(got.dtype).replace('torch.', '')} from "
                          f"{str(x.dtype).replace('torch.', '')} images: keep the images' dtype (patchify only "
                          "moves values), or the linear patch embedding that follows cannot multiply them.")
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

def _vit_embed_probes(fn, images: torch.Tensor, conv: nn.Conv2d, cls: torch.Tensor,
                      pos: torch.Tensor) -> list[Probe]:
    """The properties of every right ViT input, read on 3 images (3, 3, 16, 16), a conv of 4 × 4 patches to D = 8,
    cls (1, 1, 8) and pos (1, 17, 8)."""
    def run(imgs=images, cls_token=cls, pos_embed=pos):
        with torch.no_grad():
            return fn(imgs, conv, cls_token, pos_embed)

    g = torch.Generator().manual_seed(22)
    d_pos, d_cls = torch.randn(1, 17, 8, generator=g), torch.randn(1, 1, 8, generator=g)
    other = torch.randn(3, 3, 16, 16, generator=g)
    only_cls = torch.zeros(3, 17, 8)
    only_cls[:, 0] = d_cls[0]

    def patch_tokens_changed(region) -> list[int]:
        bumped = images.clone()
        bumped[(0, *region)] += 1.0
        return ((run(imgs=bumped)[0] - run()[0]).abs() > 1e-6).any(-1).nonzero().flatten().tolist()

    one_patch = (slice(None), slice(8, 12), slice(4, 8))  # grid row 2, column 1 of 4 × 4: token 1 + 2·4 + 1 = 10
    return [
        Probe("positions added once, to every token", lambda: close(run(pos_embed=pos + d_pos) - run(),
                                                                     d_pos.expand(3, -1, -1)),
              "adding Δ to pos_embed should add exactly Δ to every token of every image, [CLS] included: add "
              "pos_embed once, to the whole (B, N + 1, D) sequence, after [CLS] is in front (not to the patches "
              "only, not shifted by one position, not twice)."),
        Probe("[CLS] is token 0", lambda: close(run(cls_token=cls + d_cls) - run(), only_cls),
              "changing cls_token should change token 0 of every image by the same amount and nothing else: put "
              "cls_token itself, expanded to the batch, in front of the patch tokens (not added to them)."),
        Probe("[CLS] ignores the image", lambda: close(run(imgs=other)[:, 0], run()[:, 0]),
              "token 0 changes when the image changes: it should be the [CLS] token plus its position only — the "
              "image enters through the patch tokens 1 … N."),
        Probe("images kept apart", batch_independent(lambda imgs: run(imgs=imgs), images),
              "the tokens of image 0 change when the other images of the batch change: keep the batch axis first "
              "(expand cls_token to len(images); never reshape across the batch)."),
        Probe("one patch, one token", lambda: len(patch_tokens_changed(one_patch)) == 1,
              "changing one 4 × 4 patch of the image changed several tokens: each token must be the conv's "
              "D-vector of one patch. The conv gives (B, D, H/p, W/p): flatten the grid and then move D last "
              "(a transpose) — a plain reshape to (B, N, D) mixes the channels of different patches."),
        Probe("patch tokens in raster order", lambda: patch_tokens_changed(one_patch) == [10],
              "the patch tokens are not in raster order: the patch in grid row i, column j should be token "
              "1 + i·(W/p) + j (after [CLS]) — flatten the conv's grid row by row, as .flatten(2) does."),
        Probe("the conv's bias kept", lambda: close(run(imgs=torch.zeros(3, 3, 16, 16))[:, 1:],
                                                    (conv.bias.detach() + pos[0, 1:]).expand(3, -1, -1)),
              "for an all-black image the patch tokens should be the conv's bias plus their positions: call "
              "patch_embed itself on the images (a product with its weight alone drops the bias)."),
    ]


@register("2.2", "ViT input embedding", uvision.vit_embed, hints=(
    "Three steps, in this order: patch tokens from the conv, the [CLS] token in front, the positions added. "
    "Print the shape after each: (B, D, H/p, W/p), then (B, N, D), then (B, N + 1, D).",
    "Section 2, 'A minimal Vision Transformer' (and eq. 1 of Dosovitskiy et al., 2020, the ViT paper): the conv "
    "gives a grid of D-vectors; flatten the grid into N positions and put D last. cls_token is one (1, 1, D) "
    "vector shared by every image: expand it to the batch and concatenate it along the token axis, first.",
    "Worked sub-step: 3 images of 16×16, p = 4, D = 8 — the conv gives (3, 8, 4, 4); flattening the grid gives "
    "(3, 8, 16), with D still in the middle; moving D last gives (3, 16, 8); with [CLS] in front, (3, 17, 8), "
    "the shape pos_embed (1, 17, 8) broadcasts onto.",
))
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

    probes = _vit_embed_probes(fn, images, conv, cls, pos)
    diagnose(got, expected, mistakes, "the embedded sequence differs from [CLS] + patch tokens, plus positions.",
             probes=probes)
    return "[CLS] first, then the 16 patch tokens from the conv, plus learned positions: (B, N + 1, D)."


# --- 2.3 masked mean pooling -------------------------------------------------------------------------------

_MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])  # 3, 5 and 1 real tokens


def _masked_mean_probes(fn, hidden: torch.Tensor, g: torch.Generator) -> list[Probe]:
    """The properties of every right masked mean, read on ``hidden`` (3, 5, 4) with the mask ``_MASK``."""
    mask = _MASK
    f = lambda h: fn(h, mask)  # noqa: E731
    noise = 10 * torch.randn(3, 5, 4, generator=g)
    same = torch.randn(3, 1, 4, generator=g)
    other = torch.randn(3, 5, 4, generator=g)
    shuffle = torch.tensor([[2, 0, 1, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]])  # the real tokens only
    return [
        Probe("padding ignored", unchanged_when(f, hidden, lambda h: torch.where(mask[..., None] == 0, h + noise, h)),
              "your output changes when the vectors at padded positions change: the padding still counts — zero "
              "it with the mask before summing."),
        Probe("sentences kept apart", lambda: close(fn(hidden[:1], mask[:1]), fn(hidden, mask)[:1]),
              "sentence 0's vector changes when other sentences are in the batch: each sentence is averaged over "
              "its own real tokens — count them per sentence (sum the mask over dim 1), not over the whole batch."),
        Probe("linear in the hidden states", lambda: close(f(hidden + other), f(hidden) + f(other)),
              "the pooled vector of (h + h') should be the pooled h plus the pooled h': a mean is linear, so no max "
              "pooling, no normalising of the result, no softmax weights."),
        Probe("a mean of equal vectors is that vector", lambda: close(f(same.expand(3, 5, 4).contiguous()), same[:, 0]),
              "when every token of a sentence is the same vector v, the masked mean is v, and yours is not: divide "
              "the sum of the real tokens by their number (a sum alone, or another count, scales it)."),
        Probe("token order does not matter",
              invariant(f, hidden, lambda h: h.gather(1, shuffle[..., None].expand(-1, -1, 4))),
              "reordering the real tokens of a sentence changes your output: a mean treats every real token alike — "
              "did you take one token (the first, the [CLS] position, the last real one) or weight them by position?"),
    ]


@register("2.3", "masked mean pooling", uembeddings.masked_mean, hints=(
    "Padding must not count: look at what you multiply by and what you divide by — a sentence of 3 real tokens "
    "padded to length 5 is the average of 3 vectors, not of 5.",
    "Section 5, 'Text encoders: causal or bidirectional': turn attention_mask into a float tensor of shape "
    "(B, T, 1) so it broadcasts over D, zero the padded states with it, sum over the token axis (dim 1), and "
    "divide by each sentence's own number of real tokens.",
    "Worked sub-step: hidden (2, 3, D) with mask [[1, 1, 0], [1, 1, 1]] — sentence 0's vector is "
    "(h[0, 0] + h[0, 1]) / 2 and sentence 1's is (h[1, 0] + h[1, 1] + h[1, 2]) / 3; the counts [2, 3] are the "
    "mask summed over dim 1, shaped (B, 1) to divide a (B, D) sum.",
))
def _check_masked_mean(fn) -> str:
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 5, 4, generator=g)
    mask = _MASK
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
    probes = _masked_mean_probes(fn, hidden, g)
    diagnose(got, _masked_mean(hidden, mask), mistakes, "the pooled vectors differ from the mean over real tokens.",
             probes=probes)
    return "One vector per sentence, the mean over its real tokens only."


# --- 2.4 mel filterbank ------------------------------------------------------------------------------------

def _to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595 * torch.log10(1 + f / 700)


def _to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700 * (10 ** (m / 2595) - 1)


def _fbank_probes(fn) -> list[Probe]:
    """Properties of every right filterbank, read on a fine grid of FFT bins (2 Hz apart) with 16 filters."""
    n_mels = 16
    fine = lambda sr=16000: fn(sr // 4 + 1, n_mels, sr)  # noqa: E731 - bins 2 Hz apart
    top = _to_mel(torch.tensor(8000.0))
    points = _to_hz(torch.linspace(0, top.item(), n_mels + 2))

    def triangles_of_height_1() -> bool:
        fb = fine()
        peaks = fb.max(0).values
        return bool(fb.min() >= -1e-6 and fb.max() <= 1 + 1e-4 and (peaks[peaks > 0] >= 0.97).all())

    def spans_0_to_nyquist(sr: int) -> Callable[[], bool]:
        def holds() -> bool:
            fb = fine(sr)
            return bool(fb[0, 0].abs() < 1e-4 and fb[1, 0] > 0 and fb[-1, -1].abs() < 1e-3 and fb[-2, -1] > 0
                        and (fb.max(0).values > 0).all())
        return holds

    def neighbours_add_to_1() -> bool:
        fb, freqs = fine(), torch.linspace(0, 8000, 4001)
        inside = (freqs > points[1] + 2) & (freqs < points[-2] - 2)
        return torch.allclose(fb[inside].sum(1), torch.ones(()), atol=1e-3)

    def centres_evenly_spaced_in_mel() -> bool:
        centres = torch.linspace(0, 8000, 4001)[fine().argmax(0)]
        step = top / (n_mels + 1)
        return bool(((_to_mel(centres) - step * torch.arange(1, n_mels + 1)).abs() < 0.05 * step).all())

    nyquist = ("your filters do not run from 0 Hz to the Nyquist frequency, sample_rate / 2 (or some are empty, "
               "beyond it): the first triangle starts at 0 Hz and the last one ends exactly at sample_rate / 2, for "
               "every sample_rate — and the FFT bins are torch.linspace(0, sample_rate // 2, n_freqs), not up to the "
               "sample rate itself.")
    return [
        Probe("depends on sample_rate", changes_when(lambda sr: fn(257, n_mels, sr), 16000, lambda sr: 8000),
              "your filterbank is the same for sample_rate = 16000 and 8000: the top edge and the FFT bins both "
              "come from sample_rate (Nyquist = sample_rate / 2) — nothing hard-coded to 8 kHz."),
        Probe("from 0 Hz to Nyquist at 16 kHz", spans_0_to_nyquist(16000), nyquist),
        Probe("from 0 Hz to Nyquist at 8 kHz", spans_0_to_nyquist(8000), nyquist),
        Probe("triangles of height 1", triangles_of_height_1,
              "each filter should be a triangle of height 1 — values from 0 to 1, peaking (close to) 1 at its "
              "centre: no area normalisation (torchaudio's norm=None, not librosa's 'slaney'), and the rising and "
              "the falling edge each divide by their OWN width."),
        Probe("neighbouring triangles add up to 1", neighbours_add_to_1,
              "between the first and the last centre your filters should add up to exactly 1 — each triangle "
              "falls to 0 where the next one peaks: filter m uses points m, m + 1 and m + 2 of the SAME n_mels + 2 "
              "points (left, centre, right)."),
        Probe("centres evenly spaced in mel", centres_evenly_spaced_in_mel,
              "the centres of your triangles are not evenly spaced on the mel scale 2595·log10(1 + f/700): space the "
              "n_mels + 2 points evenly in mel from 0 to mel(sample_rate / 2), then convert each back to Hz with "
              "the inverse of the same formula."),
    ]


@register("2.4", "mel filterbank", audio.mel_filterbank, hints=(
    "Build it in two parts: first the n_mels + 2 edge points in Hz, then the triangles at the FFT bin "
    "frequencies. Print the points: they start at 0 Hz, end at sample_rate / 2, and crowd together at low "
    "frequencies.",
    "Section 6, 'Audio: from waveforms to mel spectrograms': mel = 2595·log10(1 + f/700) and back, "
    "f = 700·(10^(mel/2595) − 1). Space the points evenly in mel, convert them to Hz; triangle m rises "
    "linearly from point m to point m + 1, falls back to 0 at point m + 2, and is 0 elsewhere.",
    "Worked sub-step, one triangle with points 0, 100 and 300 Hz: at 50 Hz the rising line gives 0.5 and the "
    "falling one 1.25, so the filter is the smaller, 0.5; at 200 Hz rising 2, falling 0.5, so 0.5; at 400 Hz "
    "the falling line is negative, so 0. Broadcasting the (n_freqs, 1) bins against the (n_mels,) points gives "
    "every column at once.",
))
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
    probes = _fbank_probes(fn)
    diagnose(got, expected, mistakes, "the filters differ from torchaudio.functional.melscale_fbanks.", probes=probes)
    got8 = require_tensor(fn(129, 20, 8000), "mel_filterbank")  # another sample rate: nothing may be hard-coded
    diagnose(got8, torchaudio.functional.melscale_fbanks(129, 0.0, 4000.0, 20, 8000), {},
             "right at 16 kHz, but at sample_rate = 8000 your filters differ from melscale_fbanks (the top edge is "
             "sample_rate / 2 = 4000 Hz there).", probes=probes)
    return "Equal to torchaudio.functional.melscale_fbanks (HTK mel scale, no normalisation), at 16 and 8 kHz."


# --- 2.5 mel spectrogram -------------------------------------------------------------------------------------

def _near(a, b: torch.Tensor) -> bool:
    """Equal up to float32 STFT noise (relative 1e-3)."""
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-3)


def _melspec_probes(fn, wave: torch.Tensor) -> list[Probe]:
    """The properties of every right mel spectrogram (n_fft 400, hop 160, 40 bands), read on a 16 kHz ``wave``;
    the ones about scale and edge frames compare with torchaudio and hold for an answer equal to it."""
    import torchaudio

    melspec = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)
    run = lambda w: fn(w, n_fft=400, hop_length=160, n_mels=40).detach().float()  # noqa: E731
    expected = melspec(wave)
    got = run(wave)
    right = _near(got, expected)
    scale = ((got * expected).sum() / (expected ** 2).sum()).item() if got.shape == expected.shape else 1.0
    per_band = ((got * expected).sum(-1, keepdim=True) / (expected ** 2).sum(-1, keepdim=True)
                if got.shape == expected.shape else 1.0)
    tone = torch.sin(2 * torch.pi * 2000 * torch.arange(8000) / 16000)  # 2 kHz: one band of 40 takes most of it
    tone_band = int(melspec(tone).mean(-1).argmax())
    return [
        Probe("non-negative", lambda: bool((got >= -1e-6).all()),
              "your spectrogram has negative values, and a power spectrogram has none: return the mel power "
              "itself — no log, no decibels (take those afterwards)."),
        Probe("quadratic in the waveform", lambda: _near(run(2 * wave), 4 * run(wave)),
              "doubling the waveform should multiply a power spectrogram by exactly 4, and yours does not: keep "
              "the power |STFT|² (not the magnitude), with no log, dB or normalisation on the way."),
        Probe("the right overall scale", lambda: right or not _near(got, scale * expected),
              f"your values are the expected ones times a constant (×{scale:.3g}): keep torch.stft's own scale "
              "— no normalized=True, no rescaled window, no division by n_fft or by the number of frames."),
        Probe("the right scale in every band", lambda: right or not _near(got, per_band * expected),
              "each mel band of yours is the expected band times its own factor: your filterbank is rescaled "
              "(area-normalised, 'slaney'?). Pool with the plain triangles of height 1 of Exercise 2.4."),
        Probe("a tone lands in its mel band", lambda: int(run(tone).mean(-1).argmax()) == tone_band,
              f"a pure 2 kHz tone should put most of its power in mel band {tone_band} of 40, and yours puts it "
              "elsewhere: pool with the filterbank of the clip's own rate, 16 kHz (triangles from 0 Hz to "
              "8 kHz, n_fft // 2 + 1 bins), with the bands in increasing frequency."),
        Probe("the edge frames too", lambda: right or not _near(got[:, 3:-3], expected[:, 3:-3]),
              "your middle frames are right but the first and last ones are not: centred frames pad the signal "
              "by n_fft // 2 on each side BY REFLECTION (torch.stft's default pad_mode='reflect'), not with "
              "zeros."),
    ]


@register("2.5", "mel spectrogram", audio.mel_spectrogram, builds_on=("2.4",), hints=(
    "Two steps; check the shapes: the power spectrogram of one clip is (n_fft/2 + 1, frames), your filterbank "
    "from Exercise 2.4 is (n_fft/2 + 1, n_mels), and the answer is (n_mels, frames) — (B, n_mels, frames) for "
    "a batch.",
    "Section 6, 'Audio: from waveforms to mel spectrograms': the statement gives the power spectrogram; the "
    "mel spectrogram pools its frequency axis with the filterbank — one weighted sum of power bins per mel band "
    "and frame, a matrix product. Write it so that a leading batch axis passes through: name axes -1 and -2, "
    "not .T.",
    "Worked sub-step: one second at 16 kHz, n_fft = 400, hop 160 — the power is (201, 101); with the frequency "
    "axis moved last it is (101, 201); times the (201, 64) filterbank, (101, 64); mel axis moved back, "
    "(64, 101). The same steps turn (B, 201, 101) into (B, 64, 101).",
))
def _check_melspec(fn) -> str:
    import torchaudio

    g = torch.Generator().manual_seed(5)
    t = torch.arange(8000) / 16000
    wave = torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.randn(8000, generator=g)
    run = lambda w: fn(w, n_fft=400, hop_length=160, n_mels=40)  # noqa: E731
    got = require_tensor(run(wave), "mel_spectrogram")
    expected = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(wave)
    spec = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400), return_complex=True)
    fb = _fbank(201, 40)
    no_window = torch.stft(wave, 400, hop_length=160, window=torch.ones(400), return_complex=True)
    not_centred = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400), center=False,
                             return_complex=True)
    symmetric = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400, periodic=False),
                           return_complex=True)
    mistakes = {
        "you used the magnitude |STFT|, not the power |STFT|²: square it (torchaudio's default power=2).":
            fb.T @ spec.abs(),
        "you pooled the magnitude and squared afterwards: square |STFT| first (the power of each bin), then pool "
        "the power with the filterbank.": (fb.T @ spec.abs()) ** 2,
        "your window is the symmetric Hann (periodic=False, numpy's np.hanning): torch.stft and torchaudio use the "
        "periodic one, torch.hann_window(n_fft) as it comes.": fb.T @ symmetric.abs() ** 2,
        "no window: pass window=torch.hann_window(n_fft) to torch.stft (a rectangular window smears energy "
        "across frequencies).": fb.T @ no_window.abs() ** 2,
        "the frames are not centred: torch.stft(..., center=True) pads half a window on each side, so frame "
        "k is centred on sample k·hop.": fb.T @ not_centred.abs() ** 2,
        "this is the log-mel: return the mel power spectrogram itself (take the log afterwards).":
            torch.log(expected + 1e-6),
        "you returned (frames, n_mels): return (n_mels, frames), like torchaudio.": expected.T,
    }
    for hint, wrong in mistakes.items():
        if _near(got, wrong):
            raise CheckFailed(hint)
    if got.shape != expected.shape:
        raise CheckFailed(f"expected shape (n_mels, frames) = {tuple(expected.shape)}, got {tuple(got.shape)}.")
    if not _near(got, expected):
        require_properties(_melspec_probes(fn, wave))
        got_f = got.detach().float()
        err = ((got_f - expected).abs().max() / expected.abs().max()).item()
        raise Mismatch(f"your mel spectrogram differs from torchaudio's MelSpectrogram (largest relative "
                       f"difference {err:.2g}).")
    batch = torch.stack([wave, wave.flip(0), 0.5 * wave])  # (3, samples): the notebook calls it on batches
    try:
        got_batch = require_tensor(fn(batch, n_fft=400, hop_length=160, n_mels=40), "mel_spectrogram")
    except RuntimeError as exc:
        raise CheckFailed(f"right for one clip but it fails on a batch of shape (3, samples) ({exc}): write the "
                          "matrix product for any leading dimensions, e.g. (power.transpose(-1, -2) @ fb)"
                          ".transpose(-1, -2).") from None
    expected_batch = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(batch)
    if not _near(got_batch, expected_batch):
        raise CheckFailed(f"right for one clip but not for a batch (3, samples): expected shape "
                          f"{tuple(expected_batch.shape)}, got {tuple(got_batch.shape)}; use dims -1 and -2, not .T.")
    return ("Equal to torchaudio.transforms.MelSpectrogram (Hann window, centred frames, power 2, HTK mel), for one "
            "clip and for a batch.")


# --- 2.6 audio tokens ------------------------------------------------------------------------------------------

def _spec_token_probes(fn, spec: torch.Tensor) -> list[Probe]:
    """The properties of every right cut into tokens, read with 8 × 4 tiles on ``spec`` of shape (2, 16, 12)."""
    inside = torch.arange(32.0).reshape(8, 4).repeat(2, 3)  # (16, 12): the value is band·patch_time + frame in its tile
    return _cutting_probes(
        lambda s: fn(s, 8, 4), spec,
        blocks=[((slice(8, 16), slice(0, 4)), 3), ((slice(0, 8), slice(8, 12)), 2)],
        order_hint="the tiles are not in raster order over the (band, time) grid: the tile in band block i, time "
                   "block j should be token i·(frames // patch_time) + j — all tiles of the lowest bands first, "
                   "left to right in time, then the next bands, like F.unfold.",
        layouts=[(inside[None].expand(2, 16, 12).contiguous(), torch.arange(32.0),
                  "inside each tile the values should go band by band: the patch_time values of the tile's lowest "
                  "band first, then the next band (rows of the spectrogram first); yours are in another order.")],
        piece="patch_freq × patch_time tile", pieces="tiles")


@register("2.6", "spectrogram tokens", audio.spectrogram_tokens, hints=(
    "It is Exercise 2.1 with one channel: a spectrogram (B, n_mels, frames) is an image one channel deep, cut "
    "into patches patch_freq bands tall and patch_time frames wide. Crop the leftovers first, then cut.",
    "Section 6, the 'Audio tokens' paragraph (the Audio Spectrogram Transformer of Gong et al., 2021, cuts the "
    "same way): split the band axis into (bands // patch_freq, patch_freq) and the time axis into "
    "(frames // patch_time, patch_time), bring the two grid axes in front, band blocks outermost, and flatten "
    "each patch band by band.",
    "Worked sub-step: 64 bands × 101 frames with 16 × 10 patches — crop to 64 × 100, a 4 × 10 grid of patches, "
    "40 tokens of 160 values; token 0 is bands 0–15 of frames 0–9, token 1 bands 0–15 of frames 10–19, token 10 "
    "bands 16–31 of frames 0–9; inside a token the 10 values of band 0 come first.",
))
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
    probes = _spec_token_probes(fn, spec)
    diagnose(got, expected, mistakes,
             "the tokens differ from F.unfold with kernel = stride = (patch_freq, patch_time).", probes=probes)
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
                          "bands or frames (18 × 13 with 8 × 4 patches should give 2 × 3 = 6 tokens, the "
                          f"leftovers dropped; yours gave {describe(got_ragged)}).")
    return ("Equal to F.unfold over the spectrogram seen as a one-channel image (6 tokens of 8 × 4 values here), "
            "leftover bands and frames dropped.")


# --- 2.7 video tubelets -------------------------------------------------------------------------------------

def _tubelet_probes(fn, video: torch.Tensor) -> list[Probe]:
    """The properties of every right cut into tubelets, read with t = 2, p = 4 on ``video`` (2, 4, 3, 8, 12)."""
    inside = torch.arange(32.0).reshape(2, 1, 4, 4).repeat(2, 3, 2, 3)  # (T, C, H, W): frame·16 + row·4 + column
    layouts = [
        (torch.arange(3.0)[None, None, :, None, None].expand(1, 4, 3, 8, 12).contiguous(),
         torch.arange(3.0).repeat_interleave(32),
         "inside each tubelet the values are not channel first: on a clip whose channel c is filled with c, every "
         "token should read 32 zeros, 32 ones, 32 twos — the (C, t, p, p) order of nn.Conv3d's weight."),
        (inside[None].contiguous(), torch.arange(32.0).repeat(3),
         "inside each channel of a tubelet the values should go frame by frame, then row by row, then column by "
         "column, (t, p, p): yours are in another order."),
    ]
    return _cutting_probes(
        lambda v: fn(v, 2, 4), video,
        blocks=[((slice(2, 4), slice(None), slice(0, 4), slice(8, 12)), 8),
                ((slice(0, 2), slice(None), slice(4, 8), slice(0, 4)), 3)],
        order_hint="the tubelets are not in order: the tubelet in time block a, grid row i, grid column j should be "
                   "token (a·(H/p) + i)·(W/p) + j — time outermost, then rows, then columns, as Conv3d's output "
                   "flattened with .flatten(2) is.",
        layouts=layouts, piece="t × p × p tubelet", pieces="tubelets")


@register("2.7", "tubelets", uvision.tubelets, hints=(
    "Start from Exercise 2.1: a tubelet is a patch with a depth in time. Check the shapes — 4 frames of 8 × 12 "
    "with t = 2 and p = 4 give 2·2·3 = 12 tokens of 3·2·4·4 = 96 numbers. Mind the input order (B, T, C, H, W).",
    "Section 7, 'Video: frames or tubelets?' (ViViT, Arnab et al., 2021; VideoMAE): split T into (T/t, t), H into "
    "(H/p, p) and W into (W/p, p); put the three grid axes first (time block, row, column), then the token's own "
    "axes in nn.Conv3d's weight order (C, t, p, p) — in the input C sits after T, so it has to move.",
    "Worked sub-step, for 4 frames of 8 × 12, t = 2, p = 4: token 0 holds frames 0–1, rows 0–3, columns 0–3; "
    "token 1 is one patch to the right (columns 4–7), token 3 one row down, token 6 the same place in frames "
    "2–3. Inside a token the first 32 numbers are channel 0 (frame 0's 16 pixels row by row, then frame 1's).",
))
def _check_tubelets(fn) -> str:
    g = torch.Generator().manual_seed(7)
    video = torch.randn(2, 4, 3, 8, 12, generator=g)  # (B, T, C, H, W), not square
    got = require_tensor(fn(video, 2, 4), "tubelets")
    expected = _tubelets(video, 2, 4)
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
            _tubelets(video, 1, 4),
    }
    probes = _tubelet_probes(fn, video)
    diagnose(got, expected, mistakes, "your tubelets differ from the Conv3d tubelet embedding's layout.",
             probes=probes)
    conv = nn.Conv3d(3, 5, kernel_size=(2, 4, 4), stride=(2, 4, 4))
    with torch.no_grad():
        linear = got @ conv.weight.reshape(5, -1).T + conv.bias
        if not torch.allclose(linear, conv(video.transpose(1, 2)).flatten(2).transpose(1, 2), atol=1e-5):
            raise CheckFailed("a linear layer on your tubelets should equal nn.Conv3d "
                              "with kernel = stride = (t, p, p).")
    return "Same tokens as a Conv3d tubelet embedding (kernel = stride = (t, p, p)): 12 tokens of 96 numbers here."
