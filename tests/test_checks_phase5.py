"""Unit tests of the Phase 5 exercise self-checks (``utils/checks/phase5.py``): wrong answers written the way a
learner would write them must fail with the hint that names the mistake."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils.checks import evaluate

# --- 5.1 projector ---------------------------------------------------------------------------------------------


def proj_linear(vision_dim, lm_dim, hidden=None):
    return nn.Linear(vision_dim, lm_dim)


def proj_no_activation(vision_dim, lm_dim, hidden=None):
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.Linear(hidden or lm_dim, lm_dim))


def proj_wrong_width(vision_dim, lm_dim, hidden=None):
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.GELU(), nn.Linear(hidden or lm_dim, vision_dim))


def proj_final_activation(vision_dim, lm_dim, hidden=None):
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.GELU(), nn.Linear(hidden or lm_dim, lm_dim),
                         nn.GELU())


def proj_ignores_hidden(vision_dim, lm_dim, hidden=None):
    return nn.Sequential(nn.Linear(vision_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))


class PooledProjector(nn.Module):
    def __init__(self, vision_dim, lm_dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(vision_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))

    def forward(self, x):
        return self.mlp(x.mean(1))


def proj_pooled(vision_dim, lm_dim, hidden=None):
    return PooledProjector(vision_dim, lm_dim)


@pytest.mark.parametrize("fn, hint", [
    (proj_linear, "LLaVA-1's linear"), (proj_no_activation, "no nonlinearity"), (proj_wrong_width, "LM's embedding"),
    (proj_final_activation, "last layer"), (proj_ignores_hidden, "Linear(vision_dim, hidden)"),
    (proj_pooled, "every image token"),
])
def test_projector_mistakes(fn, hint):
    failed_with("5.1", fn, hint)


def test_projector_with_relu_passes():
    from utils.checks import evaluate

    def relu(vision_dim, lm_dim, hidden=None):
        return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.ReLU(), nn.Linear(hidden or lm_dim, lm_dim))

    assert evaluate("5.1", relu).passed  # any nonlinearity is a 2-layer MLP; GELU is LLaVA-1.5's choice


# --- 5.2 / 5.3 splicing ----------------------------------------------------------------------------------------------


def _pos(ids, image_id, b):
    return int((ids[b] == image_id).nonzero())


def splice_keep_placeholder(text, ids, image, image_id):
    return torch.stack([torch.cat([text[b, :_pos(ids, image_id, b) + 1], image[b],
                                   text[b, _pos(ids, image_id, b) + 1:]])
                        for b in range(len(ids))])


def splice_prepend(text, ids, image, image_id):
    return torch.stack([torch.cat([image[b], text[b][ids[b] != image_id]]) for b in range(len(ids))])


def splice_first_row_position(text, ids, image, image_id):
    p = _pos(ids, image_id, 0)
    return torch.cat([text[:, :p], image, text[:, p + 1:]], 1)


def splice_append(text, ids, image, image_id):
    return torch.stack([torch.cat([text[b][ids[b] != image_id], image[b]]) for b in range(len(ids))])


@pytest.mark.parametrize("fn, hint", [
    (splice_keep_placeholder, "REPLACED"), (splice_prepend, "in front"), (splice_first_row_position, "each row"),
    (splice_append, "not after"),
])
def test_splice_mistakes(fn, hint):
    failed_with("5.2", fn, hint)


def labels_zero(labels, ids, n_image, image_id):
    fill = torch.zeros(len(ids), n_image, dtype=labels.dtype)
    return torch.stack([torch.cat([labels[b, :_pos(ids, image_id, b)], fill[b], labels[b, _pos(ids, image_id, b) + 1:]])
                        for b in range(len(ids))])


def labels_prepended(labels, ids, n_image, image_id):
    return torch.stack([torch.cat([torch.full((n_image,), -100), labels[b][ids[b] != image_id]])
                        for b in range(len(ids))])


@pytest.mark.parametrize("fn, hint", [(labels_zero, "-100"), (labels_prepended, "line up")])
def test_label_mistakes(fn, hint):
    failed_with("5.3", fn, hint)


def test_a_failing_53_after_a_failing_52_points_upstream(monkeypatch, capsys):
    """A learner's 5.3 that calls their own broken 5.2 splice is told to fix 5.2 first — once 5.2 passes, not."""
    from utils import checks, vlm

    monkeypatch.setattr(checks, "STATUS", {})
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)

    def broken_splice(text, ids, image, image_id):               # image tokens in front of everything
        return torch.stack([torch.cat([image[b], text[b][ids[b] != image_id]]) for b in range(len(ids))])

    def my_labels(labels, ids, n_image, image_id):               # right idea, built on the broken splice
        fill = torch.full((len(ids), n_image, 1), -100, dtype=labels.dtype)
        return broken_splice(labels[..., None], ids, fill, image_id)[..., 0]

    checks.check("5.2", broken_splice)
    checks.check("5.3", my_labels)
    out = capsys.readouterr().out
    assert "builds on Exercise 5.2, which has not passed yet" in out
    checks.check("5.2", vlm.splice_image_tokens)
    checks.check("5.3", my_labels)
    assert "builds on" not in capsys.readouterr().out


def test_a_shape_hint_reads_as_two_sentences():
    def one_short(labels, ids, n_image, image_id):
        return labels[:, :-1]

    result = evaluate("5.3", one_short)
    assert "wrong shape: got (2, 5), expected (2, 8). The labels differ" in result.message, result.message


# --- 5.4 AnyRes ----------------------------------------------------------------------------------------------------


def _tiles(images, tile):
    b, c = images.shape[:2]
    return images.unfold(2, tile, tile).unfold(3, tile, tile).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c, tile, tile)


def _thumb(images, tile, mode="area"):
    return F.interpolate(images, size=(tile, tile), mode=mode).unsqueeze(1)


def tiles_thumb_last(images, tile):
    return torch.cat([_tiles(images, tile), _thumb(images, tile)], 1)


def tiles_only(images, tile):
    return _tiles(images, tile)


def tiles_column_major(images, tile):
    b, c = images.shape[:2]
    t = images.unfold(2, tile, tile).unfold(3, tile, tile).permute(0, 3, 2, 1, 4, 5).reshape(b, -1, c, tile, tile)
    return torch.cat([_thumb(images, tile), t], 1)


def tiles_crop_thumb(images, tile):
    t = _tiles(images, tile)
    return torch.cat([t[:, :1], t], 1)


def tiles_nearest(images, tile):
    return torch.cat([_thumb(images, tile, "nearest"), _tiles(images, tile)], 1)


def tiles_scrambled(images, tile):  # a reshape without the permute mixes channels and pixels
    b, c, h, w = images.shape
    return torch.cat([_thumb(images, tile), images.reshape(b, -1, c, tile, tile)], 1)


@pytest.mark.parametrize("fn, hint", [
    (tiles_thumb_last, "comes first"), (tiles_only, "missing the global view"), (tiles_column_major, "row-major"),
    (tiles_crop_thumb, "WHOLE image"), (tiles_nearest, "mode='area'"), (tiles_scrambled, "row-major order"),
])
def test_tiling_mistakes(fn, hint):
    failed_with("5.4", fn, hint)


# --- 5.5 / 5.6 grounding ---------------------------------------------------------------------------------------------


def box_unclamped(box, image_size, bins):
    return "<box> " + " ".join(f"<loc{int(v / image_size * bins)}>" for v in box) + " </box>"


def box_rounded(box, image_size, bins):
    return "<box> " + " ".join(f"<loc{min(bins - 1, round(v / image_size * bins))}>" for v in box) + " </box>"


def box_yx(box, image_size, bins):
    return ("<box> " + " ".join(f"<loc{min(bins - 1, int(box[i] / image_size * bins))}>" for i in (1, 0, 3, 2))
            + " </box>")


def box_no_wrapper(box, image_size, bins):
    return " ".join(f"<loc{min(bins - 1, int(v / image_size * bins))}>" for v in box)


def box_no_spaces(box, image_size, bins):
    return "<box>" + "".join(f"<loc{min(bins - 1, int(v / image_size * bins))}>" for v in box) + "</box>"


@pytest.mark.parametrize("fn, hint", [
    (box_unclamped, "one past the last"), (box_rounded, "not rounding"), (box_yx, "x0, y0, x1, y1"),
    (box_no_wrapper, "<box> ... </box>"), (box_no_spaces, "single spaces"),
])
def test_box_text_mistakes(fn, hint):
    failed_with("5.5", fn, hint)


def iou_unclamped(a, b):
    inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def iou_over_min(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def iou_double_counted(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]))


@pytest.mark.parametrize("fn, hint", [(iou_unclamped, "clamp"), (iou_over_min, "UNION"),
                                      (iou_double_counted, "once")])
def test_iou_mistakes(fn, hint):
    failed_with("5.6", fn, hint)


def test_checks_compare_with_the_course_reference_even_after_rebinding(monkeypatch):
    from utils import vlm
    from utils.checks import evaluate

    monkeypatch.setattr(vlm, "splice_image_tokens", splice_prepend)  # what `uvlm.x = check(...)` does
    assert evaluate("5.2", splice_prepend).status == "failed"


# --- the two projectors the independent audit found passing --------------------------------------------------

def proj_activation_first(vision_dim, lm_dim, hidden=None):  # GELU(x), then two Linears: still one linear map
    return nn.Sequential(nn.GELU(), nn.Linear(vision_dim, hidden or lm_dim), nn.Linear(hidden or lm_dim, lm_dim))


def proj_dropout_for_gelu(vision_dim, lm_dim, hidden=None):  # train-mode randomness is not a nonlinearity
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.Dropout(0.1), nn.Linear(hidden or lm_dim, lm_dim))


def test_projector_with_the_activation_first_fails():
    failed_with("5.1", proj_activation_first, "the GELU comes before the first Linear")


def test_projector_with_dropout_instead_of_gelu_fails():
    failed_with("5.1", proj_dropout_for_gelu, "nn.Dropout?")


def test_projector_variants_with_other_activations_pass():
    for act in (nn.GELU(approximate="tanh"), nn.SiLU(), nn.ReLU()):
        def fn(vision_dim, lm_dim, hidden=None, act=act):
            return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), act, nn.Linear(hidden or lm_dim, lm_dim))

        assert evaluate("5.1", fn).passed, act


# --- wrong answers nobody listed: each caught by a property of every right answer ---------------------------------
# (hint phrases of the probes in utils/checks/phase5.py; the mistakes dicts do not contain these answers)

class _Normalised(nn.Module):  # a Phase 3 habit: unit-length outputs, as for CLIP's embeddings
    def __init__(self, vision_dim, lm_dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(vision_dim, hidden), nn.Linear(hidden, lm_dim)

    def forward(self, x):
        return F.normalize(self.fc2(F.gelu(self.fc1(x))), dim=-1)


def proj_softmax_over_tokens(vision_dim, lm_dim, hidden=None):  # dim=1 is the token axis of (B, N, C)
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.Softmax(dim=1),
                         nn.Linear(hidden or lm_dim, lm_dim))


def proj_layernorm_between(vision_dim, lm_dim, hidden=None):  # a norm is not an elementwise nonlinearity
    return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.LayerNorm(hidden or lm_dim),
                         nn.Linear(hidden or lm_dim, lm_dim))


def proj_norm_first(vision_dim, lm_dim, hidden=None):  # LLaVA's projector reads the tower's features as they are
    return nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, hidden or lm_dim), nn.GELU(),
                         nn.Linear(hidden or lm_dim, lm_dim))


def proj_normalised(vision_dim, lm_dim, hidden=None):
    return _Normalised(vision_dim, lm_dim, hidden or lm_dim)


@pytest.mark.parametrize("fn, hint", [
    (proj_softmax_over_tokens, "mixes the image tokens"), (proj_layernorm_between, "mixes the hidden features"),
    (proj_norm_first, "before your first Linear"), (proj_normalised, "changes what the last Linear gives"),
])
def test_projector_property_probes(fn, hint):
    failed_with("5.1", fn, hint)


class _Reversed(nn.Module):  # registers its output layer first, uses a PReLU: still Linear → σ → Linear
    def __init__(self, vision_dim, lm_dim, hidden):
        super().__init__()
        self.out, self.act, self.inp = nn.Linear(hidden, lm_dim), nn.PReLU(), nn.Linear(vision_dim, hidden)

    def forward(self, x):
        return self.out(self.act(self.inp(x)))


def test_projector_variants_pass():
    def softplus(vision_dim, lm_dim, hidden=None):
        return nn.Sequential(nn.Linear(vision_dim, hidden or lm_dim), nn.Softplus(),
                             nn.Linear(hidden or lm_dim, lm_dim))

    def custom(vision_dim, lm_dim, hidden=None):
        return _Reversed(vision_dim, lm_dim, hidden or lm_dim)

    for fn in (softplus, custom):
        result = evaluate("5.1", fn)
        assert result.passed, result.message


def splice_argmax(text, ids, image, image_id):  # works while <image> is the largest id (GPT-2's added token)
    rows = []
    for b in range(len(ids)):
        p = int(ids[b].argmax())
        rows.append(torch.cat([text[b, :p], image[b], text[b, p + 1:]]))
    return torch.stack(rows)


def splice_numpy(text, ids, image, image_id):  # np.insert-style splicing: right numbers, no gradient
    import numpy as np

    rows = []
    for b in range(len(ids)):
        p = int((ids[b] == image_id).nonzero())
        t, im = text[b].detach().numpy(), image[b].detach().numpy()
        rows.append(np.concatenate([t[:p], im, t[p + 1:]]))
    return torch.from_numpy(np.stack(rows))


def splice_first_image(text, ids, image, image_id):  # every row gets the first image's tokens
    rows = []
    for b in range(len(ids)):
        p = int((ids[b] == image_id).nonzero())
        rows.append(torch.cat([text[b, :p], image[0], text[b, p + 1:]]))
    return torch.stack(rows)


def splice_text_reversed_after(text, ids, image, image_id):  # the tail of the text read back to front
    rows = []
    for b in range(len(ids)):
        p = int((ids[b] == image_id).nonzero())
        rows.append(torch.cat([text[b, :p], image[b], text[b, p + 1:].flip(0)]))
    return torch.stack(rows)


@pytest.mark.parametrize("fn, hint", [
    (splice_argmax, "OTHER token ids"), (splice_numpy, "no gradient reaches image_embeds"),
    (splice_first_image, "depends on the other rows"), (splice_text_reversed_after, "text tokens around"),
])
def test_splice_property_probes(fn, hint):
    failed_with("5.2", fn, hint)


def test_splice_variants_pass():
    def buffer(text, ids, image, image_id):  # a preallocated output, filled in place: the gradient still flows
        b, t, d = text.shape
        n = image.shape[1]
        out = text.new_zeros(b, t - 1 + n, d)
        for r in range(b):
            p = int((ids[r] == image_id).nonzero())
            out[r, :p], out[r, p:p + n], out[r, p + n:] = text[r, :p], image[r], text[r, p + 1:]
        return out

    def masked(text, ids, image, image_id):  # vectorised: the text without <image>, then an insert per row
        keep = text[ids != image_id].view(len(ids), -1, text.shape[-1])
        pos = (ids == image_id).int().argmax(1)
        return torch.stack([torch.cat([keep[r, :p], image[r], keep[r, p:]]) for r, p in enumerate(pos.tolist())])

    for fn in (buffer, masked):
        result = evaluate("5.2", fn)
        assert result.passed, result.message


def labels_float_fill(labels, ids, n_image, image_id):  # -100. promotes the rows to float
    return torch.stack([torch.cat([labels[b, :_pos(ids, image_id, b)], torch.full((n_image,), -100.),
                                   labels[b, _pos(ids, image_id, b) + 1:]]) for b in range(len(ids))])


def labels_repeat_interleave(labels, ids, n_image, image_id):  # <image>'s own label, N times
    return torch.stack([labels[b].repeat_interleave(torch.where(ids[b] == image_id, n_image, 1))
                        for b in range(len(ids))])


def labels_shifted(labels, ids, n_image, image_id):  # shifted for next-token prediction: the loss already does it
    out = _reference_labels(labels, ids, n_image, image_id)
    return torch.cat([out[:, 1:], torch.full((len(ids), 1), -100)], 1)


def labels_fixed_16(labels, ids, n_image, image_id):  # the notebook's 16 image tokens, hard-coded
    return _reference_labels(labels, ids, 16, image_id)


def _reference_labels(labels, ids, n_image, image_id):
    fill = torch.full((n_image,), -100, dtype=labels.dtype)
    return torch.stack([torch.cat([labels[b, :_pos(ids, image_id, b)], fill, labels[b, _pos(ids, image_id, b) + 1:]])
                        for b in range(len(ids))])


@pytest.mark.parametrize("fn, hint", [
    (labels_float_fill, "torch.long"), (labels_repeat_interleave, "label <image> had"),
    (labels_shifted, "Don't shift the labels"), (labels_fixed_16, "n_image argument"),
])
def test_label_property_probes(fn, hint):
    failed_with("5.3", fn, hint)


def tiles_bilinear(images, tile):
    return torch.cat([_thumb(images, tile, "bilinear"), _tiles(images, tile)], 1)


def tiles_no_permute(images, tile):  # unfold, then straight to the reshape: the channel axis is in the way
    b, c = images.shape[:2]
    t = images.unfold(2, tile, tile).unfold(3, tile, tile).reshape(b, -1, c, tile, tile)
    return torch.cat([_thumb(images, tile), t], 1)


def tiles_mean_thumb(images, tile):  # "the global view" as the average of the tiles
    t = _tiles(images, tile)
    return torch.cat([t.mean(1, keepdim=True), t], 1)


def tiles_bottom_up(images, tile):  # rows of tiles from the bottom, as in a plot's y axis
    b, c, h, w = images.shape
    t = _tiles(images, tile).view(b, h // tile, w // tile, c, tile, tile).flip(1).reshape(b, -1, c, tile, tile)
    return torch.cat([_thumb(images, tile), t], 1)


@pytest.mark.parametrize("fn, hint", [
    (tiles_bilinear, "average brightness"), (tiles_no_permute, "not tile x tile blocks"),
    (tiles_mean_thumb, "keep where things are"), (tiles_bottom_up, "row-major order"),
])
def test_tiling_property_probes(fn, hint):
    failed_with("5.4", fn, hint)


def test_tiling_variants_pass():
    def loop(images, tile):  # a double loop and an average pool instead of unfold and interpolate
        b, c, h, w = images.shape
        views = [F.avg_pool2d(images, (h // tile, w // tile))]
        views += [images[:, :, i:i + tile, j:j + tile] for i in range(0, h, tile) for j in range(0, w, tile)]
        return torch.stack(views, 1)

    def adaptive(images, tile):
        return torch.cat([F.adaptive_avg_pool2d(images, tile).unsqueeze(1), _tiles(images, tile)], 1)

    for fn in (loop, adaptive):
        result = evaluate("5.4", fn)
        assert result.passed, result.message


def box_fixed_size(box, image_size, bins):  # the 32-px world images, hard-coded
    return "<box> " + " ".join(f"<loc{min(bins - 1, int(v / 32 * bins))}>" for v in box) + " </box>"


def box_top_clamp_only(box, image_size, bins):  # the statement's right edge, but not the left one
    return "<box> " + " ".join(f"<loc{min(bins - 1, int(v / image_size * bins))}>" for v in box) + " </box>"


def box_zero_padded(box, image_size, bins):  # PaliGemma's <loc0042> habit
    return "<box> " + " ".join(f"<loc{min(bins - 1, max(0, int(v / image_size * bins))):04d}>" for v in box) + " </box>"


def box_fixed_bins(box, image_size, bins):  # the zoo VLM's 8 bins, hard-coded
    return "<box> " + " ".join(f"<loc{min(7, max(0, int(v / image_size * 8)))}>" for v in box) + " </box>"


@pytest.mark.parametrize("fn, hint", [
    (box_fixed_size, "not by a fixed 32"), (box_top_clamp_only, "Clamp at both ends"),
    (box_zero_padded, "not <loc03>"), (box_fixed_bins, "not by a fixed 8"),
])
def test_box_text_property_probes(fn, hint):
    failed_with("5.5", fn, hint)


def test_box_text_variants_pass():
    import math

    def floor_first(box, image_size, bins):  # multiply first, math.floor, clamp with sorted()
        ks = [sorted((0, math.floor(v * bins / image_size), bins - 1))[1] for v in box]
        return "<box> " + " ".join(f"<loc{k}>" for k in ks) + " </box>"

    def tensor_way(box, image_size, bins):
        ks = (torch.tensor(box, dtype=torch.float64) / image_size * bins).floor().clamp(0, bins - 1).long()
        return " ".join(["<box>", *(f"<loc{k}>" for k in ks.tolist()), "</box>"])

    for fn in (floor_first, tensor_way):
        result = evaluate("5.5", fn)
        assert result.passed, result.message


def iou_no_empty_guard(a, b):  # right on every real box; divides by zero on two empty ones
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def iou_enclosing(a, b):  # min and max swapped: the box around both (GIoU's C), not the overlap
    inter = max(0, max(a[2], b[2]) - min(a[0], b[0])) * max(0, max(a[3], b[3]) - min(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def iou_xywh_area(a, b):  # the corners read as (x, y, w, h) for the areas
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def iou_one_sided(a, b):  # the overlap measured from a's left and top edges only
    inter = max(0, min(a[2], b[2]) - a[0]) * max(0, min(a[3], b[3]) - a[1])
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@pytest.mark.parametrize("fn, hint", [
    (iou_no_empty_guard, "empty union"), (iou_enclosing, "outside 0 .. 1"), (iou_xywh_area, "moved together"),
    (iou_one_sided, "LARGER of the two left edges"),
])
def test_iou_property_probes(fn, hint):
    failed_with("5.6", fn, hint)


def test_iou_variants_pass():
    def with_eps(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
        return ix * iy / (union + 1e-9)

    def torchvision_way(a, b):
        from torchvision.ops import box_iou

        return box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)).nan_to_num()

    for fn in (with_eps, torchvision_way):
        result = evaluate("5.6", fn)
        assert result.passed, result.message


def test_splice_keeping_the_placeholder_is_told_to_drop_it():  # found by the independent audit
    def keeps_placeholder(text_embeds, input_ids, image_embeds, image_token_id):
        rows = []
        for b in range(len(input_ids)):
            p = int((input_ids[b] == image_token_id).nonzero())
            rows.append(torch.cat([text_embeds[b, :p + 1], image_embeds[b], text_embeds[b, p + 1:]]))
        return torch.stack(rows)

    failed_with("5.2", keeps_placeholder, "placeholder")
