import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs notebooks or servers (skipped by `make test-unit`)")


import pytest  # noqa: E402

from utils import env  # noqa: E402


@pytest.fixture(autouse=True)
def _offline_guard():
    """Under `make test` (COURSE_OFFLINE=1) no test may reach the network."""
    if env.is_offline():
        env.block_network()
    yield
    env.allow_network()


@pytest.fixture(scope="module")
def lm_and_tokenizer():
    """The zoo GPT and its tokenizer with the question words added (Phases 4 and 5 use it frozen)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.vlm import extend_vocabulary

    lm = AutoModelForCausalLM.from_pretrained("data/models/tiny-gpt-shapes").eval()
    tok = AutoTokenizer.from_pretrained("data/models/tiny-gpt-shapes")
    extend_vocabulary(lm, tok)
    return lm, tok
