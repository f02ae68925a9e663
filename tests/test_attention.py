"""utils.attention agrees with torch."""
import torch
import torch.nn.functional as F

from utils import attention


def test_attention_references_agree_with_torch():
    q, k, v = torch.randn(3, 2, 5, 4).unbind(0)
    mask = attention.causal_mask(5)
    assert torch.allclose(attention.scaled_dot_product_attention(q, k, v, mask),
                          F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
    x = torch.randn(2, 5, 8)
    assert torch.equal(attention.merge_heads(attention.split_heads(x, 2)), x)
