"""Screens of a small graphical interface, and a ``gymnasium`` environment of clicks on them (Phase 10's GUI agent).

A screen (64×64 pixels by default) has a menu bar along the top (two to four menus), a few buttons and text fields
below it, in varied places, sizes and colours, each with a text label (DejaVu Sans, as the world's rendered text).
Clicking a menu opens its drop-down list, drawn over what lies below it: the next screen. The instruction names one
widget, in one of four kinds of task::

    "click Save"                  a button             one click
    "click the Email field"       a text field         one click (to focus it)
    "open the View menu"          a menu               one click
    "choose Copy from the Edit menu"                   two clicks: the menu, then its item on the next screen

An action is a click: a point (x, y) in [0, 1]², the fraction of the screen's width and height. The topmost widget
under the click gets it. The target (or, for a menu item, the right menu and then the item) succeeds; another
button, field or item ends the episode as a failure, as a wrong click in a real interface would do something
unwanted; another menu opens that menu instead (and the agent may go on); a click on nothing closes an open menu.
After ``max_steps`` clicks the episode is cut off::

    env = ShapesUI(split="train")
    obs, info = env.reset(seed=0)          # obs = {"image": uint8 (64, 64, 3), "instruction": "click Save"}
    obs, reward, terminated, truncated, info = env.step(expert_click(env))
    gymnasium.make("ShapesUI-v0")           # the same, through gymnasium's registry

As in :class:`~utils.world.reach.ShapesReach`, an episode is a pure function of (split, seed). The layout is drawn
at random (SeeClick and UI-TARS are trained on many layouts so that they read the screen rather than remember it),
and :func:`expert_click` is the scripted expert whose demonstrations a clicking agent learns from: the centre of the
right widget, or of its menu first.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from PIL import Image, ImageDraw

from .rendered_text import TEXT_RGB, text_font
from .vocabulary import BACKGROUND_RGB, SPLITS, SUPERSAMPLE

SCREEN_SIZE = 64
BUTTON_LABELS = ("OK", "Save", "Send", "Next", "Back", "Help", "Quit", "Find", "Print", "Close", "Login", "Apply",
                 "Reset", "Share", "Start", "Stop")
FIELD_LABELS = ("Name", "Email", "City", "Phone", "Code", "Date")
MENUS: dict[str, tuple[str, ...]] = {"File": ("New", "Open", "Export"), "Edit": ("Undo", "Copy", "Paste"),
                                     "View": ("Zoom", "Grid", "Full"), "Tools": ("Spell", "Count", "Sort")}
TASK_KINDS = ("button", "field", "menu", "item")
BUTTON_RGB: dict[str, tuple[int, int, int]] = {"blue": (52, 101, 164), "green": (78, 154, 6), "grey": (136, 138, 133),
                                               "orange": (206, 92, 0), "purple": (117, 80, 123)}
BAR_RGB, DROPDOWN_RGB, FIELD_RGB = (200, 200, 205), (250, 250, 250), (255, 255, 255)
BORDER_RGB, PLACEHOLDER_RGB, LIGHT_TEXT_RGB = (90, 90, 90), (120, 120, 120), (255, 255, 255)
LABEL_PX = 7            # the labels' font size, in screen pixels (DejaVu capitals: about 5 px tall)
BAR_HEIGHT = 10         # the menu bar, in screen pixels at 64×64 (everything scales with the screen)
ITEM_HEIGHT = 9         # a drop-down row
INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ "


@dataclass(frozen=True)
class Widget:
    """One clickable thing: its ``kind`` ("button", "field", "menu" or "item"), its ``label``, its box
    (x0, y0, x1, y1) in pixels of the screen (x1, y1 exclusive), its colour name (buttons) and, for an item, the
    menu it belongs to."""

    kind: str
    label: str
    box: tuple[int, int, int, int]
    color: str = ""
    menu: str = ""

    def contains(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.box
        return x0 <= x < x1 and y0 <= y < y1

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class Screen:
    """A layout: the menus on the bar, the buttons and fields below it, and which menu is open (if any)."""

    size: int
    menus: tuple[Widget, ...]
    widgets: tuple[Widget, ...]          # buttons and fields
    open_menu: str | None = None
    items: tuple[Widget, ...] = field(default=())   # the open menu's drop-down rows (empty when none is open)

    def clickable(self) -> tuple[Widget, ...]:
        """Every widget a click can reach, topmost first: the drop-down over the menu bar over the rest."""
        return self.items + self.menus + self.widgets

    def widget_at(self, x: float, y: float) -> Widget | None:
        """The topmost widget under the pixel point (x, y), or None. A widget hidden under the open drop-down
        cannot be clicked."""
        return next((w for w in self.clickable() if w.contains(x, y)), None)

    def find(self, kind: str, label: str, menu: str = "") -> Widget | None:
        """The widget of this ``kind`` and ``label`` (and ``menu``, for an item) on the screen, or None."""
        return next((w for w in self.clickable() if w.kind == kind and w.label == label and w.menu == menu), None)


def text_width(label: str, size: int = SCREEN_SIZE) -> int:
    """The width of ``label`` in screen pixels at the labels' font size (rounded up)."""
    scale = size / SCREEN_SIZE
    font = text_font(round(LABEL_PX * scale * SUPERSAMPLE))
    x0, _, x1, _ = font.getbbox(label)
    return int(np.ceil((x1 - x0) / SUPERSAMPLE))


def open_menu(screen: Screen, name: str | None) -> Screen:
    """``screen`` with menu ``name`` open (its items laid out below it, as wide as the widest) or none (None)."""
    if name is None:
        return replace(screen, open_menu=None, items=())
    menu = next(m for m in screen.menus if m.label == name)
    scale = screen.size / SCREEN_SIZE
    width = max(text_width(item, screen.size) for item in MENUS[name]) + round(6 * scale)
    x0 = min(menu.box[0], screen.size - width - 1)
    row = round(ITEM_HEIGHT * scale)
    y = menu.box[3] + 1
    items = tuple(Widget("item", item, (x0, y + i * row, x0 + width, y + (i + 1) * row), menu=name)
                  for i, item in enumerate(MENUS[name]))
    return replace(screen, open_menu=name, items=items)


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in others)


def sample_screen(rng: np.random.Generator, size: int = SCREEN_SIZE, min_widgets: int = 3,
                  max_widgets: int = 5) -> Screen:
    """A random layout: 2-4 menus on the bar (in a random order, as many as fit), then ``min_widgets`` to
    ``max_widgets`` buttons and fields with distinct labels, placed without overlapping anywhere below the bar;
    buttons in one of five colours, sizes varied by a few pixels."""
    scale = size / SCREEN_SIZE
    bar = round(BAR_HEIGHT * scale)
    names = [str(n) for n in rng.permutation(list(MENUS))[: int(rng.integers(2, len(MENUS) + 1))]]
    menus, x = [], round(2 * scale)
    for name in names:
        w = text_width(name, size) + round(4 * scale)
        if x + w > size - 1:
            break  # the bar is full: the screen has fewer menus
        menus.append(Widget("menu", name, (x, 0, x + w, bar)))
        x += w + round(2 * scale)
    n = int(rng.integers(min_widgets, max_widgets + 1))
    n_fields = int(rng.integers(0, min(2, n - 1) + 1))
    labels = [("field", str(f)) for f in rng.choice(FIELD_LABELS, n_fields, replace=False)]
    labels += [("button", str(b)) for b in rng.choice(BUTTON_LABELS, n - n_fields, replace=False)]
    widgets: list[Widget] = []
    boxes: list[tuple[int, int, int, int]] = []
    for kind, label in labels:
        pad = int(rng.integers(2, 5))
        w = text_width(label, size) + round(2 * pad * scale)
        if kind == "field":
            w = max(w + round(8 * scale), round(28 * scale))
        h = round(int(rng.integers(9, 13)) * scale)
        for _ in range(200):
            x0 = int(rng.integers(1, size - w))
            y0 = int(rng.integers(bar + round(2 * scale), size - h))
            box = (x0, y0, x0 + w, y0 + h)
            if not _overlaps(box, boxes, round(2 * scale)):
                break
        else:
            continue  # no room left: the screen has one widget fewer
        color = str(rng.choice(list(BUTTON_RGB))) if kind == "button" else ""
        boxes.append(box)
        widgets.append(Widget(kind, label, box, color))
    return Screen(size, tuple(menus), tuple(widgets))


def _draw_label(draw: ImageDraw.ImageDraw, widget: Widget, fill: tuple[int, int, int], s: int, size: int,
                left: bool = False) -> None:
    font = text_font(round(LABEL_PX * size / SCREEN_SIZE * s))
    x0, y0, x1, y1 = (v * s for v in widget.box)
    gx0, gy0, gx1, gy1 = font.getbbox(widget.label)
    tx = x0 + 3 * s * size // SCREEN_SIZE - gx0 if left else (x0 + x1 - (gx1 - gx0)) // 2 - gx0
    ty = (y0 + y1 - (gy1 - gy0)) // 2 - gy0
    draw.text((tx, ty), widget.label, font=font, fill=fill)


def render_screen(screen: Screen) -> np.ndarray:
    """The screen as uint8 (size, size, 3): drawn SUPERSAMPLE times larger and box-filtered down, as the world's
    scenes are. Buttons are filled with white labels, fields are white boxes with a grey placeholder, the menu bar is
    light grey, and an open drop-down is drawn last, over whatever lies below it."""
    s, size = SUPERSAMPLE, screen.size
    canvas = Image.new("RGB", (size * s, size * s), BACKGROUND_RGB)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, size * s - 1, round(BAR_HEIGHT * size / SCREEN_SIZE) * s - 1), fill=BAR_RGB)
    for menu in screen.menus:
        if menu.label == screen.open_menu:
            draw.rectangle(tuple(v * s for v in menu.box), fill=DROPDOWN_RGB)
        _draw_label(draw, menu, TEXT_RGB, s, size)
    for w in screen.widgets:
        x0, y0, x1, y1 = (v * s for v in w.box)
        if w.kind == "button":
            draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=2 * s, fill=BUTTON_RGB[w.color])
            _draw_label(draw, w, LIGHT_TEXT_RGB, s, size)
        else:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=FIELD_RGB, outline=BORDER_RGB, width=s)
            _draw_label(draw, w, PLACEHOLDER_RGB, s, size, left=True)
    if screen.items:
        x0, y0 = screen.items[0].box[0] * s, screen.items[0].box[1] * s
        x1, y1 = screen.items[-1].box[2] * s, screen.items[-1].box[3] * s
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=DROPDOWN_RGB, outline=BORDER_RGB, width=s)
        for item in screen.items:
            _draw_label(draw, item, TEXT_RGB, s, size, left=True)
    return np.array(canvas.reduce(s))


@dataclass(frozen=True)
class Task:
    """What to do: the ``kind`` of task (one of TASK_KINDS), the target's ``label`` and, for an item, its ``menu``."""

    kind: str
    label: str
    menu: str = ""

    @property
    def instruction(self) -> str:
        return {"button": f"click {self.label}", "field": f"click the {self.label} field",
                "menu": f"open the {self.label} menu",
                "item": f"choose {self.label} from the {self.menu} menu"}[self.kind]

    @property
    def clicks(self) -> int:
        """The fewest clicks that complete it."""
        return 2 if self.kind == "item" else 1


def sample_task(rng: np.random.Generator, screen: Screen) -> Task:
    """A task on ``screen``: a kind drawn uniformly among those the screen offers, then a target of that kind."""
    fields = [w for w in screen.widgets if w.kind == "field"]
    buttons = [w for w in screen.widgets if w.kind == "button"]
    kinds = [k for k, ok in (("button", buttons), ("field", fields), ("menu", True), ("item", True)) if ok]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind in ("button", "field"):
        pool = buttons if kind == "button" else fields
        return Task(kind, pool[int(rng.integers(len(pool)))].label)
    menu = screen.menus[int(rng.integers(len(screen.menus)))].label
    if kind == "menu":
        return Task("menu", menu)
    items = MENUS[menu]
    return Task("item", items[int(rng.integers(len(items)))], menu)


class ShapesUI(gymnasium.Env):
    """Do what the instruction says on a small interface, by clicking. Observation: ``{"image", "instruction"}``;
    action: a click (x, y) in [0, 1]² (clipped), fractions of the screen's width and height; reward 1 on success.

    ``reset(options=...)`` may fix the episode: ``{"screen": Screen, "task": Task}``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, split: str = "train", size: int = SCREEN_SIZE, max_steps: int = 4,
                 kinds: tuple[str, ...] = TASK_KINDS, render_mode: str | None = None) -> None:
        assert split in SPLITS, f"split must be one of {tuple(SPLITS)}, got {split!r}"
        assert render_mode in (None, "rgb_array"), f"render_mode must be None or 'rgb_array', got {render_mode!r}"
        assert set(kinds) <= set(TASK_KINDS) and kinds, f"kinds must be among {TASK_KINDS}, got {kinds!r}"
        self.split, self.size, self.max_steps, self.kinds, self.render_mode = split, size, max_steps, kinds, render_mode
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "instruction": spaces.Text(max_length=64, charset=INSTRUCTION_CHARSET)})
        self.action_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.screen: Screen | None = None
        self.task: Task | None = None
        self.steps_taken = 0
        self.clicked: list[Widget | None] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.np_random = np.random.default_rng([seed, SPLITS[self.split], 11])
        options = options or {}
        rng = self.np_random
        if "screen" in options:
            self.screen, self.task = options["screen"], options["task"]
        else:
            while True:  # a task of an allowed kind (a screen without fields offers no field task)
                self.screen = sample_screen(rng, self.size)
                self.task = sample_task(rng, self.screen)
                if self.task.kind in self.kinds:
                    break
        self.steps_taken, self.clicked = 0, []
        return self._observation(), self._info(None)

    def step(self, action):
        assert self.screen is not None, "call reset() before step()"
        x, y = np.clip(np.asarray(action, dtype=float).reshape(2), 0.0, 1.0) * self.size
        hit = self.screen.widget_at(min(x, self.size - 1e-6), min(y, self.size - 1e-6))
        self.steps_taken += 1
        self.clicked.append(hit)
        outcome = self._apply(hit)
        success = outcome == "success"
        terminated = outcome in ("success", "wrong widget")
        truncated = not terminated and self.steps_taken >= self.max_steps
        return self._observation(), float(success), terminated, truncated, self._info(outcome)

    def _apply(self, hit: Widget | None) -> str:
        """Update the screen for a click on ``hit``; say what it did."""
        task = self.task
        if hit is None:
            self.screen = open_menu(self.screen, None)
            return "nothing"
        if hit.kind == "menu":
            if task.kind == "menu" and hit.label == task.label:
                self.screen = open_menu(self.screen, hit.label)
                return "success"
            self.screen = open_menu(self.screen, None if self.screen.open_menu == hit.label else hit.label)
            return "menu"
        if (hit.kind, hit.label, hit.menu) == (task.kind, task.label, task.menu):
            return "success"
        return "wrong widget"

    def render(self) -> np.ndarray | None:
        return self.image() if self.render_mode == "rgb_array" else None

    def image(self) -> np.ndarray:
        """The current screen."""
        return render_screen(self.screen)

    def _observation(self) -> dict[str, Any]:
        return {"image": self.image(), "instruction": self.task.instruction}

    def _info(self, outcome: str | None) -> dict[str, Any]:
        return {"task": self.task, "screen": self.screen, "outcome": outcome, "target": target_widget(self.screen,
                                                                                                     self.task)}


def target_widget(screen: Screen, task: Task) -> Widget:
    """The widget to click next for ``task`` on ``screen``: the target itself, or, for an item whose menu is not
    open, that menu."""
    if task.kind == "item" and screen.open_menu != task.menu:
        return screen.find("menu", task.menu)
    return screen.find(task.kind, task.label, task.menu if task.kind == "item" else "")


def expert_click(env: ShapesUI) -> np.ndarray:
    """The scripted expert: the centre of the widget to click next (:func:`target_widget`), as a click in [0, 1]²
    (float32 (2,)). Works on a wrapped env too (it reads ``env.unwrapped``)."""
    e = env.unwrapped
    x, y = target_widget(e.screen, e.task).centre
    return np.array([x / e.size, y / e.size], dtype=np.float32)


gymnasium.register(id="ShapesUI-v0", entry_point=ShapesUI)
