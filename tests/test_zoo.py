"""The model zoo: every checkpoint loads offline through its library's own call and meets its card."""
import json
from pathlib import Path

import pytest
import torch

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


def test_tiny_clip_loads_offline_through_open_clip_and_meets_its_targets():
    """The same call that loads ViT-B-32 online; the card's metrics re-measured; the issue's targets held."""
    import open_clip

    from utils import clip

    path = ZOO / "tiny-clip-shapes"
    card = json.loads((path / "metrics.json").read_text())
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    r = card["recipe"]
    world = World(seed=r["world_seed"], image_size=r["image_size"], holdout=[tuple(p) for p in r["holdout"]])
    metrics = clip.evaluate_clip(model, tokenizer, world)
    for name, value in card["metrics"].items():
        assert metrics[name] == pytest.approx(value, abs=0.002), name
    assert metrics["image_to_text_r1"] >= 0.95
    assert metrics["zero_shot_seen"] >= 0.85
    assert metrics["zero_shot_heldout"] >= 0.70
    card_text = (path / "README.md").read_text()
    assert f"{card['metrics']['image_to_text_r1']:.3f}" in card_text


def test_tiny_clip_preprocess_matches_the_course_normalisation():
    """open_clip's own preprocess (PIL in) gives what utils.clip.normalize_images gives (arrays in)."""
    import open_clip
    from PIL import Image

    from utils import clip

    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{ZOO / 'tiny-clip-shapes'}")
    image = World(seed=0, image_size=32).item("test", 0)["image"]
    assert torch.allclose(preprocess(Image.fromarray(image)), clip.normalize_images(image[None])[0], atol=1e-5)


def test_tiny_vlm_loads_offline_and_matches_its_card():
    """The zoo VLM reassembles from its library parts, re-measures its card, and beats the blind baseline."""
    from utils import vlm

    path = ZOO / "tiny-vlm-shapes"
    card = json.loads((path / "metrics.json").read_text())
    model = vlm.TinyVLM.from_pretrained(path)
    r = card["recipe"]
    metrics = vlm.evaluate_vqa(model, World(seed=r["world_seed"], image_size=r["image_size"]), "val", r["eval_scenes"])
    for kind, value in card["metrics"].items():
        assert metrics[kind] == pytest.approx(value, abs=2e-3), kind
    text_only = card["text_only"]
    for kind in ("color", "shape", "size", "exists", "position"):
        assert metrics[kind] - text_only[kind] >= 0.2, kind  # what the image adds
    assert metrics["color"] >= 0.90 and metrics["exists"] >= 0.85 and metrics["position"] >= 0.80
    by_relation = vlm.position_by_relation(model, World(seed=r["world_seed"], image_size=r["image_size"]))
    for rel, value in card["position_by_relation"].items():
        assert by_relation[rel] == pytest.approx(value, abs=2e-3), rel
    curve = card["position_curve"]  # the plateau and the way off it (Phase 5 plots it)
    assert curve[0]["position"] <= 0.55 and curve[-1]["position"] >= 0.80 and curve[-1]["side"] >= 0.9
    readme = (path / "README.md").read_text()
    assert "text-only baseline" in readme and f"{card['metrics']['color']:.3f}" in readme


def test_tiny_vlm_grounds_objects_as_its_card_says():
    """The zoo VLM answers "where is the red circle?" with a <box>; re-measure its card's mean IoU."""
    from utils import vlm

    path = ZOO / "tiny-vlm-shapes"
    card = json.loads((path / "metrics.json").read_text())
    r, expected = card["recipe"], card["grounding"]
    model = vlm.TinyVLM.from_pretrained(path)
    got = vlm.evaluate_grounding(model, World(seed=r["world_seed"], image_size=r["image_size"]), "val",
                                 r["grounding_eval_scenes"], r["grounding_bins"])
    assert got["n_boxes"] == expected["n_boxes"]
    for key in ("mean_iou", "iou_above_0.5", "average_box_iou"):
        assert got[key] == pytest.approx(expected[key], abs=2e-3), key
    assert got["mean_iou"] - got["average_box_iou"] >= 0.2  # it looks, rather than answering the average box
    assert f"{expected['mean_iou']:.3f}" in (path / "README.md").read_text()
