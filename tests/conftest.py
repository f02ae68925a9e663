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


def pytest_sessionfinish(session, exitstatus):
    """With COURSE_COUNT_WRONG=path: per phase, the wrong implementations the check tests hold (distinct
    exercise + answer) and how many got a hint naming what they break."""
    import json
    import os

    path = os.environ.get("COURSE_COUNT_WRONG")
    if not path:
        return
    from tests.checks_testing import RECORDED

    seen: dict[tuple[str, str, str], bool] = {}
    for r in RECORDED:
        seen[(r["exercise"], r["answer"], r["message"])] = r["named"]
    phases: dict[str, dict[str, int]] = {}
    for (exercise, _, _), named in seen.items():
        p = phases.setdefault(exercise.split(".")[0], {"wrong": 0, "named": 0})
        p["wrong"] += 1
        p["named"] += int(named)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"phases": dict(sorted(phases.items())), "answers": [
            {"exercise": e, "answer": a, "named": n, "message": m} for (e, a, m), n in seen.items()]}, f, indent=1,
            ensure_ascii=False)
