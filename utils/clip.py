"""CLIP on the shapes world with open_clip: config, data, training, retrieval and zero-shot metrics.

Introduced for the model zoo (``data/models/tiny-clip-shapes``, trained by ``make models``); Phases 1, 3,
4, 5, 8, 9 and 10 use it. The checkpoint loads with open_clip's own call, exactly like a hub model:

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:data/models/tiny-clip-shapes")
    tokenizer = open_clip.get_tokenizer("local-dir:data/models/tiny-clip-shapes")

and ``open_clip.create_model_and_transforms("ViT-B-32", pretrained="openai")`` when online.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import env
from .env import REPO_ROOT
from .metrics import recall_in_blocks
from .train import History, adamw_one_cycle, train, update
from .world import World, caption, class_names

ZOO_CLIP = REPO_ROOT / "data" / "models" / "tiny-clip-shapes"

# CLIP's own image normalisation (open_clip.OPENAI_DATASET_MEAN / _STD), so the zoo model takes the same
# preprocessing as a real CLIP.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Prompt templates for zero-shot classification: the world's own caption styles (prompt ensembling).
ZERO_SHOT_TEMPLATES = ("a {size} {name}.", "there is a {size} {name}.", "one object: a {size} {name}.",
                       "an image showing a {size} {name}.")


def tiny_clip_config(vocab_size: int, pad_id: int, eos_id: int, image_size: int = 32, context_length: int = 24,
                     width: int = 64, layers: int = 2, resnet_width: int = 16, embed_dim: int = 64) -> dict:
    """An open_clip model config for a tiny CLIP.

    Image tower: open_clip's ModifiedResNet — the design of CLIP's RN50 (three-conv stem, bottleneck blocks,
    attention pooling) with one block per stage and a quarter of its width. A ViT of the same compute,
    trained from scratch on 32-px images, learned colours but not shapes (shape accuracy at chance), which
    is why the zoo model uses the convolutional tower. Text tower: a causal transformer pooled at <eos>,
    reading the course's word-level tokenizer (``hf_tokenizer_name``), which open_clip loads from the
    checkpoint folder itself when the model is opened with ``local-dir:``.
    """
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": [1, 1, 1, 1], "width": resnet_width},
        "text_cfg": {"context_length": context_length, "vocab_size": vocab_size, "width": width,
                     "heads": width // 32, "layers": layers, "mlp_ratio": 2.0,
                     "hf_tokenizer_name": "shapes-world-words", "pool_type": "eos", "eos_id": eos_id,
                     "pad_id": pad_id},
    }


def zoo_config() -> dict:
    """The zoo CLIP's open_clip model config (architecture only), to build fresh copies of it."""
    import json

    return json.loads((ZOO_CLIP / "open_clip_config.json").read_text())["model_cfg"]


def create_tiny_clip(config: dict, **kwargs):
    """A freshly initialised open_clip CLIP from ``config``, carrying CLIP's preprocessing constants
    (what ``open_clip.create_model`` attaches, and what ``save_for_hf`` writes to the checkpoint's config).
    ``kwargs`` go to ``open_clip.CLIP``, e.g. ``init_logit_scale=math.log(10), init_logit_bias=-10`` for SigLIP."""
    import open_clip

    model = open_clip.CLIP(**config, **kwargs)
    model.visual.image_mean, model.visual.image_std = CLIP_MEAN, CLIP_STD
    return model


def fix_temperature(model, temperature: float):
    """Freeze the model's temperature at ``temperature`` (logit scale 1/τ, no longer learned); returns the model."""
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / temperature))
    model.logit_scale.requires_grad_(False)
    return model


def load_clip(name: str | None = None, pretrained: str | None = None, device: str | torch.device = "cpu"):
    """(model, preprocess, tokenizer) through open_clip's own loading calls, in eval mode.

    ``name=None`` opens the course's zoo CLIP (``local-dir:data/models/tiny-clip-shapes``, offline); with
    internet, ``load_clip("ViT-B-32", "openai")`` opens OpenAI's CLIP the same way. ``preprocess`` maps a
    PIL image to a normalised tensor at the model's resolution (see :func:`preprocess_images`).
    Introduced in Phase 1.
    """
    import open_clip

    name = name or f"local-dir:{ZOO_CLIP}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def preprocess_images(preprocess: Callable, images_uint8: np.ndarray) -> torch.Tensor:
    """Apply an open_clip ``preprocess`` transform to uint8 images (N, H, W, 3): a batch tensor (N, 3, S, S).

    For the zoo CLIP at the world's 32 px this equals :func:`normalize_images`; for a real CLIP it resizes
    to 224 px. Introduced in Phase 1.
    """
    from PIL import Image

    return torch.stack([preprocess(Image.fromarray(np.ascontiguousarray(im))) for im in images_uint8])


def normalize_images(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, 3) → float tensor (N, 3, H, W) normalised with CLIP's mean and std."""
    return normalize_float_images(
        torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255.0)


def normalize_float_images(images: torch.Tensor) -> torch.Tensor:
    """Float images (N, 3, H, W) in [0, 1] → normalised with CLIP's mean and std (what normalize_images does
    after converting uint8). Introduced in Phase 5 for AnyRes views."""
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean.to(images.device)) / std.to(images.device)


def training_pairs(world: World, n_multi: int, n_single: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Images and captions to train a CLIP on: ``n_multi`` train scenes (1-4 objects) plus ``n_single``
    single-object train scenes (which teach colour-shape binding). Each scene gets one caption, its
    template drawn at random from the world's five."""
    rng = np.random.default_rng([seed, 7])
    multi, scenes = world.arrays("train", n_multi)
    single, _, single_scenes = world.single_object_split("train", n_single)
    captions = [caption(s, rng) for s in list(scenes) + list(single_scenes)]
    return np.concatenate([multi, single]), captions


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised image embeddings of normalised image tensors."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([F.normalize(model.encode_image(images[i:i + batch_size].to(device)), dim=-1).cpu()
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def encode_texts(model, tokenizer: Callable, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """L2-normalised text embeddings (``tokenizer`` is open_clip's: texts → token-id tensor)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([F.normalize(model.encode_text(tokenizer(list(texts[i:i + batch_size])).to(device)), dim=-1).cpu()
                      for i in range(0, len(texts), batch_size)])


def class_embeddings(model, tokenizer: Callable, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot classifier weights with prompt ensembling: for each class name, embed every template
    filled with it (``"a photo of a {}."``), L2-normalise each, average, and L2-normalise the mean.
    Returns (n_classes, dim). Reference of Exercise 3.4."""
    return torch.stack([F.normalize(encode_texts(model, tokenizer, [t.format(name) for t in templates]).mean(0), dim=-1)
                        for name in names])


def size_templates(templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> list[str]:
    """The world's zero-shot templates with both sizes filled in, leaving ``{}`` for the class name."""
    return [t.format(name="{}", size=size) for t in templates for size in ("small", "large")]


def zero_shot_weights(model, tokenizer: Callable, names: Sequence[str],
                      templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> torch.Tensor:
    """One L2-normalised text embedding per class: the mean over prompt templates × sizes (prompt ensembling)."""
    return class_embeddings(model, tokenizer, names, size_templates(templates))


def train_clip(model, images: torch.Tensor, tokens: torch.Tensor, steps: int, batch_size: int = 256,
               lr: float = 2e-3, loss_fn: Callable | None = None, seed: int = 0,
               sampler: Callable[[torch.Generator], torch.Tensor] | None = None, desc: str = "tiny CLIP") -> History:
    """Contrastive training on (image, caption-token) pairs with open_clip's ClipLoss (or ``loss_fn``, called
    with the model's outputs: features, logit scale and, for SigLIP models, logit bias).

    Each step draws ``batch_size`` random pairs, or the indices that ``sampler(generator)`` returns (e.g.
    batches built around hard negatives, Phase 3).
    """
    from open_clip.loss import ClipLoss

    loss_fn = loss_fn or ClipLoss()
    device = next(model.parameters()).device
    generator = env.generator(seed)
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps, weight_decay=0.1)
    draw = sampler or (lambda g: torch.randint(0, len(images), (batch_size,), generator=g))

    def batches():
        while True:
            idx = draw(generator)
            yield images[idx].to(device), tokens[idx].to(device)

    def step(batch) -> float:
        model.train()
        return update(loss_fn(*model(*batch)), optimizer, schedule)

    return train(step, batches(), steps, desc=desc)


def _test_pairs(model, tokenizer: Callable, world: World, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of the first ``n`` test scenes and of one caption each (the card's fixed evaluation set)."""
    rng = np.random.default_rng([world.seed, 99])
    images, scenes = world.arrays("test", n)
    return (encode_images(model, normalize_images(images)),
            encode_texts(model, tokenizer, [caption(s, rng) for s in scenes]))


def retrieval_r1(model, tokenizer: Callable, world: World, n_blocks: int = 5) -> float:
    """Image→text Recall@1 among 100 test scenes and their captions, averaged over ``n_blocks`` blocks
    (the quick version of :func:`evaluate_clip`, for ablations)."""
    return recall_in_blocks(*_test_pairs(model, tokenizer, world, 100 * n_blocks))


def evaluate_clip(model, tokenizer: Callable, world: World, n_blocks: int = 10,
                  n_single: int = 2000) -> dict[str, float]:
    """The zoo CLIP's card metrics on held-out (test-split) scenes.

    * ``image_to_text_r1`` / ``text_to_image_r1``: Recall@1 among 100 test scenes and their captions,
      averaged over ``n_blocks`` disjoint blocks of 100;
    * ``zero_shot_seen`` / ``zero_shot_heldout``: colour×shape classification of single-object test scenes
      among all 24 classes with ensembled prompts, for compositions seen in training and for the
      compositions held out of it.
    """
    img, txt = _test_pairs(model, tokenizer, world, 100 * n_blocks)
    single, labels, _ = world.single_object_split("test", n_single)
    names = class_names()
    pred = (encode_images(model, normalize_images(single)) @ zero_shot_weights(model, tokenizer, names).T).argmax(-1)
    held = torch.tensor([tuple(names[i].split()) in world.holdout for i in labels])
    assert held.any() and not held.all(), "n_single too small: need seen and held-out test images"
    correct = pred == torch.from_numpy(labels)
    return {"image_to_text_r1": recall_in_blocks(img, txt), "text_to_image_r1": recall_in_blocks(txt, img),
            "zero_shot_seen": correct[~held].float().mean().item(),
            "zero_shot_heldout": correct[held].float().mean().item(), "heldout_test_images": int(held.sum())}


def clip_grid_tokens(visual: nn.Module, images: torch.Tensor, layer: str = "layer3", batch_size: int = 512,
                     grad: bool = False) -> torch.Tensor:
    """The zoo CLIP image tower's feature grid as a token sequence (B, H'*W', C): its "patch tokens".

    ``visual`` is open_clip's ModifiedResNet; we run its stem and residual stages up to ``layer`` and skip the
    attention pool that would squeeze the grid into one vector (LLaVA likewise reads a ViT's patch tokens from
    a layer before the pooled output). ``images`` are CLIP-normalised (B, 3, S, S); a 64-px input gives a 4x4
    grid at ``layer3``. Row-major order: token r*W'+c is grid cell (r, c). Introduced in Phase 4 (the tower's
    patch tokens for fusion and the VLM).
    """
    with torch.set_grad_enabled(grad):
        outs = []
        for i in range(0, len(images), batch_size):
            x = visual.stem(images[i:i + batch_size].to(next(visual.parameters()).device))
            for name in ("layer1", "layer2", "layer3", "layer4"):
                x = getattr(visual, name)(x)
                if name == layer:
                    break
            outs.append(x.flatten(2).transpose(1, 2))
        return torch.cat(outs)
