"""utils.vqa: the answer vocabulary, candidate scoring and per-kind accuracy shared by Phases 4 and 5."""
import torch

from utils import vqa
from utils.world import QA


def test_answer_words_cover_every_kind():
    assert vqa.answer_word(QA("how many objects are there?", "2", "count")) == "two"
    assert vqa.answer_word(QA("is there a red circle?", "no", "exists")) == "no"
    assert len(set(vqa.ANSWERS)) == len(vqa.ANSWERS) == 19


def test_last_token_scores_read_each_rows_last_real_position():
    logits = torch.zeros(2, 3, 5)
    logits[0, 1, 4] = 9.0  # row 0 ends at position 1, row 1 at position 2
    logits[1, 2, 2] = 9.0
    scores = vqa.last_token_scores(logits, torch.tensor([[1, 1, 0], [1, 1, 1]]), [2, 4])
    assert scores.argmax(1).tolist() == [1, 0]


def test_vqa_accuracy():
    pairs = [(0, QA("what color is the circle?", "red", "color")), (0, QA("how many objects are there?", "2", "count"))]
    scores = torch.full((2, len(vqa.ANSWERS)), -1.0)
    scores[0, vqa.ANSWERS.index("red")] = 0.0
    scores[1, vqa.ANSWERS.index("three")] = 0.0
    assert vqa.vqa_accuracy(scores, pairs) == {"color": 1.0, "count": 0.0, "all": 0.5}


def test_correct_answers_are_what_vqa_accuracy_averages():
    pairs = [(0, QA("what color is the circle?", "red", "color")), (0, QA("how many objects are there?", "2", "count")),
             (1, QA("is there a red circle?", "no", "exists"))]
    scores = torch.full((3, len(vqa.ANSWERS)), -1.0)
    scores[0, vqa.ANSWERS.index("red")] = 0.0
    scores[1, vqa.ANSWERS.index("three")] = 0.0
    scores[2, vqa.ANSWERS.index("no")] = 0.0
    right = vqa.correct_answers(scores, pairs)
    assert right.dtype == bool and right.tolist() == [True, False, True]
    assert vqa.vqa_accuracy(scores, pairs)["all"] == right.mean()
