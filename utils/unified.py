"""A tiny Chameleon: one causal transformer, one vocabulary for words and image tokens (Phase 7).

Chameleon (Meta, 2024), Emu3 and Janus-Pro's generation path treat an image as a sentence in a foreign language:
a VQ-VAE (:mod:`utils.vq`) turns it into a grid of codes, each code becomes a token of the *same* vocabulary as the
words, and one decoder-only transformer learns the next-token loss over sequences that mix both. The order of a
sequence decides the task:

    text → image:  <bos> a small red circle . <boi> <img_17> <img_3> … (64 codes) <eoi> <eos>
    image → text:  <bos> <boi> <img_17> <img_3> … <eoi> a small red circle . <eos>

so the same weights **draw** (prompt with a caption and ``<boi>``, sample 64 image tokens, decode them with the
VQ-VAE) and **caption** (prompt with an image's tokens and ``<eoi>``, write words).

The model is ``transformers``' ``LlamaForCausalLM`` (Chameleon is a Llama with QK-norm) built tiny from a config;
its tokenizer is the course's word-level tokenizer with ``<boi>``, ``<eoi>`` and one token per image code added. The
zoo's copy, ``data/models/tiny-chameleon-shapes``, is trained by ``make models MODEL=tiny-chameleon-shapes`` and
loads with ``from_pretrained``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import env
from .train import History, adamw_one_cycle, train, update

ROOT = Path(__file__).resolve().parent.parent
UNIFIED_DIR = ROOT / "data" / "models" / "tiny-chameleon-shapes"
BOI, EOI = "<boi>", "<eoi>"


def image_token(code: int) -> str:
    """The vocabulary entry of image code ``code``: "<img_17>"."""
    return f"<img_{code}>"


def build_tokenizer(captions: Sequence[str], n_codes: int):
    """The union vocabulary: the word-level tokenizer of ``captions`` (:func:`utils.text.build_word_tokenizer`),
    then ``<boi>``, ``<eoi>`` and ``<img_0>`` … ``<img_{n_codes-1}>``, added in that order so that image code k is
    token ``image_offset + k``."""
    from .text import build_word_tokenizer

    tokenizer = build_word_tokenizer(captions)
    tokenizer.add_special_tokens({"additional_special_tokens": [BOI, EOI] + [image_token(k) for k in range(n_codes)]})
    return tokenizer


@dataclass(frozen=True)
class Vocab:
    """Where everything sits in the union vocabulary."""

    size: int
    pad: int
    bos: int
    eos: int
    boi: int
    eoi: int
    image_offset: int  # token id of image code 0
    n_codes: int

    @classmethod
    def of(cls, tokenizer) -> "Vocab":
        ids = tokenizer.get_vocab()
        offset = ids.get(image_token(0), len(tokenizer))  # a vocabulary without image codes (Transfusion) has n_codes 0
        n = 0
        while ids.get(image_token(n)) == offset + n:
            n += 1
        return cls(len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, ids[BOI],
                   ids[EOI], offset, n)

    def is_image(self, ids: torch.Tensor) -> torch.Tensor:
        """True where a token id is an image code."""
        return (ids >= self.image_offset) & (ids < self.image_offset + self.n_codes)


def add_image_output(lm, tokenizer, n_codes: int, n_positions: int | None = None) -> Vocab:
    """The reverse direction: give a language model that so far only *reads* images (the zoo VLM's GPT-2, which
    sees them through CLIP features) the vocabulary to *write* them. Adds ``<boi>``, ``<eoi>`` and ``n_codes`` image
    tokens to its tokenizer (contiguous ids, as :func:`build_tokenizer` orders them), grows its embedding table with
    ``transformers``' ``resize_token_embeddings`` — the input and output embeddings are tied, so the new rows are
    also the new image-token output head — and, for a GPT-2, its position table to ``n_positions`` (a caption and 64
    codes do not fit the 48 positions a VQA prompt needed). Returns the :class:`Vocab` of the grown tokenizer."""
    tokenizer.add_tokens([BOI, EOI] + [image_token(k) for k in range(n_codes)], special_tokens=True)
    lm.resize_token_embeddings(len(tokenizer))
    if n_positions is not None and hasattr(lm, "transformer") and hasattr(lm.transformer, "wpe"):
        from .vlm import extend_positions

        extend_positions(lm, n_positions)
    return Vocab.of(tokenizer)


def caption_ids(tokenizer, captions: Sequence[str]) -> list[list[int]]:
    """The word ids of each caption, without <bos>/<eos>."""
    return [tokenizer(c, add_special_tokens=False)["input_ids"] for c in captions]


def text_to_image(words: Sequence[int], codes: torch.Tensor, vocab: Vocab) -> list[int]:
    """<bos> words <boi> image tokens (row by row) <eoi> <eos>."""
    return [vocab.bos, *words, vocab.boi, *(codes.flatten() + vocab.image_offset).tolist(), vocab.eoi, vocab.eos]


def image_to_text(words: Sequence[int], codes: torch.Tensor, vocab: Vocab) -> list[int]:
    """<bos> <boi> image tokens <eoi> words <eos>."""
    return [vocab.bos, vocab.boi, *(codes.flatten() + vocab.image_offset).tolist(), vocab.eoi, *words, vocab.eos]


def pad_batch(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and labels (-100 on padding)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = torch.tensor(s)
    labels = ids.masked_fill(ids == pad, -100)
    return ids, labels


def tiny_unified_config(vocab: Vocab, hidden: int = 128, layers: int = 4, heads: int = 4, positions: int = 96):
    """A ``LlamaConfig`` for the tiny Chameleon over ``vocab`` (tied input and output embeddings)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab.size, hidden_size=hidden, intermediate_size=3 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=positions, tie_word_embeddings=True, pad_token_id=vocab.pad,
                       bos_token_id=vocab.bos, eos_token_id=vocab.eos)


def create_unified(vocab: Vocab, **config) -> "LlamaForCausalLM":  # noqa: F821 - transformers is imported lazily
    """A new, untrained tiny Chameleon over ``vocab``: ``LlamaForCausalLM`` of :func:`tiny_unified_config` (keyword
    arguments: hidden, layers, heads, positions). Seed torch first for a reproducible start."""
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(tiny_unified_config(vocab, **config))


def load_unified(path: str | Path = UNIFIED_DIR):
    """(model in eval mode, tokenizer, Vocab) of a saved tiny Chameleon, through ``from_pretrained``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return LlamaForCausalLM.from_pretrained(str(path)).eval(), tokenizer, Vocab.of(tokenizer)


def modality_losses(logits: torch.Tensor, labels: torch.Tensor, image_offset: int, n_codes: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy split by what is predicted: (loss on text targets, loss on image-token targets),
    each the mean over its own targets. Position t predicts token t + 1, so a target is the label one step ahead;
    it is an image target when its id is in [image_offset, image_offset + n_codes). Labels of -100 (padding) count
    in neither. The reference of Exercise 7.3."""
    logits, targets = logits[:, :-1], labels[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                             reduction="none").view(targets.shape)
    valid = targets != -100
    image = (targets >= image_offset) & (targets < image_offset + n_codes)
    text = valid & ~image
    return losses[text].sum() / text.sum().clamp(min=1), losses[image].sum() / image.sum().clamp(min=1)


@dataclass
class UnifiedData:
    """Training material: image tokens (N, h, w) and, per scene, one caption per paraphrase template (word ids)."""

    codes: torch.Tensor
    captions: list[list[list[int]]]  # [scene][template] -> word ids

    def __len__(self) -> int:
        return len(self.codes)


def make_batch(data: UnifiedData, vocab: Vocab, index: torch.Tensor, to_image: torch.Tensor,
               template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of mixed sequences: example i is text → image where ``to_image[i]``, else image → text, with
    caption template ``template[i]``."""
    seqs = []
    for i, t2i, tpl in zip(index.tolist(), to_image.tolist(), template.tolist()):
        words = data.captions[i][tpl]
        seqs.append((text_to_image if t2i else image_to_text)(words, data.codes[i], vocab))
    return pad_batch(seqs, vocab.pad)


def train_unified(model, data: UnifiedData, vocab: Vocab, *, steps: int, batch_size: int = 64, lr: float = 2e-3,
                  text_to_image_share: float = 0.5, image_weight: float = 1.0, weighting: str = "modality",
                  seed: int = 0, desc: str = "unified", on_step=None,
                  extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> tuple[History, dict[str, list[float]]]:
    """Train on mixed batches: a share ``text_to_image_share`` of the sequences are text → image, the rest image →
    text. The loss depends on ``weighting``:

    - "modality" (the zoo's): text loss + ``image_weight`` × image loss, the two of :func:`modality_losses`, each a
      mean over its own targets;
    - "pooled": the plain language-model loss, one mean over all targets — each kind of token weighs as much as its
      share of the batch;
    - "direction": the mean over the text → image sequences' targets plus the mean over the image → text ones — each
      direction weighs the same however rare it is in the batch (reweighting instead of upsampling).

    AdamW, one-cycle schedule. Returns the history of the total loss and the per-modality loss curves {"text": [...],
    "image": [...]} (one value per step). ``extra_loss(labels)``, if given, is added to each step's loss after the
    forward pass (e.g. an MoE balancing term, :func:`utils.moe.balance_term`); its values go to ``curves["extra"]``."""
    torch.manual_seed(env.seed(seed))
    g = env.generator(seed)
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps)
    n_templates = len(data.captions[0])
    curves: dict[str, list[float]] = {"text": [], "image": []}

    def batches():
        while True:
            yield (torch.randint(len(data), (batch_size,), generator=g),
                   torch.rand(batch_size, generator=g) < text_to_image_share,
                   torch.randint(n_templates, (batch_size,), generator=g))

    def step(batch) -> float:
        model.train()
        ids, labels = make_batch(data, vocab, *batch)
        logits = model(input_ids=ids.to(model.device), attention_mask=(labels != -100).to(model.device)).logits
        text, image = modality_losses(logits, labels.to(model.device), vocab.image_offset, vocab.n_codes)
        curves["text"].append(text.item())
        curves["image"].append(image.item())
        if weighting == "modality":
            loss = text + image_weight * image
        else:
            loss = _weighted_loss(logits, labels.to(model.device), batch[1].to(model.device), weighting)
        if extra_loss is not None:
            extra = extra_loss(labels)
            curves.setdefault("extra", []).append(extra.item())
            loss = loss + extra
        return update(loss, optimizer, schedule, max_grad_norm=1.0)

    history = train(step, batches(), steps, desc=desc, on_step=on_step)
    model.eval()
    return history, curves


def _weighted_loss(logits: torch.Tensor, labels: torch.Tensor, to_image: torch.Tensor, weighting: str) -> torch.Tensor:
    """The next-token loss of a batch, "pooled" (one mean over all targets) or "direction" (a mean per direction —
    text → image rows, image → text rows — summed; a direction absent from the batch adds 0)."""
    targets = labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                             reduction="none").view(targets.shape)
    valid = targets != -100
    if weighting == "pooled":
        return losses[valid].mean()
    if weighting != "direction":
        raise ValueError(f"weighting is 'modality', 'pooled' or 'direction', not {weighting!r}")
    rows = [valid & to_image[:, None], valid & ~to_image[:, None]]
    return sum(losses[r].sum() / r.sum().clamp(min=1) for r in rows)


def task_batches(data: UnifiedData, vocab: Vocab, template: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every example of ``data`` as two fixed batches (ids, labels): "captioning" (image → text) and "drawing" (text
    → image), with caption template ``template`` — the held-out sets of :func:`task_losses`."""
    n = len(data)
    index, template_ = torch.arange(n), torch.full((n,), template)
    return {"captioning": make_batch(data, vocab, index, torch.zeros(n, dtype=torch.bool), template_),
            "drawing": make_batch(data, vocab, index, torch.ones(n, dtype=torch.bool), template_)}


@torch.no_grad()
def task_losses(model, batches: dict[str, tuple[torch.Tensor, torch.Tensor]], vocab: Vocab) -> dict[str, float]:
    """The loss of each task on the batches of :func:`task_batches`: the text loss of the image → text sequences
    (captioning: the words given the image) and the image loss of the text → image ones (drawing: the codes given
    the caption)."""
    was_training = model.training
    model.eval()
    out = {}
    for name, which in (("captioning", 0), ("drawing", 1)):
        ids, labels = batches[name]
        logits = model(input_ids=ids.to(model.device), attention_mask=(labels != -100).to(model.device)).logits
        out[name] = float(modality_losses(logits, labels.to(model.device), vocab.image_offset, vocab.n_codes)[which])
    model.train(was_training)
    return out


def only_image_tokens(logits: torch.Tensor, image_offset: int, n_codes: int) -> torch.Tensor:
    """Logits (B, V) with every token that is not an image code set to -inf: inside ``<boi> … <eoi>`` the model may
    only write image codes (Chameleon and Janus restrict the vocabulary the same way while drawing). A new tensor
    of the same shape (token ids stay token ids); the caller's logits are not changed. The reference of Exercise
    7.4."""
    masked = torch.full_like(logits, float("-inf"))
    masked[:, image_offset:image_offset + n_codes] = logits[:, image_offset:image_offset + n_codes]
    return masked


def _cache_step(model, ids: torch.Tensor, past, mask: torch.Tensor):
    out = model(input_ids=ids, past_key_values=past, attention_mask=mask, use_cache=True)
    return out.logits[:, -1], out.past_key_values


@torch.no_grad()
def draw(model, vocab: Vocab, prompts: Sequence[Sequence[int]], n_tokens: int = 64, temperature: float = 1.0,
         top_k: int = 0, generator: torch.Generator | None = None,
         restrict: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Image codes (B, n_tokens) for caption word ids ``prompts``: the model reads <bos> words <boi> and writes
    ``n_tokens`` tokens one at a time (key-value cache), each drawn from ``restrict``'s logits (default
    :func:`only_image_tokens`) with temperature and top-k (Phase 6's :func:`utils.tts.sample_top_k`; ``temperature=0``
    is greedy, ``top_k=0`` keeps every code). Prompts of different lengths are left-padded."""
    from .tts import sample_top_k

    restrict = restrict or only_image_tokens
    seqs = [[vocab.bos, *p, vocab.boi] for p in prompts]
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), vocab.pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, length - len(s):] = torch.tensor(s)
        mask[i, length - len(s):] = 1
    device = model.device
    ids, mask = ids.to(device), mask.to(device)
    logits, past = _cache_step(model, ids, None, mask)
    codes = []
    for _ in range(n_tokens):
        allowed = restrict(logits.float().cpu(), vocab.image_offset, vocab.n_codes)
        k = top_k if top_k > 0 else allowed.shape[-1]
        token = sample_top_k(allowed, temperature, k, generator)
        codes.append(token - vocab.image_offset)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        logits, past = _cache_step(model, token[:, None].to(device), past, mask)
    return torch.stack(codes, 1)


@torch.no_grad()
def describe(model, vocab: Vocab, codes: torch.Tensor, max_words: int = 12) -> list[list[int]]:
    """Greedy captions (word ids) of images given as codes (B, h, w): the model reads <bos> <boi> codes <eoi> and
    writes until <eos>; image tokens are never allowed in a caption."""
    device = model.device
    start = torch.tensor([vocab.bos, vocab.boi])
    ids = torch.cat([start.expand(len(codes), 2), codes.flatten(1) + vocab.image_offset,
                     torch.full((len(codes), 1), vocab.eoi)], 1).to(device)
    mask = torch.ones_like(ids)
    logits, past = _cache_step(model, ids, None, mask)
    words: list[list[int]] = [[] for _ in range(len(codes))]
    done = torch.zeros(len(codes), dtype=torch.bool)
    for _ in range(max_words + 1):
        token = next_word(logits, vocab, words, done)
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        logits, past = _cache_step(model, token[:, None].to(device), past, mask)
    return words


def next_word(logits: torch.Tensor, vocab: Vocab, words: list[list[int]], done: torch.Tensor) -> torch.Tensor:
    """One greedy step of captioning, shared by every model that writes words after an image: the most likely token
    of ``logits`` (B, V) that is neither an image code nor a special other than ``<eos>``; appended to ``words[i]``
    for each caption i not yet ``done``, or marking it done when it is ``<eos>`` (``done`` is updated in place).
    Returns the chosen tokens (B,)."""
    logits = logits.float().cpu()
    logits[:, vocab.image_offset:vocab.image_offset + vocab.n_codes] = float("-inf")
    logits[:, [vocab.boi, vocab.eoi, vocab.pad, vocab.bos]] = float("-inf")
    token = logits.argmax(-1)
    for i, t in enumerate(token.tolist()):
        if not done[i]:
            if t == vocab.eos:
                done[i] = True
            else:
                words[i].append(t)
    return token


def _foreground(image: np.ndarray) -> np.ndarray | None:
    """The pixels of one image (H, W, 3) that differ clearly from the world's background (summed |RGB difference| >
    60), as a boolean mask; None when fewer than 4 do (an empty canvas). What the pixel judges below look at."""
    from .world import BACKGROUND_RGB

    fg = np.abs(image.astype(float) - np.array(BACKGROUND_RGB)).sum(-1) > 60
    return fg if fg.sum() >= 4 else None


def palette_color(images_uint8: np.ndarray) -> list[str | None]:
    """The world's own colour check (no model): the palette colour nearest to the mean of the pixels that differ
    clearly from the background; None for an empty canvas."""
    from .world import COLOR_RGB

    names = list(COLOR_RGB)
    palette = np.array([COLOR_RGB[c] for c in names], dtype=float)
    out: list[str | None] = []
    for im in images_uint8.astype(float):
        fg = _foreground(im)
        if fg is None:
            out.append(None)
            continue
        mean = im[fg].mean(0)
        out.append(names[int(np.argmin(((palette - mean) ** 2).sum(1)))])
    return out


def attributes(text: str) -> dict[str, str | None]:
    """Size, colour and shape named in a one-object caption ("a small red circle in the top left." →
    {"size": "small", "color": "red", "shape": "circle"}); None for what it does not name."""
    from .world import COLORS, SHAPES, SIZES

    words = re.findall(r"[a-z]+", text.lower())
    pick = lambda options: next((w for w in words if w in options), None)  # noqa: E731
    return {"size": pick(SIZES), "color": pick(COLORS), "shape": pick(SHAPES)}


class ClipJudge:
    """Judges drawn images the way text-to-image papers do with a CLIP (CLIPScore, GenEval's detectors): the zoo
    CLIP's zero-shot colour × shape over the world's 24 classes (prompt ensembling, :mod:`utils.clip`)."""

    def __init__(self, clip_bundle=None) -> None:
        from . import clip as uclip
        from .world import class_names

        model, _, tokenizer = clip_bundle or uclip.load_clip()
        self.model, self.names = model, class_names()
        with torch.no_grad():
            self.weights = uclip.zero_shot_weights(model, tokenizer, self.names)

    @torch.no_grad()
    def __call__(self, images_uint8: np.ndarray) -> list[tuple[str, str]]:
        """(colour, shape) that the CLIP sees in each image."""
        from . import clip as uclip

        feats = uclip.encode_images(self.model, uclip.normalize_images(images_uint8))
        best = (feats @ self.weights.T).argmax(-1)
        return [tuple(self.names[i].split(" ")) for i in best.tolist()]


def where(images_uint8: np.ndarray) -> list[str | None]:
    """Where the drawn object is, in the words of the world's captions ("in the top left", "on the right", "in the
    center"...): the centroid of the pixels that differ clearly from the background, through
    :func:`utils.world.position_phrase`; None for an empty canvas."""
    from .world import position_phrase

    out: list[str | None] = []
    size = images_uint8.shape[1]
    for im in images_uint8.astype(float):
        fg = _foreground(im)
        if fg is None:
            out.append(None)
            continue
        ys, xs = np.nonzero(fg)
        out.append(position_phrase(xs.mean() / size, ys.mean() / size))
    return out


def prompts(sizes: Sequence[str] = ("small", "large")) -> tuple[list[str], list[tuple[str, str]]]:
    """The drawing prompts: every colour × shape × size in the world's first caption template ("a small red
    circle."), with the (colour, shape) each asks for."""
    from .world import COLORS, SHAPES

    texts, wanted = [], []
    for color in COLORS:
        for shape in SHAPES:
            for size in sizes:
                texts.append(f"a {size} {color} {shape}.")
                wanted.append((color, shape))
    return texts, wanted


def drawing_scores(images_uint8: np.ndarray, wanted: Sequence[tuple[str, str]], judge: ClipJudge) -> dict:
    """Share of drawings whose colour and shape the CLIP judge sees as asked, the palette check's colour, and the
    same for the prompts that ask for a red triangle (a combination never seen in training)."""
    seen = judge(images_uint8)
    palette = palette_color(images_uint8)
    rt = [i for i, w in enumerate(wanted) if w == ("red", "triangle")]
    rest = [i for i, w in enumerate(wanted) if w != ("red", "triangle")]

    def share(idx, ok):
        return float(np.mean([ok(i) for i in idx])) if idx else float("nan")

    return {"color": share(rest, lambda i: seen[i][0] == wanted[i][0]),
            "shape": share(rest, lambda i: seen[i][1] == wanted[i][1]),
            "both": share(rest, lambda i: seen[i] == tuple(wanted[i])),
            "palette color": share(rest, lambda i: palette[i] == wanted[i][0]),
            "red triangle: color": share(rt, lambda i: seen[i][0] == "red"),
            "red triangle: shape": share(rt, lambda i: seen[i][1] == "triangle")}


def caption_scores(texts: Sequence[str], scenes) -> dict[str, float]:
    """Share of one-object captions naming the object's size, colour and shape as the scene graph has them."""
    got = [attributes(t) for t in texts]
    return {k: float(np.mean([g[k] == getattr(s.objects[0], k) for g, s in zip(got, scenes)]))
            for k in ("size", "color", "shape")}


def training_curves(path: str | Path = UNIFIED_DIR) -> dict[str, list[float]]:
    """A saved unified model's per-modality training losses ({"text": [...], "image": [...]}, each a mean over 50
    steps), from its metrics.json."""
    import json

    return json.loads((Path(path) / "metrics.json").read_text())["loss_curves"]
