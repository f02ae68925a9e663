"""Multimodal preference alignment: hallucination probes, preference pairs from the scene graph, and DPO (Phase 8).

A VLM that answers "yes" to "is there a green triangle?" when there is none hallucinates. POPE (Li et al., 2023)
measures it with yes/no existence questions, half about objects present and half about objects absent, and reports
accuracy, precision, recall, F1 and the *yes-ratio*: a model that says yes to more than half is biased toward yes.
One cause is instruction data written from captions: a caption names only what is there, so every existence question
built from it has the answer "yes".

Direct Preference Optimization (Rafailov et al., 2023) fixes behaviour from pairs of answers to the same input, one
preferred (chosen) and one not (rejected), without a reward model: with π the policy being trained, π_ref a frozen
copy of where it started and β > 0,

    loss = −log σ(β · [(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])

— the paper's equation 7, which is also trl's ``DPOTrainer`` default (``loss_type="sigmoid"``, ``beta=0.1``); trl
computes it inside the trainer and exposes no function for it, so the course's reference is the formula.
The preference pairs here come from the scene graph: the grounded answer is chosen, the hallucinated one rejected.

* :func:`existence_probe` — POPE-style questions about present and absent objects;
* :func:`yes_no_metrics` — accuracy, precision, recall, F1, yes-ratio and hallucination rate of yes/no answers
  (its home is :mod:`utils.metrics`);
* :func:`caption_instructions` — instruction data written from captions (only what a caption names: all "yes");
* :func:`preference_pairs` — (question, chosen, rejected) from the scene graph;
* :func:`next_word_logprobs`, :func:`answer_logps` — log π(answer | image, question) with gradients;
* :func:`dpo_loss` — the loss above (reference of the learner's exercise);
* :func:`train_dpo` — a short DPO run: policy trained, reference frozen.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import env
from .evaluation import existence_question, pope_probe
from .metrics import yes_no_metrics  # noqa: F401  (its home is utils.metrics; Phase 8's notebook reads it here)
from .train import adamw_one_cycle, infinite_batches, train, update
from .vlm import answer_words  # noqa: F401  (its home is utils.vlm; Phase 8's notebook reads it here)
from .world.scene import Scene
from .world.vocabulary import NUMBER_WORDS


def existence_probe(scenes: Sequence[Scene], per_scene: int = 2, seed: int = 0,
                    holdout: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[int, str, str]]:
    """POPE-style probe: for each scene, ``per_scene`` questions about objects present (answer "yes") and as many
    about (colour, shape) classes absent from it (answer "no"), drawn at random — POPE's "random" split
    (:func:`utils.evaluation.pope_probe`, which also builds the popular and adversarial splits of Phase 9).
    Returns (scene index, question, answer) rows."""
    return pope_probe(scenes, "random", per_scene, seed, holdout)


def caption_instructions(scenes: Sequence[Scene], seed: int = 0) -> list[tuple[int, str, str]]:
    """Instruction data written from captions, as a pipeline without the scene graph would write it: for each scene,
    questions about what its caption names — "is there a <it>?" (always "yes": a caption never names what is not
    there), "what size is the <it>?", "how many objects are there?". Returns (scene index, question, answer) rows."""
    rng = np.random.default_rng([seed, 92])
    rows = []
    for i, scene in enumerate(scenes):
        rows.append((i, "how many objects are there?", NUMBER_WORDS[len(scene)]))
        for k in rng.permutation(len(scene)):
            o = scene.objects[k]
            rows.append((i, existence_question(o.color, o.shape), "yes"))
            rows.append((i, f"what size is the {o.color} {o.shape}?", o.size))
    return rows


def preference_pairs(scenes: Sequence[Scene], per_scene: int = 2, seed: int = 0,
                     holdout: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[int, str, str, str]]:
    """Preference pairs from the scene graph: (scene index, question, chosen, rejected). For existence questions
    about absent objects the grounded "no" is chosen over the hallucinated "yes"; about present objects "yes" over
    "no" (without them DPO would learn "always no")."""
    return [(i, q, a, "no" if a == "yes" else "yes")
            for i, q, a in existence_probe(scenes, per_scene, seed + 1, holdout)]


def next_word_logprobs(vlm, features: torch.Tensor, questions: Sequence[str]) -> torch.Tensor:
    """log π(word | image, question) over the whole vocabulary (B, V), with gradients when enabled: the
    log-softmax at the position after each prompt (``vqa_prompt``), where a one-word answer goes."""
    from .vlm import vqa_prompt

    return vlm.next_word_logprobs(features, [vqa_prompt(q) for q in questions])


def answer_logps(vlm, features: torch.Tensor, questions: Sequence[str], answers: Sequence[str],
                 logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """log π(answer | image, question) for one-word answers (B,), with gradients when enabled; pass ``logprobs``
    from :func:`next_word_logprobs` to score several answers with one forward pass."""
    logprobs = next_word_logprobs(vlm, features, questions) if logprobs is None else logprobs
    token = torch.tensor(vlm.tokenizer.convert_tokens_to_ids(list(answers)), device=logprobs.device)
    return logprobs[torch.arange(len(token), device=logprobs.device), token]


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """The DPO loss, averaged over the batch: −log σ(β · (chosen log-ratio − rejected log-ratio)), each log-ratio
    being log π − log π_ref of that answer (Rafailov et al., 2023, eq. 7; trl's ``loss_type="sigmoid"``)."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def train_dpo(vlm, features: torch.Tensor, pairs: Sequence[tuple[int, str, str, str]], *, steps: int,
              beta: float = 0.1, batch_size: int = 64, lr: float = 1e-4, seed: int = 0, params=None,
              loss_fn=None, desc: str = "DPO"):
    """Train ``vlm`` (the policy; ``params``, default its language model and projector) with DPO on ``pairs``
    (image index, question, chosen, rejected); the reference is a frozen copy taken before the first step, and
    its log-probabilities are computed once. ``loss_fn`` (default :func:`dpo_loss`) takes the four log-probability
    batches and β. Returns (History, reference model)."""
    reference = copy.deepcopy(vlm).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    index = torch.tensor([i for i, *_ in pairs])
    questions = [q for _, q, _, _ in pairs]
    chosen, rejected = [c for *_, c, _ in pairs], [r for *_, r in pairs]
    with torch.no_grad():                    # one forward pass of the reference per chunk scores both answers
        chunks = [(k, next_word_logprobs(reference, features[index[k:k + 512]], questions[k:k + 512]))
                  for k in range(0, len(pairs), 512)]
        ref_c = torch.cat([answer_logps(reference, None, None, chosen[k:k + 512], lp) for k, lp in chunks])
        ref_r = torch.cat([answer_logps(reference, None, None, rejected[k:k + 512], lp) for k, lp in chunks])
    params = list(params) if params is not None else list(vlm.lm.parameters()) + list(vlm.projector.parameters())
    optimizer, schedule = adamw_one_cycle(params, lr, steps)
    generator = env.generator(seed)          # COURSE_SEED moves it, as every training seed of the course
    rows = torch.arange(len(pairs))

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        (k,) = batch
        vlm.train()
        qs = [questions[j] for j in k.tolist()]
        f = features[index[k]]
        logprobs = next_word_logprobs(vlm, f, qs)
        pc = answer_logps(vlm, f, qs, [chosen[j] for j in k.tolist()], logprobs)
        pr = answer_logps(vlm, f, qs, [rejected[j] for j in k.tolist()], logprobs)
        return update((loss_fn or dpo_loss)(pc, pr, ref_c[k], ref_r[k], beta), optimizer, schedule)

    history = train(step, infinite_batches((rows,), batch_size, generator), steps, desc=desc)
    vlm.eval()
    return history, reference
