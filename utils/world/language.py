"""The world's language: captions in five paraphrase templates, and questions with answers (Phase 0)."""
from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .scene import Obj, Scene
from .vocabulary import COLORS, NUMBER_WORDS, PLURAL, SHAPES

CAPTION_TEMPLATES = 5  # number of paraphrase templates; template ids are 0..CAPTION_TEMPLATES-1


def join_phrases(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def position_phrase(x: float, y: float) -> str:
    """Coarse location of a point (x, y in [0, 1], y down) in the words of the captions: the image cut into a 3×3
    grid, e.g. "in the top left", "on the right", "in the center". Phase 7 reads drawn images back with it."""
    v = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
    h = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "center"
    if v == "middle":
        return "in the center" if h == "center" else f"on the {h}"
    return f"at the {v}" if h == "center" else f"in the {v} {h}"


def _where(obj: Obj) -> str:
    """Coarse location of an object in the image, e.g. "in the top left" or "on the right"."""
    return position_phrase(obj.x, obj.y)


def caption(scene: Scene, rng: np.random.Generator | None = None, template: int | None = None) -> str:
    """Describe a scene in one sentence, naming every object's size, colour and shape.

    ``template`` picks one of CAPTION_TEMPLATES paraphrases; if None it is drawn from ``rng`` (template 0
    when ``rng`` is None too). Templates:

    0. "a small red circle and a large blue square."
    1. "there is a small red circle and a large blue square."
    2. "two objects: a small red circle and a large blue square."
    3. "an image showing a small red circle and a large blue square."
    4. spatial: "a small red circle to the left of a large blue square." / "from top to bottom: ..." /
       single object: "a small red circle in the top left."
    """
    if template is None:
        template = 0 if rng is None else int(rng.integers(CAPTION_TEMPLATES))
    assert 0 <= template < CAPTION_TEMPLATES, f"template must be in 0..{CAPTION_TEMPLATES - 1}"
    objs = scene.objects
    listed = join_phrases(["a " + o.describe() for o in objs])
    if template == 0:
        text = listed
    elif template == 1:
        text = "there is " + listed
    elif template == 2:
        text = f"{NUMBER_WORDS[len(objs)]} object{'s' if len(objs) > 1 else ''}: {listed}"
    elif template == 3:
        text = "an image showing " + listed
    elif len(objs) == 1:
        text = f"a {objs[0].describe()} {_where(objs[0])}"
    else:  # spatial: order along the axis on which the objects are most spread out
        xs, ys = [o.x for o in objs], [o.y for o in objs]
        horizontal = max(xs) - min(xs) >= max(ys) - min(ys)
        ordered = sorted(objs, key=(lambda o: o.x) if horizontal else (lambda o: o.y))
        phrases = ["a " + o.describe() for o in ordered]
        if len(objs) == 2:
            text = f"{phrases[0]} {'to the left of' if horizontal else 'above'} {phrases[1]}"
        else:
            text = f"from {'left to right' if horizontal else 'top to bottom'}: {join_phrases(phrases)}"
    return text + "."


# ----------------------------------------------------------------------------------------------------------
# Questions and answers

QA_KINDS: tuple[str, ...] = ("color", "shape", "size", "count", "exists", "position")
POSITION_MIN_DELTA = 0.15  # only ask "left of"/"above" when the centres differ clearly along that axis
# the position relations: the axis each compares along, and when "is a <relation> b" holds (y grows downwards)
_RELATIONS = {"left of": ("x", operator.lt), "right of": ("x", operator.gt),
              "above": ("y", operator.lt), "below": ("y", operator.gt)}


def _relation(a, b, relation: str) -> str | None:
    """"yes" or "no" to "is a <relation> b?", or None when the centres are not clearly apart along its axis."""
    axis, holds = _RELATIONS[relation]
    pa, pb = getattr(a, axis), getattr(b, axis)
    if abs(pa - pb) <= POSITION_MIN_DELTA:
        return None
    return "yes" if holds(pa, pb) else "no"


@dataclass(frozen=True)
class QA:
    """A question about a scene, its answer (one word: a colour, shape, size, digit, "yes" or "no"), and its kind."""

    question: str
    answer: str
    kind: str


def _candidates(scene: Scene, rng: np.random.Generator, holdout: frozenset[tuple[str, str]]) -> dict[str, list[QA]]:
    """Every question we are willing to ask about ``scene``, grouped by kind. Answers are computed from the
    scene graph, so they are correct by construction; ambiguous questions are never generated, and no
    question names a ``holdout`` (colour, shape) pair."""
    objs = scene.objects
    out: dict[str, list[QA]] = {k: [] for k in QA_KINDS}
    # color / shape: only when the reference is unambiguous
    for shape in SHAPES:
        if scene.count(shape=shape) == 1:
            o = next(o for o in objs if o.shape == shape)
            out["color"].append(QA(f"what color is the {shape}?", o.color, "color"))
    for color in COLORS:
        if scene.count(color=color) == 1:
            o = next(o for o in objs if o.color == color)
            out["shape"].append(QA(f"what shape is the {color} object?", o.shape, "shape"))
    for o in objs:  # (colour, shape) is unique within a scene
        out["size"].append(QA(f"what size is the {o.color} {o.shape}?", o.size, "size"))
    # count: all objects, every present colour/shape, plus one absent colour/shape (answer "0")
    out["count"].append(QA("how many objects are there?", str(len(objs)), "count"))
    absent_colors = [c for c in COLORS if not scene.has(color=c)]
    absent_shapes = [s for s in SHAPES if not scene.has(shape=s)]
    colors = [c for c in COLORS if scene.has(color=c)] + [absent_colors[int(rng.integers(len(absent_colors)))]]
    shapes = [s for s in SHAPES if scene.has(shape=s)]
    if absent_shapes:
        shapes.append(absent_shapes[int(rng.integers(len(absent_shapes)))])
    for c in colors:
        out["count"].append(QA(f"how many {c} objects are there?", str(scene.count(color=c)), "count"))
    for s in shapes:
        out["count"].append(QA(f"how many {PLURAL[s]} are there?", str(scene.count(shape=s)), "count"))
    # exists: one "yes" per object, and one "no" near miss per object (same shape, a colour not present)
    for o in objs:
        out["exists"].append(QA(f"is there a {o.color} {o.shape}?", "yes", "exists"))
        missing = [c for c in COLORS if not scene.has(color=c, shape=o.shape) and (c, o.shape) not in holdout]
        if missing:
            c = missing[int(rng.integers(len(missing)))]
            out["exists"].append(QA(f"is there a {c} {o.shape}?", "no", "exists"))
    # position: every ordered pair, along each axis where the centres are clearly apart (half yes, half no)
    for a in objs:
        for b in objs:
            if a is b:
                continue
            ref_a, ref_b = f"the {a.color} {a.shape}", f"the {b.color} {b.shape}"
            for relation in _RELATIONS:
                if (yes_no := _relation(a, b, relation)) is not None:
                    out["position"].append(QA(f"is {ref_a} {relation} {ref_b}?", yes_no, "position"))
    return out


def questions(
    scene: Scene,
    rng: np.random.Generator | None = None,
    n: int | None = None,
    holdout: frozenset[tuple[str, str]] = frozenset(),
) -> list[QA]:
    """Questions about a scene with answers that are correct by construction.

    With ``n=None`` return every candidate question (grouped by kind, in QA_KINDS order). Otherwise return
    ``n`` questions (fewer if the scene has fewer), drawn round-robin over the available kinds in a random
    order so that the kinds stay balanced. ``rng=None`` means a fixed generator (deterministic output).
    "No" questions never mention a ``holdout`` pair (World passes its holdout for the train split).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    pools = _candidates(scene, rng, holdout)
    if n is None:
        return [qa for kind in QA_KINDS for qa in pools[kind]]
    kinds = [k for k in QA_KINDS if pools[k]]
    kinds = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    out: list[QA] = []
    while len(out) < n and kinds:
        for kind in list(kinds):
            if len(out) == n:
                break
            pool = pools[kind]
            out.append(pool.pop(int(rng.integers(len(pool)))))
            if not pool:
                kinds.remove(kind)
    return out


_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_PLURAL = "|".join(PLURAL.values())


def answer(scene: Scene, question: str) -> QA | None:
    """The answer to one of the world's questions (any template :func:`questions` asks) about *any* scene, or None
    when the question does not apply to it: "what color is the circle?" of a scene with no circle or two, a
    position question whose objects are missing or not clearly apart. Lets a fixed question — a spoken one, say —
    be asked about many scenes. Introduced in Phase 6."""
    q = question.strip().lower()
    if m := re.fullmatch(rf"what color is the ({_SHAPE})\?", q):
        objs = [o for o in scene.objects if o.shape == m[1]]
        return QA(question, objs[0].color, "color") if len(objs) == 1 else None
    if m := re.fullmatch(rf"what shape is the ({_COLOR}) object\?", q):
        objs = [o for o in scene.objects if o.color == m[1]]
        return QA(question, objs[0].shape, "shape") if len(objs) == 1 else None
    if m := re.fullmatch(rf"what size is the ({_COLOR}) ({_SHAPE})\?", q):
        obj = scene.find(m[1], m[2])
        return QA(question, obj.size, "size") if obj else None
    if q == "how many objects are there?":
        return QA(question, str(len(scene.objects)), "count")
    if m := re.fullmatch(rf"how many ({_COLOR}) objects are there\?", q):
        return QA(question, str(scene.count(color=m[1])), "count")
    if m := re.fullmatch(rf"how many ({_PLURAL}) are there\?", q):
        shape = next(s for s, p in PLURAL.items() if p == m[1])
        return QA(question, str(scene.count(shape=shape)), "count")
    if m := re.fullmatch(rf"is there a ({_COLOR}) ({_SHAPE})\?", q):
        return QA(question, "yes" if scene.find(m[1], m[2]) else "no", "exists")
    relation = "|".join(_RELATIONS)
    if m := re.fullmatch(rf"is the ({_COLOR}) ({_SHAPE}) ({relation}) the ({_COLOR}) ({_SHAPE})\?", q):
        a, b = scene.find(m[1], m[2]), scene.find(m[4], m[5])
        if a is None or b is None or a is b:
            return None
        yes_no = _relation(a, b, m[3])
        return None if yes_no is None else QA(question, yes_no, "position")
    raise ValueError(f"not one of the world's question templates: {question!r}")
