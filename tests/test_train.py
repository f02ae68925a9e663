"""utils.train: the step-bounded loop, its report, progress bars, batches."""
import pytest
import torch
from torch import nn

from utils import train


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


def test_progress_accepts_disable_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert list(train.progress(range(3), disable=True)) == [0, 1, 2]


def test_infinite_batches_refuses_a_batch_larger_than_the_data():
    import pytest

    with pytest.raises(ValueError, match="larger than"):
        next(train.infinite_batches((torch.zeros(5, 2),), batch_size=8))


def test_update_clips_the_gradient_norm_before_the_step():
    """With max_grad_norm the step is taken with gradients of at most that total norm: plain SGD at lr 1 then moves
    the parameters by exactly the clipped gradient; without it, by the whole gradient."""
    for max_norm, expected in ((None, 10.0), (1.0, 1.0)):
        w = torch.nn.Parameter(torch.zeros(4))
        opt = torch.optim.SGD([w], lr=1.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        value = train.update((w * torch.tensor([5.0, 5.0, 5.0, 5.0])).sum(), opt, schedule, max_grad_norm=max_norm)
        assert value == 0.0 and w.detach().norm().item() == pytest.approx(expected, rel=1e-5)


def test_median_seconds_times_each_call_and_skips_the_warmup():
    from utils.train import median_seconds

    calls = []
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2) >= 0
    assert len(calls) == 5
    durations = iter([0.0, 0.15, 0.0])  # the median of three sleeps is ~0 s; their mean would be 0.05 s
    import time as _time

    assert 0.0 <= median_seconds(lambda: _time.sleep(next(durations)), repeats=3) < 0.03
