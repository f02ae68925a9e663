"""Train the course's model zoo (data/models/): `make models`. Seeded and step-bounded.

Phase 0 adds tiny-gpt-shapes: a 2-layer GPT-2 caption model, saved with save_pretrained so every later
phase loads it with AutoModelForCausalLM.from_pretrained / AutoTokenizer.from_pretrained.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils import env, lm, text  # noqa: E402
from utils.world import World  # noqa: E402

ZOO = ROOT / "data" / "models"
GPT_RECIPE = {"world_seed": 0, "image_size": 32, "train_captions": 5000, "val_captions": 500, "steps": 1500,
              "batch_size": 64, "lr": 3e-3, "seed": 0}

CARD = """# tiny-gpt-shapes

A tiny GPT-2 (`transformers` GPT2LMHeadModel, {n_layer} layers, {n_embd} dimensions, {n_head} heads, {params:,}
parameters) trained from scratch on shapes-world captions, with a word-level tokenizer
(`PreTrainedTokenizerFast`, {vocab} tokens). The course's first model-zoo entry (Phase 0); later phases
use it as their language model.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("data/models/tiny-gpt-shapes")
tokenizer = AutoTokenizer.from_pretrained("data/models/tiny-gpt-shapes")
```

## Training
- Data: captions of `World(seed={world_seed})` train scenes 0..{last} (`utils.world`).
- Objective: next-token cross-entropy (`utils.text.lm_loss`), AdamW, one-cycle LR {lr}, batch {batch_size},
  {steps} steps, seed {seed} (`utils.lm.train_caption_lm`).
- Command: `make models` (tools/make_models.py); {seconds:.0f} s on a 2-core CPU.

## Metrics (val captions 0..{val_last} of the same world; `tests/test_zoo.py` re-measures them)
| metric | value |
|---|---|
| validation loss | {loss:.4f} |
| perplexity | {perplexity:.4f} |
| next-token accuracy | {next_token_accuracy:.4f} |

## Limits
It knows only the shapes-world vocabulary and grammar; it has never seen other text.
"""


def make_tiny_gpt(out: Path = ZOO / "tiny-gpt-shapes") -> dict[str, float]:
    """Train and save tiny-gpt-shapes with its model card; returns its validation metrics."""
    r = GPT_RECIPE
    env.seed_everything(r["seed"])
    world = World(seed=r["world_seed"], image_size=r["image_size"])
    captions = world.dataset("train", r["train_captions"]).captions
    tokenizer = text.build_word_tokenizer(captions)
    ids, labels = lm.encode_captions(tokenizer, captions)
    model = lm.tiny_gpt(tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    start = time.perf_counter()
    lm.train_caption_lm(model, ids, labels, steps=r["steps"], batch_size=r["batch_size"], lr=r["lr"], seed=r["seed"])
    seconds = time.perf_counter() - start
    metrics = lm.evaluate_lm(model, *lm.encode_captions(tokenizer, world.dataset("val", r["val_captions"]).captions))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps({"recipe": r, "metrics": metrics, "train_seconds": round(seconds, 1)},
                                                 indent=1) + "\n")
    c = model.config
    (out / "README.md").write_text(CARD.format(
        n_layer=c.n_layer, n_embd=c.n_embd, n_head=c.n_head, params=sum(p.numel() for p in model.parameters()),
        vocab=tokenizer.vocab_size, last=r["train_captions"] - 1, val_last=r["val_captions"] - 1,
        seconds=seconds, **{k: v for k, v in r.items() if k != "image_size"}, **metrics))
    return metrics


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print("tiny-gpt-shapes:", make_tiny_gpt())
