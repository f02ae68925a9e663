"""A LLaVA-style vision-language model from library parts: open_clip vision tower + MLP projector + GPT-2.

Introduced in Phase 5 (the zoo model ``data/models/tiny-vlm-shapes`` is trained by ``make models`` with these
functions); Phase 4 uses :func:`clip_grid_tokens` and :func:`extend_vocabulary`; Phase 9 evaluates the zoo VLM.

    vision tower (frozen zoo CLIP trunk) -> grid of feature vectors (B, N, C)   "patch tokens"
    projector (MLP)                       -> (B, N, D), D = the LM's embedding width
    splice                                -> question ... [N image tokens at <image>] answer, fed as inputs_embeds
    language model (GPT-2 from transformers)

The VLM is saved as its parts, each loadable by its own library, like LLaVA's components: ``lm/``
(``AutoModelForCausalLM`` + ``AutoTokenizer``), ``projector.safetensors`` + ``vlm_config.json``, and the vision
tower, which stays the zoo CLIP (open_clip ``local-dir:``; a ``vision/`` folder next to them overrides it).
:meth:`TinyVLM.from_pretrained` reassembles them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AddedToken, AutoModelForCausalLM, AutoTokenizer

from . import env
from .clip import ZOO_CLIP, clip_grid_tokens, load_clip, normalize_float_images, normalize_images
from .fusion import Resampler, transformer_encoder
from .metrics import box_iou, per_kind_accuracy
from .train import adamw_one_cycle, infinite_batches, train, update
from .vqa import ANSWERS, last_token_scores, vqa_accuracy, vqa_examples
from .world import QA, TEXT_ALPHABET

IMAGE_TOKEN = "<image>"
ZOO_VLM = ZOO_CLIP.parent / "tiny-vlm-shapes"  # the zoo VLM (make models), for TinyVLM.from_pretrained
# Words the world's questions and answers use that the zoo GPT's caption vocabulary lacks, plus prompt markers.
QA_WORDS: tuple[str, ...] = (
    "what", "color", "shape", "size", "how", "many", "are", "below", "yes", "no", "zero",
    "circles", "squares", "triangles", "diamonds", "question", "answer", "where")
def vqa_prompt(question: str) -> str:
    """The text around the image for a question: ``"question: ... <image> answer:"`` (the answer follows).

    The question comes first so that, in a causal LM, every image token can attend to it: each image token
    can then check "am I what the question asks about?", which yes/no questions need."""
    return f"question: {question} {IMAGE_TOKEN} answer:"


def caption_prompt() -> str:
    """Stage-1 prompt: the image alone; the caption follows."""
    return IMAGE_TOKEN


# ----------------------------------------------------------------------------------------------------------
# Parts


def mlp_projector(vision_dim: int, lm_dim: int, hidden: int | None = None) -> nn.Sequential:
    """LLaVA-1.5's projector: Linear -> GELU -> Linear, vision features to the LM's embedding width."""
    hidden = hidden or lm_dim
    return nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, lm_dim))


class QFormerProjector(nn.Module):
    """A one-layer Q-Former as a VLM connector (BLIP-2's idea, Phase 4's resampler): grid tokens go to the LM's
    width, get a learned position each (the queries must know where a token came from), and K learned queries
    read them by cross-attention. (B, N, C) -> (B, K, D): the LM sees K tokens whatever N is."""

    def __init__(self, vision_dim: int, lm_dim: int, n_tokens: int, n_queries: int = 4, heads: int = 4) -> None:
        super().__init__()

        self.inp = nn.Linear(vision_dim, lm_dim)
        self.pos = nn.Parameter(torch.randn(n_tokens, lm_dim) * 0.02)
        self.resampler = Resampler(lm_dim, n_queries, heads)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.resampler(self.inp(features) + self.pos)


PROJECTORS: tuple[str, ...] = ("linear", "mlp", "qformer")


def make_projector(kind: str, vision_dim: int, lm_dim: int, n_tokens: int, n_queries: int = 4) -> nn.Module:
    """One of the three connectors Phase 5 compares: ``"linear"`` (LLaVA-1), ``"mlp"`` (LLaVA-1.5) or
    ``"qformer"`` (BLIP-2 style, ``n_queries`` output tokens)."""
    if kind == "linear":
        return nn.Linear(vision_dim, lm_dim)
    if kind == "mlp":
        return mlp_projector(vision_dim, lm_dim)
    if kind == "qformer":
        return QFormerProjector(vision_dim, lm_dim, n_tokens, n_queries)
    raise ValueError(f"unknown projector {kind!r}; pick one of {PROJECTORS}")


def extend_vocabulary(lm, tokenizer, words: Sequence[str] = QA_WORDS, special: Sequence[str] = (IMAGE_TOKEN,)) -> int:
    """Teach an LM's tokenizer new whole words and special tokens, and grow its embedding table to match.

    The library way (``tokenizer.add_tokens`` + ``model.resize_token_embeddings``), as LLaVA does for
    ``<image>``; new rows start at the mean of the old embeddings. Returns how many tokens were added.
    """

    n = tokenizer.add_tokens([AddedToken(w, single_word=True) for w in words if w not in tokenizer.get_vocab()])
    n += tokenizer.add_special_tokens({"additional_special_tokens": list(special)})
    lm.resize_token_embeddings(len(tokenizer))
    return n


def extend_positions(lm, n_positions: int) -> None:
    """Give a GPT-2 a longer position table (old rows kept, new rows at their mean), for image + text."""
    wpe = lm.transformer.wpe
    old = wpe.weight.data
    if n_positions <= old.shape[0]:
        return
    new = nn.Embedding(n_positions, old.shape[1]).to(old.device)
    new.weight.data[: old.shape[0]] = old
    new.weight.data[old.shape[0]:] = old.mean(0)
    lm.transformer.wpe = new
    lm.config.n_positions = n_positions


def splice_image_tokens(text_embeds: torch.Tensor, input_ids: torch.Tensor, image_embeds: torch.Tensor,
                        image_token_id: int) -> torch.Tensor:
    """Replace the one ``<image>`` placeholder in each row with that row's N image embeddings.

    ``text_embeds`` (B, T, D) are the LM's embeddings of ``input_ids`` (B, T); ``image_embeds`` (B, N, D).
    Returns (B, T - 1 + N, D): the tokens before the placeholder, the image tokens, the tokens after.
    Every row must hold exactly one placeholder. Introduced in Phase 5 (exercise 5.2).
    """
    assert (input_ids == image_token_id).sum(1).eq(1).all(), "each row needs exactly one <image> token"
    # Row b is text[:p], image, text[p+1:] (p = its placeholder). One gather per source instead of a Python loop
    # over rows (the loop is the exercise's version; this one gives the same numbers, faster).
    (B, T, D), N = text_embeds.shape, image_embeds.shape[1]
    p = (input_ids == image_token_id).float().argmax(1)[:, None]                  # (B, 1)
    j = torch.arange(T - 1 + N, device=input_ids.device)[None].expand(B, -1)      # output positions
    from_text = torch.where(j < p, j, j - N + 1).clamp(0, T - 1)                  # their source in the text
    text = text_embeds.gather(1, from_text[..., None].expand(-1, -1, D))
    image = image_embeds.gather(1, (j - p).clamp(0, N - 1)[..., None].expand(-1, -1, D))
    return torch.where(((j >= p) & (j < p + N))[..., None], image, text)


def splice_labels(labels: torch.Tensor, input_ids: torch.Tensor, n_image: int, image_token_id: int) -> torch.Tensor:
    """Labels for the spliced sequence: -100 (no loss) on the N image positions, the text labels elsewhere."""
    fill = torch.full((labels.shape[0], n_image, 1), -100, dtype=labels.dtype, device=labels.device)
    return splice_image_tokens(labels[..., None], input_ids, fill, image_token_id)[..., 0]


# ----------------------------------------------------------------------------------------------------------
# The model


def center_view(images: torch.Tensor, crop: int) -> torch.Tensor:
    """What a tower that sees only the middle of the picture gets: the central ``crop`` × ``crop`` pixels of
    ``images`` (B, C, S, S), resized back to S × S (bilinear). Preprocessing that center-crops (CLIP's does, to a
    square) hides whatever lies outside, while the text about the image may still name it."""
    size = images.shape[-1]
    start = (size - crop) // 2
    middle = images[..., start:start + crop, start:start + crop]
    return F.interpolate(middle, size=(size, size), mode="bilinear", align_corners=False)


class TinyVLM(nn.Module):
    """vision tower -> projector -> spliced into a causal LM's input embeddings (LLaVA's architecture).
    ``view_crop``: the tower sees only the central ``view_crop`` pixels of each image (:func:`center_view`)."""

    def __init__(self, visual: nn.Module, projector: nn.Module, lm, tokenizer, layer: str = "layer2",
                 image_size: int = 32, n_image_tokens: int | None = None, view_crop: int | None = None) -> None:
        super().__init__()
        self.visual, self.projector, self.lm = visual, projector, lm
        self.tokenizer, self.layer, self.image_size, self.view_crop = tokenizer, layer, image_size, view_crop
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        # A ViT's patch tokens carry position embeddings; a CNN's grid does not (only weakly, through padding),
        # and the grid's place in the text sequence moves with the question's length. So each grid cell gets a
        # learned position vector after projection (zeros: no effect until trained).
        self.image_pos = nn.Parameter(torch.zeros(n_image_tokens, lm.config.n_embd)) if n_image_tokens else None

    def connector_parameters(self) -> list[nn.Parameter]:
        """What stage 1 trains: the projector and the grid position vectors."""
        return list(self.projector.parameters()) + ([self.image_pos] if self.image_pos is not None else [])

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Grid tokens of CLIP-normalised images (B, 3, S, S) -> (B, N, C); gradients only if the tower trains."""
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.visual.parameters())
        if self.view_crop is not None:
            images = center_view(images, self.view_crop)
        return clip_grid_tokens(self.visual, images, self.layer, grad=grad)

    def embed(self, features: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Spliced input embeddings: projected image ``features`` (B, N, C) at each row's ``<image>``."""
        text = self.lm.get_input_embeddings()(input_ids)
        image = self.projector(features)
        if self.image_pos is not None:
            image = image + self.image_pos
        return splice_image_tokens(text, input_ids, image, self.image_token_id)

    def forward(self, features: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits over the spliced sequence (B, T - 1 + N, V). ``features`` are grid tokens (image_features)."""
        embeds = self.embed(features, input_ids)
        return self.lm(inputs_embeds=embeds, attention_mask=self.spliced_mask(embeds, input_ids, attention_mask)).logits

    def spliced_mask(self, spliced: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> torch.Tensor:
        """The attention mask of a spliced sequence (B, T - 1 + N): the text's mask, with 1 for every image token."""
        ones = torch.ones(len(input_ids), self.n_image_out(spliced, input_ids), 1, device=input_ids.device)
        return splice_image_tokens(attention_mask[..., None].float(), input_ids, ones, self.image_token_id)[..., 0]

    @staticmethod
    def n_image_out(spliced: torch.Tensor, input_ids: torch.Tensor) -> int:
        """How many image tokens the splice inserted (N for a projector, K for a Q-Former), from any spliced
        sequence (embeddings or logits) and the ``input_ids`` it came from."""
        return spliced.shape[1] - input_ids.shape[1] + 1

    def loss(self, features: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy on the labelled text positions only."""
        logits = self.forward(features, input_ids, (input_ids != self.tokenizer.pad_token_id).long())
        lab = splice_labels(labels, input_ids, self.n_image_out(logits, input_ids), self.image_token_id)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100)

    def next_word_logprobs(self, features: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """log p(word | image, prompt) over the whole vocabulary (B, V) at the position after each prompt (each with
        one ``<image>``), with gradients when enabled: any prompt template, where :meth:`answer_scores` uses
        ``vqa_prompt``."""
        ids, att = encode_prompts(self.tokenizer, list(prompts))
        logits = self(features.to(self.device), ids.to(self.device), att.to(self.device).long())
        length = att.sum(1) - 1 + self.n_image_out(logits, ids)      # the one <image> token became N positions
        last = (length - 1).to(logits.device)
        return logits[torch.arange(len(ids), device=logits.device), last].log_softmax(-1)

    @torch.no_grad()
    def answer_scores(self, features: torch.Tensor, questions: Sequence[str], candidates: Sequence[str] = ANSWERS,
                      batch_size: int = 512) -> torch.Tensor:
        """Log-probabilities (B, len(candidates)) of each one-word answer after each question's prompt."""
        ids = [self.tokenizer.convert_tokens_to_ids(c) for c in candidates]
        out = []
        for i in range(0, len(questions), batch_size):
            input_ids, att = encode_prompts(self.tokenizer, [vqa_prompt(q) for q in questions[i:i + batch_size]])
            f = features[i:i + batch_size].to(self.device)
            logits = self.forward(f, input_ids.to(self.device), att.to(self.device).long())
            spliced = att.sum(1, keepdim=True) - 1 + self.n_image_out(logits, input_ids)  # <image> became N tokens
            mask = (torch.arange(logits.shape[1])[None] < spliced).long()
            out.append(last_token_scores(logits, mask.to(self.device), ids).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def generate_text(self, features: torch.Tensor, prompts: Sequence[str], max_new_tokens: int = 24,
                      skip_special_tokens: bool = True) -> list[str]:
        """Greedy continuations of ``prompts`` (each with one ``<image>``) given grid ``features``; keep special
        tokens such as ``<loc3>`` in the text with ``skip_special_tokens=False``."""
        self.eval()
        texts = []
        for f, prompt in zip(features, prompts):
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"][:, :-1].to(self.device)
            embeds = self.embed(f[None].to(self.device), ids)
            out = []
            for _ in range(max_new_tokens):
                nxt = int(self.lm(inputs_embeds=embeds).logits[0, -1].argmax())
                if nxt == self.tokenizer.eos_token_id or embeds.shape[1] >= self.lm.config.n_positions:
                    break
                out.append(nxt)
                embeds = torch.cat(
                    [embeds, self.lm.get_input_embeddings()(torch.tensor([[nxt]], device=self.device))], 1)
            texts.append(self.tokenizer.decode(out, skip_special_tokens=skip_special_tokens).strip())
        return texts

    def save_pretrained(self, path: str | Path, card: dict | None = None) -> None:
        """Write ``projector.safetensors`` + ``vlm_config.json`` and ``lm/`` (transformers); the frozen tower is not
        copied (it is the zoo CLIP). Only the MLP projector is saved this way."""

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(path / "lm")
        self.tokenizer.save_pretrained(path / "lm")
        weights = {k: v.contiguous() for k, v in self.projector.state_dict().items()}
        if self.image_pos is not None:
            weights["image_pos"] = self.image_pos.detach().contiguous()
        save_file(weights, path / "projector.safetensors")
        dims = [m for m in self.projector if isinstance(m, nn.Linear)]
        config = {"layer": self.layer, "image_size": self.image_size, "projector": "mlp",
                  "vision_dim": dims[0].in_features, "hidden": dims[0].out_features, "lm_dim": dims[-1].out_features,
                  "n_image_tokens": None if self.image_pos is None else self.image_pos.shape[0]}
        if self.view_crop is not None:
            config["view_crop"] = self.view_crop
        (path / "vlm_config.json").write_text(json.dumps(config, indent=1) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path, vision: str | Path | None = None, device: str = "cpu") -> "TinyVLM":
        """Reassemble a saved VLM: open_clip tower from ``vision`` (default: ``<path>/vision`` if present, else
        the zoo CLIP), projector weights, and the LM + tokenizer with ``AutoModelForCausalLM.from_pretrained``."""

        path = Path(path)
        config = json.loads((path / "vlm_config.json").read_text())
        vision = vision or (path / "vision" if (path / "vision").exists() else ZOO_CLIP)
        clip_model, _, _ = load_clip(f"local-dir:{vision}", device=device)
        projector = mlp_projector(config["vision_dim"], config["lm_dim"], config["hidden"])
        weights = load_file(path / "projector.safetensors")
        image_pos = weights.pop("image_pos", None)
        projector.load_state_dict(weights)
        lm = AutoModelForCausalLM.from_pretrained(path / "lm").to(device)
        tokenizer = AutoTokenizer.from_pretrained(path / "lm")
        model = cls(clip_model.visual, projector.to(device), lm, tokenizer, config["layer"], config["image_size"],
                    config.get("n_image_tokens"), config.get("view_crop"))
        if image_pos is not None:  # a video VLM's are (frames, cells, D): take the saved shape
            model.image_pos = nn.Parameter(image_pos.clone())
        return model.to(device).eval()


# ----------------------------------------------------------------------------------------------------------
# Data, training and evaluation


SIDE_PHRASES: dict[str, str] = {"x": "on the left", "y": "at the top"}


def side_questions(world, split: str, n_scenes: int, margin: float = 0.08) -> list[tuple[int, QA]]:
    """Single-object position questions, a training aid for relative position: (scene index, QA) pairs such
    as ("is the red circle on the left?", "yes"), kind ``"side"``, one per object and axis unless the object's
    centre is within ``margin`` of the middle.

    Why these: "is A left of B?" is a poor first lesson. Averaged over the questions, the answer does not depend
    on where A is alone (A on the left is "yes" for "left of" and "no" for "right of"; A first or second flips
    it again), so gradient descent sees no signal until the model has found A, B *and* the relation word at
    once, and sits at 50 % for thousands of steps. Here one object and one fixed direction per axis (never
    "on the right", which would bring the same cancellation back) make "read the named object's place" pay
    off on its own; relative questions are learned on top of it.
    """
    out = []
    for i, scene in enumerate(world.scenes(split, n_scenes)):
        for o in scene.objects:
            for axis, phrase in SIDE_PHRASES.items():
                v = o.x if axis == "x" else o.y
                if abs(v - 0.5) > margin:
                    out.append((i, QA(f"is the {o.color} {o.shape} {phrase}?", "yes" if v < 0.5 else "no", "side")))
    return out


def encode_prompts(tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of prompts to be continued: <bos> + words, no <eos>, right-padded; and the attention mask."""
    enc = tokenizer(list(prompts), padding=True, return_tensors="pt")
    ids, att = enc["input_ids"].clone(), enc["attention_mask"].clone()
    last = att.sum(1) - 1  # where each row's <eos> sits
    ids[torch.arange(len(ids)), last] = tokenizer.pad_token_id
    att[torch.arange(len(ids)), last] = 0
    return ids[:, :-1], att[:, :-1]


def encode_with_labels(tokenizer, prompts: Sequence[str], targets: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``prompt + target`` (B, T), right-padded, and labels that score only the target words
    and the closing <eos> (-100 on the prompt and padding): the model learns to answer, not to ask."""
    full = tokenizer([f"{p} {t}" for p, t in zip(prompts, targets)], padding=True, return_tensors="pt")
    ids = full["input_ids"]
    prompt_len = tokenizer(list(prompts), padding=True, return_tensors="pt")["attention_mask"].sum(1) - 1  # no <eos>
    labels = ids.masked_fill(full["attention_mask"] == 0, -100)
    labels[torch.arange(ids.shape[1])[None, :] < prompt_len[:, None]] = -100
    return ids, labels


def train_vlm(vlm: TinyVLM, features: torch.Tensor, index: torch.Tensor, input_ids: torch.Tensor,
              labels: torch.Tensor, *, steps: int, params, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
              images: torch.Tensor | None = None, desc: str = "VLM", on_step=None, report: bool = True):
    """Train ``params`` of ``vlm`` on (image ``index`` -> text) pairs for ``steps`` steps (AdamW, one-cycle).

    ``features`` are precomputed grid tokens of the frozen tower (N_images, N, C); pass CLIP-normalised
    ``images`` instead (and tower parameters in ``params``) to fine-tune the tower too. ``on_step(n)``, if
    given, is called after every step (n = steps done; e.g. to measure a curve). Returns a History.
    """

    optimizer, schedule = adamw_one_cycle(params, lr, steps)
    generator = env.generator(seed)

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        idx, ids, lab = batch
        vlm.train()
        feats = vlm.image_features(images[idx]) if images is not None else features[idx].to(vlm.device)
        return update(vlm.loss(feats, ids.to(vlm.device), lab.to(vlm.device)), optimizer, schedule)

    return train(step, infinite_batches((index, input_ids, labels), batch_size, generator), steps, desc=desc,
                 on_step=on_step, report=report)


def build_vlm(layer: str = "layer2", image_size: int = 32, n_positions: int = 48, device: str = "cpu",
              projector: str = "mlp", n_queries: int = 4, view_crop: int | None = None) -> TinyVLM:
    """A fresh LLaVA-style VLM from the zoo: the zoo CLIP tower (frozen), a new projector (``"mlp"``, ``"linear"``
    or ``"qformer"`` with ``n_queries`` output tokens, see :func:`make_projector`; a tower that sees only the middle
    ``view_crop`` pixels, :func:`center_view`), and the zoo GPT with the
    question words and ``<image>`` added to its vocabulary and a position table long enough for image + text."""

    gpt = ZOO_CLIP.parent / "tiny-gpt-shapes"
    lm = AutoModelForCausalLM.from_pretrained(gpt).to(device)
    tokenizer = AutoTokenizer.from_pretrained(gpt)
    extend_vocabulary(lm, tokenizer)
    extend_positions(lm, n_positions)
    visual = load_clip(device=device)[0].visual.eval()
    for p in visual.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        n, width = clip_grid_tokens(visual, torch.zeros(1, 3, image_size, image_size, device=device), layer).shape[1:]
    proj = make_projector(projector, width, lm.config.n_embd, n, n_queries)
    n_pos = None if projector == "qformer" else n  # a Q-Former's queries carry their own positions
    return TinyVLM(visual, proj, lm, tokenizer, layer, image_size, n_pos, view_crop).to(device)


def text_only_prompt(question: str) -> str:
    """The text-only baseline's prompt: the VQA prompt without the image."""
    return f"question: {question} answer:"


def train_text_only(lm, tokenizer, questions: Sequence[str], answers: Sequence[str], *, steps: int,
                    batch_size: int = 128, lr: float = 2e-3, seed: int = 0):
    """The blind baseline: fine-tune the LM alone on (question -> answer), no image. Returns a History."""

    ids, labels = encode_with_labels(tokenizer, [text_only_prompt(q) for q in questions], answers)
    optimizer, schedule = adamw_one_cycle(lm.parameters(), lr, steps)

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        i, lab = (t.to(lm.device) for t in batch)
        lm.train()
        logits = lm(input_ids=i, attention_mask=(i != tokenizer.pad_token_id).long()).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100)
        return update(loss, optimizer, schedule)

    return train(step, infinite_batches((ids, labels), batch_size, env.generator(seed)), steps,
                 desc="text-only")


@torch.no_grad()
def text_only_scores(lm, tokenizer, questions: Sequence[str], candidates: Sequence[str] = ANSWERS) -> torch.Tensor:
    """Log-probabilities of each candidate answer after each question, from the LM alone."""
    lm.eval()
    ids, att = encode_prompts(tokenizer, [text_only_prompt(q) for q in questions])
    logits = lm(input_ids=ids.to(lm.device), attention_mask=att.to(lm.device)).logits
    return last_token_scores(logits, att.to(lm.device), [tokenizer.convert_tokens_to_ids(c) for c in candidates]).cpu()


def evaluate_vqa(vlm: TinyVLM, world, split: str = "val", n_scenes: int = 1000) -> dict[str, float]:
    """Per-kind accuracy of ``vlm`` on the questions of scenes 0..n_scenes-1 of ``split`` (6 per scene)."""

    images, pairs = vqa_examples(world, split, n_scenes)
    vlm.eval()
    features = vlm.image_features(normalize_images(images).to(vlm.device))
    scores = vlm.answer_scores(features[[i for i, _ in pairs]], [qa.question for _, qa in pairs])
    return vqa_accuracy(scores, pairs)


def answer_words(vlm: TinyVLM, features: torch.Tensor, rows: Sequence[tuple[int, str, str]],
                 candidates: Sequence[str] = ("yes", "no"), batch_size: int = 512) -> np.ndarray:
    """The VLM's answers to (image index, question, answer) ``rows`` among ``candidates``: the chosen words."""
    scores = vlm.answer_scores(features[[i for i, *_ in rows]], [q for _, q, *_ in rows], candidates, batch_size)
    return np.array([candidates[k] for k in scores.argmax(1).tolist()])


def position_by_relation(vlm: TinyVLM, world, split: str = "val", n_scenes: int = 300) -> dict[str, float]:
    """Accuracy on every relative-position question of scenes 0..n_scenes-1, per relation word ("left",
    "right", "above", "below"): tells a model that compares along one axis only from one that compares both."""

    images, pairs = vqa_examples(world, split, n_scenes, every_question=True)
    pairs = [p for p in pairs if p[1].kind == "position"]
    vlm.eval()
    features = vlm.image_features(normalize_images(images).to(vlm.device))
    scores = vlm.answer_scores(features[[i for i, _ in pairs]], [qa.question for _, qa in pairs], ("yes", "no"))
    right = (scores.argmax(1) == torch.tensor([0 if qa.answer == "yes" else 1 for _, qa in pairs])).tolist()
    return per_kind_accuracy(right, [qa.question.split()[4] for _, qa in pairs], ["left", "right", "above", "below"])


# ----------------------------------------------------------------------------------------------------------
# Image preprocessing and grounding (Phase 5)


def anyres_tiles(images: torch.Tensor, tile: int) -> torch.Tensor:
    """AnyRes (LLaVA-NeXT) for images whose sides are multiples of ``tile``: a global view (the whole image
    resized to ``tile`` x ``tile``) followed by the full-resolution tiles in row-major order.

    (B, C, H, W) -> (B, 1 + (H/tile)*(W/tile), C, tile, tile). A wide 32x128 image at tile 32 gives the
    thumbnail plus 4 tiles: 5 views, each encoded by the same fixed-resolution vision tower.
    """
    b, c, h, w = images.shape
    assert h % tile == 0 and w % tile == 0, f"image sides {h}x{w} must be multiples of the tile {tile}"
    thumb = F.interpolate(images, size=(tile, tile), mode="area")
    tiles = images.unfold(2, tile, tile).unfold(3, tile, tile)           # (B, C, H/t, W/t, t, t)
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c, tile, tile)
    return torch.cat([thumb.unsqueeze(1), tiles], 1)


def loc_tokens(bins: int) -> list[str]:
    """Coordinate tokens for grounding: ``<loc0>`` .. ``<loc{bins-1}>`` (PaliGemma's scheme, with fewer bins)."""
    return [f"<loc{i}>" for i in range(bins)]


def box_to_text(box: Sequence[float], image_size: int, bins: int) -> str:
    """A pixel box (x0, y0, x1, y1) as ``"<box> <locA> <locB> <locC> <locD> </box>"``: each coordinate divided by
    the image size and quantised to one of ``bins`` bins."""
    q = [min(bins - 1, max(0, int(v / image_size * bins))) for v in box]
    return "<box> " + " ".join(f"<loc{i}>" for i in q) + " </box>"


def text_to_box(text: str, image_size: int, bins: int) -> tuple[float, float, float, float] | None:
    """Parse the first four ``<locK>`` tokens back to a pixel box (bin edges for x0/y0, far edges for x1/y1);
    None if fewer than four are present."""
    import re

    k = [int(m) for m in re.findall(r"<loc(\d+)>", text)][:4]
    if len(k) < 4:
        return None
    step = image_size / bins
    return (k[0] * step, k[1] * step, (k[2] + 1) * step, (k[3] + 1) * step)


BOX_TOKENS: tuple[str, str] = ("<box>", "</box>")
GROUNDING_BINS = 8  # <loc0> .. <loc7>: 4-px bins on the 32-px world images (the zoo VLM's setting)


def add_grounding_tokens(lm, tokenizer, bins: int) -> int:
    """Add ``<box>``, ``</box>`` and ``<loc0>`` .. ``<loc{bins-1}>`` to the LM's vocabulary (special tokens, so
    each is one token); returns how many were added."""
    return extend_vocabulary(lm, tokenizer, words=(), special=(IMAGE_TOKEN, *BOX_TOKENS, *loc_tokens(bins)))


def grounding_examples(world, split: str, n_scenes: int, bins: int
                       ) -> tuple[np.ndarray, list[tuple[int, str, str, tuple[int, int, int, int]]]]:
    """Images of scenes 0..n_scenes-1 and one grounding example per object: (scene index, question
    "where is the red circle?", answer ``box_to_text(box)``, pixel box). (colour, shape) is unique in a scene."""
    images, scenes = world.arrays(split, n_scenes)
    size = images.shape[1]
    rows = [(i, f"where is the {o.color} {o.shape}?", box_to_text(o.bbox(size), size, bins), o.bbox(size))
            for i, s in enumerate(scenes) for o in s.objects]
    return images, rows


def grounding_ious(vlm: TinyVLM, features: torch.Tensor, rows, bins: int) -> np.ndarray:
    """IoU of the box ``vlm`` generates for each grounding row (0 when its answer holds no box); ``features``
    are the grid tokens of the rows' images, indexed by each row's scene index."""
    prompts = [vqa_prompt(q) for _, q, _, _ in rows]
    texts = vlm.generate_text(features[[i for i, *_ in rows]], prompts, max_new_tokens=7, skip_special_tokens=False)
    boxes = [text_to_box(t, vlm.image_size, bins) for t in texts]
    return np.array([box_iou(p, b) if p is not None else 0.0 for p, (*_, b) in zip(boxes, rows)])


# ----------------------------------------------------------------------------------------------------------
# Reading rendered text at two resolutions (Phase 5's AnyRes experiment)


def text_reading_data(world, split: str, n: int, length: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered strings ``World.text_item``: float images (n, 3, 32, 128) in [0, 1] and character indices
    (n, length) into ``TEXT_ALPHABET``."""

    items = [world.text_item(split, i, length=length) for i in range(n)]
    images = torch.from_numpy(np.stack([it["image"] for it in items])).permute(0, 3, 1, 2).float() / 255
    return images, torch.tensor([[TEXT_ALPHABET.index(c) for c in it["text"]] for it in items])


def text_views(images: torch.Tensor, mode: str, tile: int = 32) -> torch.Tensor:
    """What the vision tower sees of (B, 3, H, W) images: ``"low"`` one view, the image squeezed to
    ``tile`` x ``tile`` (a fixed-resolution VLM), or ``"anyres"`` the thumbnail + full-resolution tiles
    (:func:`anyres_tiles`). Returns (B, V, 3, tile, tile)."""
    if mode == "low":
        return F.interpolate(images, size=(tile, tile), mode="area").unsqueeze(1)
    if mode == "anyres":
        return anyres_tiles(images, tile)
    raise ValueError(f"mode must be 'low' or 'anyres', not {mode!r}")


def view_tokens(visual: nn.Module, views: torch.Tensor, layer: str = "layer2") -> torch.Tensor:
    """Grid tokens of every view (B, V, 3, t, t) in [0, 1], concatenated per image: (B, V * N, C)."""

    b, v = views.shape[:2]
    tokens = clip_grid_tokens(visual, normalize_float_images(views.flatten(0, 1)), layer)
    return tokens.reshape(b, v * tokens.shape[1], tokens.shape[2])


class TextReader(nn.Module):
    """The same small reader for any number of image tokens: tokens -> width ``dim`` + a learned position each ->
    one transformer layer -> one learned query per character (a resampler) -> a class per character.
    ``forward(batch)`` reads ``batch["tokens"]`` (B, N, C) and returns logits (B, n_classes, n_chars)."""

    def __init__(self, n_tokens: int, n_chars: int, n_classes: int, vision_dim: int = 128, dim: int = 64) -> None:
        super().__init__()

        self.inp = nn.Linear(vision_dim, dim)
        self.pos = nn.Parameter(torch.randn(n_tokens, dim))  # unit scale: tokens are told apart from step 0
        self.encoder = transformer_encoder(dim, 1)
        self.read = Resampler(dim, n_chars)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.encoder(self.inp(batch["tokens"]) + self.pos)
        return self.head(self.read(x)).transpose(1, 2)


@torch.no_grad()
def target_token_logprobs(vlm: TinyVLM, features: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                          batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced scores of each labelled token of ``input_ids`` (from :func:`encode_with_labels`) given its
    image ``features``: its log-probability, whether it is the model's most likely next token, and the labels
    (-100 where nothing is scored), each (N, T') with T' the positions after the image tokens are spliced in (0 and
    False where nothing is scored). A whole answer is what greedy decoding writes exactly when every one of its
    tokens is the most likely one."""
    vlm.eval()
    logprobs, greedy, targets = [], [], []
    for i in range(0, len(input_ids), batch_size):
        ids, lab = input_ids[i:i + batch_size].to(vlm.device), labels[i:i + batch_size].to(vlm.device)
        logits = vlm.forward(features[i:i + batch_size].to(vlm.device), ids, (ids != vlm.tokenizer.pad_token_id).long())
        lab = splice_labels(lab, ids, vlm.n_image_out(logits, ids), vlm.image_token_id)[:, 1:]
        lp = logits[:, :-1].log_softmax(-1)
        mask = lab != -100
        logprobs.append(lp.gather(2, lab.clamp(min=0)[..., None])[..., 0].masked_fill(~mask, 0).cpu())
        greedy.append(((lp.argmax(-1) == lab) & mask).cpu())
        targets.append(lab.cpu())
    return torch.cat(logprobs), torch.cat(greedy), torch.cat(targets)


def caption_nll(vlm: TinyVLM, features: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                batch_size: int = 512) -> torch.Tensor:
    """Each row's mean next-token loss (nats per labelled token) of ``input_ids`` given its image ``features``:
    how surprised the model is by a caption. Lower with the right image than with a wrong one = alignment."""
    logprobs, _, targets = target_token_logprobs(vlm, features, input_ids, labels, batch_size)
    return -logprobs.sum(1) / (targets != -100).sum(1).clamp(min=1)


def grounding_token_scores(vlm: TinyVLM, world, split: str = "val", n_scenes: int = 300,
                           bins: int = GROUNDING_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """Ask ``vlm`` "where is the <colour> <shape>?" about every object of scenes 0..n_scenes-1 of ``split`` and
    score the right answer's four ``<locK>`` tokens teacher-forced (:func:`target_token_logprobs`): their
    log-probabilities and whether each is the model's most likely token, both (n_objects, 4). The box is what greedy
    decoding writes exactly when a row's four are all True (``<box>`` and ``</box>`` aside)."""
    images, rows = grounding_examples(world, split, n_scenes, bins)
    vlm.eval()
    with torch.no_grad():
        features = vlm.image_features(normalize_images(images).to(vlm.device))
    ids, labels = encode_with_labels(vlm.tokenizer, [vqa_prompt(q) for _, q, _, _ in rows], [a for _, _, a, _ in rows])
    logprobs, greedy, targets = target_token_logprobs(vlm, features[[i for i, *_ in rows]], ids, labels)
    locs = torch.isin(targets, torch.tensor(vlm.tokenizer.convert_tokens_to_ids(loc_tokens(bins))))
    return logprobs[locs].view(len(rows), 4), greedy[locs].view(len(rows), 4)


def evaluate_grounding(vlm: TinyVLM, world, split: str = "val", n_scenes: int = 200,
                       bins: int = GROUNDING_BINS) -> dict[str, float]:
    """Ask ``vlm`` "where is the <colour> <shape>?" about every object of scenes 0..n_scenes-1 of ``split``:
    mean IoU of its ``<box>`` answers, the share above IoU 0.5, and the mean IoU of the best blind answer
    (the average box of those objects) for comparison."""

    images, rows = grounding_examples(world, split, n_scenes, bins)
    vlm.eval()
    ious = grounding_ious(vlm, vlm.image_features(normalize_images(images).to(vlm.device)), rows, bins)
    mean_box = np.mean([box for *_, box in rows], 0)
    blind = float(np.mean([box_iou(mean_box, box) for *_, box in rows]))
    return {"mean_iou": float(ious.mean()), "iou_above_0.5": float((ious > 0.5).mean()), "average_box_iou": blind,
            "n_boxes": len(rows)}
