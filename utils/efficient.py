"""Efficient inference (Phase 10): dropping image tokens inside a VLM's language model, as FastV does.

A VLM spends most of its sequence on image tokens (LLaVA: 576 of ~650), yet after the first layers the answer
attends to few of them. FastV (Chen et al., 2024) ranks the image tokens by the attention the last text token pays
them at layer K-1, averaged over heads, keeps the top k and drops the rest for layers K onwards. This module runs the
zoo VLM's GPT-2 one block at a time so that the dropped tokens are really gone (FastV's own code masks them, which
saves nothing; its ``fast_v_inplace`` mode drops them too): the layers after K see a shorter sequence.

    scores = pruned_answer_scores(zoo_vlm, features, questions, keep=4, layer=1)          # FastV, k = 4 of 16
    scores = pruned_answer_scores(zoo_vlm, features, questions, keep=4, layer=1, rank="random")

:func:`fastv_keep` is the reference of Exercise 10.4. Attention weights need the eager attention implementation: under
``sdpa`` transformers' GPT-2 returns no attention weights at all (an empty tuple, without a warning), so
:func:`pruned_answer_scores` switches the model to ``eager`` itself.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .vlm import TinyVLM, encode_prompts, vqa_prompt
from .vqa import ANSWERS


def fastv_keep(attention: torch.Tensor, keep: int) -> torch.Tensor:
    """Which image tokens to keep: ``attention`` (B, H, N) is the attention each head pays from the last text token
    to the N image tokens; average it over the heads and return the indices of the ``keep`` most attended tokens of
    each row, in increasing order (the order they had in the sequence), int64 (B, keep)."""
    scores = attention.mean(1)
    return scores.topk(keep, dim=1).indices.sort(dim=1).values


def _causal_padding_mask(att: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive 4D mask (B, 1, T, T) that eager attention expects: 0 where a query may look (earlier or same
    position, not padding), the dtype's minimum elsewhere."""
    T = att.shape[1]
    allowed = torch.ones(T, T, dtype=torch.bool, device=att.device).tril()[None] & att[:, None, :].bool()
    return torch.zeros(allowed.shape, dtype=dtype, device=att.device).masked_fill(~allowed, torch.finfo(dtype).min)[
        :, None]


@torch.no_grad()
def pruned_answer_scores(vlm: TinyVLM, features: torch.Tensor, questions: Sequence[str], keep: int, layer: int = 1,
                         rank: str = "attention", keep_fn=fastv_keep, candidates: Sequence[str] = ANSWERS,
                         generator: torch.Generator | None = None, timings: list | None = None) -> torch.Tensor:
    """Log-probabilities (B, len(candidates)) of each one-word answer, with only ``keep`` of the N image tokens left
    from block ``layer`` on. ``rank``: "attention" (FastV: ``keep_fn`` on block ``layer - 1``'s attention from the
    last token), or "random" (a random ``keep`` of them, FastV's K = 0 baseline). ``keep = N`` runs the full model
    block by block (the same numbers as ``vlm.answer_scores``). ``timings``, if given, gets the seconds spent from
    block ``layer`` on (the part of the model that runs on the shorter sequence) appended."""
    lm = vlm.lm
    assert 1 <= layer < lm.config.n_layer or (layer == 0 and rank == "random"), (
        f"layer must be 1..{lm.config.n_layer - 1} (the attention that ranks comes from the block before it); "
        "layer 0 only with rank='random'")
    if lm.config._attn_implementation != "eager":
        lm.set_attn_implementation("eager")
    ids, att = encode_prompts(vlm.tokenizer, [vqa_prompt(q) for q in questions])
    ids, att = ids.to(vlm.device), att.to(vlm.device)
    embeds = vlm.embed(features.to(vlm.device), ids)
    B, N = len(ids), vlm.n_image_out(embeds, ids)
    start = (ids == vlm.image_token_id).float().argmax(1)                        # where each row's image begins
    att = vlm.spliced_mask(embeds, ids, att).long()
    T = embeds.shape[1]
    hidden = embeds + lm.transformer.wpe(torch.arange(T, device=ids.device))[None]
    last = att.sum(1) - 1
    captured = {}
    def capture(module, args, output) -> None:
        assert output[1] is not None and output[1].dim() == 4, "no attention weights: is the attention eager?"
        captured["weights"] = output[1]

    hook = lm.transformer.h[max(layer - 1, 0)].attn.register_forward_hook(capture)
    try:
        for i, block in enumerate(lm.transformer.h):
            if i == layer:
                after_cut = time.perf_counter()
            if i == layer and keep < N:
                if rank == "attention":
                    rows = captured["weights"][torch.arange(B), :, last]             # (B, H, T): the last token's
                    image_cols = start[:, None] + torch.arange(N, device=ids.device)[None]
                    kept = keep_fn(rows.gather(2, image_cols[:, None].expand(-1, rows.shape[1], -1)), keep)
                else:
                    kept = torch.stack([torch.randperm(N, generator=generator)[:keep] for _ in range(B)]).sort(1).values
                kept = torch.as_tensor(kept, device=ids.device).long()
                positions = torch.arange(T, device=ids.device)[None].expand(B, -1)
                is_image = (positions >= start[:, None]) & (positions < start[:, None] + N)
                keep_mask = ~is_image
                keep_mask[torch.arange(B)[:, None], start[:, None] + kept] = True
                order = torch.sort((~keep_mask).long() * T + positions, dim=1).indices[:, : T - N + keep]
                order = order.sort(1).values                                         # kept positions, in order
                hidden = hidden.gather(1, order[..., None].expand(-1, -1, hidden.shape[-1]))
                att = att.gather(1, order)
                last = last - (N - keep)
            hidden = block(hidden, attention_mask=_causal_padding_mask(att, hidden.dtype))
            assert isinstance(hidden, torch.Tensor), "a GPT-2 block of this transformers version returns a tuple"
    finally:
        hook.remove()
    cand = [vlm.tokenizer.convert_tokens_to_ids(c) for c in candidates]
    scores = lm.lm_head(lm.transformer.ln_f(hidden[torch.arange(B), last])).log_softmax(-1)[:, cand]
    if timings is not None:
        timings.append(time.perf_counter() - after_cut)
    return scores
