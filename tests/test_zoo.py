"""The model zoo: every checkpoint loads offline through its library's own call and meets its card."""
import json
from pathlib import Path

import pytest

from utils import lm
from utils.world import World

ZOO = Path(__file__).resolve().parent.parent / "data" / "models"


def test_tiny_gpt_loads_offline_and_matches_its_card():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ZOO / "tiny-gpt-shapes"
    card = json.loads((path / "metrics.json").read_text())
    assert "perplexity" in (path / "README.md").read_text()
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    r = card["recipe"]
    world = World(seed=r["world_seed"], image_size=r["image_size"])
    metrics = lm.evaluate_lm(model, *lm.encode_captions(tok, world.dataset("val", r["val_captions"]).captions))
    for name, value in card["metrics"].items():
        assert metrics[name] == pytest.approx(value, rel=1e-3), name
    assert metrics["perplexity"] < 3.0  # a uniform guess over the vocabulary would be ~40
    assert "<unk>" not in tok.tokenize(world.item("val", 0)["caption"])


def test_zoo_checkpoints_are_small():
    for f in ZOO.rglob("*"):
        assert f.stat().st_size < 20 * 1024**2, f"{f} is too large for the repository"
