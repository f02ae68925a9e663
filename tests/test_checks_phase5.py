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
