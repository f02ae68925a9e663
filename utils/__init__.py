"""The course package of "Multimodal Learning, from Beginner to Advanced".

Small modules by topic, imports going one way — world → encoders and models → fusion → VLM → checks and
notebooks — never back (tests/test_imports.py fails on a cycle or on a module importing another's
``_private`` name). Each says which phase introduces it:

* ``env``        seeds (``seed(n)``, shifted by ``COURSE_SEED`` for the sweep), device, fast/CI/offline flags,
                 CPU kernel levels, the environment check (Phase 0)
* ``world``      the shapes world, a package with one module per part: scenes, rendering, captions and QA,
                 depth, rendered text, the dataset, display (Phase 0), video clips and spoken words (Phase 2),
                 spoken phrases and accented speech (Phase 6), a gymnasium environment for a gripper (Phase 10);
                 later phases add their modalities there
* ``checks``     ``check("0.3", fn)`` self-checks and ``hint("0.3")`` hint ladders, one module per phase, shared
                 helpers (mistakes, shapes, property probes) in ``checks.oracles`` (Phase 0)
* ``progress``   ``python -m utils.progress``: a learner's notebooks run headless, ✓/✗/not attempted per exercise,
                 a JSON report for instructors (Phase 0)
* ``train``      a readable, step-bounded training loop, AdamW with a one-cycle schedule (Phase 0)
* ``plots``      loss curves, image grids, embedding scatters, attention maps, diagrams (Phase 0)
* ``embeddings`` L2 normalisation, cosine similarity (Phase 0); modality gap, PCA, retrieval, probes (Phase 1)
* ``attention``  scaled dot-product, multi-head and cross-attention (Phase 0)
* ``text``       BPE, a caption tokenizer, the next-token loss (Phase 0)
* ``lm``         a tiny GPT-2 caption model (Phase 0)
* ``metrics``    Recall@K (and in blocks), per-kind accuracy, box IoU, word error rate, results tables, PSNR,
                 POPE's yes/no numbers, bootstrap intervals and paired comparisons, corpus BLEU, CLIPScore, exact
                 match against mean log-probability (Phases 1, 4–9)
* ``vision``     images and video as token sequences (patches, tubelets), a tiny ViT, a small CNN (Phases 0, 2)
* ``audio``      the audio front end: batched waveforms, mel spectrograms, spectrogram tokens, a spectrogram CNN
                 (Phases 2-3), audio players (Phase 6)
* ``asr``        speech recognition: Whisper's features, a tiny WhisperForConditionalGeneration, greedy decoding,
                 an encoder-only CTC recogniser, training and evaluation (Phase 6)
* ``codec``      a neural audio codec (EncodecModel) with residual vector quantisation: encode, decode, bitrate,
                 spectral distance, training around vector-quantize-pytorch (Phase 6)
* ``clip``       a tiny open_clip CLIP on the shapes world: loading, training, retrieval, zero-shot, the
                 tower's grid tokens (Phases 1, 3, 4)
* ``contrastive`` InfoNCE, SigLIP, hard negatives, the CLIP-score filter (Phase 3)
* ``vqa``        the answer vocabulary, (image, question) examples, VQA accuracy (Phase 4; Phase 5 too)
* ``fusion``     five fusion patterns, Flamingo's gated cross-attention, a resampler, a Perceiver, a depth
                 adapter (Phase 4)
* ``vlm``        a LLaVA-style VLM from library parts: projectors, splicing, training, AnyRes, grounding
                 (Phase 5)
* ``speechlm``   a VLM that hears: the zoo recogniser's frozen encoder, frame stacking, a projector into the zoo
                 VLM, spoken-question training and typed/spoken comparisons (Phase 6)
* ``videolm``    video-language models: video questions, frame tokens and their pooling over time and space,
                 the zoo VLM reading frames at any token budget, a tubelet VLM (Phase 6)
* ``tts``        speech as tokens: a VALL-E-style GPT-2 over words and codec frames, the sampling distribution,
                 intelligibility (Phase 6)
* ``vq``         discrete image tokens: the vector quantiser, codebook perplexity and dead codes, the zoo VQ-VAE
                 (diffusers' VQModel), tokenize/detokenize, PSNR (Phase 7)
* ``unified``    a tiny Chameleon: one LlamaForCausalLM over words and image codes, per-modality losses, loss
                 weightings and task losses, drawing with image tokens only, captioning, the CLIP and pixel judges
                 of drawings; an image-token output for an LM that only read images (Phase 7)
* ``moe``        mixture of experts: top-k routing, Switch's load-balancing loss, transformers' Mixtral MoE block
                 dropped into a Llama layer, where each modality's tokens go (Phase 7)
* ``diffusion``  DDPM's forward process and its inverse, the noise schedule and SNR, diffusers' DDPMScheduler; a
                 class-conditional latent diffusion model (UNet2DModel), classifier-free guidance, DDIM sampling
                 with any denoiser (Phase 7)
* ``transfusion`` Transfusion-lite: one LlamaForCausalLM with next-token loss on words and a diffusion loss on
                 continuous image patches, Transfusion's attention mask, drawing and captioning (Phase 7)
* ``janus``      one image encoder for both jobs? the zoo CLIP's features and the VQ codewords each read by the
                 same VQA head and drawn back by the same decoder design (Janus's point, Phase 7)
* ``curation``   data curation stage by stage: exact and perceptual-hash deduplication (the average hash, as
                 imagehash computes it), Hamming distances, keep-the-first; the unsafe stand-in, burnt-in text, size
                 and aspect filters; CLIP scores; a filter's precision and recall; the whole pipeline; recaptions
                 read off the zoo VLM's answers and CHAIR against the scene graph (Phase 8)
* ``compute``    what training costs: the 6·N·D rule (+ attention) checked against FlopCounterMode, the parameters
                 that count, gradient accumulation (Phase 8)
* ``shards``     a dataset as Parquet shards (datasets' to_parquet) streamed back, split across ranks (Phase 8)
* ``distributed`` data-parallel training with torch.distributed: DistributedDataParallel under torchrun (gloo on
                 CPUs), its gradients checked against one process on the global batch, a safe launcher, a rank's
                 share as DistributedSampler deals it (Phase 8)
* ``dpo``        multimodal preference alignment: POPE-style hallucination probes, caption-derived
                 instruction data (the yes-bias), preference pairs from the scene graph, the DPO loss and a run
                 (Phase 8)
* ``evaluation`` benchmarks built from the world: POPE's random, popular and adversarial splits over the class
                 frequencies and co-occurrences of a reference set, a suite's per-example outcomes, shifts of the
                 world, prompt templates and answer rules, a judge in both orders, n-gram contamination search and
                 planted copies (Phase 9)
* ``harness``    the course's benchmarks as lmms-eval tasks over local files and a TinyVLM as an lmms-eval model,
                 run offline (Phase 9)
* ``vla``        vision-language-action models: actions as 256 bin tokens, expert demonstrations (with DART's
                 noise), imitation with action tokens or a regression head, closed-loop rollouts (Phase 10)
* ``efficient``  efficient inference: FastV's attention-ranked image tokens dropped inside the zoo VLM's LM, block
                 by block (Phase 10)
* ``interpret``  interpretability on the zoo VLM: scene pairs differing in one colour, the logit lens at the
                 answer position, activation patching of image tokens (Phase 10)
* ``safety``     adversarial images: PGD against the zoo CLIP's zero-shot head, bit-depth squeezing and an adaptive
                 attack through it (Phase 10)
* ``gui``        a GUI agent: the zoo VLM on the world's 64-px interface screens, clicks as two location tokens,
                 imitation of the scripted expert's clicks, click accuracy and closed-loop rollouts (Phase 10)
* ``watermark``  an invisible spread-spectrum watermark: a key's ±1 pattern, embedding, a high-pass residual, the
                 detector's z-score, JPEG, noise and shifts (Phase 10)
* ``colab``      installs what Colab lacks (Phase 0)
"""
from . import attention, embeddings, env, lm, plots, text, train, vision, world  # light, always loaded
from .checks import check, expect, hint
from .env import (
                  check_environment,
                  generator,
                  get_device,
                  in_colab,
                  is_ci,
                  is_fast,
                  is_offline,
                  seed,
                  seed_everything,
                  setup,
                  steps,
)

__all__ = [
    # the light submodules, always loaded
    "attention", "embeddings", "env", "lm", "plots", "text", "train", "vision", "world",
    # the names most notebooks use
    "check", "expect", "hint", "check_environment", "generator", "get_device", "in_colab", "is_ci", "is_fast",
    "is_offline", "seed", "seed_everything", "setup", "steps",
]
__version__ = "0.1.0"
