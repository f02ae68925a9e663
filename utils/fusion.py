"""Fusion architectures on one small VQA task: how image tokens and text tokens meet. Introduced in Phase 4.

Five patterns, all reading the same frozen inputs (the zoo CLIP tower's grid tokens and the zoo GPT's hidden
states of the question) except early fusion, which tokenises pixels itself and learns everything:

    concat          [pooled image ; pooled question] -> MLP
    cross_attention question tokens attend to image tokens (Flamingo-style, inside the language side)
    qformer         K learned queries read the image tokens; the language side sees K + T tokens (BLIP-2)
    projector       every image token projected and placed before the question (LLaVA)
    early           image patches -> discrete codes (VQ) -> one sequence with the words (Chameleon)

Also Flamingo's gated cross-attention (:class:`GatedCrossAttention`, :class:`FlamingoLM`), a resampler
(:func:`resample`, :class:`Resampler`), a Perceiver latent bottleneck (:class:`Perceiver`) and a
zero-initialised adapter that feeds depth maps into the frozen CLIP tower (:class:`DepthAdapter`).
"""
from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import env
from .clip import clip_grid_tokens, normalize_images
from .embeddings import masked_mean
from .metrics import per_kind_accuracy
from .train import History, adamw_one_cycle, infinite_batches, train, update
from .vqa import ANSWERS, answer_word, vqa_examples
from .world import QA_KINDS

PATTERNS: tuple[str, ...] = ("concat", "cross_attention", "qformer", "projector", "early")
# The question kinds Phase 4 compares the fusion patterns on: the world's QA_KINDS except "size", which the
# Phase 4 task leaves out (one home for the kinds: utils.world.QA_KINDS; this is a selection from it).
KINDS: tuple[str, ...] = tuple(k for k in QA_KINDS if k != "size")


# ----------------------------------------------------------------------------------------------------------
# Building blocks


def resample(queries: torch.Tensor, tokens: torch.Tensor, attn: nn.MultiheadAttention) -> torch.Tensor:
    """K learned ``queries`` (K, D) read N ``tokens`` (B, N, D) by cross-attention: (B, K, D), whatever N is.

    The queries are the attention's queries; the tokens are its keys and values. Exercise 4.2.
    """
    q = queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    out, _ = attn(q, tokens, tokens, need_weights=False)
    return out


def gated_cross_attention(x: torch.Tensor, image: torch.Tensor, attn: nn.MultiheadAttention, norm_q: nn.Module,
                          norm_kv: nn.Module, gate: torch.Tensor) -> torch.Tensor:
    """Flamingo's gated cross-attention: ``x + tanh(gate) * attn(norm_q(x), norm_kv(image), norm_kv(image))``.

    Text hidden states ``x`` (B, T, D) are the queries; image tokens (B, N, C) the keys and values. With
    gate = 0 the output is exactly ``x``. Exercise 4.4.
    """
    kv = norm_kv(image)
    out, _ = attn(norm_q(x), kv, kv, need_weights=False)
    return x + gate.tanh() * out


def attention_cost(n_inputs: int, n_latents: int, depth: int) -> dict[str, int]:
    """Query-key scores computed by ``depth`` layers: a transformer over all inputs (N² per layer) vs a
    Perceiver (one cross-attention read N·K, then K² per latent self-attention layer). Exercise 4.5."""
    return {"transformer": depth * n_inputs ** 2, "perceiver": n_inputs * n_latents + depth * n_latents ** 2}


def concat_features(pooled_image: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """Concatenation fusion's input: [image embedding ; mean of the question's real (unpadded) token states].
    (B, E), (B, T, D), (B, T) bool -> (B, E + D). Exercise 4.1."""
    return torch.cat([pooled_image, masked_mean(text, text_mask)], -1)


def add_depth(features: torch.Tensor, depth: torch.Tensor, encode: nn.Module, zero: nn.Module) -> torch.Tensor:
    """The depth adapter: resize the depth map (B, 1, H, W) to the feature grid (area pooling), encode it, project
    with the zero-initialised ``zero`` layer and ADD to the frozen tower's ``features`` (B, C, h, w). Exercise 4.6."""
    d = F.interpolate(depth, size=features.shape[-2:], mode="area")
    return features + zero(encode(d))


class Resampler(nn.Module):
    """A one-layer Q-Former / Perceiver resampler: K learned queries -> cross-attention -> MLP.
    (B, N, D) -> (B, K, D)."""

    def __init__(self, dim: int, n_queries: int, heads: int = 4) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.queries + resample(self.queries, self.norm(tokens), self.attn)
        return x + self.mlp(x)


class GatedCrossAttention(nn.Module):
    """Flamingo's gated cross-attention block: text hidden states attend to image tokens, scaled by tanh(gate).

    ``gate`` starts at 0, so at initialisation the block returns its input unchanged and the frozen language
    model below it behaves exactly as before. Exercise 4.4.
    """

    def __init__(self, dim: int, image_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(image_dim)
        self.attn = nn.MultiheadAttention(dim, heads, kdim=image_dim, vdim=image_dim, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = gated_cross_attention(x, image, self.attn, self.norm_q, self.norm_kv, self.gate)
        return x + self.ff_gate.tanh() * self.ff(x)


class FlamingoLM(nn.Module):
    """A frozen Hugging Face GPT-2 with a :class:`GatedCrossAttention` block before each of its blocks.

    The blocks are inserted with forward pre-hooks, so the language model's own code and weights are untouched;
    call ``forward(image_tokens, input_ids, attention_mask)``.
    """

    def __init__(self, lm, image_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.lm = lm
        dim = lm.config.n_embd
        self.xattn = nn.ModuleList(GatedCrossAttention(dim, image_dim, heads) for _ in lm.transformer.h)
        self._image: torch.Tensor | None = None
        for block, xattn in zip(lm.transformer.h, self.xattn):
            block.register_forward_pre_hook(self._hook(xattn), with_kwargs=True)

    def _hook(self, xattn: GatedCrossAttention):
        def hook(module, args, kwargs):
            if self._image is None:
                return None
            if args:
                return (xattn(args[0], self._image),) + tuple(args[1:]), kwargs
            kwargs["hidden_states"] = xattn(kwargs["hidden_states"], self._image)
            return args, kwargs
        return hook

    def gates(self) -> list[float]:
        """tanh(gate) of every cross-attention block: how much of the image each layer lets in."""
        return [float(x.gate.detach().tanh()) for x in self.xattn]

    def forward(self, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self._image = image
        try:
            return self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
        finally:
            self._image = None


class Perceiver(nn.Module):
    """A Perceiver-style classifier: K latents cross-attend to N inputs once, then self-attend (depth layers).

    Cost per layer grows like N*K (cross) + K*K (self) instead of N*N: the input can be large. Phase 4.
    """

    def __init__(self, in_dim: int, n_latents: int, n_classes: int, dim: int = 64, depth: int = 2,
                 heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.read = Resampler(dim, n_latents, heads)
        self.process = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True), depth,
            enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.process(self.read(self.embed(inputs))).mean(1))


def vq_tokens(patches: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Discrete image tokens: the index of the nearest (Euclidean) codebook row for each patch.
    ``patches`` (B, N, P), ``codebook`` (V, P) -> (B, N) int64. Exercise 4.3."""
    flat = patches.reshape(-1, patches.shape[-1])                 # (B*N, P): one distance matrix, no copies
    return torch.cdist(flat, codebook).argmin(-1).view(patches.shape[:-1])


def fit_codebook(patches: torch.Tensor, size: int, iters: int = 15, seed: int = 0) -> torch.Tensor:
    """k-means on patch vectors (M, P) -> a (size, P) codebook: the tokeniser of early fusion (a VQ-VAE's
    codebook plays this part in Chameleon; k-means is the same nearest-code idea without the decoder)."""
    g = env.generator(seed)
    centres = patches[torch.randperm(len(patches), generator=g)[:size]].clone()
    for _ in range(iters):
        assign = torch.cdist(patches, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, patches)
        counts = torch.bincount(assign, minlength=size).clamp(min=1).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts, centres)
    return centres


class DepthAdapter(nn.Module):
    """Adds a new modality (a depth map) to a frozen CNN image tower: a small conv encoder whose output is added
    to the tower's feature grid through a zero-initialised projection, so at initialisation the tower's
    output is exactly unchanged (the same trick as Flamingo's gate, ControlNet's zero convolutions). Exercise 4.6.
    """

    def __init__(self, out_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU())
        self.zero = nn.Conv2d(hidden, out_channels, 1)
        nn.init.zeros_(self.zero.weight)
        nn.init.zeros_(self.zero.bias)

    def forward(self, features: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``features`` (B, C, h, w) from the frozen tower; ``depth`` (B, 1, H, W) -> features + adapter(depth)."""
        return add_depth(features, depth, self.encode, self.zero)


def tower_with_adapter(visual: nn.Module, images: torch.Tensor, depth: torch.Tensor | None,
                       adapter: DepthAdapter | None, at: str = "layer1", layer: str = "layer2") -> torch.Tensor:
    """Grid tokens (B, N, C) of the frozen CLIP tower up to ``layer``, with ``adapter(features, depth)`` added to the
    feature map after stage ``at`` (if an adapter is given), so the frozen later stages process the depth signal."""
    x = visual.stem(images)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(visual, name)(x)
        if name == at and adapter is not None:
            x = adapter(x, depth)
        if name == layer:
            break
    return x.flatten(2).transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------
# The VQA task and the five fusion patterns


def transformer_encoder(dim: int, depth: int, heads: int = 4) -> nn.TransformerEncoder:
    """A pre-norm transformer encoder (no dropout) of ``depth`` layers: the Perceiver's latent stack and
    the baselines' full transformer."""
    layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class CrossAttentionLayer(nn.Module):
    """Self-attention over the question, then cross-attention to the image tokens, then an MLP (pre-norm)."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.self_attn = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor, image: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.self_attn(x, src_key_padding_mask=pad)
        out, _ = self.cross(self.norm(x), image, image, need_weights=False)
        return x + out


class FusionVQA(nn.Module):
    """One of the five fusion patterns answering a question about an image (a classifier over ANSWERS).

    Inputs (a dict batch): "grid" (B, N, C) frozen CLIP grid tokens, "pooled" (B, E) CLIP image embedding,
    "text" (B, T, D) frozen GPT hidden states of the question, "text_mask" (B, T) bool, and for early fusion
    "codes" (B, M) discrete image tokens and "ids" (B, T) question token ids.
    """

    def __init__(self, pattern: str, grid_dim: int, pooled_dim: int, text_dim: int, n_grid: int, max_text: int,
                 dim: int = 64, depth: int = 2, n_queries: int = 4, vocab: int = 64, codebook: int = 256,
                 n_codes: int = 16) -> None:
        super().__init__()
        assert pattern in PATTERNS, pattern
        self.pattern, self.n_grid, self.n_queries, self.n_codes = pattern, n_grid, n_queries, n_codes
        n_out = len(ANSWERS)
        if pattern == "concat":
            self.mlp = nn.Sequential(nn.Linear(pooled_dim + text_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 2 * dim),
                                     nn.GELU(), nn.Linear(2 * dim, n_out))
            return
        self.text_in = nn.Linear(text_dim, dim) if pattern != "early" else nn.Embedding(vocab, dim)
        if pattern == "cross_attention":
            self.image_in = nn.Linear(grid_dim, dim)
            self.layers = nn.ModuleList(CrossAttentionLayer(dim) for _ in range(depth))
        else:
            if pattern == "qformer":
                self.image_in = nn.Sequential(nn.Linear(grid_dim, dim), Resampler(dim, n_queries))
                n_image = n_queries
            elif pattern == "projector":
                self.image_in = nn.Sequential(nn.Linear(grid_dim, dim), nn.GELU(), nn.Linear(dim, dim))
                n_image = n_grid
            else:  # early: codes share the sequence with the words, from scratch
                self.image_in = nn.Embedding(codebook, dim)
                n_image = n_codes
            self.pos = nn.Parameter(torch.zeros(n_image + max_text, dim))
            self.encoder = transformer_encoder(dim, depth)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_out))

    def language_tokens(self, n_text: int) -> int:
        """How many tokens the language side's self-attention runs over for a question of ``n_text`` tokens."""
        extra = {"concat": 0, "cross_attention": 0, "qformer": self.n_queries, "projector": self.n_grid,
                 "early": self.n_codes}[self.pattern]
        return n_text + extra if self.pattern != "concat" else 1

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["text_mask"]
        if self.pattern == "concat":
            return self.mlp(concat_features(batch["pooled"], batch["text"], mask))
        text = self.text_in(batch["ids"] if self.pattern == "early" else batch["text"])
        if self.pattern == "cross_attention":
            image = self.image_in(batch["grid"])
            for layer in self.layers:
                text = layer(text, image, ~mask)
            return self.head(masked_mean(text, mask))
        image = self.image_in(batch["codes"] if self.pattern == "early" else batch["grid"])
        x = torch.cat([image, text], 1)
        x = x + self.pos[: x.shape[1]]
        keep = torch.cat([torch.ones(image.shape[:2], dtype=torch.bool, device=x.device), mask], 1)
        return self.head(masked_mean(self.encoder(x, src_key_padding_mask=~keep), keep))


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_classifier(model: nn.Module, data: dict[str, torch.Tensor], steps: int, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, desc: str = "fusion") -> tuple[History, float]:
    """Train ``model(batch) -> logits`` against ``data["answer"]`` with AdamW + one-cycle; rows are drawn
    through ``data["row"]`` (question -> image index for image tensors). Returns (history, seconds per step)."""
    torch.manual_seed(env.seed(seed))
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps)
    n = len(data["answer"])
    generator = env.generator(seed)

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        model.train()
        return update(F.cross_entropy(model(take(data, batch[0])), data["answer"][batch[0]]), optimizer, schedule)

    start = time.perf_counter()
    history = train(step, infinite_batches((torch.arange(n),), batch_size, generator), steps, desc=desc)
    return history, (time.perf_counter() - start) / steps


IMAGE_KEYS = ("grid", "pooled", "codes", "images", "depth")


def take(data: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch of questions ``rows``: per-question tensors indexed directly, per-image ones via data["image"]."""
    out = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            continue
        out[key] = value[data["image"][rows]] if key in IMAGE_KEYS else value[rows]
    return out


@torch.no_grad()
def predict(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 1024) -> torch.Tensor:
    """Argmax predictions for every question in ``data``."""
    model.eval()
    n = len(data["answer"])
    return torch.cat([model(take(data, torch.arange(i, min(n, i + batch_size)))).argmax(-1)
                      for i in range(0, n, batch_size)])


def accuracy_by_kind(pred: torch.Tensor, data: dict) -> dict[str, float]:
    """Accuracy per question kind (``data["kinds"]``, a list) and overall ("all")."""
    return per_kind_accuracy((pred == data["answer"]).tolist(), data["kinds"], KINDS)


def encode_questions(lm, tokenizer, questions: Sequence[str], max_length: int = 14
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frozen text side: token ids (Q, T), mask (Q, T) and the LM's last hidden states (Q, T, D),
    computed once per distinct question."""
    distinct = sorted(set(questions))
    enc = tokenizer(distinct, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = lm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    output_hidden_states=True).hidden_states[-1]
    where = {q: i for i, q in enumerate(distinct)}
    rows = torch.tensor([where[q] for q in questions])
    return enc["input_ids"][rows], enc["attention_mask"][rows].bool(), hidden[rows]


def answer_index(answers: Sequence[str]) -> torch.Tensor:
    """Class indices into ANSWERS."""
    return torch.tensor([ANSWERS.index(a) for a in answers])


def image_patches(images: torch.Tensor, patch: int = 4) -> torch.Tensor:
    """Non-overlapping ``patch`` x ``patch`` pixel patches of (B, 3, H, W) images as vectors (B, N, 3*patch*patch)."""
    return F.unfold(images, patch, stride=patch).transpose(1, 2)


def vqa_data(world, split: str, n_scenes: int, visual: nn.Module, lm, tokenizer, codebook: torch.Tensor | None = None,
             kinds: Sequence[str] = KINDS, every_question: bool = False, seed: int = 0, patch: int = 8) -> dict:
    """Everything the five patterns read, for scenes 0..n_scenes-1 of ``split``, computed once.

    Per image: "grid" (frozen CLIP grid tokens), "pooled" (the CLIP image embedding), "codes" (VQ tokens of
    4x4 pixel patches, if a ``codebook`` is given), "pixels" (uint8 images). Per question: "image" (its image),
    "ids"/"text_mask"/"text" (frozen GPT), "answer" (index into ANSWERS), and lists "kinds", "questions".
    """

    images, pairs = vqa_examples(world, split, n_scenes, every_question, seed)
    pairs = [(i, qa) for i, qa in pairs if qa.kind in kinds]
    x = normalize_images(images)
    with torch.no_grad():
        grid = clip_grid_tokens(visual, x, "layer2")
        pooled = torch.cat([visual(x[i:i + 512]) for i in range(0, len(x), 512)])
    questions = [qa.question for _, qa in pairs]
    ids, mask, text = encode_questions(lm, tokenizer, questions)
    data = {"grid": grid, "pooled": pooled, "image": torch.tensor([i for i, _ in pairs]), "ids": ids,
            "text_mask": mask, "text": text, "answer": answer_index([answer_word(qa) for _, qa in pairs]),
            "kinds": [qa.kind for _, qa in pairs], "questions": questions, "pixels": images}
    if codebook is not None:
        data["codes"] = vq_tokens(image_patches(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, patch),
                                  codebook)
    return data


