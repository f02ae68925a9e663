"""utils.text: BPE against the tokenizers library, the word tokenizer, the next-token loss."""
import torch

from utils import lm, text


def test_bpe_reference_matches_tokenizers_library():
    freqs = text.word_frequencies(["the red circle is left of the red square."] * 3 + ["a blue diamond"])
    assert text.bpe_train(freqs, 30) == text.hf_bpe_merges(freqs, 30)
    merges = text.bpe_train(freqs, 30)
    assert "".join(text.bpe_encode("circle", merges)) == "circle"


def test_merge_word_is_left_to_right_and_non_overlapping():
    assert text.merge_word(tuple("aaa"), ("a", "a")) == ("aa", "a")
    assert text.merge_word(("ab", "c"), ("b", "c")) == ("ab", "c")


def test_word_tokenizer_roundtrip(tmp_path):
    tok = text.build_word_tokenizer(["A red circle, left of: a blue square."])
    ids = tok("a red circle")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert "<unk>" not in tok.tokenize("Left of: a red circle.")
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path)("a red circle")["input_ids"] == ids


def test_lm_loss_matches_transformers():
    torch.manual_seed(0)
    model = lm.tiny_gpt(20, n_positions=8)
    ids = torch.randint(3, 20, (2, 8))
    labels = ids.clone()
    labels[0, 6:] = -100
    assert torch.allclose(text.lm_loss(model(ids).logits, labels), model(ids, labels=labels).loss, atol=1e-6)
