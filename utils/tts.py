"""Speech as tokens (Phase 6): a VALL-E-style text-to-speech model over the zoo codec's tokens.

The codec (:mod:`utils.codec`) turns 20 ms of speech into Q integers, one per codebook. This model is a
decoder-only transformer (``transformers``' ``GPT2Model``) that reads a voice token and the words, then writes
codec tokens step after step — each step 4 codec frames × Q codebooks, all predicted at once by one head each (the
"parallel" pattern of MusicGen; VALL-E predicts the first codebook autoregressively and the rest in a second pass).
Each step also reads a rough *hint* of the word it is saying (:func:`word_hints`) and the length is planned before
speaking, from the voice's rate (E2/F5-TTS plan it the same way). The codec's decoder turns the codes into a
waveform, and the zoo recogniser judges it — the way TTS papers report intelligibility (:func:`intelligibility`)::

    model = CodecTTS.from_pretrained()                         # the zoo's tiny-tts-speech
    audio = speak(model, codec.load_codec(), ["a small red circle"], ["us"], temperature=0.8, top_k=4)
    intelligibility(audio, ["a small red circle"])             # {"wer": …, "exact": …, "heard": [...]}

Training (``make models MODEL=tiny-tts-speech``): :func:`training_set`, :class:`CodecTTS`, :func:`train_tts`.
:func:`sampling_distribution` (temperature, then top-k, then a softmax) is the reference of Exercise 6.9.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model

from . import env
from .train import History, adamw_one_cycle, infinite_batches, train, update

PAD = "<pad>"
TTS_DIR = env.REPO_ROOT / "data" / "models" / "tiny-tts-speech"
EVAL_VOICES: tuple[str, ...] = ("us", "gb")  # training voices that speak the held-out sentences


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


def sampling_distribution(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """The distribution a sampler draws the next token from: ``logits`` (B, C) divided by ``temperature`` (> 0),
    all but the ``top_k`` largest of each row set to -inf (ties with the k-th kept, as ``transformers``'
    ``TopKLogitsWarper`` does; ``top_k`` ≥ C keeps every class), then a softmax over each row. (B, C), rows summing
    to 1. The reference of Exercise 6.9."""
    scaled = logits / temperature
    kth = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1).values[..., -1:]
    return scaled.masked_fill(scaled < kth, float("-inf")).softmax(-1)


def sample_top_k(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None = None,
                 distribution: Callable[[torch.Tensor, float, int], torch.Tensor] | None = None) -> torch.Tensor:
    """One class per row of ``logits`` (B, C), drawn with ``torch.multinomial`` from ``distribution`` (default
    :func:`sampling_distribution`; the notebook passes the learner's), on the CPU so that a seeded ``generator``
    gives the same draws everywhere; ``temperature=0`` is greedy."""
    if temperature == 0:
        return logits.argmax(-1).cpu()
    probs = (distribution or sampling_distribution)(logits.float().cpu(), temperature, top_k)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def word_hints(chars: torch.Tensor, n_steps: torch.Tensor, length: int) -> torch.Tensor:
    """Which word each audio step is probably saying, if every word lasts in proportion to its characters.

    ``chars`` (B, L): characters of each word + 1 (0 for padding); ``n_steps`` (B,): steps of each clip. Returns
    (B, ``length``) word positions 0..L-1 (steps past a clip's end get its last word). A rough alignment on purpose:
    the model reads it as a hint beside the whole text, and learns where speech departs from it."""
    ends = chars.cumsum(1).float() / chars.sum(1, keepdim=True).clamp(min=1)        # (B, L) where each word ends
    middle = (torch.arange(length, device=chars.device)[None] + 0.5) / n_steps[:, None].clamp(min=1)
    index = torch.searchsorted(ends.contiguous(), middle.contiguous().clamp(max=1 - 1e-6))
    last = (chars > 0).sum(1, keepdim=True) - 1
    return torch.minimum(index, last)


class CodecTTS(nn.Module):
    """[voice] [words …] [begin-audio] [step 1] … [step S]: a GPT-2 over text and codec frames.

    Each audio step holds ``group`` consecutive codec frames (``group=4``: 80 ms, 12.5 steps a second — Tacotron's
    "reduction factor"; fewer steps make training and generation faster). A step's input is the sum of one embedding
    per (frame, codebook) and of a *hint*: the word that step would say if every word took time in proportion to
    its letters (:func:`word_hints`), and that word's position. From each position's hidden state, ``group × Q``
    heads predict the next step's codes. The audio steps have their own positions, counted from ``text_slots``
    whatever the length of the text (VALL-E gives text and audio separate positions).

    The length is decided before speaking, as in E2/F5-TTS: steps = the voice's steps per character (fitted on the
    training clips, :meth:`fit_durations`) × the text's characters / ``speed``. Without the hint, the same model
    trained 1,500 steps on the world's 900 clips spoke fluent sentences of the wrong words, even the sentences it
    was trained on (the card of tiny-tts-speech has the numbers)."""

    def __init__(self, vocabulary: Sequence[str], voices: Sequence[str], n_codebooks: int = 2,
                 codebook_size: int = 8, group: int = 4, width: int = 128, layers: int = 4, heads: int = 4,
                 text_slots: int = 32, max_steps: int = 96, dropout: float = 0.1, hints: bool = True) -> None:
        super().__init__()
        self.config = {"vocabulary": list(vocabulary), "voices": list(voices), "n_codebooks": n_codebooks,
                       "codebook_size": codebook_size, "group": group, "width": width, "layers": layers,
                       "heads": heads, "text_slots": text_slots, "max_steps": max_steps, "dropout": dropout,
                       "hints": hints}
        self.vocabulary, self.voices = list(vocabulary), list(voices)
        self.n_codebooks, self.codebook_size, self.group = n_codebooks, codebook_size, group
        self.text_slots, self.hints = text_slots, hints
        config = GPT2Config(vocab_size=1, bos_token_id=0, eos_token_id=0, n_positions=text_slots + max_steps,
                            n_embd=width, n_layer=layers, n_head=heads,
                            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
        self.backbone = GPT2Model(config)
        self.word_embed = nn.Embedding(len(self.vocabulary), width)
        self.voice_embed = nn.Embedding(len(self.voices), width)
        self.hint_embed = nn.Embedding(len(self.vocabulary), width)
        self.hint_position = nn.Embedding(text_slots, width)
        self.begin = nn.Parameter(torch.randn(width) * 0.02)
        slots = group * n_codebooks  # one embedding and one head per (frame in the step, codebook)
        self.code_embed = nn.ModuleList(nn.Embedding(codebook_size, width) for _ in range(slots))
        self.heads = nn.ModuleList(nn.Linear(width, codebook_size) for _ in range(slots))
        self.register_buffer("chars", torch.tensor([0] + [len(w) + 1 for w in self.vocabulary[1:]]))
        self.register_buffer("steps_per_char", torch.ones(len(self.voices)))

    def save_pretrained(self, path: str | Path) -> None:
        """Write config.json (vocabulary, voices, sizes) and model.safetensors, like a ``transformers`` model."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.config, indent=1) + "\n")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, path / "model.safetensors")

    @classmethod
    def from_pretrained(cls, path: str | Path = TTS_DIR) -> CodecTTS:
        """The model :meth:`save_pretrained` wrote (default: the zoo's tiny-tts-speech), in eval mode."""
        from safetensors.torch import load_file

        path = Path(path)
        model = cls(**json.loads((path / "config.json").read_text()))
        model.load_state_dict(load_file(path / "model.safetensors"))
        return model.eval()

    def to_steps(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, Q, F) codes -> (B, S, group × Q), F padded with code 0 to a multiple of ``group``."""
        b, q, f = codes.shape
        codes = F.pad(codes, (0, -f % self.group))
        return codes.reshape(b, q, -1, self.group).permute(0, 2, 3, 1).reshape(b, -1, self.group * q)

    def from_steps(self, steps: torch.Tensor) -> torch.Tensor:
        """(B, S, group × Q) -> (B, Q, S × group): the inverse of :meth:`to_steps`."""
        b, s, _ = steps.shape
        return steps.reshape(b, s, self.group, self.n_codebooks).permute(0, 3, 1, 2).reshape(b, self.n_codebooks, -1)

    def fit_durations(self, data: TTSData) -> None:
        """Each voice's steps per character, least squares over ``data``'s clips."""
        chars = self.chars[data.words].sum(1).float()
        steps = (data.frames / self.group).float()
        for v in range(len(self.voices)):
            mine = data.voices_ids == v
            self.steps_per_char[v] = (chars[mine] * steps[mine]).sum() / (chars[mine] ** 2).sum().clamp(min=1)

    def planned_steps(self, words: torch.Tensor, voices: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
        """Steps to speak each text: the voice's steps per character × characters / ``speed`` (at least 1)."""
        chars = self.chars[words].sum(1).float()
        return (self.steps_per_char[voices] * chars / speed).round().long().clamp(min=1)

    def hidden(self, words: torch.Tensor, word_mask: torch.Tensor, voices: torch.Tensor, steps: torch.Tensor,
               n_steps: torch.Tensor) -> torch.Tensor:
        """Hidden states at [begin-audio] and every step: (B, S + 1, D), the state that predicts step s + 1.
        ``n_steps`` (B,): each clip's length in steps (its hints, and its mask)."""
        b, length, s = len(words), words.shape[1], steps.shape[1]
        audio = self.begin.new_zeros(b, s, self.begin.numel())
        for k, embed in enumerate(self.code_embed):
            audio = audio + embed(steps[..., k])
        begin = self.begin.expand(b, 1, -1)
        if self.hints:  # the hint of step s + 1 goes in at position s: the state that writes step s + 1 reads it
            where = word_hints(self.chars[words], n_steps, s + 1)
            hint = self.hint_embed(words.gather(1, where)) + self.hint_position(where)
            begin, audio = begin + hint[:, :1], audio + hint[:, 1:]
        x = torch.cat([self.voice_embed(voices)[:, None], self.word_embed(words), begin, audio], 1)
        device = words.device
        positions = torch.cat([torch.arange(length + 2, device=device),
                               self.text_slots + torch.arange(s, device=device)])
        ones = torch.ones(b, 1, dtype=torch.long, device=device)
        step_mask = (torch.arange(s, device=device)[None] < n_steps[:, None]).long()
        mask = torch.cat([ones, word_mask, ones, step_mask], 1)
        h = self.backbone(inputs_embeds=x, attention_mask=mask, position_ids=positions.expand(b, -1)).last_hidden_state
        return h[:, length + 1:]

    def loss(self, words, word_mask, voices, codes, frames) -> torch.Tensor:
        """Cross-entropy of every real step's codes, averaged over the heads."""
        steps = self.to_steps(codes)                                                   # (B, S, G·Q)
        n = -(-frames // self.group)                                                   # real steps per clip
        h = self.hidden(words, word_mask, voices, steps[:, :-1], n)                    # (B, S, D): predicts 1..S
        real = torch.arange(steps.shape[1], device=codes.device)[None] < n[:, None]
        total = 0.0
        for k, head in enumerate(self.heads):
            t = steps[..., k].masked_fill(~real, -100)
            total = total + F.cross_entropy(head(h).transpose(1, 2), t, ignore_index=-100)
        return total / len(self.heads)

    @torch.no_grad()
    def generate(self, texts: Sequence[str], voices: Sequence[str], temperature: float = 0.8, top_k: int = 4,
                 speed: float = 1.0, seed: int = 0, distribution: Callable | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codec codes (B, Q, F) and frame counts (B,) for each (text, voice), step by step: the first codebook's
        codes drawn by :func:`sample_top_k` (``temperature``, ``top_k``, ``distribution``; temperature 0 = greedy),
        the others greedy, for the planned number of steps (:meth:`planned_steps`)."""
        self.eval()
        device = self.begin.device
        words, mask = encode_words(texts, self.vocabulary)
        words, mask = words.to(device), mask.to(device)
        voice_ids = torch.tensor([self.voices.index(v) for v in voices], device=device)
        n = self.planned_steps(words, voice_ids, speed)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        steps = torch.zeros(len(texts), 0, len(self.heads), dtype=torch.long, device=device)
        for _ in range(int(n.max())):
            h = self.hidden(words, mask, voice_ids, steps, n)[:, -1]
            step = [sample_top_k(head(h), temperature, top_k, generator, distribution) if k % self.n_codebooks == 0
                    else head(h).argmax(-1).cpu() for k, head in enumerate(self.heads)]
            steps = torch.cat([steps, torch.stack(step, 1)[:, None].to(device)], 1)
        return self.from_steps(steps).cpu(), (n * self.group).cpu()


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

    model.fit_durations(data)
    tensors = (data.words, data.word_mask, data.voices_ids, data.codes, data.frames)
    return train(step, infinite_batches(tensors, batch_size, env.generator(seed)), steps, desc=desc, report=report)


def training_set(codec, n_codebooks: int = 2) -> TTSData:
    """The TTS training data: the 500 training phrases and the spoken words of the ten training voices (no held-out
    voice, no accent, no test sentence), as ``n_codebooks`` codec codes."""
    from .world import speech

    phrases = speech.load_phrases("train")
    words, _ = speech.voice_split(speech.load_speech())
    return tts_examples(codec, phrases.transcripts + words.words, phrases.voices + words.voices,
                        phrases.waveforms + words.waveforms, n_codebooks)


def test_items(voices: Sequence[str] = EVAL_VOICES) -> tuple[list[str], list[str]]:
    """Texts and voices to judge a TTS model on: every held-out test sentence (:func:`load_phrases("test")
    <utils.world.speech.load_phrases>`, none heard in training) in each of ``voices``."""
    from .world import speech

    texts = sorted(set(speech.load_phrases("test").transcripts))
    return [t for t in texts for _ in voices], [v for _ in texts for v in voices]


def speak(model: CodecTTS, codec, texts: Sequence[str], voices: Sequence[str], **sampling) -> list[torch.Tensor]:
    """Waveforms (16 kHz) of ``texts`` in ``voices``: the model's codec codes, decoded by ``codec``.
    ``sampling``: :meth:`CodecTTS.generate`'s temperature, top_k, speed, seed, distribution."""
    from .codec import decompress

    codes, frames = model.generate(texts, voices, **sampling)
    hop = math.prod(codec.config.upsampling_ratios)
    return decompress(codec, codes, [int(f) * hop for f in frames])


def intelligibility(audio: Sequence[torch.Tensor], texts: Sequence[str], recogniser=None) -> dict:
    """How TTS papers score intelligibility: a recogniser (default: the zoo's tiny-whisper-shapes, or
    ``recogniser`` = (model, extractor, tokenizer)) transcribes the speech; returns its word error rate against
    ``texts``, the share of utterances heard exactly, and what it heard."""
    from . import asr
    from .metrics import word_error_rate

    heard = asr.hear(audio, recogniser)
    return {"wer": round(word_error_rate(list(texts), heard), 4),
            "exact": round(sum(h == t for h, t in zip(heard, texts)) / len(texts), 4), "heard": heard}
