"""A language model that hears: the zoo VLM asked its question by voice (Qwen2-Audio's and SLAM-ASR's recipe).
Introduced in Phase 6.

The zoo recogniser's encoder (frozen) turns a spoken question into 50 vectors a second; :func:`stack_frames` joins
each run of ``k`` consecutive vectors into one (Exercise 6.7), a small projector maps them to the language model's
width, and they take the place of the typed question in the zoo VLM's prompt — ``question: <audio> <image>
answer:`` — while the VLM itself (tower, image projector, language model) stays frozen. Only the audio projector
learns, on spoken training questions asked about many scenes each (``utils.world.answer`` says what the answer is
for any scene). Compared with the typed question, with a cascade (transcribe, then type), and with no question.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import env
from .train import History, adamw_one_cycle, train
from .vlm import TinyVLM, mlp_projector
from .vqa import ANSWERS, answer_word
from .world import World, answer


def stack_frames(states: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, D) encoder states -> (B, T // k, k·D): each output vector is ``k`` consecutive frames laid end to end,
    in time order (frames left over at the end are dropped). Cuts the number of audio tokens ``k`` times without
    losing any number (Ultravox, SLAM-ASR). The reference of Exercise 6.7."""
    b, t, d = states.shape
    return states[:, : t // k * k].reshape(b, t // k, k * d)


@torch.no_grad()
def encoder_states(whisper, input_features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The (frozen) recogniser encoder's output for feature windows: (N, frames, d_model)."""
    whisper.eval()
    enc = whisper.get_encoder()
    return torch.cat([enc(input_features[i:i + batch_size]).last_hidden_state
                      for i in range(0, len(input_features), batch_size)])


class SpokenVLM(nn.Module):
    """A frozen :class:`~utils.vlm.TinyVLM` that takes its question as audio: stacked encoder states → an MLP
    projector → spliced between ``question`` and the image tokens. Only ``projector`` (and ``audio_pos``, a learned
    position vector per audio token) train."""

    def __init__(self, vlm: TinyVLM, audio_dim: int, stack: int, n_audio_tokens: int, hidden: int = 256) -> None:
        super().__init__()
        self.vlm, self.stack = vlm, stack
        lm_dim = vlm.lm.config.n_embd
        self.projector = mlp_projector(audio_dim * stack, lm_dim, hidden)
        self.audio_pos = nn.Parameter(torch.zeros(n_audio_tokens, lm_dim))
        for p in vlm.parameters():
            p.requires_grad_(False)
        tok = vlm.tokenizer
        self.prefix = torch.tensor([tok.bos_token_id, tok.convert_tokens_to_ids("question")])
        self.suffix = torch.tensor([tok.convert_tokens_to_ids("answer")])
        self.answer_ids = [tok.convert_tokens_to_ids(a) for a in ANSWERS]

    def audio_tokens(self, states: torch.Tensor) -> torch.Tensor:
        """Encoder states (B, T, D) → audio tokens in the language model's space (B, T // stack, lm_dim)."""
        return self.projector(stack_frames(states, self.stack)) + self.audio_pos

    def answer_logits(self, image_features: torch.Tensor, question: torch.Tensor | None) -> torch.Tensor:
        """Next-token logits after ``question: <audio> <image> answer`` (B, vocabulary); ``question`` is a batch of
        embedded question tokens (B, K, lm_dim) — audio tokens, or typed words — or None for no question."""
        vlm = self.vlm
        embed = vlm.lm.get_input_embeddings()
        b = len(image_features)
        image = vlm.projector(image_features)
        if vlm.image_pos is not None:
            image = image + vlm.image_pos
        parts = [embed(self.prefix.to(image.device)).expand(b, -1, -1)]
        if question is not None:
            parts.append(question)
        parts += [image, embed(self.suffix.to(image.device)).expand(b, -1, -1)]
        return vlm.lm(inputs_embeds=torch.cat(parts, 1)).logits[:, -1]

    def loss(self, image_features: torch.Tensor, states: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the one-word answer (token ids ``answers``) after the spoken question."""
        return F.cross_entropy(self.answer_logits(image_features, self.audio_tokens(states)), answers)

    @torch.no_grad()
    def answer_scores(self, image_features: torch.Tensor, states: torch.Tensor | None, batch_size: int = 256
                      ) -> torch.Tensor:
        """Log-probabilities of the answer words (:data:`utils.vqa.ANSWERS`) after a spoken question (``states``),
        or after no question at all (``states=None``): (B, len(ANSWERS))."""
        self.eval()
        out = []
        for i in range(0, len(image_features), batch_size):
            q = None if states is None else self.audio_tokens(states[i:i + batch_size])
            out.append(self.answer_logits(image_features[i:i + batch_size], q).log_softmax(-1)[:, self.answer_ids])
        return torch.cat(out)


def spoken_pairs(world: World, split: str, questions: Sequence[str], n_scenes: int, per_question: int,
                 seed: int = 0) -> list[tuple[int, int, str]]:
    """(question number, scene index, answer word) triples: each question asked about up to ``per_question`` of the
    first ``n_scenes`` scenes of ``split`` to which it applies (drawn with a generator seeded by ``seed``), the
    answer computed from each scene graph by :func:`utils.world.answer`."""
    rng = np.random.default_rng(seed)
    scenes = world.scenes(split, n_scenes)
    out = []
    for qi, q in enumerate(questions):
        fits = [(si, a) for si, s in enumerate(scenes) if (a := answer(s, q)) is not None]
        for j in rng.permutation(len(fits))[:per_question]:
            si, qa = fits[int(j)]
            out.append((qi, si, answer_word(qa)))
    return out


def train_spoken(model: SpokenVLM, image_features: torch.Tensor, states: torch.Tensor,
                 pairs: Sequence[tuple[int, int, str]], *, steps: int, batch_size: int = 64, lr: float = 2e-3,
                 seed: int = 0, desc: str = "audio projector") -> History:
    """Train the audio projector on (spoken question, scene, answer) ``pairs``: ``states`` are the questions'
    encoder states, ``image_features`` the scenes' grid tokens. AdamW, one-cycle; the VLM stays frozen."""
    params = list(model.projector.parameters()) + [model.audio_pos]
    optimizer, schedule = adamw_one_cycle(params, lr, steps)
    g = env.generator(seed)
    q_idx = torch.tensor([p[0] for p in pairs])
    s_idx = torch.tensor([p[1] for p in pairs])
    targets = torch.tensor([model.vlm.tokenizer.convert_tokens_to_ids(p[2]) for p in pairs])
    device = model.vlm.device

    def batches():
        while True:
            pick = torch.randint(0, len(pairs), (batch_size,), generator=g)
            yield states[q_idx[pick]].to(device), image_features[s_idx[pick]].to(device), targets[pick].to(device)

    def step(batch) -> float:
        model.train()
        model.vlm.eval()  # frozen, dropout off
        s, f, y = batch
        loss = model.loss(f, s, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.item()

    return train(step, batches(), steps, desc=desc)


def typed_scores(vlm: TinyVLM, image_features: torch.Tensor, questions: Sequence[str]) -> torch.Tensor:
    """The zoo VLM's answer log-probabilities for typed questions (its own prompt): (B, len(ANSWERS))."""
    return vlm.answer_scores(image_features, list(questions))


def constant_scores(answers: Sequence[str], n: int) -> tuple[str, torch.Tensor]:
    """The question-blind baseline: the most common of ``answers`` and scores (n, len(ANSWERS)) that always give it
    — the best any model that ignores the question and the image can do on these rows."""
    from collections import Counter

    best = Counter(answers).most_common(1)[0][0]
    scores = torch.zeros(n, len(ANSWERS))
    scores[:, ANSWERS.index(best)] = 1.0
    return best, scores


def accuracy_by_kind(scores: torch.Tensor, answers: Sequence[str], kinds: Sequence[str]) -> dict[str, float]:
    """Accuracy of the best-scoring answer word per question kind and over all (``utils.metrics.per_kind_accuracy``)."""
    from .metrics import per_kind_accuracy
    from .world import QA_KINDS

    pred = [ANSWERS[int(i)] for i in scores.argmax(1)]
    return per_kind_accuracy([p == a for p, a in zip(pred, answers)], kinds, order=QA_KINDS)

