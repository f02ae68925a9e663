"""Tests for utils/moe.py: top-k routing and the Switch balancing loss against transformers' Mixtral (router and
load_balancing_loss_func), the MoE block dropped into a Llama layer (shapes, gradients to router and experts, the
learner's routing function used), and counting where tokens go."""
from __future__ import annotations

import math

import numpy as np
import torch

from utils import moe
from utils import unified as U


def test_route_equals_mixtral_router():
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 8, generator=g)
    router = MixtralTopKRouter(MixtralConfig(hidden_size=8, num_local_experts=5, num_experts_per_tok=2))
    with torch.no_grad():
        router.weight.copy_(torch.randn(5, 8, generator=g))
    logits, weights, experts = router(x)
    mine_w, mine_e = moe.route(logits, 2)
    assert torch.equal(mine_e, experts) and torch.allclose(mine_w, weights, atol=1e-6)


def test_balancing_loss_equals_mixtral_and_has_its_extremes():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    logits = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    for k in (1, 2):
        assert math.isclose(float(moe.load_balancing_loss(logits, k)),
                            float(load_balancing_loss_func((logits,), 4, k)), rel_tol=1e-5)
    even = torch.stack([torch.roll(torch.tensor([3.0, 1.0, 0.0, -1.0]), s) for s in range(4)] * 5)
    assert math.isclose(float(moe.load_balancing_loss(even, 1)), 1.0, rel_tol=1e-5)
    collapsed = torch.zeros(10, 4)
    collapsed[:, 2] = 40.0
    assert math.isclose(float(moe.load_balancing_loss(collapsed, 1)), 4.0, rel_tol=1e-4)


def _model_and_batch():
    caps = ["a small red circle.", "a large blue square in the top left."]
    tok = U.build_tokenizer(caps, 8)
    vocab = U.Vocab.of(tok)
    torch.manual_seed(0)
    model = U.create_unified(vocab, hidden=32, layers=2, heads=2)
    words = U.caption_ids(tok, caps)
    codes = torch.randint(8, (2, 2, 2), generator=torch.Generator().manual_seed(2))
    seqs = [U.text_to_image(words[0], codes[0], vocab), U.image_to_text(words[1], codes[1], vocab)]
    ids, labels = U.pad_batch(seqs, vocab.pad)
    return model, vocab, ids, labels


def test_add_moe_replaces_one_mlp_and_trains_router_and_experts():
    model, vocab, ids, labels = _model_and_batch()
    calls = []

    def counting_route(logits, k):
        calls.append(logits.shape)
        return moe.route(logits, k)

    router = moe.add_moe(model, layer=1, n_experts=3, top_k=2, route_fn=counting_route)
    block = model.model.layers[1].mlp
    assert type(block).__name__ == "MixtralSparseMoeBlock" and block.gate is router
    assert type(model.model.layers[0].mlp).__name__ == "LlamaMLP"
    out = model(input_ids=ids, attention_mask=labels != -100, labels=labels)
    assert calls == [(ids.numel(), 3)] and router.last_experts.shape == (ids.numel(), 2)
    (out.loss + moe.balance_term(router, labels)).backward()
    assert router.weight.grad is not None and router.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.experts.parameters())


def test_balance_term_leaves_padding_out():
    model, vocab, ids, labels = _model_and_batch()
    router = moe.add_moe(model, layer=0, n_experts=4, top_k=1)
    model(input_ids=ids, attention_mask=labels != -100)
    keep = (labels != -100).reshape(-1)
    assert not keep.all()                                   # the batch has padding
    assert torch.isclose(moe.balance_term(router, labels), moe.load_balancing_loss(router.last_logits[keep], 1))


def test_expert_shares_count_each_modality():
    model, vocab, ids, labels = _model_and_batch()
    router = moe.add_moe(model, layer=1, n_experts=4, top_k=1)
    mask = labels != -100
    shares = moe.expert_shares(model, router, ids, mask, vocab.is_image(ids))
    assert shares.shape == (2, 4) and np.allclose(shares.sum(1), 1.0)
    chosen = router.last_experts.view(*ids.shape)
    image = vocab.is_image(ids) & mask
    expected = np.bincount(chosen[image].numpy(), minlength=4) / int(image.sum())
    assert np.allclose(shares[1], expected)
