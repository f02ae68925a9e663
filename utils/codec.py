"""A neural audio codec the EnCodec way: a convolutional encoder, residual vector quantisation (RVQ), a decoder.
Introduced in Phase 6.

The model is ``transformers``' own ``EncodecModel`` with a tiny config (16 kHz, 50 frames a second, codebooks of
64 codes: 300 bits per second per codebook), trained here on the world's speech (the zoo's ``tiny-codec-speech``)
and loaded with ``EncodecModel.from_pretrained`` — the call that loads ``facebook/encodec_24khz``. ``EncodecModel``
ships without a training loss and with frozen codebooks, so training (:func:`train_codec`) runs its encoder and
decoder around ``vector_quantize_pytorch.ResidualVQ`` (k-means initialisation, EMA codebook updates, dead codes
replaced, quantiser dropout so that every prefix of the codebooks decodes) and copies the learned codebooks into
the model's quantiser at the end.

* :func:`rvq_encode` / :func:`rvq_decode`: RVQ written out (the references of Exercises 6.5 and 6.6; the model's
  ``quantizer.encode`` / ``decode`` are the oracles);
* :func:`bitrate`: frames a second × codebooks × log2(codebook size);
* :func:`compress` / :func:`decompress`: a batch of waveforms through the model at a bandwidth;
* :func:`mel_distance`: a spectral distance in dB between original and decoded audio.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from . import env
from .train import History, adamw_one_cycle, train, update
from .world.speech import SAMPLE_RATE

CODEC_DIR = env.REPO_ROOT / "data" / "models" / "tiny-codec-speech"


# --- residual vector quantisation -----------------------------------------------------------------------------

def rvq_encode(latents: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Codes (Q, B, T) of latents (B, D, T) under codebooks (Q, K, D): level 1 picks, for each frame, the nearest of
    its K codewords (Euclidean); each later level codes what the earlier ones left (the residual). The reference of
    Exercise 6.5; equals ``EncodecModel.quantizer.encode`` with the same codebooks."""
    residual = latents.transpose(1, 2)  # (B, T, D)
    codes = []
    for book in codebooks:
        idx = torch.cdist(residual, book[None].expand(len(residual), -1, -1)).argmin(-1)  # (B, T)
        codes.append(idx)
        residual = residual - book[idx]
    return torch.stack(codes)


def rvq_decode(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Latents (B, D, T) from codes (Q, B, T): the sum over the levels of each level's chosen codeword. Reference of
    Exercise 6.6; equals ``EncodecModel.quantizer.decode``. Fewer levels than codebooks decode the coarser latent."""
    return sum(codebooks[q][c] for q, c in enumerate(codes)).transpose(1, 2)


# --- the model ---------------------------------------------------------------------------------------------------

def tiny_codec_config(codebooks: int = 8, codebook_size: int = 64, hidden_size: int = 64, num_filters: int = 8,
                      ratios: Sequence[int] = (8, 5, 4, 2)):
    """An ``EncodecConfig`` for 16 kHz speech: strides ``ratios`` (320 samples → 50 frames a second), latents of
    ``hidden_size`` channels, ``codebooks`` codebooks of ``codebook_size`` codes; its target bandwidths are 1, 2,
    4 ... ``codebooks`` codebooks (kbit/s)."""
    from transformers import EncodecConfig

    frame_rate = SAMPLE_RATE / math.prod(ratios)
    per_book = frame_rate * math.log2(codebook_size) / 1000  # kbit/s
    levels = [2 ** i for i in range(int(math.log2(codebooks)) + 1)]
    return EncodecConfig(sampling_rate=SAMPLE_RATE, audio_channels=1, normalize=False, hidden_size=hidden_size,
                         num_filters=num_filters, upsampling_ratios=list(ratios), codebook_size=codebook_size,
                         codebook_dim=hidden_size, target_bandwidths=[round(n * per_book, 4) for n in levels],
                         num_lstm_layers=1)


def load_codec(path: str | Path = CODEC_DIR):
    """The zoo codec through ``EncodecModel.from_pretrained`` (online: ``"facebook/encodec_24khz"``)."""
    from transformers import EncodecModel

    return EncodecModel.from_pretrained(path).eval()


def codebooks_of(model) -> torch.Tensor:
    """The model's codebooks (Q, K, D), as its quantiser uses them."""
    return torch.stack([layer.codebook.embed for layer in model.quantizer.layers])


def bitrate(model, n_codebooks: int) -> float:
    """Bits per second with the first ``n_codebooks`` codebooks: frames a second × codebooks × log2(codebook size)."""
    cfg = model.config
    return cfg.frame_rate * n_codebooks * math.log2(cfg.codebook_size)


def bandwidth_for(model, n_codebooks: int) -> float:
    """The ``bandwidth`` argument of ``EncodecModel.encode`` (kbit/s) that uses ``n_codebooks`` codebooks."""
    for bw in model.config.target_bandwidths:
        if model.quantizer.get_num_quantizers_for_bandwidth(bw) == n_codebooks:
            return bw
    raise ValueError(f"no target bandwidth of this model uses {n_codebooks} codebooks: "
                     f"{model.config.target_bandwidths}")


def batch_audio(waves: Sequence[torch.Tensor], multiple: int = 320) -> tuple[torch.Tensor, list[int]]:
    """(B, 1, samples) zero-padded to the longest clip, rounded up to a whole number of frames; and the lengths."""
    lengths = [len(w) for w in waves]
    n = -(-max(lengths) // multiple) * multiple
    return torch.stack([F.pad(w, (0, n - len(w))) for w in waves])[:, None], lengths


BATCH = 16  # clips through the codec at a time: its full-rate layers hold (clips × channels × samples) activations


@torch.no_grad()
def compress(model, waves: Sequence[torch.Tensor], n_codebooks: int, batch_size: int = BATCH) -> torch.Tensor:
    """Codes (B, Q, frames) of waveforms through ``model.encode`` with ``n_codebooks`` codebooks (all clips padded
    to the longest; ``batch_size`` clips at a time, to bound the memory)."""
    audio, _ = batch_audio(waves, math.prod(model.config.upsampling_ratios))
    bandwidth = bandwidth_for(model, n_codebooks)
    return torch.cat([model.encode(audio[i:i + batch_size], bandwidth=bandwidth).audio_codes[0]
                      for i in range(0, len(audio), batch_size)])


@torch.no_grad()
def decompress(model, codes: torch.Tensor, lengths: Sequence[int], batch_size: int = BATCH) -> list[torch.Tensor]:
    """Waveforms from codes (B, Q, frames) through ``model.decode``, each cut to its original length."""
    out: list[torch.Tensor] = []
    for i in range(0, len(codes), batch_size):
        audio = model.decode(codes[None, i:i + batch_size], [None]).audio_values[:, 0]
        out += [audio[j, :n].clone() for j, n in enumerate(lengths[i:i + batch_size])]
    return out


def roundtrip(model, waves: Sequence[torch.Tensor], n_codebooks: int) -> list[torch.Tensor]:
    """Waveforms coded with ``n_codebooks`` codebooks and decoded again."""
    return decompress(model, compress(model, waves, n_codebooks), [len(w) for w in waves])


@torch.no_grad()
def unquantised(model, waves: Sequence[torch.Tensor], batch_size: int = BATCH) -> list[torch.Tensor]:
    """Waveforms through the encoder and decoder with no quantiser between them: the best any number of codebooks
    could do with this encoder and decoder (the codec's floor)."""
    audio, lengths = batch_audio(waves, math.prod(model.config.upsampling_ratios))
    out: list[torch.Tensor] = []
    for i in range(0, len(audio), batch_size):
        decoded = model.decoder(model.encoder(audio[i:i + batch_size]))[:, 0]
        out += [decoded[j, :n].clone() for j, n in enumerate(lengths[i:i + batch_size])]
    return out


def mel_distance(original: Sequence[torch.Tensor], decoded: Sequence[torch.Tensor], n_mels: int = 64) -> float:
    """Mean absolute difference of the log-mel spectrograms, in dB (10·log10 of the mel power; bands more than
    80 dB below a clip's loudest are floored there), over all clips and frames: 0 for identical audio."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=n_mels)

    def db(w: torch.Tensor) -> torch.Tensor:
        power = 10 * torch.log10(mel(w) + 1e-10)
        return torch.maximum(power, power.max() - 80)

    diffs = [(db(a) - db(b[:len(a)])).abs().mean() for a, b in zip(original, decoded)]
    return float(torch.stack(diffs).mean())


# --- training -----------------------------------------------------------------------------------------------------

def multiscale_mel_loss(x: torch.Tensor, y: torch.Tensor, scales: Sequence[int] = (256, 512, 1024)) -> torch.Tensor:
    """L1 between log-mel spectrograms of ``x`` and ``y`` (B, samples) at several FFT sizes (EnCodec's
    reconstruction loss in the frequency domain), plus L1 between their linear mel spectrograms."""
    import torchaudio

    loss = x.new_zeros(())
    for n_fft in scales:
        mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=n_fft, hop_length=n_fft // 4,
                                                   n_mels=min(64, n_fft // 8)).to(x.device)
        mx, my = mel(x), mel(y)
        loss = loss + (torch.log(mx + 1e-5) - torch.log(my + 1e-5)).abs().mean() + (mx - my).abs().mean()
    return loss / len(scales)


def random_crops(waves: Sequence[torch.Tensor], n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random crops of ``length`` samples (clips shorter than that are zero-padded), float32 (n, length)."""
    out = torch.zeros(n, length)
    picks = torch.randint(0, len(waves), (n,), generator=generator).tolist()
    for i, k in enumerate(picks):
        w = waves[k]
        if len(w) > length:
            start = int(torch.randint(0, len(w) - length + 1, (1,), generator=generator))
            out[i] = w[start:start + length]
        else:
            out[i, :len(w)] = w
    return out


def train_codec(model, waves: Sequence[torch.Tensor], *, steps: int, batch_size: int = 16, crop_s: float = 1.0,
                lr: float = 1e-3, commitment: float = 1.0, seed: int = 0, desc: str = "codec", on_step=None
                ) -> tuple[History, object]:
    """Train an ``EncodecModel``'s encoder and decoder around a ``vector_quantize_pytorch.ResidualVQ`` on random
    crops of ``waves``: loss = multi-scale mel L1 + waveform L1 + ``commitment`` × the quantiser's commitment loss;
    AdamW with a one-cycle schedule; quantiser dropout (each step codes with the first 1..Q codebooks, so every
    bandwidth works). At the end the learned codebooks are copied into ``model.quantizer``. Returns the history
    and the ResidualVQ."""
    from vector_quantize_pytorch import ResidualVQ

    cfg = model.config
    torch.manual_seed(env.seed(seed))
    rvq = ResidualVQ(dim=cfg.hidden_size, num_quantizers=cfg.num_quantizers, codebook_size=cfg.codebook_size,
                     kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2, decay=0.95,
                     quantize_dropout=True, quantize_dropout_cutoff_index=0)
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps, weight_decay=0.0)
    g = env.generator(seed)
    length = int(crop_s * SAMPLE_RATE)

    def batches():
        while True:
            yield (random_crops(waves, batch_size, length, g),)

    def step(batch) -> float:
        model.train()
        rvq.train()
        x = batch[0]
        latents = model.encoder(x[:, None])                        # (B, D, T)
        quantized, _, commit = rvq(latents.transpose(1, 2))        # (B, T, D)
        y = model.decoder(quantized.transpose(1, 2))[:, 0, :length]
        loss = multiscale_mel_loss(x, y) + 0.1 * (x - y).abs().mean() + commitment * commit.sum()
        return update(loss, optimizer, schedule, max_grad_norm=1.0, params=model.parameters())

    history = train(step, batches(), steps, desc=desc, on_step=on_step)
    copy_codebooks(rvq, model)
    return history, rvq


@torch.no_grad()
def copy_codebooks(rvq, model) -> None:
    """Write a ``ResidualVQ``'s codebooks into an ``EncodecModel``'s quantiser (its ``embed`` buffers)."""
    for layer, book in zip(model.quantizer.layers, rvq.codebooks):
        layer.codebook.embed.copy_(book)
        layer.codebook.embed_avg.copy_(book)
        layer.codebook.cluster_size.fill_(1.0)
        layer.codebook.inited.fill_(1.0)


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Share of each level's codes that are used at least once in ``codes`` (B, Q, frames): (Q,)."""
    return torch.tensor([len(torch.unique(codes[:, q])) / codebook_size for q in range(codes.shape[1])])


def evaluate_codec(model, phrases, levels: Sequence[int] | None = None, recogniser=None) -> dict:
    """Bitrate against quality on a :class:`~utils.world.speech.PhraseSet`: for 1, 2, 4 … codebooks, bits a second,
    :func:`mel_distance` to the original, and the word error rate of the zoo recogniser (tiny-whisper-shapes, or
    ``recogniser`` = (model, extractor, tokenizer)) on the decoded audio; the same two for the :func:`unquantised`
    floor; and that recogniser's WER on the original audio."""
    from . import asr
    from .metrics import word_error_rate

    recogniser = recogniser or asr.load_whisper()
    levels = levels or [2 ** i for i in range(int(math.log2(model.config.num_quantizers)) + 1)]
    refs = phrases.transcripts

    def wer(waves: Sequence[torch.Tensor]) -> float:
        return round(word_error_rate(refs, asr.hear(waves, recogniser)), 4)

    rows = []
    for n in levels:
        decoded = roundtrip(model, phrases.waveforms, n)
        rows.append({"codebooks": n, "bps": bitrate(model, n),
                     "mel_distance": round(mel_distance(phrases.waveforms, decoded), 3), "wer": wer(decoded)})
    floor = unquantised(model, phrases.waveforms)
    return {"bitrates": rows, "unquantised": {"mel_distance": round(mel_distance(phrases.waveforms, floor), 3),
                                              "wer": wer(floor)},
            "original_wer": wer(phrases.waveforms)}
