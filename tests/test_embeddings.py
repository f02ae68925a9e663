"""utils.embeddings: cosine geometry helpers and the linear probe."""
import torch

from utils import embeddings


def test_embeddings_helpers():
    v = embeddings.random_unit_vectors(10, 64, torch.Generator().manual_seed(0))
    assert torch.allclose(v.norm(dim=-1), torch.ones(10), atol=1e-6)
    assert torch.allclose(embeddings.cosine_similarity_matrix(v, v).diagonal(), torch.ones(10), atol=1e-6)


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
