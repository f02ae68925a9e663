"""Tests for utils/compute.py: the 6·N·D rule (+ attention) against PyTorch's FlopCounterMode on a real training step of
the zoo GPT-2, the counter's blind spot for fused attention on CPU, and gradient accumulation against one big batch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from utils import compute
from utils.vision import small_cnn
from utils.vlm import ZOO_VLM

ZOO_GPT = ZOO_VLM.parent / "tiny-gpt-shapes"


def gpt_step_flops(implementation: str, batch: int = 8, context: int = 24) -> tuple[int, object]:
    model = AutoModelForCausalLM.from_pretrained(ZOO_GPT, attn_implementation=implementation)
    ids = torch.randint(model.config.vocab_size, (batch, context), generator=torch.Generator().manual_seed(0))
    total, _ = compute.count_flops(
        lambda: model(input_ids=ids, labels=ids, attention_mask=torch.ones_like(ids)).loss.backward())
    return total, model


def test_the_rule_is_exact_for_a_gpt2_training_step_with_eager_attention():
    total, model = gpt_step_flops("eager")
    c = model.config
    n = compute.matmul_parameters(model)
    assert n == sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "wpe" not in name)
    assert total == compute.transformer_training_flops(n, 8 * 24, c.n_layer, 24, c.n_embd)
    assert total > compute.transformer_training_flops(n, 8 * 24)            # attention is not free


def test_the_counter_misses_fused_attention_on_cpu():
    eager, model = gpt_step_flops("eager")
    fused, _ = gpt_step_flops("sdpa")
    c = model.config
    assert fused == compute.transformer_training_flops(compute.matmul_parameters(model), 8 * 24)  # weights only
    assert eager - fused == 12 * c.n_layer * 24 * c.n_embd * 8 * 24


def test_gradient_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    model = small_cnn(24)
    x, y = torch.rand(32, 3, 32, 32), torch.randint(24, (32,))

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    big = compute.accumulated_gradients(model, loss_fn, [(x, y)])
    four = compute.accumulated_gradients(model, loss_fn, [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)])
    assert torch.allclose(big, four, atol=1e-6)
    summed = compute.accumulated_gradients(model, lambda m, b: 4 * loss_fn(m, b),   # forgetting to divide by k
                                           [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)])
    assert not torch.allclose(big, summed, atol=1e-3)
    assert float(summed.norm()) == pytest.approx(4 * float(big.norm()), rel=1e-4)
