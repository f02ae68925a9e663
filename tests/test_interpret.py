"""utils.interpret: the logit lens and activation patching on the zoo VLM (Phase 10)."""
import numpy as np
import torch

from utils import interpret
from utils import vlm as uvlm
from utils.clip import normalize_images
from utils.world import COLORS, World


def _setup(n_scenes: int = 80):
    model = uvlm.TinyVLM.from_pretrained(uvlm.ZOO_VLM)
    pairs = interpret.recoloured_pairs(World(seed=0, image_size=32), "val", n_scenes)
    with torch.no_grad():
        fa = model.image_features(normalize_images(pairs.a))
        fb = model.image_features(normalize_images(pairs.b))
    return model, pairs, fa, fb


def test_pairs_differ_in_the_asked_objects_colour_only():
    _, pairs, _, _ = _setup(40)
    for a, b, q, ca, cb, obj in zip(pairs.a, pairs.b, pairs.questions, pairs.answers_a, pairs.answers_b, pairs.objects):
        assert ca != cb and q == f"what color is the {obj.shape}?"
        differ = (a != b).any(-1)
        rows, cols = np.nonzero(differ)
        x0, y0, x1, y1 = obj.bbox(32)
        # inside the object's box (its far edge included: the anti-aliased rim can touch it)
        assert differ.any() and rows.min() >= y0 and rows.max() <= y1 and cols.min() >= x0 and cols.max() <= x1


def test_the_lens_of_the_last_layer_is_the_models_answer():
    model, pairs, fa, _ = _setup()
    states = interpret.answer_states(model, fa, pairs.questions)
    assert states.shape == (model.lm.config.n_layer + 1, len(pairs.questions), model.lm.config.n_embd)
    lens = interpret.logit_lens(model, states, COLORS)
    scores = model.answer_scores(fa, pairs.questions, candidates=COLORS)
    assert torch.allclose(lens[-1], scores, atol=1e-4)


def test_patching_the_objects_cells_moves_the_answer_and_other_cells_do_not():
    model, pairs, fa, fb = _setup()
    cells = [interpret.object_cells(o) for o in pairs.objects]
    assert all(1 <= len(c) <= 9 for c in cells)

    def said(features):
        s = model.answer_scores(features, pairs.questions, candidates=COLORS)
        return np.array([COLORS[i] for i in s.argmax(1)])

    assert np.mean(said(interpret.patched_features(fa, fb, cells)) == np.array(pairs.answers_b)) > 0.9
    others = [[k for k in range(16) if k not in c][:len(c)] for c in cells]
    assert np.mean(said(interpret.patched_features(fa, fb, others)) == np.array(pairs.answers_a)) > 0.95
    assert torch.equal(interpret.patched_features(fa, fb, [[]] * len(fa)), fa)
