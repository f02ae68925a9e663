"""utils.efficient: FastV's pruning inside the zoo VLM (Phase 10)."""
import numpy as np
import torch

from utils import efficient, vqa
from utils import vlm as uvlm
from utils.clip import normalize_images
from utils.world import World


def _questions(n_scenes: int = 40):
    model = uvlm.TinyVLM.from_pretrained(uvlm.ZOO_VLM)
    images, pairs = vqa.vqa_examples(World(seed=0, image_size=32), "val", n_scenes)
    with torch.no_grad():
        grid = model.image_features(normalize_images(images))
    return model, grid[[i for i, _ in pairs]], [qa.question for _, qa in pairs], pairs


def test_keeping_every_token_runs_the_same_model_block_by_block():
    model, features, questions, _ = _questions(20)
    full = model.answer_scores(features, questions)
    assert torch.allclose(efficient.pruned_answer_scores(model, features, questions, keep=16), full, atol=1e-4)
    assert model.lm.config._attn_implementation == "eager"          # switched, or the attentions would be empty


def test_fastv_keeps_what_the_answer_attends_to_better_than_chance():
    model, features, questions, pairs = _questions(100)
    right = {rank: vqa.correct_answers(efficient.pruned_answer_scores(
        model, features, questions, keep=4, rank=rank, generator=torch.Generator().manual_seed(0)), pairs).mean()
        for rank in ("attention", "random")}
    assert right["attention"] > right["random"] + 0.05, right


def test_the_kept_choice_is_the_given_function_and_dropping_shortens_the_sequence():
    model, features, questions, _ = _questions(5)
    seen = []

    def spy(attention, keep):
        seen.append(attention.shape)
        return efficient.fastv_keep(attention, keep)

    lengths = []
    hook = model.lm.transformer.h[1].register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    try:
        efficient.pruned_answer_scores(model, features[:3], questions[:3], keep=5, keep_fn=spy)
    finally:
        hook.remove()
    assert seen == [torch.Size([3, model.lm.config.n_head, 16])]
    ids, _ = uvlm.encode_prompts(model.tokenizer, [uvlm.vqa_prompt(q) for q in questions[:3]])
    assert lengths == [ids.shape[1] - 1 + 5]                          # 16 image tokens became 5 before layer 1


def test_fastv_keep_sorts_the_most_attended():
    attention = torch.tensor([[[0.1, 0.4, 0.2, 0.3], [0.3, 0.2, 0.1, 0.4]]])
    assert efficient.fastv_keep(attention, 2).tolist() == [[1, 3]]
    assert np.array_equal(efficient.fastv_keep(attention, 4).numpy(), [[0, 1, 2, 3]])
