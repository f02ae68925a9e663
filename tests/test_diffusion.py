"""Tests for utils/diffusion.py against diffusers' DDPMScheduler: the schedule, the forward process, the clean-image
prediction, the signal-to-noise ratio."""
from __future__ import annotations

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
