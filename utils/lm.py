"""A tiny GPT-2-style caption language model, trained from scratch in seconds. Introduced in Phase 0.

The Phase 0 notebook trains one live; ``tools/make_models.py`` trains the model-zoo copy
(``data/models/tiny-gpt-shapes``) with the same functions, and later phases reload it with
``AutoModelForCausalLM.from_pretrained`` — the same call that loads ``gpt2`` from the hub.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import env
from .text import lm_loss as reference_lm_loss
from .train import History, adamw_one_cycle, infinite_batches, train, update


def tiny_gpt(vocab_size: int, n_positions: int = 32, n_embd: int = 64, n_layer: int = 2, n_head: int = 4,
             pad_token_id: int = 0, bos_token_id: int = 1, eos_token_id: int = 2):
    """A freshly initialised ``transformers`` GPT-2 (about 0.1 M parameters with the defaults)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    return GPT2LMHeadModel(config)


def encode_captions(tokenizer, captions: list[str], max_length: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, T) padded to the longest caption, and labels with -100 on padding."""
    enc = tokenizer(captions, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return enc["input_ids"], labels


def train_caption_lm(model, input_ids: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 64,
                     lr: float = 3e-3, loss_fn: Callable = reference_lm_loss, seed: int = 0) -> History:
    """Train ``model`` on next-token prediction with ``loss_fn(logits, labels)``; returns the loss history."""
    generator = env.generator(seed)
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps)

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        ids, lab = (t.to(model.device) for t in batch)
        model.train()
        return update(loss_fn(model(input_ids=ids, attention_mask=(lab != -100).long()).logits, lab),
                      optimizer, schedule)

    return train(step, infinite_batches((input_ids, labels), batch_size, generator), steps, desc="caption LM")


@torch.no_grad()
def evaluate_lm(model, input_ids: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Validation loss, perplexity and next-token accuracy (on non-padding targets)."""
    model.eval()
    input_ids, labels = input_ids.to(model.device), labels.to(model.device)
    logits = model(input_ids=input_ids, attention_mask=(labels != -100).long()).logits
    loss = reference_lm_loss(logits, labels).item()
    target = labels[:, 1:]
    keep = target != -100
    acc = (logits[:, :-1].argmax(-1)[keep] == target[keep]).float().mean().item()
    return {"loss": loss, "perplexity": math.exp(loss), "next_token_accuracy": acc}


@torch.no_grad()
def sample_captions(model, tokenizer, n: int = 5, temperature: float = 0.8, seed: int = 0,
                    prompt: str | None = None) -> list[str]:
    """Sample ``n`` captions (optionally continuing ``prompt``) with ``generate``; deterministic per seed."""
    model.eval()
    torch.manual_seed(env.seed(seed))
    if prompt:
        ids = tokenizer([prompt], return_tensors="pt")["input_ids"][:, :-1]  # drop <eos>
    else:
        ids = torch.tensor([[tokenizer.bos_token_id]])
    ids = ids.repeat(n, 1).to(model.device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature, top_k=0,
                         max_new_tokens=model.config.n_positions - ids.shape[1],
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]
