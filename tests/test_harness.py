"""utils.harness: the course's benchmarks as lmms-eval tasks and the zoo VLM as an lmms-eval model, run offline.
The oracle is the course's own scorer: on the same items, lmms-eval's numbers must equal it."""
from __future__ import annotations

import json
import socket

import pytest
import torch

from utils import clip, harness, vqa
from utils.vlm import TinyVLM
from utils.world import World

N_SCENES = 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    world = World(seed=0, image_size=32)
    folder = harness.export_tasks(tmp_path_factory.mktemp("lmms"), world, n_scenes=N_SCENES, pope_scenes=N_SCENES,
                                  reference_scenes=2000)
    return world, folder


@pytest.fixture(scope="module")
def model():
    return TinyVLM.from_pretrained(clip.ZOO_CLIP.parent / "tiny-vlm-shapes")


def test_export_writes_task_folders_lmms_eval_can_read(exported):
    world, folder = exported
    assert {f"{t}.yaml" for t in harness.TASKS} | {"shapes_tasks.py"} <= {p.name for p in folder.iterdir()}
    rows = [json.loads(line) for line in (folder / "shapes_vqa.jsonl").read_text().splitlines()]
    _, pairs = vqa.vqa_examples(world, "val", N_SCENES)
    assert len(rows) == len(pairs) and all(r["choices"][r["label"]] == r["answer"] for r in rows)
    assert (folder / rows[-1]["image"]).exists()
    pope = [json.loads(line) for line in (folder / "shapes_pope.jsonl").read_text().splitlines()]
    scenes = world.scenes("val", N_SCENES)
    for r in pope:   # "yes" exactly when the asked class is in the picture
        i = int(r["image"].removeprefix("images/val_").removesuffix(".png"))
        asked = tuple(r["question"].removeprefix("is there a ").removesuffix("?").split())
        assert (asked in {(o.color, o.shape) for o in scenes[i].objects}) == (r["answer"] == "yes")


def test_lmms_eval_scores_equal_the_course_scorer_offline(exported, model, monkeypatch):
    world, folder = exported

    def no_network(*args, **kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    result = harness.evaluate_tasks(model, folder)["results"]
    images, pairs = vqa.vqa_examples(world, "val", N_SCENES)
    with torch.no_grad():
        features = model.image_features(clip.normalize_images(images))[[i for i, _ in pairs]]
    questions = [qa.question for _, qa in pairs]
    right = vqa.correct_answers(model.answer_scores(features, questions), pairs)
    assert result["shapes_vqa"]["acc,none"] == pytest.approx(right.mean(), abs=1e-9)
    written = model.generate_text(features, [f"question: {q} <image> answer:" for q in questions], max_new_tokens=3)
    first = [(w.split() or [""])[0].strip(".,;:!?") for w in written]
    open_right = [f == vqa.answer_word(qa) for f, (_, qa) in zip(first, pairs)]
    assert result["shapes_vqa_open"]["exact_match,none"] == pytest.approx(sum(open_right) / len(pairs), abs=1e-9)
    pope = [json.loads(line) for line in (folder / "shapes_pope.jsonl").read_text().splitlines()]
    index = [int(r["image"].removeprefix("images/val_").removesuffix(".png")) for r in pope]
    with torch.no_grad():
        pope_features = model.image_features(clip.normalize_images(images))[index]
    said = model.answer_scores(pope_features, [r["question"] for r in pope], ("yes", "no")).argmax(1)
    pope_right = [int(s) == r["label"] for s, r in zip(said, pope)]
    assert result["shapes_pope"]["acc,none"] == pytest.approx(sum(pope_right) / len(pope), abs=1e-9)
    assert 0.5 < result["shapes_vqa"]["acc,none"] and 0.5 < result["shapes_pope"]["acc,none"]  # a trained model


def test_the_adapter_scores_a_loss_so_the_right_choice_wins(exported, model):
    """lmms-eval's multiple choice takes the argmin: a log-likelihood (higher is better) would pick the worst."""
    result = harness.evaluate_tasks(model, exported[1], tasks=["shapes_vqa"], limit=30)
    samples = result["samples"]["shapes_vqa"]
    losses = [[loss for loss, _ in s["filtered_resps"]] for s in samples]
    assert all(min(x) >= 0 for x in losses)
    assert sum(int(min(range(len(x)), key=x.__getitem__) == s["target"]) for x, s in zip(losses, samples)) > 15
