"""utils.text, utils.lm, utils.train, utils.plots, utils.vision, utils.embeddings, utils.attention."""
import matplotlib
import torch
import torch.nn.functional as F
from torch import nn

from utils import attention, embeddings, lm, plots, text, train, vision


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


def test_train_loop_is_step_bounded_and_learns():
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = []
    hist = train.train(lambda b: train.train_step(model, b[0], b[1], opt),
                       train.infinite_batches((x, y), 32, torch.Generator().manual_seed(0)), steps=50,
                       on_step=seen.append)
    assert len(hist.losses) == 50 and len(hist.smoothed(10)) == 50 and seen == list(range(1, 51))
    assert train.accuracy(model, x, y) > 0.95


def test_train_says_when_it_finished(capsys):
    """A saved notebook shows the progress bar's first frame only; the last line says the run finished."""
    hist = train.train(lambda b: 1.0, iter(lambda: None, 0), steps=5, desc="demo")
    assert len(hist.losses) == 5
    assert "demo: 5 steps done in" in capsys.readouterr().out
    train.train(lambda b: 1.0, iter(lambda: None, 0), steps=5, desc="quiet", report=False)
    assert "quiet" not in capsys.readouterr().out


def test_attention_references_agree_with_torch():
    q, k, v = torch.randn(3, 2, 5, 4).unbind(0)
    mask = attention.causal_mask(5)
    assert torch.allclose(attention.scaled_dot_product_attention(q, k, v, mask),
                          F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
    x = torch.randn(2, 5, 8)
    assert torch.equal(attention.merge_heads(attention.split_heads(x, 2)), x)


def test_embeddings_helpers():
    v = embeddings.random_unit_vectors(10, 64, torch.Generator().manual_seed(0))
    assert torch.allclose(v.norm(dim=-1), torch.ones(10), atol=1e-6)
    assert torch.allclose(embeddings.cosine_similarity_matrix(v, v).diagonal(), torch.ones(10), atol=1e-6)


def test_vision_token_counts():
    assert vision.num_patch_tokens(224, 16) == vision.patch_embed_tokens(224, 16) == 196
    assert vision.num_patch_tokens(336, 14) == 576


def test_plots_return_axes():
    matplotlib.use("Agg")
    assert plots.plot_loss({"a": [3, 2, 1], "b": [2, 1, 0.5]}, smooth=2) is not None
    assert plots.scatter_embeddings(torch.randn(20, 5), ["x"] * 10 + ["y"] * 10) is not None
    assert plots.plot_attention(torch.rand(3, 4), list("abcd"), list("xyz")) is not None


def test_progress_accepts_disable_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert list(train.progress(range(3), disable=True)) == [0, 1, 2]


def test_infinite_batches_refuses_a_batch_larger_than_the_data():
    import pytest

    with pytest.raises(ValueError, match="larger than"):
        next(train.infinite_batches((torch.zeros(5, 2),), batch_size=8))


def test_diagram_and_retrieval_grid_draw():
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.plots import draw_diagram, plot_retrieval
    _, ax = plt.subplots()
    draw_diagram(ax, {"a": (0.2, 0.5, "image", "w"), "b": (0.8, 0.5, "text", "w")}, [("a", "b")], title="t")
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.texts] == ["image", "text"]
    fig = plot_retrieval(["q1", "q2"], np.zeros((6, 8, 8, 3), np.uint8), np.array([[0, 1, 2], [3, 4, 5]]),
                         np.array([[1, 0, 0], [0, 0, 1]]))
    axes = fig.axes
    assert len(axes) == 6
    assert axes[0].spines["left"].get_edgecolor()[:3] != axes[1].spines["left"].get_edgecolor()[:3]
    plt.close("all")


def test_linear_probe_reads_a_linear_signal_and_not_noise():
    import torch

    from utils.embeddings import linear_probe
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    signal = torch.randn(600, 8, generator=g) * 10 + 100          # badly scaled, offset features
    signal[:, 0] += 100 * y                                         # one feature carries the label
    noise = torch.randn(600, 8, generator=g)
    assert linear_probe(signal[:400], y[:400], signal[400:], y[400:]) > 0.95
    assert linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.5
