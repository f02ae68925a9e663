"""utils.plots: curves, diagrams and retrieval grids draw."""
import matplotlib
import torch

from utils import plots


def test_plots_return_axes():
    matplotlib.use("Agg")
    assert plots.plot_loss({"a": [3, 2, 1], "b": [2, 1, 0.5]}, smooth=2) is not None
    assert plots.scatter_embeddings(torch.randn(20, 5), ["x"] * 10 + ["y"] * 10) is not None
    assert plots.plot_attention(torch.rand(3, 4), list("abcd"), list("xyz")) is not None


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
