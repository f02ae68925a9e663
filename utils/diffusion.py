"""Diffusion on world images: the forward (noising) process and its inverse for one step (Phase 7).

A DDPM (Ho et al., 2020) destroys an image in T small steps of Gaussian noise and learns to undo them. The forward
process needs no learning: with a variance schedule β_0 … β_{T-1} and ᾱ_t = ∏_{s ≤ t} (1 − β_s), the noisy image at
step t is a closed-form mix of the clean image x₀ and one Gaussian noise ε,

    x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε,

so training draws a random t, makes x_t in one line and asks a network to predict ε. From a prediction of ε the
clean image follows by inverting the same line (:func:`predict_x0`). The schedules and the oracle are ``diffusers``'
``DDPMScheduler`` (its timesteps count from 0, as here). :func:`add_noise` is the reference of Exercise 7.7,
:func:`predict_x0` of Exercise 7.8.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import env
from .train import History, adamw_one_cycle, train, update

ROOT = Path(__file__).resolve().parent.parent
LDM_DIR = ROOT / "data" / "models" / "tiny-ldm-shapes"

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
    0, schedule ``betas`` (T,). The reference of Exercise 7.7 (``DDPMScheduler.add_noise``)."""
    abar = _per_example(alphas_cumprod(betas), t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The clean image implied by a noisy one and a prediction of its noise: x̂₀ = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t,
    not clipped. The reference of Exercise 7.8 (``DDPMScheduler.step``'s ``pred_original_sample`` with
    ``clip_sample=False``)."""
    abar = _per_example(alphas_cumprod(betas), t, x_t)
    return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()


def signal_to_noise(betas: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t): the power of what is left of the image over the power of the noise at step t."""
    abar = alphas_cumprod(betas)
    return abar / (1 - abar)


def scheduler(steps: int = T_STEPS, schedule: str = "linear", prediction_type: str = "epsilon"):
    """``diffusers``' ``DDPMScheduler`` with DDPM's settings (no clipping; ε-prediction unless ``prediction_type``
    says "v_prediction"): the library the course checks against, and the one a real pipeline samples with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=steps, beta_start=BETA_START, beta_end=BETA_END, beta_schedule=schedule,
                         prediction_type=prediction_type, clip_sample=False)


# --- a class-conditional latent diffusion model with classifier-free guidance ------------------------------------

def prompt_triples() -> list[tuple[str, str, str]]:
    """Every (colour, shape, size) of the world in the order of :func:`utils.unified.prompts`' 48 prompts
    (colour-major, then shape, then size): class k is triple k."""
    from .world import COLORS, SHAPES, SIZES

    return [(c, s, z) for c in COLORS for s in SHAPES for z in SIZES]


def prompt_class(color: str, shape: str, size: str) -> int:
    """The class of a (colour, shape, size) triple: its index in :func:`prompt_triples`."""
    return prompt_triples().index((color, shape, size))


def n_classes() -> int:
    """How many prompt classes the world has (48); class ``n_classes()`` is the empty condition ∅ of CFG."""
    return len(prompt_triples())


def scene_class(scene) -> int:
    """The prompt class of a one-object scene."""
    o = scene.objects[0]
    return prompt_class(o.color, o.shape, o.size)


def tiny_denoiser(latent_channels: int = 16, grid: int = 8, widths: Sequence[int] = (64, 128)):
    """``diffusers``' ``UNet2DModel`` for latents (C, grid, grid): two resolutions (attention at the coarse one), one
    ResNet block per level, a class embedding with one extra row for the empty condition."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=grid, in_channels=latent_channels, out_channels=latent_channels,
                       block_out_channels=tuple(widths), layers_per_block=1, norm_num_groups=16,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=n_classes() + 1)


def guided_noise(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans, 2022) in ``diffusers``' convention: ε̃ = ε_∅ + w · (ε_c − ε_∅). w = 1
    is the conditional model alone, w = 0 the unconditional one, w > 1 pushes past the condition. The reference of
    Exercise 7.9 (``diffusers.guiders.ClassifierFreeGuidance``)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


@dataclass
class LatentDiffusion:
    """A latent diffusion model: the denoiser, the per-channel mean and standard deviation of the training latents
    (the model works on standardised latents: zero mean, unit variance per channel) and the DDPM schedule it was
    trained with."""

    unet: torch.nn.Module
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    train_scheduler: object

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def standardise(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (N, C, h, w) → the model's space: (z − mean) / std per channel."""
        return (latents - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def destandardise(self, x: torch.Tensor) -> torch.Tensor:
        """The model's space → latents: x · std + mean per channel."""
        return x * self.std.view(1, -1, 1, 1).to(x.device) + self.mean.view(1, -1, 1, 1).to(x.device)


def latent_statistics(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of latents (N, C, h, w), rounded to 5 decimals so that a saved model restores them
    exactly."""
    return (latents.mean(dim=(0, 2, 3)).mul(1e5).round().div(1e5),
            latents.std(dim=(0, 2, 3)).mul(1e5).round().div(1e5))


def image_latents(vqvae, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The VQ-VAE's continuous latents of images (N, 3, H, W) in [-1, 1], before quantisation: (N, C, h, w)."""
    with torch.no_grad():
        return torch.cat([vqvae.encode(images[i:i + batch_size].to(vqvae.device)).latents.cpu()
                          for i in range(0, len(images), batch_size)])


def decode_latents(vqvae, latents: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Latents (N, C, h, w) → images in [-1, 1] through the VQ-VAE's decoder, which snaps each latent vector to its
    nearest codeword first (latent diffusion with a VQ-regularised autoencoder, Rombach et al. 2022)."""
    with torch.no_grad():
        return torch.cat([vqvae.decode(latents[i:i + batch_size].to(vqvae.device)).sample.clamp(-1, 1).cpu()
                          for i in range(0, len(latents), batch_size)])


def train_denoiser(model: LatentDiffusion, latents: torch.Tensor, labels: torch.Tensor, *, steps: int,
                   batch_size: int = 128, lr: float = 1e-3, drop_condition: float = 0.1, seed: int = 0,
                   desc: str = "denoiser", add_noise_fn: Callable | None = None) -> History:
    """DDPM training (ε-prediction, MSE) on standardised latents with condition dropout: each example's class is
    replaced by the empty class ∅ with probability ``drop_condition``, so that one network learns both ε(x_t, c) and
    ε(x_t, ∅) — what classifier-free guidance needs. ``add_noise_fn`` (default :func:`add_noise`) makes x_t."""
    torch.manual_seed(env.seed(seed))
    g = env.generator(seed)
    noise_fn = add_noise_fn or add_noise
    betas = model.train_scheduler.betas
    n_steps = len(betas)
    optimizer, schedule = adamw_one_cycle(model.unet.parameters(), lr, steps)
    null = n_classes()

    def batches():
        while True:
            i = torch.randint(len(latents), (batch_size,), generator=g)
            c = labels[i].masked_fill(torch.rand(batch_size, generator=g) < drop_condition, null)
            yield (model.standardise(latents[i]), c, torch.randint(n_steps, (batch_size,), generator=g),
                   torch.randn(batch_size, *latents.shape[1:], generator=g))

    def step(batch) -> float:
        model.unet.train()
        x0, c, t, eps = (b.to(model.device) for b in batch)
        pred = model.unet(noise_fn(x0, eps, t, betas.to(model.device)), t, class_labels=c).sample
        return update(F.mse_loss(pred, eps), optimizer, schedule, max_grad_norm=1.0)

    history = train(step, batches(), steps, desc=desc)
    model.unet.eval()
    return history


@torch.no_grad()
def ddim(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: Sequence[int], train_scheduler, *,
         steps: int = 25, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
         keep: Sequence[int] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The reverse process with ``diffusers``' ``DDIMScheduler`` (deterministic, ``steps`` steps, the schedule of
    ``train_scheduler``): start from Gaussian noise of ``shape``, and at each timestep t ask ``eps_fn(x, t)`` for the
    model's prediction — the noise ε, or v if the scheduler's ``prediction_type`` is "v_prediction" — and take one
    scheduler step. Any denoiser fits — a U-Net (:func:`sample`) or a transformer
    (:mod:`utils.transfusion`). Returns the final sample and, for each step index in ``keep``, the scheduler's
    prediction of the clean sample x̂₀ at that step (all in the denoiser's units, on the CPU)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(train_scheduler.config, clip_sample=False, set_alpha_to_one=False)
    sched.set_timesteps(steps)
    x = torch.randn(*shape, generator=generator).to(device)
    kept = {}
    for i, t in enumerate(sched.timesteps):
        out = sched.step(eps_fn(x, t), t, x)
        x = out.prev_sample
        if i in keep:
            kept[i] = out.pred_original_sample.cpu()
    return x.cpu(), kept


@torch.no_grad()
def sample(model: LatentDiffusion, labels: torch.Tensor, *, guidance: float = 1.0, steps: int = 25,
           generator: torch.Generator | None = None, guide: Callable = guided_noise, keep: Sequence[int] = ()
           ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Sample latents (in the VQ-VAE's units, ready for :func:`decode_latents`) for class ``labels`` (B,) with
    :func:`ddim` (``diffusers``' ``DDIMScheduler``, ``steps`` steps) and classifier-free guidance of weight
    ``guidance`` through ``guide(eps_cond, eps_uncond, guidance)``; one batched pass computes both estimates. Also
    returns, for each step index in ``keep``, the prediction of the clean latents x̂₀ at that step (for the
    reverse-process figure)."""
    b = len(labels)
    classes = torch.cat([labels, torch.full_like(labels, n_classes())]).to(model.device)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if guidance == 1.0:
            return model.unet(x, t, class_labels=classes[:b]).sample
        eps = model.unet(torch.cat([x, x]), t, class_labels=classes).sample
        return guide(eps[:b], eps[b:], guidance)

    x, kept = ddim(eps_fn, (b, *_latent_shape(model)), model.train_scheduler, steps=steps, generator=generator,
                   device=model.device, keep=keep)
    return model.destandardise(x), {i: model.destandardise(v) for i, v in kept.items()}


def _latent_shape(model: LatentDiffusion) -> tuple[int, int, int]:
    c = model.unet.config
    return (c.in_channels, c.sample_size, c.sample_size)


def save_ldm(model: LatentDiffusion, path: str | Path) -> None:
    """Save as ``path/unet`` (``UNet2DModel.save_pretrained``), ``path/scheduler`` (the DDPM schedule) and
    ``path/latent_statistics.json`` (the per-channel mean and std)."""
    path = Path(path)
    model.unet.save_pretrained(str(path / "unet"))
    model.train_scheduler.save_pretrained(str(path / "scheduler"))
    stats = {"mean": model.mean.tolist(), "std": model.std.tolist()}
    (path / "latent_statistics.json").write_text(json.dumps(stats) + "\n")


def load_ldm(path: str | Path = LDM_DIR) -> LatentDiffusion:
    """The zoo's latent diffusion model through ``from_pretrained`` (eval mode)."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path)
    unet = UNet2DModel.from_pretrained(str(path / "unet"), low_cpu_mem_usage=False).eval()
    sched = DDPMScheduler.from_pretrained(str(path / "scheduler"))
    stats = json.loads((path / "latent_statistics.json").read_text())
    return LatentDiffusion(unet, torch.tensor(stats["mean"]), torch.tensor(stats["std"]), sched)
