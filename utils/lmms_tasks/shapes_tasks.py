"""lmms-eval task functions for the course's benchmarks (Phase 9), copied next to the task YAMLs by
``utils.harness.export_tasks``: lmms-eval imports a task's ``!function shapes_tasks.<name>`` from the YAML's folder.
They read only the exported files (PNG images, one JSON line per item), never the network."""
from __future__ import annotations

import os

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def doc_to_visual(doc: dict) -> list:
    """The item's image, as lmms-eval passes visuals: a list of PIL images."""
    return [Image.open(os.path.join(HERE, doc["image"])).convert("RGB")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt the course's VLMs were trained with (``utils.vlm.vqa_prompt``): the image after the question."""
    return f"question: {doc['question']} <image> answer:"


def process_open(doc: dict, results: list[str]) -> dict[str, float]:
    """Open answers: right when the first word written, lower-cased and without punctuation, is the answer."""
    words = results[0].strip().lower().split()
    return {"exact_match": float(bool(words) and words[0].strip(".,;:!?") == doc["answer"])}
