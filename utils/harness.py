"""The course's benchmarks in a real evaluation harness (Phase 9): `lmms-eval` 0.7.3, the harness behind many VLM
papers' tables, run offline on local files.

* :func:`export_tasks` writes the course's held-out questions as lmms-eval tasks, in the layout of lmms-eval's own
  task folders: one YAML per task (kept in ``utils/lmms_tasks/``), the task functions they name
  (``shapes_tasks.py``), a JSON-lines test split per benchmark and the images as PNG files. The tasks:
  ``shapes_vqa`` (multiple choice over the 19 answer words), ``shapes_vqa_open`` (free text, first word exact) and
  ``shapes_pope`` (POPE's adversarial split, yes or no).
* :class:`TinyVLMLmms` registers a :class:`utils.vlm.TinyVLM` as an lmms-eval model: ``loglikelihood`` for
  multiple-choice tasks (every choice scored in batches, one image encoding per document) and ``generate_until`` for
  open answers.
* :func:`evaluate_tasks` runs tasks with ``lmms_eval.evaluator.simple_evaluate`` and returns its result dict.

Three behaviours of lmms-eval 0.7.3 shape the adapter (measured; docs/dev/lmms-eval-0.7.3.md): ``loglikelihood``
must return a *loss* (multiple choice takes the argmin), wrapped in ``GenerationResult`` because the evaluator turns
a bare ``(loss, is_greedy)`` tuple into a string; and ``lmms.clean()`` deletes every ``nn.Module`` attribute after a
run, so the adapter overrides it. lmms-eval is installed without its optional dependencies (``make setup``:
``requirements-nodeps.txt``); importing this module imports it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lmms_eval.api.instance import GenerationResult
from lmms_eval.api.model import lmms
from PIL import Image

from .clip import normalize_images
from .evaluation import pope_probe
from .vlm import TinyVLM, encode_with_labels, target_token_logprobs
from .vqa import ANSWERS, answer_word, vqa_examples

TASK_FILES = Path(__file__).resolve().parent / "lmms_tasks"
TASKS: tuple[str, ...] = ("shapes_vqa", "shapes_vqa_open", "shapes_pope")


def export_tasks(out: str | Path, world, n_scenes: int = 300, pope_scenes: int = 300,
                 reference_scenes: int = 12000) -> Path:
    """Write the course's benchmarks as lmms-eval tasks into ``out``: the YAMLs and ``shapes_tasks.py`` of
    ``utils/lmms_tasks/``, ``images/`` (val scenes as PNG), ``shapes_vqa.jsonl`` (the world's six questions about
    each of the first ``n_scenes`` val scenes) and ``shapes_pope.jsonl`` (POPE's adversarial split over the first
    ``pope_scenes``, class statistics from ``reference_scenes`` train scenes). Returns ``out``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for f in TASK_FILES.iterdir():
        if f.suffix in (".yaml", ".py"):
            shutil.copy(f, out / f.name)
    images, pairs = vqa_examples(world, "val", max(n_scenes, pope_scenes))
    for i, image in enumerate(images):
        Image.fromarray(image).save(out / "images" / f"val_{i:05d}.png")
    rows = [{"image": f"images/val_{i:05d}.png", "question": qa.question, "answer": answer_word(qa),
             "kind": qa.kind, "choices": list(ANSWERS), "label": ANSWERS.index(answer_word(qa))}
            for i, qa in pairs if i < n_scenes]
    pope = pope_probe(world.scenes("val", pope_scenes), "adversarial", seed=0,
                      reference=world.scenes("train", reference_scenes))
    pope_rows = [{"image": f"images/val_{i:05d}.png", "question": q, "answer": a, "choices": ["yes", "no"],
                  "label": 0 if a == "yes" else 1} for i, q, a in pope]
    for name, items in (("shapes_vqa", rows), ("shapes_pope", pope_rows)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return out


class TinyVLMLmms(lmms):
    """A :class:`utils.vlm.TinyVLM` as an lmms-eval model (the ``lmms`` interface, one process). Each document's
    image is resized to the model's image size and encoded once; choices and prompts are scored in batches."""

    def __init__(self, vlm: TinyVLM, batch_size: int = 256) -> None:
        super().__init__()
        self.vlm = vlm.eval()
        self.batch_size = batch_size
        self._features: dict[tuple[str, str, int], torch.Tensor] = {}

    def clean(self) -> None:
        """Keep the model: lmms-eval's ``clean`` deletes every ``nn.Module`` attribute after a run."""
        self._features.clear()

    def _image_features(self, doc_to_visual, doc_id: int, task: str, split: str) -> torch.Tensor:
        key = (task, split, doc_id)
        if key not in self._features:
            image = doc_to_visual(self.task_dict[task][split][doc_id])[0].convert("RGB")
            image = np.array(image.resize((self.vlm.image_size,) * 2, Image.BILINEAR))
            with torch.no_grad():
                self._features[key] = self.vlm.image_features(normalize_images(image[None]).to(self.vlm.device))[0]
        return self._features[key]

    def loglikelihood(self, requests) -> list[GenerationResult]:
        """Per request (context, continuation): the continuation's loss, the negated sum of its tokens'
        log-probabilities after the context (end-of-text not counted), and whether greedy decoding would write it."""
        contexts, continuations, features = [], [], []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            if callable(continuation):  # output_type: loglikelihood passes the task's doc_to_target
                continuation = str(continuation(self.task_dict[task][split][doc_id]))
            contexts.append(context)
            continuations.append(continuation.strip())
            features.append(self._image_features(doc_to_visual, doc_id, task, split))
        out = []
        eos = self.vlm.tokenizer.eos_token_id
        for i in range(0, len(contexts), self.batch_size):
            ids, labels = encode_with_labels(self.vlm.tokenizer, contexts[i:i + self.batch_size],
                                             continuations[i:i + self.batch_size])
            logprobs, greedy, targets = target_token_logprobs(self.vlm, torch.stack(features[i:i + self.batch_size]),
                                                              ids, labels, self.batch_size)
            scored = (targets != -100) & (targets != eos)
            losses = -(logprobs * scored).sum(1)
            is_greedy = (greedy | ~scored).all(1)
            out += [GenerationResult(text=(float(loss), bool(g))) for loss, g in zip(losses, is_greedy)]
        return out

    def generate_until(self, requests) -> list[str]:
        """Greedy answers, cut at the first of the task's ``until`` strings."""
        out = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            features = self._image_features(doc_to_visual, doc_id, task, split)[None]
            text = self.vlm.generate_text(features, [context],
                                          max_new_tokens=int(gen_kwargs.get("max_new_tokens", 8)))[0]
            for stop in gen_kwargs.get("until") or []:
                text = text.split(stop)[0]
            out.append(text)
        return out

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("the course's tasks are single-round")


def evaluate_tasks(vlm: TinyVLM, task_dir: str | Path, tasks: Sequence[str] = TASKS, limit: int | None = None
                   ) -> dict:
    """Run lmms-eval's ``simple_evaluate`` on ``tasks`` of ``task_dir`` (from :func:`export_tasks`) with ``vlm``,
    offline, no bootstrap (the notebook puts its own intervals on the per-sample results); returns lmms-eval's
    result dict (``["results"][task]["acc,none"]``, per-item records in ``["samples"]``)."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    before = os.environ.get("LMMS_EVAL_DATASETS_CACHE")
    os.environ["LMMS_EVAL_DATASETS_CACHE"] = str(Path(task_dir) / ".cache")   # the datasets cache, beside the tasks
    chatter = io.StringIO()   # lmms-eval's progress bars (on stderr), shown only if the run fails
    try:
        with contextlib.redirect_stderr(chatter):
            manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False)
            return simple_evaluate(model=TinyVLMLmms(vlm), tasks=list(tasks), task_manager=manager, limit=limit,
                                   bootstrap_iters=0, log_samples=True, verbosity="WARNING")
    except Exception:
        sys.stderr.write(chatter.getvalue())
        raise
    finally:
        if before is None:
            os.environ.pop("LMMS_EVAL_DATASETS_CACHE", None)
        else:
            os.environ["LMMS_EVAL_DATASETS_CACHE"] = before
