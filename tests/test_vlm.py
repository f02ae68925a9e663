"""utils.vlm: Phase 5's LLaVA-style VLM, AnyRes, grounding and the text reader."""
import pytest
import torch
import torch.nn.functional as F

from utils import clip, vlm, vqa


@pytest.fixture(scope="module")
def world():
    from utils.world import World

    return World(seed=0, image_size=32)


def test_splice_puts_image_tokens_at_the_placeholder():
    ids = torch.tensor([[1, 9, 5, 6], [1, 5, 9, 6]])
    text = torch.arange(8.0).view(2, 4, 1).expand(2, 4, 3)
    image = -torch.ones(2, 2, 3)
    out = vlm.splice_image_tokens(text, ids, image, image_token_id=9)
    assert out.shape == (2, 5, 3)
    assert out[0, :, 0].tolist() == [0, -1, -1, 2, 3]
    assert out[1, :, 0].tolist() == [4, 5, -1, -1, 7]
    labels = vlm.splice_labels(ids, ids, 2, 9)
    assert labels[0].tolist() == [1, -100, -100, 5, 6]
    with pytest.raises(AssertionError):
        vlm.splice_image_tokens(text, torch.tensor([[1, 5, 5, 6], [1, 9, 9, 6]]), image, 9)


def test_vocabulary_and_prompts(lm_and_tokenizer):
    lm, tok = lm_and_tokenizer
    ids = tok(vlm.vqa_prompt("how many squares are there?") + " two")["input_ids"]
    words = tok.convert_ids_to_tokens(ids)
    assert words == ["<bos>", "question", "how", "many", "squares", "are", "there", "<image>", "answer", "two", "<eos>"]
    assert lm.get_input_embeddings().weight.shape[0] == len(tok)
    assert "<unk>" not in tok.convert_ids_to_tokens(tok(" ".join(vqa.ANSWERS))["input_ids"])
    p_ids, p_mask = vlm.encode_prompts(tok, ["<image> question: what color is the circle? answer:", "<image> a"])
    assert p_ids.shape == p_mask.shape and tok.eos_token_id not in p_ids[p_mask.bool()].tolist()
    ids, labels = vlm.encode_with_labels(tok, ["<image> question: is there a red circle? answer:"], ["yes"])
    scored = tok.convert_ids_to_tokens(ids[0][labels[0] != -100].tolist())
    assert scored == ["yes", "<eos>"]


def test_anyres_tiles_cover_the_image_and_add_a_thumbnail():
    images = torch.arange(2 * 3 * 32 * 96, dtype=torch.float32).view(2, 3, 32, 96)
    views = vlm.anyres_tiles(images, 32)
    assert views.shape == (2, 4, 3, 32, 32)
    for k in range(3):
        assert torch.equal(views[:, 1 + k], images[..., 32 * k: 32 * (k + 1)])
    torch.testing.assert_close(views[:, 0], F.interpolate(images, size=(32, 32), mode="area"))
    square = torch.rand(1, 3, 64, 64)
    assert vlm.anyres_tiles(square, 32).shape == (1, 5, 3, 32, 32)
    with pytest.raises(AssertionError):
        vlm.anyres_tiles(torch.rand(1, 3, 30, 64), 32)


def test_box_tokens_round_trip():
    text = vlm.box_to_text((4, 8, 12, 20), image_size=32, bins=16)
    assert text == "<box> <loc2> <loc4> <loc6> <loc10> </box>"
    back = vlm.text_to_box(text, 32, 16)
    assert back == (4.0, 8.0, 14.0, 22.0)
    assert vlm.text_to_box("<box> <loc1> </box>", 32, 16) is None
    assert len(vlm.loc_tokens(16)) == 16 and vlm.loc_tokens(16)[-1] == "<loc15>"


@pytest.mark.parametrize("kind, n_out", [("linear", 16), ("mlp", 16), ("qformer", 4)])
def test_every_connector_trains_and_scores(kind, n_out, world):
    from utils.clip import normalize_images

    torch.manual_seed(0)
    model = vlm.build_vlm("layer2", 32, projector=kind)
    assert (model.image_pos is None) == (kind == "qformer")  # the Q-Former's queries carry their own positions
    images, pairs = vqa.vqa_examples(world, "train", 8)
    grid = clip.clip_grid_tokens(model.visual, normalize_images(images), "layer2")
    ids, labels = vlm.encode_with_labels(model.tokenizer, [vlm.vqa_prompt(qa.question) for _, qa in pairs],
                                   [vqa.answer_word(qa) for _, qa in pairs])
    index = torch.tensor([i for i, _ in pairs])
    assert model.embed(grid[index], ids).shape[1] == ids.shape[1] - 1 + n_out
    hist = vlm.train_vlm(model, grid, index, ids, labels, steps=3, params=model.connector_parameters(), batch_size=8,
                         lr=1e-3)
    assert len(hist.losses) == 3 and all(loss == loss for loss in hist.losses)
    scores = model.answer_scores(grid[index], [qa.question for _, qa in pairs])
    assert scores.shape == (len(pairs), len(vqa.ANSWERS))
    nll = vlm.caption_nll(model, grid[index], ids, labels)
    assert nll.shape == (len(pairs),) and (nll > 0).all()
    with pytest.raises(ValueError):
        vlm.make_projector("perceiver", 8, 8, 4)


def test_side_questions_are_true_one_direction_per_axis_and_skip_the_middle(world):
    rows = vlm.side_questions(world, "train", 40)
    scenes = world.scenes("train", 40)
    assert {qa.kind for _, qa in rows} == {"side"} and len(rows) > 40
    assert {qa.answer for _, qa in rows} == {"yes", "no"}
    for i, qa in rows:
        w = qa.question.rstrip("?").split()
        o = scenes[i].find(w[2], w[3])
        v = o.x if qa.question.endswith("on the left?") else o.y
        assert qa.question.endswith(("on the left?", "at the top?"))  # never the opposite direction
        assert abs(v - 0.5) > 0.08 and (qa.answer == "yes") == (v < 0.5)
    assert len(vlm.side_questions(world, "train", 40, margin=0.3)) < len(rows)
    tok = vlm.build_vlm().tokenizer
    assert tok.unk_token not in tok.tokenize(vlm.vqa_prompt(rows[0][1].question))  # every word is in the vocabulary


def test_caption_nll_is_the_training_loss_per_row(world):
    from utils.clip import normalize_images

    torch.manual_seed(0)
    model = vlm.build_vlm("layer2", 32).eval()
    images, scenes = world.arrays("val", 4)
    grid = clip.clip_grid_tokens(model.visual, normalize_images(images), "layer2")
    ids, labels = vlm.encode_with_labels(model.tokenizer, [vlm.caption_prompt()] * 4, ["a red circle."] * 4)
    with torch.no_grad():
        assert vlm.caption_nll(model, grid, ids, labels).mean().item() == pytest.approx(
            model.loss(grid, ids, labels).item(), rel=1e-5)  # equal lengths: mean of rows = mean of tokens


def test_grounding_examples_tokens_and_generation(world):
    images, rows = vlm.grounding_examples(world, "val", 5, vlm.GROUNDING_BINS)
    scenes = world.scenes("val", 5)
    assert len(rows) == sum(len(s.objects) for s in scenes)
    i, q, answer, box = rows[0]
    o = scenes[i].objects[0]
    assert q == f"where is the {o.color} {o.shape}?" and box == o.bbox(32)
    assert vlm.text_to_box(answer, 32, vlm.GROUNDING_BINS) is not None
    torch.manual_seed(0)
    model = vlm.build_vlm("layer2", 32)
    added = vlm.add_grounding_tokens(model.lm, model.tokenizer, vlm.GROUNDING_BINS)
    assert added == 2 + vlm.GROUNDING_BINS
    assert model.tokenizer.tokenize(answer) == answer.split()  # every <loc> is one token
    assert model.tokenizer.convert_tokens_to_ids(vlm.IMAGE_TOKEN) == model.image_token_id
    from utils.clip import normalize_images

    grid = clip.clip_grid_tokens(model.visual, normalize_images(images), "layer2")
    ious = vlm.grounding_ious(model, grid, rows[:3], vlm.GROUNDING_BINS)
    assert ious.shape == (3,) and ((ious >= 0) & (ious <= 1)).all()


def test_token_scores_match_the_loss_and_greedy_decoding(world):
    """Teacher-forced token scores: their mean is the training loss, and a box whose four <loc> tokens are all the
    model's first choice is exactly what greedy decoding writes."""
    import re

    from utils.clip import normalize_images

    model = vlm.TinyVLM.from_pretrained(clip.ZOO_CLIP.parent / "tiny-vlm-shapes")   # grounds most boxes exactly
    images, rows = vlm.grounding_examples(world, "val", 12, vlm.GROUNDING_BINS)
    grid = clip.clip_grid_tokens(model.visual, normalize_images(images), "layer2")[[i for i, *_ in rows]]
    ids, labels = vlm.encode_with_labels(model.tokenizer, [vlm.vqa_prompt(q) for _, q, _, _ in rows],
                                         [a for _, _, a, _ in rows])
    logprobs, greedy, targets = vlm.target_token_logprobs(model, grid, ids, labels)
    scored = targets != -100
    assert logprobs.shape == greedy.shape == targets.shape and scored.sum(1).eq(7).all()  # <box>, 4 locs, </box>, eos
    with torch.no_grad():
        assert -logprobs[scored].mean().item() == pytest.approx(model.loss(grid, ids, labels).item(), rel=1e-5)
    assert not greedy[~scored].any() and (logprobs[~scored] == 0).all()
    loc_logprobs, right = vlm.grounding_token_scores(model, world, "val", 12)
    assert loc_logprobs.shape == right.shape == (len(rows), 4) and (loc_logprobs <= 0).all()
    texts = model.generate_text(grid, [vlm.vqa_prompt(q) for _, q, _, _ in rows], max_new_tokens=7,
                                skip_special_tokens=False)
    greedy_boxes = [re.findall(r"<loc\d+>", t)[:4] == a.split()[1:5] for t, (_, _, a, _) in zip(texts, rows)]
    assert greedy_boxes == right.all(1).tolist() and 0 < sum(greedy_boxes) < len(rows)


def test_text_views_tokens_and_reader(world):
    from utils.clip import load_clip
    from utils.world import TEXT_ALPHABET

    images, chars = vlm.text_reading_data(world, "val", 3)
    assert images.shape == (3, 3, 32, 128) and chars.shape == (3, 4) and int(chars.max()) < len(TEXT_ALPHABET)
    assert vlm.text_views(images, "low").shape == (3, 1, 3, 32, 32)
    assert vlm.text_views(images, "anyres").shape == (3, 5, 3, 32, 32)
    with pytest.raises(ValueError):
        vlm.text_views(images, "native")
    visual = load_clip()[0].visual.eval()
    tokens = vlm.view_tokens(visual, vlm.text_views(images, "anyres"))
    assert tokens.shape == (3, 80, 128)
    reader = vlm.TextReader(80, 4, len(TEXT_ALPHABET))
    logits = reader({"tokens": tokens})
    assert logits.shape == (3, len(TEXT_ALPHABET), 4)
    assert F.cross_entropy(logits, chars).item() > 0


def test_center_view_enlarges_the_middle_and_a_vlm_with_it_saves_and_reloads(tmp_path):
    images = torch.zeros(2, 3, 32, 32)
    images[:, :, 14:18, 14:18] = 1.0        # a 4-pixel square in the middle ...
    images[:, :, 0:4, 0:4] = 1.0            # ... and one in the corner, outside a 12-pixel view
    view = vlm.center_view(images, 12)
    assert view.shape == images.shape
    assert view[:, :, :5, :5].abs().max() == 0                         # the corner is gone
    assert view[0, 0, 16, 16] == pytest.approx(1.0)                    # the middle is enlarged
    assert 8 <= (view[0, 0] > 0.5).sum() ** 0.5 <= 13                  # 4 px × 32/12 ≈ 10.7 px across
    assert torch.equal(vlm.center_view(images, 32), images)            # the whole picture is the picture
    model = vlm.build_vlm(view_crop=12)
    normal = clip.normalize_images(torch.rand(2, 32, 32, 3))
    assert torch.equal(model.image_features(normal), clip.clip_grid_tokens(model.visual, vlm.center_view(normal, 12),
                                                                           model.layer))
    model.save_pretrained(tmp_path)
    again = vlm.TinyVLM.from_pretrained(tmp_path)
    assert again.view_crop == 12 and torch.equal(again.image_features(normal), model.image_features(normal))
    assert vlm.build_vlm().view_crop is None
