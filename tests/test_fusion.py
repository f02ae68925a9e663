"""utils.fusion: Phase 4's fusion modules."""
import pytest
import torch
import torch.nn as nn

from utils import fusion, vqa


def test_resample_is_cross_attention_with_fixed_output_length():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(16, 2, batch_first=True)
    queries = torch.randn(4, 16)
    for n in (9, 16, 64):
        tokens = torch.randn(3, n, 16)
        out = fusion.resample(queries, tokens, attn)
        assert out.shape == (3, 4, 16)
        ref, _ = attn(queries.expand(3, -1, -1), tokens, tokens)
        torch.testing.assert_close(out, ref)


def test_gated_cross_attention_is_identity_at_init_and_not_after():
    torch.manual_seed(0)
    block = fusion.GatedCrossAttention(16, 8)
    x, image = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    assert torch.equal(block(x, image), x)
    with torch.no_grad():
        block.gate.fill_(1.0)
    assert not torch.allclose(block(x, image), x)


def test_flamingo_lm_equals_frozen_lm_at_init(lm_and_tokenizer):
    lm, tok = lm_and_tokenizer
    ids = tok(["is there a red circle"], return_tensors="pt")["input_ids"]
    before = lm(input_ids=ids).logits
    flamingo = fusion.FlamingoLM(lm, image_dim=12)
    image = torch.randn(1, 16, 12)
    assert torch.equal(flamingo(image, ids), before)
    with torch.no_grad():
        for x in flamingo.xattn:
            x.gate.fill_(0.5)
    assert not torch.allclose(flamingo(image, ids), before)
    assert flamingo.gates() == pytest.approx([torch.tanh(torch.tensor(0.5)).item()] * len(flamingo.xattn))
    for block in lm.transformer.h:  # remove the hooks so the shared LM fixture is clean again
        block._forward_pre_hooks.clear()


def test_vq_tokens_pick_the_nearest_code():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    patches = torch.tensor([[[0.1, 0.0], [4.0, 4.5], [0.9, 1.2]]])
    assert fusion.vq_tokens(patches, codebook).tolist() == [[0, 2, 1]]
    cb = fusion.fit_codebook(torch.cat([torch.zeros(20, 2), torch.ones(20, 2) * 3]), 2)
    assert sorted(cb[:, 0].round().tolist()) == [0.0, 3.0]


def test_depth_adapter_leaves_the_tower_unchanged_at_init():
    from utils.clip import load_clip

    visual = load_clip()[0].visual
    images, depth = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    adapter = fusion.DepthAdapter(64)
    plain = fusion.tower_with_adapter(visual, images, None, None)
    assert torch.equal(fusion.tower_with_adapter(visual, images, depth, adapter), plain)
    assert plain.shape == (2, 16, 128)
    with torch.no_grad():
        adapter.zero.weight.normal_()
    assert not torch.allclose(fusion.tower_with_adapter(visual, images, depth, adapter), plain)


@pytest.mark.parametrize("pattern", fusion.PATTERNS)
def test_every_fusion_pattern_runs_and_counts_its_tokens(pattern):
    torch.manual_seed(0)
    b, t = 3, 6
    batch = {"grid": torch.randn(b, 16, 128), "pooled": torch.randn(b, 64), "text": torch.randn(b, t, 64),
             "text_mask": torch.ones(b, t, dtype=torch.bool), "ids": torch.randint(0, 50, (b, t)),
             "codes": torch.randint(0, 256, (b, 16))}
    model = fusion.FusionVQA(pattern, 128, 64, 64, 16, t)
    assert model(batch).shape == (b, len(vqa.ANSWERS))
    assert model.language_tokens(t) == {"concat": 1, "cross_attention": t, "qformer": t + 4, "projector": t + 16,
                                        "early": t + 16}[pattern]


def test_small_helpers():
    assert fusion.attention_cost(10, 2, 3) == {"transformer": 300, "perceiver": 32}
    pooled, text = torch.ones(2, 3), torch.arange(8.0).view(2, 2, 2)
    mask = torch.tensor([[True, False], [True, True]])
    out = fusion.concat_features(pooled, text, mask)
    assert out.tolist() == [[1, 1, 1, 0, 1], [1, 1, 1, 5, 6]]
    data = {"answer": torch.tensor([0, 1, 1, 2]), "kinds": ["color", "color", "count", "count"]}
    acc = fusion.accuracy_by_kind(torch.tensor([0, 0, 1, 2]), data)
    assert acc == {"color": 0.5, "count": 1.0, "all": 0.75}
