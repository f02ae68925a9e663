"""utils.safety: PGD against the zoo CLIP, bit-depth squeezing and an adaptive attack (Phase 10)."""
import open_clip
import torch

from utils import clip as uclip
from utils import safety
from utils.world import World


def _setup(n: int = 60):
    model, _, _ = uclip.load_clip()
    head = safety.zero_shot_head(model, open_clip.get_tokenizer(f"local-dir:{uclip.ZOO_CLIP}"))
    single, labels, _ = World(seed=0, image_size=32).single_object_split("test", n)
    return model, head, torch.from_numpy(single).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(labels)


def test_pgd_stays_within_its_budget_and_fools_the_zoo_clip():
    model, head, x, y = _setup()
    assert (safety.predictions(model, head, x) == y).float().mean() > 0.9
    adversarial = safety.pgd_attack(model, head, x, y, eps=8 / 255, steps=10)
    assert (adversarial - x).abs().max() <= 8 / 255 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
    assert (safety.predictions(model, head, adversarial) != y).float().mean() > 0.8


def test_squeezing_rounds_to_its_levels_and_passes_the_gradient_straight_through():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    out = safety.squeeze(x, bits=4)
    assert torch.allclose(out * 15, torch.round(out * 15), atol=1e-5)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_pgd_step_moves_by_the_sign_inside_the_box():
    original = torch.full((1, 1, 1, 3), 0.5)
    step = safety.pgd_step(original, torch.tensor([[[[2.0, -0.1, 0.0]]]]), original, eps=0.03, alpha=0.02)
    assert torch.allclose(step, torch.tensor([[[[0.52, 0.48, 0.5]]]]))
    step = safety.pgd_step(step, torch.ones(1, 1, 1, 3), original, eps=0.03, alpha=0.02)
    assert torch.allclose(step, torch.tensor([[[[0.53, 0.5, 0.52]]]]))
