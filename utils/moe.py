"""Mixture of experts inside the tiny Chameleon (Phase 7).

A mixture-of-experts (MoE) layer replaces one feed-forward block by E feed-forward blocks ("experts") and a
*router*: a linear map from each token's hidden state to E scores. Each token goes to its top-k experts only, and
their outputs are mixed with weights from a softmax over the chosen scores — so the layer holds E× the parameters
while each token pays for k experts. Mixtral, DeepSeek-VL2 and Llama 4 are built this way.

Left alone, a router tends to send most tokens to a few experts (they train faster, so they win more tokens...).
Switch Transformer's load-balancing loss counters it: with f_i the fraction of the tokens that chose expert i and P_i
the mean router probability of expert i, ``aux = E · Σ_i f_i · P_i`` is smallest when both are uniform.

The layer is ``transformers``' own ``MixtralSparseMoeBlock`` (a drop-in for a Llama MLP); only its router is swapped
for :class:`Router`, which calls a routing function — the reference :func:`route` or the learner's — and keeps the
router logits of the last forward pass for the balancing loss and for counting which tokens went where.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RouteFn = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def route(router_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing. ``router_logits`` (T, E): one score per token and expert. Returns (weights, experts), both
    (T, k): each token's k highest-scoring experts (best first) and their mixing weights, a softmax over the k chosen
    scores only (so each row sums to 1). Differentiable in the weights, so the router learns. The reference of
    Exercise 7.5; ``transformers``' ``MixtralTopKRouter`` computes the same (softmax over all E, top-k, renormalise)."""
    top, experts = router_logits.topk(k, dim=-1)
    return top.softmax(dim=-1), experts


def load_balancing_loss(router_logits: torch.Tensor, k: int) -> torch.Tensor:
    """Switch Transformer's auxiliary loss over the router logits (T, E) of T tokens: E · Σ_i f_i · P_i, where f_i =
    the fraction of the tokens that have expert i among their top k (the f_i sum to k) and P_i = the mean over tokens
    of the softmax probability of expert i. Equals k when routing is perfectly even and approaches E as one expert
    takes all the probability.
    Gradients flow through P (the counts f are constants). The reference of Exercise 7.6; ``transformers``'
    ``load_balancing_loss_func`` (Mixtral) is the oracle."""
    n_experts = router_logits.shape[-1]
    probs = router_logits.softmax(dim=-1)
    chosen = probs.topk(k, dim=-1).indices
    counts = F.one_hot(chosen, n_experts).sum(dim=(0, 1)).to(probs.dtype)
    f = counts / router_logits.shape[0]
    return n_experts * (f * probs.mean(dim=0)).sum()


class Router(nn.Module):
    """A drop-in for ``MixtralTopKRouter`` whose routing is ``route_fn``: (router logits, k) → (weights, experts).
    The logits of the last call stay in ``last_logits`` (T, E), the chosen experts in ``last_experts`` (T, k)."""

    def __init__(self, hidden: int, n_experts: int, top_k: int, route_fn: RouteFn = route) -> None:
        super().__init__()
        self.top_k, self.num_experts, self.hidden_dim = top_k, n_experts, hidden
        self.weight = nn.Parameter(torch.empty(n_experts, hidden))
        self.route_fn = route_fn
        self.last_logits: torch.Tensor | None = None
        self.last_experts: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor):
        logits = F.linear(hidden_states.reshape(-1, self.hidden_dim), self.weight)
        weights, experts = self.route_fn(logits, self.top_k)
        self.last_logits, self.last_experts = logits, experts
        return logits, weights, experts


def add_moe(model, layer: int = 1, n_experts: int = 4, top_k: int = 1, route_fn: RouteFn = route,
            seed: int = 0) -> Router:
    """Replace the MLP of decoder layer ``layer`` of a Llama-style causal LM by a ``MixtralSparseMoeBlock`` with
    ``n_experts`` experts as wide as the MLP and top-``top_k`` routing through :class:`Router` (``route_fn``).
    Experts and router start from the model's initialiser scale (normal, std ``initializer_range``), seeded. Returns
    the router (to read its logits)."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    c = model.config
    config = MixtralConfig(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
                           num_local_experts=n_experts, num_experts_per_tok=top_k, router_jitter_noise=0.0)
    block = MixtralSparseMoeBlock(config)
    block.gate = Router(c.hidden_size, n_experts, top_k, route_fn)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * c.initializer_range)
    model.model.layers[layer].mlp = block.to(model.device)
    return block.gate


def balance_term(router: Router, labels: torch.Tensor, loss_fn=load_balancing_loss) -> torch.Tensor:
    """The balancing loss of the router's last forward pass over the real tokens only (padding, label -100, left
    out) — the form :func:`utils.unified.train_unified` takes as ``extra_loss``."""
    keep = (labels != -100).reshape(-1).to(router.last_logits.device)
    return loss_fn(router.last_logits[keep], router.top_k)


@torch.no_grad()
def expert_shares(model, router: Router, ids: torch.Tensor, mask: torch.Tensor, is_image: torch.Tensor
                  ) -> np.ndarray:
    """Where tokens go: a (2, E) array whose row 0 is the share of the text tokens sent to each expert and row 1 the
    share of the image tokens (each row sums to 1; with top-k > 1 each token counts once per chosen expert). Rows are
    the modality of the token *at* the position (its input id); padding (``mask`` False) is left out."""
    model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
    chosen = router.last_experts.view(*ids.shape, -1).cpu()
    out = np.zeros((2, router.num_experts))
    for row, which in enumerate((mask & ~is_image, mask & is_image)):
        counts = torch.bincount(chosen[which].reshape(-1), minlength=router.num_experts).double()
        out[row] = (counts / counts.sum().clamp(min=1)).numpy()
    return out
