"""Diffusion on world images: the forward (noising) process and its inverse for one step (Phase 7).

A DDPM (Ho et al., 2020) destroys an image in T small steps of Gaussian noise and learns to undo them. The forward
process needs no learning: with a variance schedule β_0 … β_{T-1} and ᾱ_t = ∏_{s ≤ t} (1 − β_s), the noisy image at
step t is a closed-form mix of the clean image x₀ and one Gaussian noise ε,

    x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε,

so training draws a random t, makes x_t in one line and asks a network to predict ε. From a prediction of ε the
clean image follows by inverting the same line (:func:`predict_x0`). The schedules and the oracle are ``diffusers``'
``DDPMScheduler`` (its timesteps count from 0, as here). :func:`add_noise` is the reference of Exercise 7.5,
:func:`predict_x0` of Exercise 7.6.
"""
from __future__ import annotations

import torch

T_STEPS = 1000  # DDPM's number of steps
BETA_START, BETA_END = 1e-4, 0.02  # DDPM's linear schedule


def linear_betas(steps: int = T_STEPS, start: float = BETA_START, end: float = BETA_END) -> torch.Tensor:
    """DDPM's linear variance schedule β_0 … β_{steps-1} (float32), as ``DDPMScheduler(beta_schedule="linear")``."""
    return torch.linspace(start, end, steps, dtype=torch.float32)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s ≤ t} (1 − β_s): how much of the clean image's signal is left at step t."""
    return torch.cumprod(1.0 - betas, dim=0)


def _per_example(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (B, 1, 1, …) to broadcast over an image batch ``like``."""
    return values.to(like.device)[t].view(-1, *([1] * (like.dim() - 1)))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε for a batch: images x0 (B, …), noise like x0, timesteps t (B,) counted from
    0, schedule ``betas`` (T,). The reference of Exercise 7.5 (``DDPMScheduler.add_noise``)."""
    abar = _per_example(alphas_cumprod(betas), t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The clean image implied by a noisy one and a prediction of its noise: x̂₀ = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t,
    not clipped. The reference of Exercise 7.6 (``DDPMScheduler.step``'s ``pred_original_sample`` with
    ``clip_sample=False``)."""
    abar = _per_example(alphas_cumprod(betas), t, x_t)
    return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()


def signal_to_noise(betas: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t): the power of what is left of the image over the power of the noise at step t."""
    abar = alphas_cumprod(betas)
    return abar / (1 - abar)


def scheduler(steps: int = T_STEPS, schedule: str = "linear"):
    """``diffusers``' ``DDPMScheduler`` with DDPM's settings (ε-prediction, no clipping): the library the course
    checks against, and the one a real pipeline samples with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=steps, beta_start=BETA_START, beta_end=BETA_END, beta_schedule=schedule,
                         prediction_type="epsilon", clip_sample=False)
