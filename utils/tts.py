"""Speech as tokens (Phase 6): a VALL-E-style text-to-speech model over the zoo codec's tokens.

The codec (:mod:`utils.codec`) turns 20 ms of speech into Q integers, one per codebook. This model is a
decoder-only transformer (``transformers``' ``GPT2Model``) that reads a voice token and the words, then writes
codec frames one after another, each frame's Q codes predicted at once by Q heads (the "parallel" pattern of
MusicGen; VALL-E predicts the first codebook autoregressively and the rest in a second pass), until a head
says the utterance has ended. The codec's decoder turns the frames into a waveform, and the zoo recogniser judges
it — the way TTS papers report intelligibility (the WER of an ASR model on the synthesised speech)::

    phrases = load_phrases("train")                            # utils.world.speech
    data = tts_examples(codec, phrases.transcripts, phrases.voices, phrases.waveforms, n_codebooks=2)
    model = CodecTTS(data.vocabulary, data.voices, n_codebooks=2)
    train_tts(model, data, steps=3000)
    codes, frames = model.generate(["a small red circle"], ["us"])   # (1, 2, F), (1,)
    audio = utils.codec.decompress(codec, codes, [int(f) * 320 for f in frames])

Status: the model and its training run; the Phase 6 notebook section and its zoo checkpoint are still to come (a
first run, 1,500 steps on the training phrases and words with 2 codebooks, took 17 minutes on 2 cores and wrote
sentences of the right shape whose content words were mostly wrong: WER 0.67 by the zoo recogniser).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model

from . import env
from .train import History, adamw_one_cycle, infinite_batches, train, update

PAD = "<pad>"


@dataclass
class TTSData:
    """Aligned training examples: word ids (N, L) padded with 0, their mask, voice ids (N,), codec codes
    (N, Q, F) padded, frame counts (N,), and the vocabularies they index."""

    words: torch.Tensor
    word_mask: torch.Tensor
    voices_ids: torch.Tensor
    codes: torch.Tensor
    frames: torch.Tensor
    vocabulary: list[str]
    voices: list[str]

    def __len__(self) -> int:
        return len(self.words)


def encode_words(texts: Sequence[str], vocabulary: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids (N, L) right-padded with 0 (``<pad>``) and the mask; every word must be in ``vocabulary``."""
    index = {w: i for i, w in enumerate(vocabulary)}
    rows = [[index[w] for w in t.split()] for t in texts]
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, (ids != 0).long()


def tts_examples(codec, texts: Sequence[str], voices: Sequence[str], waveforms: Sequence[torch.Tensor],
                 n_codebooks: int, vocabulary: Sequence[str] | None = None,
                 voice_names: Sequence[str] | None = None) -> TTSData:
    """Codec codes of ``waveforms`` (the first ``n_codebooks``) with their transcripts and voices."""
    from .codec import compress

    vocabulary = list(vocabulary or [PAD] + sorted({w for t in texts for w in t.split()}))
    voice_names = list(voice_names or sorted(set(voices)))
    words, mask = encode_words(texts, vocabulary)
    hop = math.prod(codec.config.upsampling_ratios)  # samples per codec frame (320: 50 frames a second at 16 kHz)
    codes = compress(codec, list(waveforms), n_codebooks)  # (N, Q, frames of the longest clip)
    frames = torch.tensor([-(-len(w) // hop) for w in waveforms])
    return TTSData(words, mask, torch.tensor([voice_names.index(v) for v in voices]), codes, frames, vocabulary,
                   voice_names)


class CodecTTS(nn.Module):
    """[voice] [words …] [begin-audio] [frame 1] … [frame F]: a GPT-2 over text and codec frames.

    A frame's input is the sum of one embedding per codebook; from each position's hidden state, Q heads predict
    the next frame's codes, head 0 with one extra class that ends the utterance."""

    def __init__(self, vocabulary: Sequence[str], voices: Sequence[str], n_codebooks: int = 2,
                 codebook_size: int = 8, width: int = 128, layers: int = 4, heads: int = 4,
                 max_positions: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.vocabulary, self.voices = list(vocabulary), list(voices)
        self.n_codebooks, self.codebook_size = n_codebooks, codebook_size
        config = GPT2Config(vocab_size=1, bos_token_id=0, eos_token_id=0, n_positions=max_positions, n_embd=width,
                            n_layer=layers, n_head=heads,
                            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
        self.backbone = GPT2Model(config)
        self.word_embed = nn.Embedding(len(self.vocabulary), width)
        self.voice_embed = nn.Embedding(len(self.voices), width)
        self.begin = nn.Parameter(torch.randn(width) * 0.02)
        self.code_embed = nn.ModuleList(nn.Embedding(codebook_size, width) for _ in range(n_codebooks))
        self.heads = nn.ModuleList(nn.Linear(width, codebook_size + (q == 0)) for q in range(n_codebooks))

    def frame_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, Q, F) codes -> (B, F, D): the sum of each codebook's embedding."""
        return sum(embed(codes[:, q]) for q, embed in enumerate(self.code_embed))

    def hidden(self, words: torch.Tensor, word_mask: torch.Tensor, voices: torch.Tensor, codes: torch.Tensor,
               frame_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states at [begin-audio] and every frame: (B, F + 1, D), the state that predicts frame f + 1."""
        b = len(words)
        x = torch.cat([self.voice_embed(voices)[:, None], self.word_embed(words),
                       self.begin.expand(b, 1, -1), self.frame_embeddings(codes)], 1)
        ones = torch.ones(b, 1, dtype=torch.long, device=words.device)
        mask = torch.cat([ones, word_mask, ones, frame_mask], 1)
        h = self.backbone(inputs_embeds=x, attention_mask=mask).last_hidden_state
        return h[:, words.shape[1] + 1:]

    def loss(self, words, word_mask, voices, codes, frames) -> torch.Tensor:
        """Cross-entropy of every frame's codes and of the end, averaged over codebooks and real frames."""
        b, q, f = codes.shape
        steps = torch.arange(f + 1, device=codes.device)[None]
        frame_mask = (steps[:, :f] < frames[:, None]).long()
        h = self.hidden(words, word_mask, voices, codes, frame_mask)                 # (B, F + 1, D)
        targets = F.pad(codes, (0, 1), value=0)                                        # (B, Q, F + 1)
        real = steps < frames[:, None]
        total = 0.0
        for k, head in enumerate(self.heads):
            t = targets[:, k].masked_fill(~real, -100)
            if k == 0:  # the end class sits right after the last frame
                t = t.masked_fill(steps == frames[:, None], self.codebook_size)
            total = total + F.cross_entropy(head(h).transpose(1, 2), t, ignore_index=-100)
        return total / q

    @torch.no_grad()
    def generate(self, texts: Sequence[str], voices: Sequence[str], max_frames: int = 200, temperature: float = 0.8,
                 top_k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Codec codes (B, Q, F) and frame counts (B,) for each (text, voice), frame by frame: head 0 sampled
        (temperature, top-k) until it picks the end, the other heads greedy."""
        self.eval()
        device = self.begin.device
        words, mask = encode_words(texts, self.vocabulary)
        words, mask = words.to(device), mask.to(device)
        voice_ids = torch.tensor([self.voices.index(v) for v in voices], device=device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        b = len(texts)
        codes = torch.zeros(b, self.n_codebooks, 0, dtype=torch.long, device=device)
        frames = torch.full((b,), max_frames, dtype=torch.long)
        for f in range(max_frames):
            h = self.hidden(words, mask, voice_ids, codes, torch.ones(b, f, dtype=torch.long, device=device))[:, -1]
            logits = self.heads[0](h) / temperature
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            probs = logits.masked_fill(logits < kth, float("-inf")).softmax(-1).cpu()
            first = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
            ended = (first == self.codebook_size) & (frames == max_frames).to(device)
            frames[ended.cpu()] = f
            if (frames < max_frames).all():
                break
            rest = [head(h).argmax(-1) for head in self.heads[1:]]
            frame = torch.stack([first.clamp(max=self.codebook_size - 1), *rest], 1)
            codes = torch.cat([codes, frame[..., None]], 2)
        return codes.cpu(), frames


def train_tts(model: CodecTTS, data: TTSData, *, steps: int, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
              desc: str = "codec TTS", report: bool = True) -> History:
    """Train ``model`` on ``data`` (AdamW, one-cycle, gradients clipped at 1). Returns the loss History."""
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps)
    device = model.begin.device

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        words, mask, voices, codes, frames = (t.to(device) for t in batch)
        width, longest = int(mask.sum(1).max()), int(frames.max())
        model.train()
        loss = model.loss(words[:, :width], mask[:, :width], voices, codes[..., :longest], frames)
        return update(loss, optimizer, schedule, max_grad_norm=1.0, params=model.parameters())

    tensors = (data.words, data.word_mask, data.voices_ids, data.codes, data.frames)
    return train(step, infinite_batches(tensors, batch_size, env.generator(seed)), steps, desc=desc, report=report)
