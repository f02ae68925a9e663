"""Visual question answering on the shapes world: the answer vocabulary, (image, question) examples, scoring
candidate answers and accuracy per question kind. Introduced in Phase 4, shared by Phase 4's fusion patterns
(``utils.fusion``) and Phase 5's VLM (``utils.vlm``): one home for what both measure.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .metrics import per_kind_accuracy
from .world import COLORS, NUMBER_WORDS, QA, SHAPES, SIZES, questions

ANSWERS: tuple[str, ...] = COLORS + SHAPES + SIZES + NUMBER_WORDS[:5] + ("yes", "no")


def answer_word(qa: QA) -> str:
    """The answer as one vocabulary word: counts become number words ("2" -> "two"), the rest stay."""
    return NUMBER_WORDS[int(qa.answer)] if qa.kind == "count" else qa.answer


def vqa_examples(world, split: str, n_scenes: int, every_question: bool = False, seed: int = 0
                 ) -> tuple[np.ndarray, list[tuple[int, QA]]]:
    """Images of scenes 0..n_scenes-1 and (scene index, QA) pairs: each item's own questions, or with
    ``every_question`` every question the world can ask about the scene (many more, for training)."""
    images, scenes = world.arrays(split, n_scenes)
    if every_question:
        pairs = [(i, qa) for i, s in enumerate(scenes)
                 for qa in questions(s, np.random.default_rng([seed, i]), None, world.holdout_for(split))]
    else:
        pairs = [(i, qa) for i in range(n_scenes) for qa in world.item(split, i)["qa"]]
    return images, pairs


def last_token_scores(logits: torch.Tensor, attention_mask: torch.Tensor, candidate_ids: Sequence[int]) -> torch.Tensor:
    """Log-probabilities of the candidate tokens at each row's last real position (right-padded rows)."""
    last = attention_mask.sum(1) - 1
    return logits[torch.arange(len(last), device=logits.device), last].log_softmax(-1)[:, list(candidate_ids)]


def correct_answers(scores: torch.Tensor, pairs: Sequence[tuple[int, QA]], candidates: Sequence[str] = ANSWERS
                    ) -> np.ndarray:
    """Per question, whether the best-scoring candidate answer is the right one (a boolean array): the per-example
    outcomes that accuracy averages and a bootstrap resamples."""
    pred = [candidates[int(i)] for i in scores.argmax(1)]
    return np.array([p == answer_word(qa) for p, (_, qa) in zip(pred, pairs)], dtype=bool)


def vqa_accuracy(scores: torch.Tensor, pairs: Sequence[tuple[int, QA]], candidates: Sequence[str] = ANSWERS
                 ) -> dict[str, float]:
    """Accuracy per question kind (and "all") of the best-scoring candidate answer."""
    return per_kind_accuracy(correct_answers(scores, pairs, candidates).tolist(), [qa.kind for _, qa in pairs])
