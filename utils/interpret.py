"""Interpretability (Phase 10): where in the zoo VLM an answer is formed, and which image tokens carry it.

Two of the field's basic tools, on the zoo VLM:

* the **logit lens** (nostalgebraist, 2020): decode the hidden state of the answer position after every layer with
  the model's own final norm and output layer, as if the model stopped there;
* **activation patching** (causal tracing, Meng et al., 2022): run the model on an image, but with some of its image
  tokens taken from another image that differs in one thing (here the colour of one object), and see whether the
  answer follows the swapped tokens.

    pairs = recoloured_pairs(world, "val", 400)                 # scene A, scene B = A with one object recoloured
    states = answer_states(vlm, features_a, questions)          # (layers + 1, B, D) at the answer position
    colour_logprobs = logit_lens(vlm, states, COLORS)
    patched = features_a.clone(); patched[:, cells] = features_b[:, cells]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .vlm import TinyVLM, encode_prompts, vqa_prompt
from .world import COLORS, Obj, Scene, render


@dataclass
class RecolouredPairs:
    """Scene pairs that differ in the colour of one object: images ``a`` and ``b`` uint8 (n, S, S, 3), the question
    about that object ("what color is the circle?", its shape unique in the scene), both answers, and the object."""

    a: np.ndarray
    b: np.ndarray
    questions: list[str]
    answers_a: list[str]
    answers_b: list[str]
    objects: list[Obj]


def recoloured_pairs(world, split: str, n_scenes: int, seed: int = 0) -> RecolouredPairs:
    """For each of scenes 0..n_scenes-1 of ``split`` whose first object's shape is unique in the scene: the scene, and
    the same scene with that object in another colour (one no object of that shape has in it), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    a, b, questions, answers_a, answers_b, objects = [], [], [], [], [], []
    for scene in world.scenes(split, n_scenes):
        obj = scene.objects[0]
        if sum(o.shape == obj.shape for o in scene.objects) > 1:
            continue
        colour = [c for c in COLORS if c != obj.color][int(rng.integers(len(COLORS) - 1))]
        other = Scene((replace(obj, color=colour),) + scene.objects[1:])
        a.append(render(scene, world.image_size))
        b.append(render(other, world.image_size))
        questions.append(f"what color is the {obj.shape}?")
        answers_a.append(obj.color)
        answers_b.append(colour)
        objects.append(obj)
    return RecolouredPairs(np.stack(a), np.stack(b), questions, answers_a, answers_b, objects)


def object_cells(obj: Obj, image_size: int = 32, grid: int = 4) -> list[int]:
    """The image tokens (cells of the ``grid`` × ``grid`` token grid, row by row) that the object's box overlaps."""
    x0, y0, x1, y1 = obj.bbox(image_size)
    side = image_size / grid
    return [r * grid + c for r in range(grid) for c in range(grid)
            if c * side < x1 and (c + 1) * side > x0 and r * side < y1 and (r + 1) * side > y0]


@torch.no_grad()
def answer_states(vlm: TinyVLM, features: torch.Tensor, questions: Sequence[str]) -> torch.Tensor:
    """The LM's hidden state at the answer position (the last prompt token) after the embedding and after every
    layer: (layers + 1, B, D), as ``output_hidden_states`` returns them (the last one already through the final
    norm)."""
    ids, att = encode_prompts(vlm.tokenizer, [vqa_prompt(q) for q in questions])
    embeds = vlm.embed(features.to(vlm.device), ids.to(vlm.device))
    out = vlm.lm(inputs_embeds=embeds, attention_mask=vlm.spliced_mask(embeds, ids, att).long(),
                 output_hidden_states=True)
    last = att.sum(1) - 1 + vlm.n_image_out(embeds, ids) - 1
    return torch.stack([h[torch.arange(len(ids)), last] for h in out.hidden_states])


@torch.no_grad()
def logit_lens(vlm: TinyVLM, states: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
    """Log-probabilities (layers + 1, B, len(words)) of ``words`` read off each layer's state with the model's own
    final norm and output layer (the last state is already normed, as GPT-2 returns it), normalised over the whole
    vocabulary."""
    ln_f, head = vlm.lm.transformer.ln_f, vlm.lm.lm_head
    ids = vlm.tokenizer.convert_tokens_to_ids(list(words))
    out = [head(ln_f(s) if i < len(states) - 1 else s).log_softmax(-1)[:, ids] for i, s in enumerate(states)]
    return torch.stack(out)


def patched_features(features_a: torch.Tensor, features_b: torch.Tensor, cells: Sequence[Sequence[int]]
                     ) -> torch.Tensor:
    """A copy of ``features_a`` (B, N, C) in which row i's tokens ``cells[i]`` come from ``features_b``."""
    out = features_a.clone()
    for i, c in enumerate(cells):
        out[i, list(c)] = features_b[i, list(c)]
    return out
