"""The course package of "Multimodal Learning, from Beginner to Advanced".

Small modules by topic; each says which phase introduces it:

* ``env``        seeds (``seed(n)``, shifted by ``COURSE_SEED`` for the sweep), device, fast/CI/offline flags,
                 CPU kernel levels, the environment check (Phase 0)
* ``world``      the shapes world: scenes, images, captions, QA, boxes (Phase 0, extended later)
* ``checks``     ``check("0.3", fn)`` self-checks for the exercises (Phase 0)
* ``train``      a readable, step-bounded training loop (Phase 0)
* ``plots``      loss curves, image grids, embedding scatters, attention maps (Phase 0)
* ``embeddings`` L2 normalisation, cosine similarity (Phase 0); modality gap, PCA, retrieval (Phase 1)
* ``attention``  scaled dot-product, multi-head and cross-attention (Phase 0)
* ``text``       BPE, a caption tokenizer, the next-token loss (Phase 0)
* ``lm``         a tiny GPT-2 caption model (Phase 0)
* ``clip``       a tiny open_clip CLIP on the shapes world: loading, training, retrieval, zero-shot (Phases 1, 3)
* ``contrastive`` InfoNCE, SigLIP, hard negatives, the CLIP-score filter (Phase 3)
* ``audio``      the spoken-words dataset in data/speech/ and waveform helpers (Phases 2-3)
* ``video``      moving-shape clips, frame averages and tubelet tokens (Phase 2)
* ``vision``     images as token sequences (Phase 0)
* ``colab``      installs what Colab lacks (Phase 0)
"""
from . import attention, embeddings, env, lm, plots, text, train, vision, world  # light, always loaded
from .checks import check, expect
from .env import (check_environment, generator, get_device, in_colab, is_ci, is_fast, is_offline, seed,
                  seed_everything, setup, steps)

__all__ = ["check", "expect", "check_environment", "generator", "get_device", "in_colab", "is_ci", "is_fast",
           "is_offline", "seed", "seed_everything", "setup", "steps"]
__version__ = "0.1.0"
