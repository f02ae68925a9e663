"""Transfusion-lite: one transformer that predicts the next word *and* denoises continuous image latents (Phase 7).

Transfusion (Zhou et al., Meta, 2024) keeps Chameleon's single transformer over one interleaved sequence but does not
turn images into discrete tokens. An image enters as continuous latents — here the 8 × 8 grid of 16-channel latents
of the zoo VQ-VAE *before* quantisation, standardised per channel (as in :mod:`utils.diffusion`) and cut into 2 × 2
patches, so an image is 16 positions of 64 numbers (:func:`as_sequence`) — each projected to the model width, with a
learned position-in-the-image and the embedding of the diffusion step added. The same transformer is trained with two
losses at once:

- the next-token cross-entropy on the words (as any language model),
- a diffusion loss on the image positions: the image is noised to a random DDPM step t and a linear head reads the
  target back from the image positions' hidden states (λ · MSE, λ = 5 as in the paper).

The target is v = √ᾱ_t ε − √(1 − ᾱ_t) x₀ (v-prediction, :func:`velocity`) rather than the paper's ε: at this size and
budget, with ε the caption made almost no difference to the loss — the noise is predictable from the noisy image
alone — and after 800 steps the drawings ignored their prompt (colour right 0.15–0.26; chance 0.17), while with v
they followed it (0.37–0.50). Measured with ``tools/make_models.py``'s recipe; see the zoo card.

Words attend causally; the positions of one image see each other in both directions (an image is not written left
to right, it is denoised all at once) — Transfusion's attention mask, :func:`transfusion_mask` (Exercise 7.10)::

    text → image:  <bos> a small red circle . <boi> [16 noisy patches] <eoi>      → words: CE, patches: MSE on v
    image → text:  <bos> <boi> [16 clean patches] <eoi> a small red circle . <eos> → words: CE

Drawing is DDIM over the image positions (:func:`utils.diffusion.ddim`), with classifier-free guidance from captions
dropped in training; captioning is greedy decoding after a clean image. The backbone is ``transformers``'
``LlamaForCausalLM`` (the tiny Chameleon's, fed ``inputs_embeds`` and a custom 4-D mask); the time embedding is
``diffusers``' sinusoidal ``Timesteps`` + ``TimestepEmbedding``. The zoo's copy is ``data/models/
tiny-transfusion-shapes``, trained on the Chameleon's budget by ``make models MODEL=tiny-transfusion-shapes``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import env
from .train import History, adamw_one_cycle, train, update
from .unified import Vocab, next_word, pad_batch

ROOT = Path(__file__).resolve().parent.parent
TRANSFUSION_DIR = ROOT / "data" / "models" / "tiny-transfusion-shapes"
DIFFUSION_WEIGHT = 5.0  # λ of the paper: loss = CE(words) + λ · MSE (here of v, :func:`velocity`)
PATCH = 2  # latents per patch side: each position of an image is a 2 × 2 block of latent vectors (the paper's patch)
N_IMAGE = 16  # positions per image: the 8 × 8 latents in 2 × 2 patches


def transfusion_mask(segments: torch.Tensor) -> torch.Tensor:
    """Transfusion's attention mask. ``segments`` (B, T) labels each position: 0 for a text token (specials
    included), k ≥ 1 for a position inside the sequence's k-th image. Returns a boolean (B, T, T) tensor whose entry
    [b, i, j] says whether position i may attend to position j: always when j ≤ i (causal, as in any language model),
    and also when i and j lie in the same image (bidirectional inside an image). Text never sees a later image, and
    an image never sees a later one. The reference of Exercise 7.10."""
    t = segments.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    same_image = (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] > 0)
    return causal | same_image


class Transfusion(nn.Module):
    """A causal language model (``LlamaForCausalLM``) with small additions for images: ``patch_in`` (latent patch →
    model width), ``image_pos`` (where the patch sits in its image), the embedding of the diffusion step t, and
    ``patch_out`` (hidden state → predicted v). ``mask_fn`` builds the attention mask from the segment labels
    (default :func:`transfusion_mask`)."""

    def __init__(self, lm, latent_channels: int = 16 * PATCH * PATCH,
                 mask_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps

        super().__init__()
        width = lm.config.hidden_size
        self.lm = lm
        self.latent_channels = latent_channels
        self.patch_in = nn.Linear(latent_channels, width)
        self.patch_out = nn.Linear(width, latent_channels)
        self.image_pos = nn.Parameter(torch.randn(N_IMAGE, width) * 0.02)  # where a patch sits in its image
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, width)
        self.mask_fn = mask_fn or transfusion_mask

    @property
    def device(self) -> torch.device:
        return self.patch_in.weight.device

    def forward(self, ids: torch.Tensor, latents: torch.Tensor, segments: torch.Tensor, t: torch.Tensor,
                attention: torch.Tensor, positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) token ids (anything at image positions), latent patches (B, T, C) (zeros at text positions),
        segments (B, T) as in :func:`transfusion_mask`, t (B,) the diffusion step of each sequence's image(s),
        attention (B, T) 1 for real positions, 0 for padding, positions (B, T) the position ids (default 0 … T − 1:
        right padding).
        Returns word logits (B, T, V) and the image head's prediction (v, :func:`velocity`) (B, T, C)."""
        image = (segments > 0)[..., None]
        words = self.lm.get_input_embeddings()(ids)
        time = self.time_embed(self.time_proj(t.flatten()).to(words.dtype))[:, None]
        index = ((segments > 0).cumsum(1) - 1).clamp(min=0) % N_IMAGE  # each position's place in its image
        x = torch.where(image, self.patch_in(latents) + self.image_pos[index] + time, words)
        allowed = self.mask_fn(segments) & attention.bool()[:, None, :]
        allowed |= torch.eye(ids.shape[1], dtype=torch.bool, device=ids.device)  # padded rows attend to themselves
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~allowed, torch.finfo(x.dtype).min)
        hidden = self.lm.model(inputs_embeds=x, attention_mask=bias[:, None], position_ids=positions).last_hidden_state
        return self.lm.lm_head(hidden), self.patch_out(hidden)


def create_transfusion(vocab: Vocab, latent_channels: int = 16 * PATCH * PATCH, **config) -> Transfusion:
    """A new, untrained Transfusion over ``vocab`` (words and specials only: images are not tokens) with the tiny
    Chameleon's backbone (:func:`utils.unified.tiny_unified_config`; keyword arguments hidden, layers, heads,
    positions). Seed torch first for a reproducible start."""
    from transformers import LlamaForCausalLM

    from .unified import tiny_unified_config

    return Transfusion(LlamaForCausalLM(tiny_unified_config(vocab, **config)), latent_channels)


@dataclass
class TransfusionData:
    """Training material: standardised image latents in patches (N, N_IMAGE, 4·C), row by row, and per scene one
    caption per paraphrase template (word ids)."""

    latents: torch.Tensor
    captions: list[list[list[int]]]

    def __len__(self) -> int:
        return len(self.latents)


def as_sequence(latents: torch.Tensor) -> torch.Tensor:
    """Latents (N, C, h, w) → patches (N, (h/2)·(w/2), 4·C): each 2 × 2 block of latent vectors concatenated into one
    position (``F.pixel_unshuffle``), row by row — Transfusion's patchification of a latent image."""
    return F.pixel_unshuffle(latents, PATCH).flatten(2).transpose(1, 2)


def standardised(latents: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """VQ-VAE latents (N, C, h, w) → what the model reads: standardised per channel, in 2 × 2 patches
    (N, h·w/4, 4·C)."""
    return as_sequence((latents - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))


def image_latents(vqvae, images_uint8) -> torch.Tensor:
    """The VQ-VAE's continuous latents (N, C, h, w) of uint8 images (N, H, W, 3)."""
    from .diffusion import image_latents as latents_of
    from .vq import to_model_range

    return latents_of(vqvae, to_model_range(images_uint8))


def decode(vqvae, sequence: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Standardised latent patches (N, h·w/4, 4·C) → images in [-1, 1] through the VQ-VAE's decoder (which snaps each
    latent vector to its nearest codeword, :func:`utils.diffusion.decode_latents`)."""
    from .diffusion import decode_latents

    return decode_latents(vqvae, as_grid(sequence) * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1))


def as_grid(sequence: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`as_sequence`: patches (N, n², 4·C) → latents (N, C, 2n, 2n)."""
    n, hw, c = sequence.shape
    side = int(round(hw ** 0.5))
    return F.pixel_shuffle(sequence.transpose(1, 2).reshape(n, c, side, side), PATCH)


@dataclass
class Batch:
    """One padded batch: what :meth:`Transfusion.forward` reads, the word labels (-100 where no word is predicted)
    and the noise added to each sequence's image."""

    ids: torch.Tensor
    latents: torch.Tensor
    segments: torch.Tensor
    t: torch.Tensor
    attention: torch.Tensor
    labels: torch.Tensor
    noise: torch.Tensor  # (B, N_IMAGE, 4·C)
    target: torch.Tensor  # what the image head must predict, (B, N_IMAGE, 4·C)
    to_image: torch.Tensor  # (B,) True for text → image sequences (whose image is noised)

    def to(self, device) -> "Batch":
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def _layout(words: Sequence[int], to_image: bool, vocab: Vocab, n_image: int) -> tuple[list[int], int]:
    """Token ids of one sequence with ``n_image`` placeholders (pad) for the image, and where the image starts."""
    if to_image:
        ids = [vocab.bos, *words, vocab.boi]
        return ids + [vocab.pad] * n_image + [vocab.eoi], len(ids)
    return [vocab.bos, vocab.boi] + [vocab.pad] * n_image + [vocab.eoi, *words, vocab.eos], 2


def make_batch(data: TransfusionData, vocab: Vocab, index: torch.Tensor, to_image: torch.Tensor,
               template: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, betas: torch.Tensor,
               drop: torch.Tensor | None = None) -> Batch:
    """A batch of mixed sequences: example i is text → image where ``to_image[i]`` (its image noised to step
    ``t[i]`` with ``noise[i]``; its caption left out where ``drop[i]``, for classifier-free guidance), else image →
    text (its image clean, t = 0), with caption template ``template[i]``. The word labels are the text tokens after
    the first, minus the predictable ``<eoi>``."""
    from .diffusion import add_noise

    n_image = data.latents.shape[1]
    drop = torch.zeros_like(to_image) if drop is None else drop
    layouts = [_layout([] if dropped else data.captions[i][tpl], t2i, vocab, n_image)
               for i, t2i, tpl, dropped in zip(index.tolist(), to_image.tolist(), template.tolist(), drop.tolist())]
    ids, _ = pad_batch([ids for ids, _ in layouts], vocab.pad)
    length = ids.shape[1]
    segments = torch.zeros_like(ids)
    attention = torch.zeros_like(ids)
    latents = torch.zeros(len(ids), length, data.latents.shape[2])
    clean = data.latents[index]
    t = torch.where(to_image, t, torch.zeros_like(t))
    noisy = torch.where(to_image[:, None, None], add_noise(clean, noise, t, betas), clean)
    target = velocity(clean, noise, t, betas)
    labels = torch.full_like(ids, -100)
    for b, (seq, start) in enumerate(layouts):
        attention[b, :len(seq)] = 1
        segments[b, start:start + n_image] = 1
        latents[b, start:start + n_image] = noisy[b]
        text = torch.tensor(seq[1:])
        keep = (segments[b, 1:len(seq)] == 0) & (text != vocab.eoi)
        labels[b, 1:len(seq)] = text.masked_fill(~keep, -100)
    return Batch(ids, latents, segments, t, attention, labels, noise, target, to_image)


def velocity(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The v-prediction target (Salimans & Ho, 2022) of clean x0 (B, …) noised with ``noise`` to steps t (B,):
    v = √ᾱ_t · ε − √(1 − ᾱ_t) · x₀ (``DDPMScheduler.get_velocity``). Near t = 0 it is the noise, near the end of the
    schedule minus the clean image — so, unlike ε, it keeps asking for the picture where only the caption can say
    what it is."""
    from .diffusion import alphas_cumprod

    abar = alphas_cumprod(betas).to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0


def losses(model: Transfusion, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(word loss, diffusion loss) of a batch: the next-token cross-entropy over the word labels, and the MSE between
    the true and the predicted v (:func:`velocity`) over the positions of the noised images (text → image sequences
    only)."""
    logits, pred = model(batch.ids, batch.latents, batch.segments, batch.t, batch.attention)
    text = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1),
                           ignore_index=-100)
    noised = (batch.segments > 0) & batch.to_image[:, None]
    if not bool(noised.any()):
        return text, pred.sum() * 0.0
    target = torch.zeros_like(pred)
    target[noised] = batch.target[batch.to_image].reshape(-1, pred.shape[-1])
    return text, F.mse_loss(pred[noised], target[noised])


def train_transfusion(model: Transfusion, data: TransfusionData, vocab: Vocab, *, steps: int, batch_size: int = 64,
                      lr: float = 2e-3, text_to_image_share: float = 0.75, drop_condition: float = 0.1,
                      diffusion_weight: float = DIFFUSION_WEIGHT, seed: int = 0, desc: str = "Transfusion",
                      on_step=None) -> tuple[History, dict[str, list[float]]]:
    """Train on mixed batches as the tiny Chameleon is trained (:func:`utils.unified.train_unified`: the same share
    of text → image sequences, AdamW, one-cycle schedule), with the loss word CE + ``diffusion_weight`` × MSE(v) and
    the caption of a text → image sequence dropped with probability ``drop_condition``. Returns the history of the
    total loss and the curves {"text": [...], "diffusion": [...]} (one value per step)."""
    from .diffusion import T_STEPS, linear_betas

    torch.manual_seed(env.seed(seed))
    g = env.generator(seed)
    betas = linear_betas()
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps)
    n_templates = len(data.captions[0])
    curves: dict[str, list[float]] = {"text": [], "diffusion": []}

    def batches():
        while True:
            to_image = torch.rand(batch_size, generator=g) < text_to_image_share
            yield make_batch(data, vocab, torch.randint(len(data), (batch_size,), generator=g), to_image,
                             torch.randint(n_templates, (batch_size,), generator=g),
                             torch.randint(T_STEPS, (batch_size,), generator=g),
                             torch.randn(batch_size, *data.latents.shape[1:], generator=g), betas,
                             to_image & (torch.rand(batch_size, generator=g) < drop_condition))

    def step(batch: Batch) -> float:
        model.train()
        text, diffusion = losses(model, batch.to(model.device))
        curves["text"].append(text.item())
        curves["diffusion"].append(diffusion.item())
        return update(text + diffusion_weight * diffusion, optimizer, schedule, max_grad_norm=1.0)

    history = train(step, batches(), steps, desc=desc, on_step=on_step)
    model.eval()
    return history, curves


def _prompt_batch(prompts: Sequence[Sequence[int]], vocab: Vocab, n_image: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded <bos> words <boi> [image] for drawing: ids, segments, attention and position ids, so that every
    image sits at the end of its row."""
    length = max(len(p) for p in prompts) + 2 + n_image
    ids = torch.full((len(prompts), length), vocab.pad)
    attention = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        seq = [vocab.bos, *p, vocab.boi]
        ids[b, length - n_image - len(seq):length - n_image] = torch.tensor(seq, dtype=torch.long)
        attention[b, length - n_image - len(seq):] = 1
    segments = torch.zeros_like(ids)
    segments[:, -n_image:] = 1
    return ids, segments, attention, (attention.cumsum(1) - 1).clamp(min=0)


@torch.no_grad()
def draw(model: Transfusion, vocab: Vocab, prompts: Sequence[Sequence[int]], *, guidance: float = 3.0,
         steps: int = 20, generator: torch.Generator | None = None, keep: Sequence[int] = ()
         ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Standardised latent patches (B, N_IMAGE, 4·C) for caption word ids ``prompts``: DDIM over the image positions
    (:func:`utils.diffusion.ddim`, ``steps`` steps), the model's v at each step read from the whole sequence <bos> words
    <boi> [image], guided by the same sequence without its words (``guidance`` = w of
    :func:`utils.diffusion.guided_noise`; 1 is no guidance). Also the x̂₀ of the steps in ``keep``."""
    from .diffusion import ddim, guided_noise, scheduler

    n_image, channels = N_IMAGE, model.latent_channels
    conditional = _prompt_batch(prompts, vocab, n_image)
    empty = _prompt_batch([[]] * len(prompts), vocab, n_image)
    device = model.device

    def eps_of(batch, x, t):
        ids, segments, attention, positions = (v.to(device) for v in batch)
        latents = torch.zeros(*ids.shape, channels, device=device)
        latents[:, -n_image:] = x
        model_t = torch.full((len(ids),), int(t), device=device)
        return model(ids, latents, segments, model_t, attention, positions)[1][:, -n_image:]

    def eps_fn(x, t):
        eps = eps_of(conditional, x, t)
        return eps if guidance == 1.0 else guided_noise(eps, eps_of(empty, x, t), guidance)

    return ddim(eps_fn, (len(prompts), n_image, channels), scheduler(prediction_type="v_prediction"), steps=steps,
                generator=generator,
                device=device, keep=keep)


@torch.no_grad()
def describe(model: Transfusion, vocab: Vocab, latents: torch.Tensor, max_words: int = 12) -> list[list[int]]:
    """Greedy captions (word ids) of standardised latent patches (B, N_IMAGE, 4·C): the model reads <bos> <boi>
    [clean image] <eoi> and writes words until <eos> (no key-value cache: the sequence is short)."""
    b, n_image, _ = latents.shape
    device = model.device
    ids = torch.cat([torch.tensor([vocab.bos, vocab.boi]).expand(b, 2), torch.full((b, n_image), vocab.pad),
                     torch.full((b, 1), vocab.eoi)], 1)
    words: list[list[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(max_words + 1):
        segments = torch.zeros_like(ids)
        segments[:, 2:2 + n_image] = 1
        padded = torch.zeros(*ids.shape, latents.shape[2])
        padded[:, 2:2 + n_image] = latents
        logits, _ = model(ids.to(device), padded.to(device), segments.to(device), torch.zeros(b, dtype=torch.long,
                          device=device), torch.ones_like(ids).to(device))
        token = next_word(logits[:, -1], vocab, words, done)
        if bool(done.all()):
            break
        ids = torch.cat([ids, token[:, None]], 1)
    return words


def save_transfusion(model: Transfusion, tokenizer, statistics: tuple[torch.Tensor, torch.Tensor], path: str | Path
                     ) -> None:
    """Save as ``path/`` (the backbone: ``LlamaForCausalLM.save_pretrained`` and the tokenizer),
    ``path/image_heads.pt`` (patch_in, patch_out, time embedding) and ``path/latent_statistics.json``."""
    path = Path(path)
    model.lm.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    heads = {k: v for k, v in model.state_dict().items() if not k.startswith("lm.")}
    torch.save({"latent_channels": model.latent_channels, "state": heads}, path / "image_heads.pt")
    mean, std = statistics
    (path / "latent_statistics.json").write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}) + "\n")


def load_transfusion(path: str | Path = TRANSFUSION_DIR):
    """(model in eval mode, tokenizer, Vocab, (latent mean, latent std)) of a saved Transfusion: the backbone and
    tokenizer through ``from_pretrained``, the image heads from ``image_heads.pt``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    heads = torch.load(path / "image_heads.pt", weights_only=True)
    model = Transfusion(LlamaForCausalLM.from_pretrained(str(path)), heads["latent_channels"])
    model.load_state_dict({**{f"lm.{k}": v for k, v in model.lm.state_dict().items()}, **heads["state"]})
    stats = json.loads((path / "latent_statistics.json").read_text())
    return model.eval(), tokenizer, Vocab.of(tokenizer), (torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
