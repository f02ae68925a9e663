"""utils.clip: an open_clip model built from the course config trains, saves and reloads through open_clip."""
import numpy as np
import pytest
import torch

from utils import clip, text
from utils.world import World

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    world = World(seed=1, image_size=32)
    images, captions = clip.training_pairs(world, n_multi=96, n_single=96)
    out = tmp_path_factory.mktemp("clip")
    words = text.build_word_tokenizer(captions)
    words.save_pretrained(out)
    from open_clip.tokenizer import HFTokenizer

    tokenizer = HFTokenizer(str(out), context_length=24)
    config = clip.tiny_clip_config(words.vocab_size, words.pad_token_id, words.eos_token_id, width=32, layers=1)
    torch.manual_seed(0)
    model = clip.create_tiny_clip(config)
    return world, images, captions, tokenizer, config, model, out


def test_training_pairs_cover_single_and_multi_object_scenes():
    images, captions = clip.training_pairs(World(seed=2, image_size=32), n_multi=10, n_single=5)
    assert images.shape == (15, 32, 32, 3) and images.dtype == np.uint8 and len(captions) == 15
    assert all(c.endswith(".") for c in captions)


def test_normalize_images_matches_open_clip_constants():
    assert (clip.CLIP_MEAN == tuple(open_clip.OPENAI_DATASET_MEAN)
            and clip.CLIP_STD == tuple(open_clip.OPENAI_DATASET_STD))
    x = clip.normalize_images(np.full((2, 4, 4, 3), 255, dtype=np.uint8))
    assert x.shape == (2, 3, 4, 4)
    assert torch.allclose(x[0, :, 0, 0], (1 - torch.tensor(clip.CLIP_MEAN)) / torch.tensor(clip.CLIP_STD))


def test_contrastive_training_lowers_the_loss_and_roundtrips_through_open_clip(tiny):
    world, images, captions, tokenizer, config, model, out = tiny
    history = clip.train_clip(model, clip.normalize_images(images), tokenizer(captions), steps=40, batch_size=64)
    assert np.mean(history.losses[-5:]) < np.mean(history.losses[:5]) - 0.3
    from open_clip.push_to_hf_hub import save_for_hf

    model.eval()
    save_for_hf(model, tokenizer, config, out, safe_serialization=True)
    loaded, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    loaded_tok = open_clip.get_tokenizer(f"local-dir:{out}")
    assert torch.equal(loaded_tok(captions[:3]), tokenizer(captions[:3]))
    x = clip.normalize_images(images[:4])
    assert torch.allclose(clip.encode_images(loaded, x), clip.encode_images(model, x), atol=1e-6)
    metrics = clip.evaluate_clip(loaded, loaded_tok, world, n_blocks=1, n_single=400)
    assert set(metrics) >= {"image_to_text_r1", "zero_shot_seen", "zero_shot_heldout"}
    assert clip.zero_shot_weights(loaded, loaded_tok, ["red circle", "blue square"]).shape == (2, 64)


def test_float_normalisation_matches_the_uint8_one():
    import numpy as np

    from utils.clip import normalize_float_images, normalize_images

    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(normalize_float_images(floats), normalize_images(images))
