"""The watermark helpers: a key's pattern, embedding, the high-pass residual, the detector and the distortions."""
import numpy as np
import pytest

from utils import watermark as wm


def _images(n=64, seed=0):
    """Smooth pictures with a few edges: flat colour halves plus mild noise, like the shapes world's."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 32, 32, 3))
    x += rng.integers(30, 220, size=(n, 1, 1, 3))
    x[:, :, 16:] += rng.integers(-30, 30, size=(n, 1, 1, 3))
    return np.clip(np.round(x + rng.normal(0, 3, x.shape)), 0, 255).astype(np.uint8)


def test_a_key_gives_one_balanced_pattern_and_blocks_lower_its_frequency():
    p = wm.key_pattern(7)
    assert p.shape == (32, 32, 3) and set(np.unique(p)) == {-1.0, 1.0}
    assert np.array_equal(p, wm.key_pattern(7)) and not np.array_equal(p, wm.key_pattern(8))
    assert abs(p.mean()) < 0.1
    b = wm.key_pattern(7, block=2)
    assert np.array_equal(b[0::2, 0::2], b[1::2, 1::2])
    with pytest.raises(ValueError):
        wm.key_pattern(7, shape=(33, 32, 3), block=2)


def test_embedding_stays_8_bit_and_faint():
    x = _images()
    marked = wm.embed(x, wm.key_pattern(1), 2.0)
    assert marked.dtype == np.uint8 and marked.shape == x.shape
    assert np.abs(marked.astype(int) - x).max() <= 2
    assert 40 < wm.psnr(x, marked) < 45 and wm.psnr(x, x) == float("inf")
    assert wm.embed(np.full((1, 2, 2, 3), 255, np.uint8), np.ones((2, 2, 3)), 3.0).max() == 255


def test_the_residual_drops_flat_regions():
    flat = np.full((2, 8, 8, 3), 120, np.uint8)
    assert np.allclose(wm.highpass(flat), 0)


def test_marked_images_are_found_and_clean_ones_are_not():
    x = _images()
    key = wm.key_pattern(3)
    clean = wm.detect(x, key)
    assert np.all(clean < wm.THRESHOLD) and abs(clean.mean()) < 0.5
    assert np.all(wm.detect(wm.embed(x, key, 2.0), key) > wm.THRESHOLD)
    assert np.all(wm.detect(wm.embed(x, key, 2.0), wm.key_pattern(4)) < wm.THRESHOLD)   # another key: nothing
    assert np.median(wm.detect(wm.shift(wm.embed(x, key, 2.0)), key)) < wm.THRESHOLD      # misaligned: lost


def test_the_distortions_keep_images_8_bit():
    x = _images(4)
    for out in (wm.jpeg(x, 75), wm.add_noise(x, 4.0), wm.shift(x)):
        assert out.shape == x.shape and out.dtype == np.uint8
    assert np.array_equal(wm.add_noise(x, 4.0, seed=1), wm.add_noise(x, 4.0, seed=1))
    assert np.abs(wm.jpeg(x, 95).astype(int) - x).mean() < 3
