"""utils.lm: the tiny GPT-2 learns."""
import torch

from utils import lm, text


def test_tiny_lm_learns_a_pattern():
    tok = text.build_word_tokenizer(["a red circle", "a blue square"])
    ids, labels = lm.encode_captions(tok, ["a red circle", "a blue square"] * 32)
    torch.manual_seed(0)
    model = lm.tiny_gpt(tok.vocab_size, n_positions=8, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    history = lm.train_caption_lm(model, ids, labels, steps=60, batch_size=16)
    assert history.losses[-1] < history.losses[0] / 3
    assert lm.evaluate_lm(model, ids, labels)["perplexity"] < 1.6  # "red"/"blue" is a coin flip, the rest is certain
    samples = lm.sample_captions(model, tok, n=4)
    assert all(s in ("a red circle", "a blue square") for s in samples), samples
