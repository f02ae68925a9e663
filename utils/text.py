"""Text side of the course: BPE, a word-level caption tokenizer, the language-modelling loss.

Introduced in Phase 0. ``bpe_train`` is the reference for Exercise 0.6 and follows the tie-breaking of
the ``tokenizers`` library's BPE trainer, so both produce the same merges; ``lm_loss`` is the reference
for Exercise 0.7.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable

import torch
import torch.nn.functional as F

Pair = tuple[str, str]
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


NOT_A_WORD = r"[^a-z0-9 ]+"  # after lower-casing, anything but letters, digits and spaces separates words


def normalize_caption(text: str) -> str:
    """Lower-case and keep letters, digits and spaces (drops punctuation)."""
    return re.sub(NOT_A_WORD, " ", text.lower()).strip()


def word_frequencies(texts: Iterable[str]) -> dict[str, int]:
    """How often each word occurs in ``texts`` (after :func:`normalize_caption`), in first-seen order."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(normalize_caption(text).split())
    return dict(counts)


def merge_word(symbols: tuple[str, ...], pair: Pair) -> tuple[str, ...]:
    """Replace every non-overlapping occurrence of ``pair`` in ``symbols`` (left to right) by one symbol."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def count_pairs(words: dict[tuple[str, ...], int]) -> Counter[Pair]:
    """Frequency of each adjacent symbol pair, weighted by how often each word occurs."""
    pairs: Counter[Pair] = Counter()
    for symbols, freq in words.items():
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += freq
    return pairs


def bpe_train(word_freqs: dict[str, int], num_merges: int) -> list[Pair]:
    """Learn up to ``num_merges`` BPE merges from word frequencies.

    Each step merges the most frequent adjacent pair. Ties go to the pair whose symbols were created
    first: single characters are numbered in sorted order, each merged symbol gets the next number, and
    the pair with the smallest (number of left, number of right) wins — the rule of ``tokenizers``.
    Stops early when no pair is left.
    """
    words = {tuple(w): f for w, f in word_freqs.items()}
    order = {c: i for i, c in enumerate(sorted({c for w in word_freqs for c in w}))}
    merges: list[Pair] = []
    for _ in range(num_merges):
        pairs = count_pairs(words)
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], order[p[0]], order[p[1]]))
        merges.append(best)
        order.setdefault(best[0] + best[1], len(order))
        words = {merge_word(w, best): f for w, f in words.items()}
    return merges


def bpe_encode(word: str, merges: list[Pair]) -> list[str]:
    """Split ``word`` into BPE symbols by applying ``merges`` in the order they were learned."""
    symbols = tuple(word)
    for pair in merges:
        symbols = merge_word(symbols, pair)
    return list(symbols)


def hf_bpe_merges(word_freqs: dict[str, int], num_merges: int) -> list[Pair]:
    """Train the ``tokenizers`` library's BPE on the same words; returns its merges (the oracle)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = sorted({c for w in word_freqs for c in w})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + num_merges, show_progress=False,
                                  initial_alphabet=alphabet)
    tok.train_from_iterator((" ".join([w] * f) for w, f in word_freqs.items()), trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def build_word_tokenizer(texts: Iterable[str]):
    """A word-level Hugging Face tokenizer for world captions (``save_pretrained``/``from_pretrained`` ready).

    Words are lower-cased, punctuation is dropped, ``<bos>``/``<eos>`` wrap every caption, ``<pad>`` pads.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted(word_frequencies(texts))
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(NOT_A_WORD), " ")])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: position t predicts token t+1; labels of -100 are ignored.

    ``logits`` (B, T, V), ``labels`` (B, T) (usually the input ids, with -100 on padding). Same value as
    the ``loss`` a Hugging Face causal LM returns when given ``labels``.
    """
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=-100)
