"""utils.vision: token counts."""

from utils import vision


def test_vision_token_counts():
    assert vision.num_patch_tokens(224, 16) == vision.patch_embed_tokens(224, 16) == 196
    assert vision.num_patch_tokens(336, 14) == 576
