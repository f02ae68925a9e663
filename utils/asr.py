"""Speech recognition the Whisper way, and CTC beside it. Introduced in Phase 6.

* Whisper's front end: a fixed window of log-mel features, clamped and scaled (:func:`log_mel_features`, the
  reference of Exercise 6.1; ``transformers.WhisperFeatureExtractor`` is the oracle and :func:`features` uses it);
* a word-level tokenizer for the world's sentences (:func:`build_tokenizer`) and the labels a seq2seq recogniser
  learns from (:func:`encode_transcripts`);
* a tiny ``transformers.WhisperForConditionalGeneration`` trained from scratch (:func:`tiny_whisper`,
  :func:`train_recogniser`; the zoo's ``tiny-whisper-shapes``), loaded with ``from_pretrained`` like
  ``openai/whisper-tiny``; greedy decoding by hand (:func:`greedy_decode`, Exercise 6.2) and by ``generate``
  (:func:`transcribe`);
* an encoder-only recogniser trained with CTC (:class:`CTCRecogniser`: Whisper's encoder and a linear layer, the
  blank = the padding token) and its greedy decoding (:func:`ctc_greedy_decode`, Exercise 6.4).

The clips are the world's (:func:`utils.world.speech.load_phrases`); word error rate is :mod:`utils.metrics`'.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import env
from .text import build_word_tokenizer
from .train import History, adamw_one_cycle, median_seconds, train, update
from .world.speech import SAMPLE_RATE

WINDOW_S = 5  # seconds of audio in the recogniser's fixed window (Whisper: 30); every world utterance fits
N_MELS = 80  # mel bands (Whisper up to large-v2: 80; large-v3: 128)
N_FFT, HOP = 400, 160  # 25 ms windows every 10 ms at 16 kHz
ZOO_DIR = env.REPO_ROOT / "data" / "models"
WHISPER_DIR = ZOO_DIR / "tiny-whisper-shapes"
CTC_DIR = ZOO_DIR / "tiny-ctc-shapes"


# --- the front end -------------------------------------------------------------------------------------------

def feature_extractor(window_s: int = WINDOW_S, n_mels: int = N_MELS):
    """Whisper's own feature extractor for a ``window_s``-second window and ``n_mels`` bands (the library's
    class; ``WhisperFeatureExtractor.from_pretrained("openai/whisper-tiny")`` is the 30-second, 80-band one)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP,
                                   chunk_length=window_s, n_fft=N_FFT)


def log_mel_features(waves: torch.Tensor, mel_filters: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Whisper's input for a batch of waveforms (B, samples), the steps of ``WhisperFeatureExtractor``:
    zero-pad or cut to ``n_samples``; power STFT (Hann window of 400, hop 160, centred, reflect padding), the last
    frame dropped (n_samples / 160 frames); mel bands by ``mel_filters`` (n_freqs, n_mels); log10 of the bands
    clamped at 1e-10; each clip clamped from below at its own maximum minus 8 (80 dB of dynamic range); then
    (x + 4) / 4. Returns (B, n_mels, n_samples // 160). The reference of Exercise 6.1."""
    waves = waves[:, :n_samples]
    waves = F.pad(waves, (0, n_samples - waves.shape[1]))
    stft = torch.stft(waves, N_FFT, HOP, window=torch.hann_window(N_FFT, device=waves.device), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = mel_filters.T.to(power.dtype) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0


def features(waves: Sequence[torch.Tensor], extractor=None, batch_size: int = 256) -> torch.Tensor:
    """float32 (N, n_mels, frames): Whisper features of each waveform, by ``extractor`` (default
    :func:`feature_extractor`), in batches."""
    extractor = extractor or feature_extractor()
    out = []
    for i in range(0, len(waves), batch_size):
        chunk = [w.numpy() for w in waves[i:i + batch_size]]
        out.append(extractor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.float())
    return torch.cat(out)


# --- text ------------------------------------------------------------------------------------------------------

def build_tokenizer(texts: Sequence[str]):
    """A word-level tokenizer of the words in ``texts`` (``utils.text.build_word_tokenizer``): ``<bos>`` starts a
    transcript (Whisper's ``<|startoftranscript|>``), ``<eos>`` ends it (``<|endoftext|>``), ``<pad>`` pads and is
    the CTC blank."""
    return build_word_tokenizer(texts)


def encode_transcripts(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Labels (N, T) for a seq2seq recogniser: each transcript's word ids, then ``<eos>``; -100 pads (ignored by the
    loss). The model shifts them right behind its start token to make the decoder's input."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    labels = torch.full((len(ids), max(map(len, ids))), -100, dtype=torch.long)
    for i, row in enumerate(ids):
        labels[i, :len(row)] = torch.tensor(row)
    return labels


def words_only(tokenizer, ids: Sequence[int]) -> str:
    """Token ids -> the transcript they spell, special tokens dropped."""
    return tokenizer.decode([int(i) for i in ids], skip_special_tokens=True).strip()


# --- the encoder-decoder --------------------------------------------------------------------------------------

def whisper_config(tokenizer, d_model: int = 96, layers: int = 3, heads: int = 4, window_s: int = WINDOW_S,
                   n_mels: int = N_MELS, max_target_positions: int = 48, dropout: float = 0.1):
    """A tiny ``WhisperConfig``: ``layers`` encoder and decoder layers of width ``d_model``; the encoder reads
    ``window_s`` seconds (100 frames a second, halved by its strided convolution)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=tokenizer.vocab_size, num_mel_bins=n_mels, d_model=d_model, encoder_layers=layers,
        decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, max_source_positions=window_s * 50,
        max_target_positions=max_target_positions, dropout=dropout, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id, begin_suppress_tokens=None, suppress_tokens=None)


def tiny_whisper(tokenizer, seed: int = 0, **config):
    """A ``WhisperForConditionalGeneration`` from :func:`whisper_config`, initialised with ``utils.seed(seed)``;
    its generation config stops at ``<eos>`` and allows 40 new tokens."""
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(env.seed(seed))
    model = WhisperForConditionalGeneration(whisper_config(tokenizer, **config))
    model.generation_config.max_new_tokens = 40
    return model


def load_whisper(path: str | Path = WHISPER_DIR):
    """(model, feature extractor, tokenizer) through the libraries' own calls — the same three calls load
    ``openai/whisper-tiny`` from the hub (its tokenizer is a ``WhisperTokenizer``)."""
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    return model, WhisperFeatureExtractor.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@torch.no_grad()
def greedy_decode(model, input_features: torch.Tensor, max_new_tokens: int = 40) -> list[list[int]]:
    """Greedy decoding by hand, the loop inside ``model.generate``: encode the audio once; start every row with
    the decoder start token; append the most likely next token; stop a row at end-of-text, and the batch when every
    row has stopped or after ``max_new_tokens``. Returns each row's tokens without the start token and without
    end-of-text. The reference of Exercise 6.2."""
    cfg = model.config
    encoded = model.get_encoder()(input_features).last_hidden_state
    tokens = torch.full((len(input_features), 1), cfg.decoder_start_token_id, dtype=torch.long)
    done = torch.zeros(len(input_features), dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model(encoder_outputs=(encoded,), decoder_input_ids=tokens).logits[:, -1]
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, cfg.eos_token_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_token_id
        if done.all():
            break
    out = []
    for row in tokens[:, 1:].tolist():
        out.append(row[:row.index(cfg.eos_token_id)] if cfg.eos_token_id in row else row)
    return out


@torch.no_grad()
def generate(model, input_features: torch.Tensor, **kwargs) -> torch.Tensor:
    """``model.generate(input_features, **kwargs)`` without its per-call warnings: Whisper's own ``generate`` passes
    its suppress-token defaults beside the generation config, and a ``max_length`` beside ``max_new_tokens``, and
    warns about both every time — nothing is wrong, so they are kept quiet."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return model.generate(input_features, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def transcribe(model, tokenizer, input_features: torch.Tensor, batch_size: int = 64) -> list[str]:
    """Transcripts of a batch of feature windows by ``model.generate`` (greedy), in batches."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for i in range(0, len(input_features), batch_size):
        ids = generate(model, input_features[i:i + batch_size].to(device))
        out += [words_only(tokenizer, row) for row in ids.tolist()]
    return out


def hear(waves: Sequence[torch.Tensor], recogniser=None) -> list[str]:
    """What a recogniser writes for each waveform (16 kHz): its features, then :func:`transcribe`. ``recogniser`` =
    (model, extractor, tokenizer), default the zoo's tiny-whisper-shapes. Scores decoded or synthesised speech (the
    codec's and the TTS's intelligibility)."""
    model, extractor, tokenizer = recogniser or load_whisper()
    return transcribe(model, tokenizer, features(list(waves), extractor))


# --- CTC -------------------------------------------------------------------------------------------------------

class CTCRecogniser(nn.Module):
    """An encoder-only recogniser: Whisper's encoder (``transformers``' ``WhisperEncoder``) and one linear layer
    to the vocabulary, trained with ``F.ctc_loss``; the CTC blank is the padding token. One output per encoder
    frame (50 a second). ``save_pretrained`` / ``from_pretrained`` write and read a config.json and
    model.safetensors like a ``transformers`` model."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.config = config
        self.encoder = WhisperEncoder(config)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def blank(self) -> int:
        return self.config.pad_token_id

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (B, frames, vocabulary)."""
        return self.head(self.encoder(input_features).last_hidden_state).log_softmax(-1)

    def loss(self, input_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CTC loss (mean over the batch of the per-utterance loss divided by its label length, torch's default)
        for ``labels`` as :func:`encode_transcripts` makes them (the ``<eos>`` and the -100 padding are dropped)."""
        log_probs = self(input_features)
        keep = (labels != -100) & (labels != self.config.eos_token_id)
        targets = labels[keep]
        frames = torch.full((len(labels),), log_probs.shape[1], dtype=torch.long)
        return F.ctc_loss(log_probs.transpose(0, 1), targets, frames, keep.sum(1), blank=self.blank,
                          zero_infinity=True)

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.to_json_file(path / "config.json")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, path / "model.safetensors")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CTCRecogniser:
        from safetensors.torch import load_file
        from transformers import WhisperConfig

        model = cls(WhisperConfig.from_json_file(Path(path) / "config.json"))
        model.load_state_dict(load_file(Path(path) / "model.safetensors"))
        return model.eval()


def tiny_ctc(tokenizer, seed: int = 0, **config) -> CTCRecogniser:
    """A :class:`CTCRecogniser` with the encoder of :func:`whisper_config` (the decoder's settings unused)."""
    torch.manual_seed(env.seed(seed))
    return CTCRecogniser(whisper_config(tokenizer, **config))


def ctc_greedy_decode(log_probs: torch.Tensor, blank: int) -> list[list[int]]:
    """Best-path CTC decoding of (B, frames, vocabulary) scores: the most likely token per frame, repeats collapsed,
    blanks dropped — in that order (a blank between two equal tokens keeps both). The reference of Exercise 6.4."""
    out = []
    for path in log_probs.argmax(-1).tolist():
        collapsed = [t for i, t in enumerate(path) if i == 0 or t != path[i - 1]]
        out.append([t for t in collapsed if t != blank])
    return out


@torch.no_grad()
def ctc_transcribe(model: CTCRecogniser, tokenizer, input_features: torch.Tensor, batch_size: int = 64) -> list[str]:
    """Transcripts by greedy CTC decoding, in batches."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for i in range(0, len(input_features), batch_size):
        scores = model(input_features[i:i + batch_size].to(device)).cpu()
        out += [words_only(tokenizer, ids) for ids in ctc_greedy_decode(scores, model.blank)]
    return out


# --- training --------------------------------------------------------------------------------------------------

def spec_augment(x: torch.Tensor, generator: torch.Generator, freq: int = 10, time: int = 20) -> torch.Tensor:
    """SpecAugment-style masking: one band of up to ``freq`` mel bins and one span of up to ``time`` frames of each
    example set to the features' floor (its minimum), so the model cannot lean on any one band or moment."""
    x = x.clone()
    b, n_mels, frames = x.shape
    floor = x.amin(dim=(1, 2))
    f_len = torch.randint(0, freq + 1, (b,), generator=generator)
    f_at = (torch.rand(b, generator=generator) * (n_mels - f_len)).long()
    t_len = torch.randint(0, time + 1, (b,), generator=generator)
    t_at = (torch.rand(b, generator=generator) * (frames - t_len)).long()
    bands, steps = torch.arange(n_mels), torch.arange(frames)
    mask = ((bands[None, :, None] >= f_at[:, None, None]) & (bands[None, :, None] < (f_at + f_len)[:, None, None])) | \
           ((steps[None, None, :] >= t_at[:, None, None]) & (steps[None, None, :] < (t_at + t_len)[:, None, None]))
    return torch.where(mask, floor[:, None, None], x)


def seq2seq_loss(model, input_features: torch.Tensor, labels: torch.Tensor, token_noise: float = 0.0,
                 label_smoothing: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Whisper model's next-token loss, written out so that it can be regularised: the decoder reads the labels
    shifted right behind the start token (what the model does itself), with a share ``token_noise`` of the words it
    reads replaced by random words (so that it keeps listening instead of trusting its own grammar), and the
    cross-entropy uses ``label_smoothing``. With both at 0 it equals ``model(input_features, labels=labels).loss``."""
    cfg = model.config
    readable = labels.masked_fill(labels == -100, cfg.pad_token_id)
    decoder_input = torch.cat([torch.full_like(readable[:, :1], cfg.decoder_start_token_id), readable[:, :-1]], 1)
    if token_noise:
        noisy = torch.rand(decoder_input.shape, generator=generator) < token_noise
        noisy[:, 0] = False
        random_words = torch.randint(4, cfg.vocab_size, decoder_input.shape, generator=generator)
        decoder_input = torch.where(noisy.to(decoder_input.device), random_words.to(decoder_input.device),
                                    decoder_input)
    logits = model(input_features=input_features, decoder_input_ids=decoder_input).logits
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, label_smoothing=label_smoothing)


def speed_perturb(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """The waveform played ``factor`` times faster (tempo and pitch together, as a tape would: Kaldi's speed
    perturbation), by resampling; factors are rounded to tenths."""
    import torchaudio.functional as AF

    tenths = round(factor * 10)
    return wave if tenths == 10 else AF.resample(wave, tenths, 10)


def train_recogniser(model, input_features: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int = 32,
                     lr: float = 2e-3, seed: int = 0, augment: bool = True, token_noise: float = 0.0,
                     label_smoothing: float = 0.0, desc: str = "training", on_step=None) -> History:
    """Train a Whisper model (:func:`seq2seq_loss`) or a :class:`CTCRecogniser` (its CTC loss) on in-memory
    features and labels: AdamW with a one-cycle schedule, gradients clipped at 1, SpecAugment when ``augment``;
    batches drawn with ``utils.generator(seed)`` and moved to the model's device. Step-bounded; returns the loss
    history."""
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps, weight_decay=0.05)
    g = env.generator(seed)

    device = next(model.parameters()).device

    def batches():
        while True:
            idx = torch.randint(0, len(input_features), (batch_size,), generator=g)
            x = input_features[idx]
            y = labels[idx]
            x = spec_augment(x, g) if augment else x
            yield x.to(device), y[:, :int((y != -100).sum(1).max())].to(device)

    def step(batch) -> float:
        model.train()
        x, y = batch
        if isinstance(model, CTCRecogniser):
            loss = model.loss(x, y)
        else:
            loss = seq2seq_loss(model, x, y, token_noise, label_smoothing, g)
        return update(loss, optimizer, schedule, max_grad_norm=1.0, params=model.parameters())

    return train(step, batches(), steps, desc=desc, on_step=on_step)


def seconds_per_step(model, input_features: torch.Tensor, labels: torch.Tensor, batch_size: int = 32,
                     repeats: int = 3) -> float:
    """Median wall time of one training step (forward, backward, no update) at ``batch_size``."""
    x, y = input_features[:batch_size], labels[:batch_size]

    def step() -> None:
        loss = model.loss(x, y) if isinstance(model, CTCRecogniser) else model(input_features=x, labels=y).loss
        loss.backward()
        model.zero_grad()

    return median_seconds(step, repeats)


def read_card(path: str | Path) -> dict:
    """A zoo model's metrics.json."""
    return json.loads((Path(path) / "metrics.json").read_text())



# --- evaluation ------------------------------------------------------------------------------------------------

def evaluate_recogniser(hypotheses: Sequence[str], references: Sequence[str], kinds: Sequence[str] | None = None
                        ) -> dict[str, float]:
    """Word error rate over everything ("wer") and, given each utterance's kind, per kind ("wer_caption", ...)."""
    from .metrics import word_error_rate

    out = {"wer": word_error_rate(references, hypotheses)}
    if kinds is not None:
        for kind in sorted(set(kinds)):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            out[f"wer_{kind}"] = word_error_rate([references[i] for i in idx], [hypotheses[i] for i in idx])
    return {k: round(v, 4) for k, v in out.items()}


def training_set(tokenizer=None):
    """What the zoo recognisers learn from: the ``train`` phrases (ten English voices) and the spoken words of the
    same voices (utils.world.speech), as (waveforms, transcripts, tokenizer); the tokenizer is built from these
    transcripts unless given."""
    from .world import speech

    phrases = speech.load_phrases("train")
    words, _ = speech.voice_split(speech.load_speech())
    waves, texts = phrases.waveforms + words.waveforms, phrases.transcripts + words.words
    return waves, texts, tokenizer or build_tokenizer(texts)
