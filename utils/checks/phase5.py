"""Checks for the Phase 5 exercises (vision-language models).

Oracles: the LM-side shape contract and the module's structure (5.1), the course's splice (5.2, 5.3) written
with a per-row loop, ``F.interpolate`` + ``Tensor.unfold`` (5.4), the quantisation formula (5.5) and
``torchvision.ops.box_iou`` (5.6).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import vlm as V
from . import CheckFailed, Unsolved, register
from .oracles import diagnose

# References captured at import: a notebook rebinds ``uvlm.splice_image_tokens = check(...)`` to the learner's
# passing version, and later checks must still compare with the course's answer.
_projector, _splice, _labels, _tiles, _box_to_text, _iou = (V.mlp_projector, V.splice_image_tokens, V.splice_labels,
                                                            V.anyres_tiles, V.box_to_text, V.box_iou)


def _call(fn, *args):
    out = fn(*args)
    if out is None or out is Ellipsis:
        raise Unsolved
    return out


# --- 5.1 the projector ------------------------------------------------------------------------------------------

@register("5.1", "the LLaVA projector (an MLP)", V.mlp_projector)
def _check_projector(fn) -> str:
    vision_dim, lm_dim, hidden = 12, 20, 16
    torch.manual_seed(0)
    proj = _call(fn, vision_dim, lm_dim, hidden)
    if not isinstance(proj, nn.Module):
        raise CheckFailed("return an nn.Module (e.g. nn.Sequential(...)) so that its weights can be trained.")
    linears = [m for m in proj.modules() if isinstance(m, nn.Linear)]
    out = proj(torch.randn(2, 5, vision_dim))
    if out.shape[:2] != (2, 5):
        raise CheckFailed(f"the projector must map every image token on its own: (B, N, {vision_dim}) -> "
                          f"(B, N, {lm_dim}); got {tuple(out.shape)}.")
    if out.shape[-1] != lm_dim:
        raise CheckFailed(f"the output width is {out.shape[-1]}, but it must be the LM's embedding width "
                          f"(lm_dim = {lm_dim}): image tokens are spliced in among the LM's word embeddings.")
    if len(linears) == 1:
        raise CheckFailed("one nn.Linear is LLaVA-1's linear projector; LLaVA-1.5's is a 2-layer MLP: "
                          "Linear(vision_dim, hidden) -> GELU -> Linear(hidden, lm_dim).")
    if len(linears) != 2:
        raise CheckFailed(f"expected two nn.Linear layers (found {len(linears)}).")
    if linears[0].in_features != vision_dim or linears[0].out_features != hidden:
        raise CheckFailed(f"the first layer should be Linear(vision_dim, hidden) = Linear({vision_dim}, {hidden}); "
                          f"got Linear({linears[0].in_features}, {linears[0].out_features}).")
    children = list(proj.children()) if isinstance(proj, nn.Sequential) else []
    if children and not isinstance(children[-1], nn.Linear):
        raise CheckFailed("the last layer must be the Linear: a final activation (e.g. GELU or ReLU) would keep the "
                          "image tokens away from the negative values the LM's word embeddings take.")
    x = torch.randn(4, 3, vision_dim)
    with torch.no_grad():  # two Linears with nothing between them are one linear map
        w1, w2 = linears
        as_linear = (x @ w1.weight.T + w1.bias) @ w2.weight.T + w2.bias
        if torch.allclose(proj(x), as_linear, atol=1e-5):
            raise CheckFailed("there is no nonlinearity between the two Linear layers, so together they are just one "
                              "linear map: put nn.GELU() between them.")
    n = sum(p.numel() for p in proj.parameters())
    return f"(B, N, {vision_dim}) -> (B, N, {lm_dim}) through a {n}-parameter MLP."


# --- 5.2 splicing image tokens -----------------------------------------------------------------------------------

def _splice_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image_id, d, n = 9, 4, 3
    ids = torch.tensor([[1, 5, 6, image_id, 7, 0], [1, image_id, 5, 6, 7, 8]])  # the placeholder at different places
    text = torch.randn(2, 6, d, generator=g)
    image = torch.randn(2, n, d, generator=g) + 10  # easy to tell apart
    return text, ids, image, image_id


@register("5.2", "splice image tokens at <image>", V.splice_image_tokens)
def _check_splice(fn) -> str:
    text, ids, image, image_id = _splice_batch()
    got = _call(fn, text, ids, image, image_id)
    expected = _splice(text, ids, image, image_id)
    p0 = int((ids[0] == image_id).nonzero())
    without = [text[b][ids[b] != image_id] for b in range(2)]  # each row's text with the placeholder dropped
    mistakes = {
        "the <image> placeholder itself must go: it is REPLACED by the N image tokens, so the length is T - 1 + N.":
            torch.stack([torch.cat([text[b, :int((ids[b] == image_id).nonzero()) + 1], image[b],
                                    text[b, int((ids[b] == image_id).nonzero()) + 1:]]) for b in range(2)]),
        "the image tokens go where each row's <image> is, not in front of the whole sequence.":
            torch.stack([torch.cat([image[b], without[b]]) for b in range(2)]),
        "each row has its own <image> position: find it per row (rows are padded differently).":
            torch.stack([torch.cat([text[b, :p0], image[b], text[b, p0 + 1:]]) for b in range(2)]),
        "the image tokens go where <image> is, not after the text.":
            torch.stack([torch.cat([without[b], image[b]]) for b in range(2)]),
    }
    diagnose(got, expected, mistakes, "the spliced sequence differs from: text before <image>, the N image "
              "tokens, text after <image>.")
    return "Each row: text before <image>, the N image tokens, the text after — length T - 1 + N."


@register("5.3", "labels for the spliced sequence", V.splice_labels, builds_on=("5.2",))
def _check_labels(fn) -> str:
    _, ids, _, image_id = _splice_batch()
    labels = torch.tensor([[1, 5, 6, -100, 7, -100], [1, -100, 5, 6, 7, 8]])  # any labels, not only answers
    got = _call(fn, labels, ids, 3, image_id)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed("return a tensor of labels (B, T - 1 + N).")
    expected = _labels(labels, ids, 3, image_id)
    zeros = _splice(labels[..., None], ids, torch.zeros(2, 3, 1, dtype=labels.dtype), image_id)[..., 0]
    pad = torch.stack([torch.cat([torch.full((3,), -100), labels[b][ids[b] != image_id]]) for b in range(2)])
    mistakes = {
        "the image positions need the label -100 (F.cross_entropy's ignore_index): 0 is a real token id, so the "
        "model would be trained to predict token 0 there.": zeros,
        "the labels must line up with the spliced sequence: put the N image labels where <image> was (like the "
        "embeddings), not at the start.": pad,
    }
    diagnose(got, expected, mistakes, "the labels differ from: text labels with <image>'s label replaced by N "
              "times -100.")
    return "No loss on the image positions, and every text label still under its token."


# --- 5.4 AnyRes tiling -------------------------------------------------------------------------------------------

@register("5.4", "AnyRes tiling", V.anyres_tiles)
def _check_tiles(fn) -> str:
    g = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 8, 12, generator=g)  # 2 x 3 tiles: row- and column-major differ
    got = _call(fn, images, 4)
    expected = _tiles(images, 4)
    thumb = F.interpolate(images, size=(4, 4), mode="area").unsqueeze(1)
    tiles = expected[:, 1:]
    column_major = images.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 3, 2, 1, 4, 5).reshape(2, -1, 3, 4, 4)
    mistakes = {
        "the global view comes first: thumbnail, then the tiles.": torch.cat([tiles, thumb], 1),
        "the tiles are missing the global view: put the whole image, resized to tile x tile, in front of them.": tiles,
        "the tiles should be in row-major order (left to right, then top to bottom), like the text they cover.":
            torch.cat([thumb, column_major], 1),
        "the global view is the WHOLE image resized (F.interpolate, mode='area'), not its top-left tile.":
            torch.cat([tiles[:, :1], tiles], 1),
        "resize the global view with mode='area' (an average over each block), as the course does.":
            torch.cat([F.interpolate(images, size=(4, 4), mode="nearest").unsqueeze(1), tiles], 1),
    }
    diagnose(got, expected, mistakes, "the views differ from: the thumbnail, then the tiles in row-major order.")
    return "Thumbnail first, then the full-resolution tiles left to right — 1 + 6 views for an 8 x 12 image."


# --- 5.5 boxes as tokens -----------------------------------------------------------------------------------------

@register("5.5", "a box as <loc> tokens", V.box_to_text)
def _check_box_to_text(fn) -> str:
    cases = [((0, 4, 13, 32), 32, 8), ((5, 0, 31, 17), 32, 8), ((2.5, 6.2, 9.9, 16.0), 20, 10),
             ((0, 0, 64, 64), 64, 16)]
    for box, size, bins in cases:
        got = _call(fn, box, size, bins)
        expected = _box_to_text(box, size, bins)
        if got == expected:
            continue
        if not isinstance(got, str):
            raise CheckFailed(f"return a string such as {expected!r}.")
        if got.replace(" ", "") == expected.replace(" ", ""):
            raise CheckFailed(f"separate the tokens with single spaces: {expected!r}.")
        if "<box>" not in got or "</box>" not in got:
            raise CheckFailed(f"wrap the four <loc> tokens in <box> ... </box>: {expected!r}.")
        if "<loc" + str(bins) + ">" in got:
            raise CheckFailed(f"a coordinate equal to the image size gives bin {bins}, one past the last: clamp the "
                              f"bin to 0 .. bins - 1 (<loc{bins - 1}> is the last token).")
        rounded = "<box> " + " ".join(f"<loc{min(bins - 1, round(v / size * bins))}>" for v in box) + " </box>"
        if got == rounded:
            raise CheckFailed("use the bin the coordinate falls in, int(v / image_size * bins) (floor), not rounding.")
        yx = "<box> " + " ".join(f"<loc{min(bins - 1, int(box[i] / size * bins))}>" for i in (1, 0, 3, 2)) + " </box>"
        if got == yx:
            raise CheckFailed("keep the box's order (x0, y0, x1, y1); PaliGemma writes y first, this course x first.")
        raise CheckFailed(f"box {box} in a {size}-px image with {bins} bins should be {expected!r}, got {got!r}.")
    return "Boxes quantised to <loc> bins (floor, clamped to the last bin), in x0 y0 x1 y1 order."


# --- 5.6 IoU -----------------------------------------------------------------------------------------------------

@register("5.6", "intersection over union", V.box_iou)
def _check_iou(fn) -> str:
    from torchvision.ops import box_iou as tv_iou

    pairs = [((0, 0, 10, 10), (5, 5, 15, 15)), ((0, 0, 4, 4), (6, 6, 9, 9)), ((0, 0, 4, 4), (0, 6, 4, 9)),
             ((2, 2, 8, 8), (3, 3, 5, 5)), ((0, 0, 8, 4), (0, 0, 8, 4)), ((1.5, 0, 7, 3), (2, 1, 9, 8.5))]
    for a, b in pairs:
        got = _call(fn, a, b)
        expected = float(tv_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)))
        if abs(float(got) - expected) < 1e-6:
            continue
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
        ix, iy = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(0, ix) * max(0, iy)
        if ix < 0 or iy < 0:
            raise CheckFailed(f"boxes {a} and {b} do not overlap, so the IoU is 0 (got {float(got):.3f}): clamp the "
                              "intersection's width and height at 0 before multiplying.")
        if abs(float(got) - inter / min(area(a), area(b))) < 1e-6:
            raise CheckFailed("divide by the UNION (area a + area b - intersection), not by the smaller box.")
        if abs(float(got) - inter / (area(a) + area(b))) < 1e-6:
            raise CheckFailed("the union counts the overlap once: area a + area b - intersection.")
        raise CheckFailed(f"IoU of {a} and {b} should be {expected:.4f} (torchvision.ops.box_iou), "
                          f"got {float(got):.4f}.")
    return "Equal to torchvision.ops.box_iou on overlapping, disjoint, nested and identical boxes."
