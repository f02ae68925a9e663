"""What training costs: FLOPs by rule and by count, and gradient accumulation (Phase 8).

A transformer's training step costs about **6 N D** floating-point operations — N the parameters that enter a
matrix multiply, D the tokens: 2 N D for the forward pass (a multiply and an add per weight per token) and twice that
for the backward pass (gradients for the activations and for the weights). Attention adds 12 L T d D for L layers, a
context of T tokens and width d (the Q·Kᵀ and A·V products, forward and backward), small while T ≪ 6N / (12 L d).
:func:`transformer_training_flops` is that rule; :func:`count_flops` measures a real step with PyTorch's
``FlopCounterMode``, so the rule can be checked — and the counter's blind spots seen: on CPU it counts no FLOPs for
``scaled_dot_product_attention``'s fused kernel, so count attention with ``attn_implementation="eager"``.

:func:`accumulated_gradients` is gradient accumulation — k micro-batches, each loss divided by k, gradients summed —
which gives the gradient of one k-times larger batch when the loss is a mean over equal-sized micro-batches.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(step: Callable[[], object]) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per aten op) of running ``step()`` — e.g. a forward and a backward pass."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops(), {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}


def matmul_parameters(model: nn.Module) -> int:
    """N of the 6·N·D rule: the weights that multiply activations — every ``nn.Linear`` weight, every ``Conv1D`` weight
    (GPT-2's linear layers) and the output head (counted once even when it shares its matrix with the input
    embedding). Embedding lookups, biases and norms cost no matrix-multiply FLOPs and are left out."""
    from transformers.pytorch_utils import Conv1D

    counted: dict[int, int] = {}
    for module in model.modules():
        if isinstance(module, (nn.Linear, Conv1D)):
            counted[id(module.weight)] = module.weight.numel()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        counted[id(head.weight)] = head.weight.numel()
    return sum(counted.values())


def transformer_training_flops(n_params: int, tokens: int, layers: int = 0, context: int = 0, width: int = 0) -> int:
    """Training FLOPs of a transformer by rule: 6·N·D for the weights plus 12·L·T·d·D for attention (``layers`` L,
    ``context`` T, ``width`` d; leave them 0 to ignore attention)."""
    return 6 * n_params * tokens + 12 * layers * context * width * tokens


def accumulated_gradients(model: nn.Module, loss_fn: Callable[[nn.Module, object], torch.Tensor],
                          micro_batches: Iterable[object]) -> torch.Tensor:
    """Gradient accumulation: ``loss_fn(model, batch) / k`` backpropagated for each of the k micro-batches, the
    gradients left to add up; returns them as one flat vector (and leaves them in ``.grad``)."""
    micro_batches = list(micro_batches)
    model.zero_grad()
    for batch in micro_batches:
        (loss_fn(model, batch) / len(micro_batches)).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
