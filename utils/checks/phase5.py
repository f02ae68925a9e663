"""Checks for the Phase 5 exercises (vision-language models).

Oracles: the LM-side shape contract and the module's structure (5.1), the course's splice (5.2, 5.3) written
with a per-row loop, ``F.interpolate`` + ``Tensor.unfold`` (5.4), the quantisation formula (5.5) and
``torchvision.ops.box_iou`` (5.6).

Each check names a known mistake when it reproduces one, then the first property of a right answer that the
answer breaks (a ``Probe``), and only then says "differs" (``Mismatch``). Properties that the values on the
check's one input cannot show (the gradient through the splice, the labels' dtype, the clamp at 0, the empty
union) are required of a passing answer too: every right answer has them.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import metrics
from .. import vlm as uvlm
from . import CheckFailed, Mismatch, register
from .oracles import (
    Probe,
    all_hold,
    batch_independent,
    call,
    close,
    deterministic,
    diagnose,
    equivariant,
    gradient_reaches,
    never_raises,
    require_properties,
    unchanged_when,
)

# References captured at import: a notebook rebinds ``uvlm.splice_image_tokens = check(...)`` to the learner's
# passing version, and later checks must still compare with the course's answer.
_projector, _splice, _labels = uvlm.mlp_projector, uvlm.splice_image_tokens, uvlm.splice_labels
_tiles, _box_to_text, _iou = uvlm.anyres_tiles, uvlm.box_to_text, metrics.box_iou


def _judge(got: torch.Tensor, expected: torch.Tensor, mistakes: dict[str, torch.Tensor], default: str,
           probes: Sequence[Probe]) -> None:
    """``diagnose``, then the same probes on a passing answer: a probe holds for every right answer, so one that
    breaks shows a mistake the check's one input happened to hide (an argmax that finds <image> by luck)."""
    diagnose(got, expected, mistakes, default, probes=probes)
    require_properties(probes)


def _tensor(out):
    """A probe's answer must be a tensor; anything else makes the probe raise (and be skipped)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"not a tensor: {type(out).__name__}")
    return out


# --- 5.1 the projector ------------------------------------------------------------------------------------------

_ACTIVATIONS = {"GELU": F.gelu, "GELU (tanh)": lambda h: F.gelu(h, approximate="tanh"), "ReLU": F.relu,
                "SiLU": F.silu, "Tanh": torch.tanh, "LeakyReLU": F.leaky_relu, "ELU": F.elu, "Mish": F.mish,
                "Sigmoid": torch.sigmoid}


class _Taps:
    """Forward hooks on the projector's two Linears: what goes into and comes out of each when the projector
    runs, and optionally a replacement for the first Linear's output (to feed the middle a chosen input)."""

    def __init__(self, proj: nn.Module, w1: nn.Linear, w2: nn.Linear) -> None:
        self.proj, self.w1, self.w2 = proj, w1, w2

    def run(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        seen: dict[str, torch.Tensor] = {}

        def at_w1(module, inputs, output):
            seen["w1_in"] = inputs[0]
            return output if hidden is None else hidden

        def at_w2(module, inputs, output):
            seen["w2_in"], seen["w2_out"] = inputs[0], output

        handles = [self.w1.register_forward_hook(at_w1), self.w2.register_forward_hook(at_w2)]
        try:
            with torch.no_grad():
                seen["out"] = self.proj(x)
        finally:
            for h in handles:
                h.remove()
        return seen

    def middle(self, hidden: torch.Tensor, vision_dim: int) -> torch.Tensor:
        """What reaches the last Linear when the first one outputs ``hidden``: the projector's nonlinearity."""
        return self.run(torch.zeros(*hidden.shape[:-1], vision_dim), hidden)["w2_in"]


def _projector_probes(proj: nn.Module, taps: _Taps, x: torch.Tensor, vision_dim: int, hidden: int) -> list[Probe]:
    g = torch.Generator().manual_seed(51)
    z1, z2 = torch.randn(1, 4, hidden, generator=g) * 2, torch.randn(1, 4, hidden, generator=g) * 2
    mid = lambda z: taps.middle(z, vision_dim)  # noqa: E731
    poke = z1.clone()
    poke[0, 0, 0] += 1.5  # one hidden feature of one token

    def elementwise() -> bool:
        change = (mid(poke) - mid(z1)).abs() > 1e-6
        change[0, 0, 0] = False
        return not bool(change.any())

    def nonlinear() -> bool:  # an affine middle gives mid(z1) + mid(z2) == mid(z1 + z2) + mid(0)
        return not close(mid(z1) + mid(z2), mid(z1 + z2) + mid(torch.zeros_like(z1)), 1e-4)

    def project(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return proj(t)

    return [
        Probe("each image token on its own", lambda: batch_independent(project, x, 1)()
              and close(project(x)[:, :2], project(x[:, :2]), 1e-4),
              "your projector mixes the image tokens (or the images of a batch): the output for one token changes "
              "when the other tokens change. It must map every token on its own — a Softmax, a norm or a mean over "
              "dim=1 mixes the N tokens; the Linears and GELU act on the last axis only."),
        Probe("the first Linear reads the image tokens", lambda: close(taps.run(x)["w1_in"], x, 1e-5),
              "something changes the image tokens before your first Linear (a LayerNorm? an activation?): the "
              "projector starts with Linear(vision_dim, hidden) on the vision tower's features as they come."),
        Probe("the output is the last Linear's", lambda: close(taps.run(x)["out"], taps.run(x)["w2_out"], 1e-5),
              "your projector changes what the last Linear gives (a normalisation, a scale, a residual?): the LM's "
              "word embeddings are not unit vectors, and stage 1 learns the right scale. Return the Linear's output "
              "as it is."),
        Probe("the nonlinearity acts on each hidden feature on its own", elementwise,
              "what sits between your two Linears mixes the hidden features (a Softmax or a LayerNorm over them?): "
              "LLaVA-1.5's GELU acts on each of the hidden numbers on its own, elementwise."),
        Probe("the middle is nonlinear", nonlinear,
              "what sits between your two Linears is linear (an identity, a scale, a dropout in eval mode), so the "
              "two Linears still compose into one linear map: put a GELU between them."),
    ]


@register("5.1", "the LLaVA projector (an MLP)", uvlm.mlp_projector, hints=(
    "Start from the shapes: the projector gets image tokens (B, N, vision_dim) and must give (B, N, lm_dim), one "
    "vector of the LM's embedding width per token. nn.Linear acts on the last axis only, so the N tokens are "
    "mapped one by one without any reshaping.",
    "LLaVA-1.5 (Liu et al., 2023, 'Improved Baselines with Visual Instruction Tuning') replaced LLaVA-1's single "
    "Linear by a two-layer MLP: see §1 'The parts: a vision tower, a projector, a language model'. Two Linears "
    "with nothing between them are still one linear map; the GELU in the middle is what makes it an MLP.",
    "Worked sub-step with vision_dim=12, hidden=16, lm_dim=20: the first layer takes each token from 12 to 16 "
    "numbers, GELU keeps (B, N, 16) and bends each number on its own, the last layer goes from 16 to 20. "
    "nn.Sequential runs its modules in order; end on the Linear, with no activation or norm after it.",
))
def _check_projector(fn) -> str:
    vision_dim, lm_dim, hidden = 12, 20, 16
    torch.manual_seed(0)
    proj = call(fn, vision_dim, lm_dim, hidden)
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
    if linears[0].in_features != vision_dim and linears[1].in_features == vision_dim:
        linears.reverse()  # a custom module may register its output layer first
    if linears[0].in_features != vision_dim or linears[0].out_features != hidden:
        raise CheckFailed(f"the first layer should be Linear(vision_dim, hidden) = Linear({vision_dim}, {hidden}); "
                          f"got Linear({linears[0].in_features}, {linears[0].out_features}).")
    children = list(proj.children()) if isinstance(proj, nn.Sequential) else []
    if children and not isinstance(children[-1], nn.Linear):
        raise CheckFailed("the last layer must be the Linear: a final activation (e.g. GELU or ReLU) would keep the "
                          "image tokens away from the negative values the LM's word embeddings take.")
    x = torch.randn(4, 3, vision_dim)
    require_properties([Probe(
        "deterministic in train mode", lambda: deterministic(proj, x),
        "your projector gives two different outputs for the same input in train mode: something random is in it "
        "(nn.Dropout?). The check trains nothing, but a VLM trains the projector in train mode, and LLaVA's has no "
        "dropout: Linear → GELU → Linear.")])
    proj.eval()
    w1, w2 = linears
    taps = _Taps(proj, w1, w2)
    probes = _projector_probes(proj, taps, x, vision_dim, hidden)
    with torch.no_grad():  # the module's own weights, composed the ways a projector can be built
        got = proj(x)
        # GELU is LLaVA-1.5's choice; any elementwise nonlinearity between the Linears makes a 2-layer MLP.
        between = {name: w2(act(w1(x))) for name, act in _ACTIVATIONS.items()}
        ways = {"linear": w2(w1(x)), "before": w2(w1(F.gelu(x)))}
    same = lambda a: a.shape == got.shape and torch.allclose(got, a, atol=1e-5)  # noqa: E731
    act = next((name for name, a in between.items() if same(a)), None)
    if act is None and not same(ways["linear"]) and all_hold(probes[1:]):
        act = "an elementwise nonlinearity"  # PReLU, Softplus, Hardswish...: Linear → σ → Linear all the same
    if act is not None:
        require_properties(probes[:1])
        n = sum(p.numel() for p in proj.parameters())
        return f"(B, N, {vision_dim}) -> (B, N, {lm_dim}) through a {n}-parameter MLP, Linear → {act} → Linear."
    if same(ways["linear"]):
        raise CheckFailed("there is no nonlinearity between the two Linear layers, so together they are just one "
                          "linear map: put nn.GELU() between them.")
    if same(ways["before"]):
        raise CheckFailed("the GELU comes before the first Linear, so the two Linears still compose into one linear "
                          "map of GELU(x): the nonlinearity must sit BETWEEN them, Linear → GELU → Linear.")
    require_properties(probes)
    raise Mismatch("with its own weights, your projector does not compute Linear(vision_dim, hidden) → GELU → "
                   "Linear(hidden, lm_dim) on each token: check the order of the layers and the activation.")


# --- 5.2 splicing image tokens -----------------------------------------------------------------------------------

def _splice_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image_id, d, n = 9, 4, 3
    # The placeholder at different places, and not the largest id (finding it by argmax works only by luck).
    ids = torch.tensor([[1, 5, 6, image_id, 7, 0], [1, image_id, 5, 6, 7, 12]])
    text = torch.randn(2, 6, d, generator=g)
    image = torch.randn(2, n, d, generator=g) + 10  # easy to tell apart
    return text, ids, image, image_id


def _positions(ids: torch.Tensor, image_id: int) -> list[int]:
    return [int((row == image_id).nonzero()) for row in ids]


def _splice_probes(f: Callable[..., torch.Tensor], text: torch.Tensor, ids: torch.Tensor, image: torch.Tensor,
                   image_id: int, what: str, text_first: bool = False) -> list[Probe]:
    """Probes shared by 5.2 (``image`` are the image tokens) and 5.3 (``image`` is the -100 fill): the rows are
    spliced on their own, <image> is found by its id, the image block sits at <image>, the text keeps its order."""
    n = image.shape[1]
    pos = _positions(ids, image_id)
    renamed = torch.where(ids == image_id, ids, ids + 100)  # other ids change, their embeddings do not

    def image_block() -> bool:
        out = f(text, ids, image)
        return all(close(out[b, p:p + n], image[b], 1e-5) for b, p in enumerate(pos))

    def text_kept() -> bool:
        out = f(text, ids, image)
        return all(close(torch.cat([out[b, :p], out[b, p + n:]]), text[b][ids[b] != image_id], 1e-5)
                   for b, p in enumerate(pos))

    rows = [
        Probe("each row on its own", lambda: close(f(text[1:], ids[1:], image[1:]), f(text, ids, image)[1:], 1e-5),
              f"row b of your output depends on the other rows (their <image> position or their {what}): splice "
              f"each row with its own position and its own {what}[b] — questions differ in length, so <image> "
              "sits somewhere else in every row."),
        Probe("<image> found by its id", lambda: close(f(text, renamed, image), f(text, ids, image), 1e-5),
              "your output changes when the OTHER token ids change, though their embeddings stay the same: find "
              "<image> by comparing each row's ids with image_token_id. An argmax, or the largest id, finds it only "
              "by luck (a token added to the vocabulary gets a large id)."),
    ]
    block = Probe("the image block sits at <image>", image_block,
              f"the N positions starting where <image> was should hold that row's {what}, unchanged and in their "
              "order: the text before <image> keeps its positions, then come the N new ones.")
    around = Probe("the text around it, in order", text_kept,
                   f"the {'labels of the ' if text_first else ''}text tokens around the image block are not the "
                   "row's own, in order: everything before <image> stays before, everything after it follows the N "
                   "image positions, and only <image> itself is dropped."
                   + (" Don't shift the labels by one for next-token prediction: the loss does that." if text_first
                      else ""))
    return rows + ([around, block] if text_first else [block, around])


@register("5.2", "splice image tokens at <image>", uvlm.splice_image_tokens, hints=(
    "Work on one row first: find the single position p where input_ids[b] equals image_token_id, and keep in mind "
    "that p differs from row to row. Then ask which text vectors come before p and which after it.",
    "LLaVA feeds the LM `inputs_embeds`, not ids: the placeholder's own embedding is REPLACED by the N projected "
    "image tokens, so T text positions become T - 1 + N. See §1 'The parts: a vision tower, a projector, a "
    "language model' and the statement of Exercise 5.2.",
    "Worked sub-step: with T = 6, <image> at p = 3 and N = 3 the output row has 6 - 1 + 3 = 8 vectors: text "
    "positions 0, 1, 2, then image tokens 0, 1, 2, then text positions 4 and 5. (Tensor.nonzero() gives p; torch.cat "
    "joins the three pieces along the token axis, and torch.stack makes the batch again.)",
))
def _check_splice(fn) -> str:
    text, ids, image, image_id = _splice_batch()
    got = call(fn, text, ids, image, image_id)
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
    f = lambda t, i, im: _tensor(call(fn, t, i, im, image_id))  # noqa: E731
    probes = _splice_probes(f, text, ids, image, image_id, "image tokens")
    probes.append(Probe(
        "the gradient reaches the image tokens", lambda: gradient_reaches(lambda im: f(text, ids, im), image)
        and gradient_reaches(lambda t: f(t, ids, image), text),
        "no gradient reaches image_embeds (or text_embeds) through your splice: something detaches them (.detach(), "
        ".data, a NumPy or list round trip, torch.tensor(...) of the pieces). Stage 1 trains the projector through "
        "this splice: build the output with torch operations (indexing, torch.cat, torch.stack)."))
    if isinstance(got, torch.Tensor) and got.ndim == 3 and got.shape[1] == text.shape[1] + image.shape[1]:
        raise CheckFailed(f"your rows have T + N = {got.shape[1]} vectors, one too many: the <image> placeholder's own "
                          "embedding must go — it is REPLACED by the N image tokens, so the length is T - 1 + N.")
    _judge(got, expected, mistakes, "the spliced sequence differs from: text before <image>, the N image "
           "tokens, text after <image>.", probes)
    return "Each row: text before <image>, the N image tokens, the text after — length T - 1 + N."


@register("5.3", "labels for the spliced sequence", uvlm.splice_labels, builds_on=("5.2",), hints=(
    "The labels are spliced exactly like the embeddings: one label per position of the spliced sequence, so the "
    "output has T - 1 + N labels per row, and the N new positions get the label that means 'no loss'.",
    "F.cross_entropy(..., ignore_index=-100) skips every position whose label is -100; the image positions are "
    "not predicted, so they get -100 (see the statement of Exercise 5.3 and §2 'Stage 1 — alignment'). "
    "Labels are class indices: they stay integers (torch.long).",
    "Worked sub-step: your 5.2 splice works on any (B, T, D) tensor. labels[..., None] is (B, T, 1); a fill of "
    "shape (B, N, 1) holding -100 in the labels' dtype plays the image tokens; splice, then drop the last axis "
    "again. E.g. labels [a, b, -100(<image>), c] with N = 2 give [a, b, -100, -100, c].",
))
def _check_labels(fn) -> str:
    _, ids, _, image_id = _splice_batch()
    labels = torch.tensor([[1, 5, 6, -100, 7, -100], [1, -100, 5, 6, 7, 8]])  # any labels, not only answers
    got = call(fn, labels, ids, 3, image_id)
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
        "the number of image positions is the n_image argument (3 in this check), not the notebook's 16: read it "
        "from the arguments.": _labels(labels, ids, 16, image_id),
    }
    fill = torch.full((2, 3), -100, dtype=labels.dtype)

    def f(lab, i, _fill):  # the shared probes splice (B, T) labels; the "image tokens" are the -100 fill
        return _tensor(call(fn, lab, i, _fill.shape[1], image_id))

    probes = _splice_probes(f, labels, ids, fill, image_id, "-100 labels", text_first=True)
    probes[2:2] = [Probe(
        "<image>'s own label does not matter", unchanged_when(lambda lab: f(lab, ids, fill), labels,
                                                             lambda lab: torch.where(ids == image_id, 42, lab)),
        "your labels change with the label <image> had: that label is dropped, and the N image positions get -100 "
        "whatever it was (repeating <image>'s label N times works only while it happens to be -100).")]
    probes.append(Probe(
        "integer labels", lambda: got.dtype == labels.dtype,
        f"your labels come back as {str(got.dtype).replace('torch.', '')}, not as the input's "
        f"{str(labels.dtype).replace('torch.', '')}: a float fill such as -100. turns the whole row into floats, "
        "and F.cross_entropy takes class indices as torch.long. Make the fill in the labels' dtype."))
    _judge(got, expected, mistakes, "the labels differ from: text labels with <image>'s label replaced by N "
           "times -100.", probes)
    return "No loss on the image positions, and every text label still under its token."


# --- 5.4 AnyRes tiling -------------------------------------------------------------------------------------------

def _tile_probes(f: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: int) -> list[Probe]:
    b, c, h, w = images.shape
    rows, cols = h // tile, w // tile
    # Every pixel a different number (channel, row, column, image): a view's values say where it was cut from.
    coded = (torch.arange(b).view(b, 1, 1, 1) * 10000 + torch.arange(c).view(1, c, 1, 1) * 1000
             + torch.arange(h).view(1, 1, h, 1) * 50 + torch.arange(w).view(1, 1, 1, w)).float()
    blocks = [coded[:, :, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] for i in range(rows) for j in range(cols)]

    def tiles_of(x: torch.Tensor) -> list[torch.Tensor]:
        out = f(x)
        return [out[:, k] for k in range(1, out.shape[1])]

    def are_blocks() -> bool:
        return all(any(close(t, blk, 1e-3) for blk in blocks) for t in tiles_of(coded))

    def cover() -> bool:
        found = [next(k for k, blk in enumerate(blocks) if close(t, blk, 1e-3)) for t in tiles_of(coded)]
        return sorted(found) == list(range(len(blocks)))

    def row_major() -> bool:
        return all(close(t, blk, 1e-3) for t, blk in zip(tiles_of(coded), blocks))

    corner = images.clone()
    corner[:, :, h // 2:] = 0
    corner[:, :, :, w // 2:] = 0  # only the top-left quarter is lit

    def layout() -> bool:
        thumb = f(corner)[:, 0]
        return bool(thumb[:, :, tile // 2:].abs().max() < 1e-5) and bool(thumb[:, :, :, tile // 2:].abs().max() < 1e-5)

    perm = torch.tensor([2, 0, 1])
    return [
        Probe("each image on its own", lambda: close(f(images)[1:], f(images[1:]), 1e-5),
              "the views of one image change when the other images of the batch change: tile and resize each "
              "image on its own (the batch axis must never be reshaped together with the others)."),
        Probe("the tiles are blocks of the image", are_blocks,
              "your tiles are not tile x tile blocks cut out of the image with their channels: a reshape straight "
              "after unfold (without moving the channel axis next to the pixels, with permute) mixes pixels of "
              "different tiles and channels. Cut the blocks, keep each one's C x tile x tile, then list them in "
              "row-major order."),
        Probe("every block once", cover,
              "your tiles repeat some blocks of the image and leave others out: the (H/tile)·(W/tile) tiles must "
              "cover the image, each block once."),
        Probe("tiles in row-major order", row_major,
              "the tiles should be in row-major order (left to right along the top row, then the next row down), "
              "like the text they cover: tile k is block (k // (W/tile), k % (W/tile))."),
        Probe("the channels stay apart", equivariant(f, images, lambda x: x[:, perm], lambda y: y[:, :, perm]),
              "your views mix the colour channels: swapping the image's channels must swap them in every view. "
              "Keep the channel axis C as it is in the thumbnail and in each tile."),
        Probe("the thumbnail keeps the image's mean", lambda: close(f(images)[:, 0].mean((-2, -1)),
                                                                     images.mean((-2, -1)), 1e-4),
              "your thumbnail does not keep the image's average brightness: mode='area' averages each block of "
              "pixels, while 'nearest' or 'bilinear' pick or blend a few of them and drop the rest."),
        Probe("the thumbnail keeps the layout", layout,
              "your global view does not keep where things are: an image lit only in its top-left quarter must "
              "give a thumbnail lit only in its top-left quarter. The thumbnail is the WHOLE image shrunk to "
              "tile x tile, not a mix of the tiles."),
    ]


@register("5.4", "AnyRes tiling", uvlm.anyres_tiles, hints=(
    "Get the output's shape right first: an 8 x 12 image with tile = 4 has 2 rows and 3 columns of tiles, so "
    "(B, C, 8, 12) becomes (B, 1 + 6, C, 4, 4): one thumbnail in front, then six tiles.",
    "AnyRes (LLaVA-NeXT) gives the tower full-resolution tiles plus a thumbnail of the whole image for the "
    "global layout; see §5 'Image preprocessing: the token budget'. The thumbnail averages blocks of pixels "
    "(mode='area'); the tiles go row by row, left to right, like the text they cover.",
    "Worked sub-step: Tensor.unfold(dim, size, step) with size = step = tile cuts axis 2 (H) into bands; a "
    "second unfold of axis 3 (W) cuts the columns, giving (B, C, H/tile, W/tile, tile, tile). The channel axis "
    "is still second: move it next to the two tile axes before any reshape, or pixels of different tiles and "
    "channels get mixed.",
))
def _check_tiles(fn) -> str:
    g = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 8, 12, generator=g)  # 2 x 3 tiles: row- and column-major differ
    got = call(fn, images, 4)
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
    probes = _tile_probes(lambda x: _tensor(call(fn, x, 4)), images, 4)
    _judge(got, expected, mistakes, "the views differ from: the thumbnail, then the tiles in row-major order.",
           probes)
    return "Thumbnail first, then the full-resolution tiles left to right — 1 + 6 views for an 8 x 12 image."


# --- 5.5 boxes as tokens -----------------------------------------------------------------------------------------

_BOX_TEXT = re.compile(r"<box> <loc(0|[1-9]\d*)> <loc(0|[1-9]\d*)> <loc(0|[1-9]\d*)> <loc(0|[1-9]\d*)> </box>")


def _bins_of(text: object) -> list[int] | None:
    m = _BOX_TEXT.fullmatch(text) if isinstance(text, str) else None
    return [int(k) for k in m.groups()] if m else None


def _box_probes(fn) -> list[Probe]:
    f = lambda box, size, bins: call(fn, box, size, bins)  # noqa: E731
    box, size, bins = (5, 0, 31, 17), 32, 8

    def doubles() -> bool:  # floor(2u) is 2·floor(u) or 2·floor(u) + 1, also at the clamped last bin
        few, many = _bins_of(f(box, size, bins)), _bins_of(f(box, size, 2 * bins))
        return few is not None and many is not None and all(m in (2 * k, 2 * k + 1) for k, m in zip(few, many))

    def in_range() -> bool:
        k = _bins_of(f((-16, -4, 40, 33), size, bins))
        return k == [0, 0, bins - 1, bins - 1]

    return [
        Probe("the string's format", lambda: _bins_of(f(box, size, bins)) is not None,
              "your string does not have the form '<box> <locA> <locB> <locC> <locD> </box>': six tokens separated "
              "by single spaces, each location token '<loc' + the bin number + '>' (<loc3>, not <loc03> or "
              "<loc 3>), nothing else around them."),
        Probe("divides by image_size", lambda: f(tuple(2 * v for v in box), 2 * size, bins) == f(box, size, bins),
              "your tokens change when the box and the image are scaled together (the box doubled in a 64-px "
              "image): divide each coordinate by image_size, the argument, not by a fixed 32."),
        Probe("uses bins", doubles,
              "your tokens do not follow `bins`: with twice as many bins, a coordinate in bin k must land in bin "
              "2k or 2k + 1. Multiply the fraction v / image_size by bins, the argument, not by a fixed 8."),
        Probe("clamped to 0 .. bins - 1", in_range,
              "a coordinate outside the image must still give a token that exists: left of or above the image "
              "(negative) is <loc0>, right of or below it is the last bin. Clamp at both ends, 0 and bins - 1 — "
              "int() of a negative number is negative."),
    ]


@register("5.5", "a box as <loc> tokens", uvlm.box_to_text, hints=(
    "Take one coordinate at a time: divide it by the image size to get a fraction between 0 and 1, then turn "
    "that fraction into one of `bins` bins. Do the same for x0, y0, x1 and y1, in that order.",
    "Grounding VLMs write positions as location tokens (PaliGemma's <locK>, Kosmos-2's grid cells): see §6 "
    "'Grounding: answering with a box'. A bin is the interval the coordinate falls in, so it is a floor, and "
    "only the bins 0 .. bins - 1 exist as tokens.",
    "Worked sub-step: in a 32-px image with 8 bins, x = 13 is 13 / 32 = 0.406 of the width, 0.406 · 8 = 3.25, "
    "so bin 3 and the token <loc3>; x = 32 would give 8.0, one past the last bin, so it becomes 7. Join the "
    "tokens with single spaces between <box> and </box>.",
))
def _check_box_to_text(fn) -> str:
    cases = [((0, 4, 13, 32), 32, 8), ((5, 0, 31, 17), 32, 8), ((2.5, 6.2, 9.9, 16.0), 20, 10),
             ((0, 0, 64, 64), 64, 16)]
    probes = _box_probes(fn)
    for box, size, bins in cases:
        got = call(fn, box, size, bins)
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
        require_properties(probes)
        raise Mismatch(f"box {box} in a {size}-px image with {bins} bins should be {expected!r}, got {got!r}.")
    require_properties(probes)
    return "Boxes quantised to <loc> bins (floor, clamped to the last bin), in x0 y0 x1 y1 order."


# --- 5.6 IoU -----------------------------------------------------------------------------------------------------

def _iou_probes(fn) -> list[Probe]:
    iou = lambda a, b: float(call(fn, a, b))  # noqa: E731
    pairs = [((0, 0, 10, 10), (5, 5, 15, 15)), ((1, 2, 6, 9), (3, 1, 8, 5)), ((2, 2, 8, 8), (3, 3, 5, 5)),
             ((0, 0, 4, 4), (6, 6, 9, 9))]
    near = lambda u, v: abs(u - v) < 1e-6  # noqa: E731
    shift = lambda r, dx, dy: (r[0] + dx, r[1] + dy, r[2] + dx, r[3] + dy)  # noqa: E731
    return [
        Probe("between 0 and 1", lambda: all(-1e-9 <= iou(a, b) <= 1 + 1e-9 for a, b in pairs),
              "your IoU falls outside 0 .. 1: the intersection can never be larger than either box. It runs from "
              "the LARGER of the two left edges to the SMALLER of the two right edges (and likewise top and "
              "bottom); from the smaller left to the larger right is the box around both."),
        Probe("symmetric", lambda: all(near(iou(a, b), iou(b, a)) for a, b in pairs),
              "your IoU changes when the two boxes swap places: the overlap and the union are the same whichever "
              "box comes first, so treat a and b alike."),
        Probe("unchanged when both boxes move", lambda: all(near(iou(shift(a, 7, 3), shift(b, 7, 3)), iou(a, b))
                                                          for a, b in pairs),
              "your IoU changes when both boxes are moved together by the same amount: a box is its corners "
              "(x0, y0, x1, y1), so its width is x1 - x0 and its height y1 - y0 — not x1 and y1 (that would be "
              "(x, y, w, h) boxes)."),
        Probe("unchanged when both boxes scale", lambda: all(near(iou(tuple(3 * v for v in a), tuple(3 * v for v in b)),
                                                                  iou(a, b)) for a, b in pairs),
              "your IoU changes when the whole picture is scaled (both boxes three times larger): it is a ratio "
              "of two areas, so every term must be an area — width times height."),
        Probe("a box with itself is 1", lambda: all(near(iou(a, a), 1.0) for a, _ in pairs),
              "a box compared with itself must give IoU 1: the intersection is then the box itself, and so is "
              "the union."),
        Probe("0 for an empty union", never_raises(lambda: near(iou((2, 2, 2, 2), (2, 2, 2, 2)), 0.0)
                                                    and near(iou((0, 0, 0, 5), (3, 3, 3, 3)), 0.0)),
              "two boxes of zero area have an empty union, and the statement asks for 0 then: your IoU divides by "
              "zero (or gives nan). Test the union before dividing."),
    ]


@register("5.6", "intersection over union", metrics.box_iou, hints=(
    "Draw two overlapping boxes on paper first: their overlap is a box too, whose left edge is one of the two "
    "left edges and whose right edge is one of the two right edges. Which ones? Then do the same for y.",
    "IoU = area of the intersection / area of the union, where the union counts the overlap once: area(a) + "
    "area(b) - intersection. See §6 'Grounding: answering with a box' (and torchvision.ops.box_iou, the oracle). "
    "Boxes that do not overlap have an intersection of 0, not a negative one.",
    "Worked sub-step: for (0, 0, 10, 10) and (5, 5, 15, 15) the overlap is 5 wide and 5 high, 25; the union is "
    "100 + 100 - 25 = 175; IoU = 25 / 175 ≈ 0.143. For disjoint boxes a width comes out negative: clamp it at 0 "
    "before multiplying, and return 0.0 when the union is 0.",
))
def _check_iou(fn) -> str:
    from torchvision.ops import box_iou as tv_iou

    pairs = [((0, 0, 10, 10), (5, 5, 15, 15)), ((0, 0, 4, 4), (6, 6, 9, 9)), ((0, 0, 4, 4), (0, 6, 4, 9)),
             ((2, 2, 8, 8), (3, 3, 5, 5)), ((0, 0, 8, 4), (0, 0, 8, 4)), ((1.5, 0, 7, 3), (2, 1, 9, 8.5))]
    probes = _iou_probes(fn)
    for a, b in pairs:
        got = call(fn, a, b)
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
        require_properties(probes)
        raise Mismatch(f"IoU of {a} and {b} should be {expected:.4f} (torchvision.ops.box_iou), "
                       f"got {float(got):.4f}.")
    require_properties(probes)
    return "Equal to torchvision.ops.box_iou on overlapping, disjoint, nested and identical boxes."
