"""Tests for utils/diffusion.py against diffusers' DDPMScheduler: the schedule, the forward process, the clean-image
prediction, the signal-to-noise ratio; the prompt classes, guidance against diffusers' ClassifierFreeGuidance, and a
latent diffusion model trained, saved, loaded and sampled."""
from __future__ import annotations

import math

import torch

from utils import diffusion as D


def test_schedule_matches_ddpmscheduler():
    s = D.scheduler()
    assert torch.allclose(s.betas, D.linear_betas())
    assert torch.allclose(s.alphas_cumprod, D.alphas_cumprod(D.linear_betas()))


def test_add_noise_matches_and_predict_x0_inverts_it():
    s = D.scheduler()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = D.add_noise(x0, eps, t, D.linear_betas())
    assert torch.allclose(x_t, s.add_noise(x0, eps, t))
    assert torch.allclose(D.predict_x0(x_t, eps, t, D.linear_betas()), x0, atol=1e-4)
    for i in range(4):
        out = s.step(eps[i:i + 1], int(t[i]), x_t[i:i + 1]).pred_original_sample
        assert torch.allclose(out, D.predict_x0(x_t[i:i + 1], eps[i:i + 1], t[i:i + 1], D.linear_betas()), atol=1e-5)


def test_signal_to_noise_falls_from_high_to_nearly_zero():
    snr = D.signal_to_noise(D.linear_betas())
    assert bool((snr[1:] < snr[:-1]).all()) and snr[0] > 1e3 and snr[-1] < 1e-4


def test_prompt_classes_follow_the_prompts_order():
    from utils import unified
    from utils.world import COLORS, SHAPES, SIZES, World

    texts, _ = unified.prompts()
    triples = [(c, s, z) for c in COLORS for s in SHAPES for z in SIZES]
    assert [D.prompt_class(*t) for t in triples] == list(range(D.n_classes())) and len(texts) == D.n_classes()
    assert all(texts[D.prompt_class(c, s, z)] == f"a {z} {c} {s}." for c, s, z in triples)
    scene = World(0, image_size=32, max_objects=1).arrays("train", 1)[1][0]
    o = scene.objects[0]
    assert texts[D.scene_class(scene)] == f"a {o.size} {o.color} {o.shape}."


def test_guided_noise_equals_diffusers_guider():
    from diffusers.guiders import ClassifierFreeGuidance

    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    for w in (0.0, 1.0, 4.0):
        want = ClassifierFreeGuidance(guidance_scale=w).forward(cond, uncond).pred
        assert torch.allclose(D.guided_noise(cond, uncond, w), want, atol=1e-6)


def test_latent_diffusion_trains_saves_loads_and_samples(tmp_path):
    z = torch.randn(32, 16, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.05 + 0.1
    mean, std = D.latent_statistics(z)
    torch.manual_seed(0)
    model = D.LatentDiffusion(D.tiny_denoiser(widths=(16, 32)), mean, std, D.scheduler())
    assert torch.allclose(model.destandardise(model.standardise(z)), z, atol=1e-6)
    assert model.standardise(z).std(dim=(0, 2, 3)).sub(1).abs().max() < 0.01
    history = D.train_denoiser(model, z, torch.randint(48, (32,)), steps=3, batch_size=8, desc="test")
    assert len(history.losses) == 3 and all(math.isfinite(v) for v in history.losses)
    D.save_ldm(model, tmp_path)
    again = D.load_ldm(tmp_path)
    assert torch.equal(again.mean, mean) and torch.equal(again.std, std)
    calls = []

    def guide(c, u, w):
        calls.append(w)
        return D.guided_noise(c, u, w)

    labels = torch.tensor([0, 7, 47])
    x, kept = D.sample(again, labels, guidance=2.5, steps=4, keep=[0, 3], guide=guide,
                       generator=torch.Generator().manual_seed(2))
    assert x.shape == (3, 16, 8, 8) and sorted(kept) == [0, 3] and calls == [2.5] * 4
    y, _ = D.sample(again, labels, guidance=2.5, steps=4, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x, y, atol=1e-5)                       # DDIM is deterministic given the start noise


def test_ddim_takes_any_denoiser():
    """utils.diffusion.ddim with a noise function that always answers 0: each DDIM step then only rescales, x_prev =
    √ᾱ_prev / √ᾱ_t · x_t, so the chain telescopes to x_T · √ᾱ_0 / √ᾱ_750 (the last step's "previous" ᾱ is ᾱ_0:
    set_alpha_to_one=False)."""
    sched = D.scheduler()
    calls = []

    def eps_fn(x, t):
        calls.append(int(t))
        return torch.zeros_like(x)

    x, kept = D.ddim(eps_fn, (2, 5), sched, steps=4, generator=torch.Generator().manual_seed(0), keep=[1])
    start = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    abar = sched.alphas_cumprod
    assert calls == [750, 500, 250, 0] and list(kept) == [1]
    assert torch.allclose(x, start * abar[0].sqrt() / abar[750].sqrt(), atol=1e-5)
