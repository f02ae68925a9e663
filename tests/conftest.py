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
