"""utils.env: seeds, device choice, fast mode, offline guard."""
import socket
import time

import pytest
import torch

from utils import env


def test_seed_everything_repeats_random_numbers():
    env.seed_everything(3)
    a = torch.randn(4)
    env.seed_everything(3)
    assert torch.equal(a, torch.randn(4))


def test_device_is_cpu_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert env.get_device().type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "meta")
    assert env.get_device().type == "meta"


def test_steps_follow_fast_mode(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert env.steps(500, 20) == 20
    monkeypatch.setenv("COURSE_FAST", "0")
    assert env.steps(500, 20) == 500


def test_block_network_fails_fast_with_a_clear_message():
    env.block_network()
    try:
        start = time.perf_counter()
        with pytest.raises(env.NetworkBlockedError, match="offline"):
            socket.create_connection(("203.0.113.1", 443), timeout=30)
        assert time.perf_counter() - start < 1
    finally:
        env.allow_network()


def test_hub_download_fails_fast_offline(monkeypatch):
    """What a learner's `from_pretrained("openai/clip-vit-base-patch32")` does here: a quick, clear error."""
    from transformers import AutoConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env.block_network()
    try:
        start = time.perf_counter()
        with pytest.raises(Exception) as info:
            AutoConfig.from_pretrained("openai/clip-vit-base-patch32-course-test")
        assert time.perf_counter() - start < 15
        assert "offline" in str(info.value).lower() or "connect" in str(info.value).lower()
    finally:
        env.allow_network()


def test_loopback_stays_allowed():
    env.block_network()
    try:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname(), timeout=5)
        client.close()
        server.close()
    finally:
        env.allow_network()


@pytest.mark.parametrize("value, strict", [("1", True), ("true", True), ("0", False), ("", False)])
def test_strict_flag_reads_like_the_other_flags(monkeypatch, value, strict):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", value)
    assert env.is_strict() is strict


def test_course_seed_shifts_every_seed_without_collisions(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert [env.seed(n) for n in (0, 1, 2)] == [0, 1, 2]
    monkeypatch.setenv("COURSE_SEED", "2")
    shifted = [env.seed(n) for n in (0, 1, 2)]
    assert shifted == [2000, 2001, 2002]
    assert env.seed_everything(1) == 2001
    a = torch.randn(3)
    monkeypatch.setenv("COURSE_SEED", "0")
    env.seed_everything(1)
    assert not torch.equal(a, torch.randn(3))          # another seed, other numbers
    assert torch.equal(torch.randint(0, 100, (5,), generator=env.generator(4)),
                       torch.randint(0, 100, (5,), generator=torch.Generator().manual_seed(4)))


def test_course_seed_must_be_an_integer(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "one")
    with pytest.raises(ValueError, match="COURSE_SEED"):
        env.seed(0)
