"""The World: seeded splits, items with every annotation, arrays and a torch Dataset (Phase 0)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .depth import object_depths, render_depth
from .language import caption, questions
from .rendered_text import render_text, sample_text
from .rendering import check_image_size, render
from .scene import Scene, sample_scene
from .vocabulary import COLORS, DEFAULT_HOLDOUT, SHAPES, SPLITS, Transform, class_id


class World:
    """A seeded, infinite, deterministic source of scenes, split into "train", "val" and "test".

    Scene ``index`` of ``split`` depends only on (seed, split, index), never on call order. Train scenes never
    contain a ``holdout`` (colour, shape) pair; val/test scenes are sampled without that restriction. With
    ``mismatch_rate > 0`` a train item's caption is, with that probability, replaced by the caption of a
    different scene (noisy web-style alt text); val/test captions are always correct. With ``cooccurrence > 0``
    (Phase 9) objects come with their partners (:data:`utils.world.PARTNERS`) in every split, as in real photos.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 64,
        holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT,
        mismatch_rate: float = 0.0,
        min_objects: int = 1,
        max_objects: int = 4,
        questions_per_item: int = 6,
        cooccurrence: float = 0.0,
    ) -> None:
        check_image_size(image_size)
        assert 0.0 <= mismatch_rate <= 1.0
        assert 1 <= min_objects <= max_objects <= 4
        assert 0.0 <= cooccurrence <= 1.0
        self.seed = seed
        self.image_size = image_size
        self.holdout: frozenset[tuple[str, str]] = frozenset((c, s) for c, s in holdout)
        for c, s in self.holdout:
            assert c in COLORS and s in SHAPES, f"unknown holdout pair {(c, s)}"
        self.mismatch_rate = mismatch_rate
        self.min_objects = min_objects
        self.max_objects = max_objects
        self.questions_per_item = questions_per_item
        self.cooccurrence = cooccurrence

    def __repr__(self) -> str:
        return (
            f"World(seed={self.seed}, image_size={self.image_size}, holdout={sorted(self.holdout)}, "
            f"mismatch_rate={self.mismatch_rate}, objects={self.min_objects}..{self.max_objects}"
            + (f", cooccurrence={self.cooccurrence})" if self.cooccurrence else ")")
        )

    def _rng(self, split: str, index: int, stream: int | None = None) -> np.random.Generator:
        """Generator for (seed, split, index); ``stream`` (>= 1) gives independent generators for text etc."""
        assert split in SPLITS, f"split must be one of {tuple(SPLITS)}, got {split!r}"
        key = [self.seed, SPLITS[split], index] + ([] if stream is None else [stream])
        return np.random.default_rng(key)

    def holdout_for(self, split: str) -> frozenset[tuple[str, str]]:
        return self.holdout if split == "train" else frozenset()

    def scene(self, split: str, index: int) -> Scene:
        """Scene ``index`` of ``split``; a pure function of (seed, split, index)."""
        rng = self._rng(split, index)
        return sample_scene(rng, None, self.holdout_for(split), self.min_objects, self.max_objects, self.cooccurrence)

    def scenes(self, split: str, n: int) -> list[Scene]:
        """Scenes 0..n-1 of ``split``."""
        return [self.scene(split, i) for i in range(n)]

    def render(self, scene: Scene) -> np.ndarray:
        """Render a scene at this world's image size."""
        return render(scene, self.image_size)

    def render_all(self, scenes: Sequence[Scene]) -> np.ndarray:
        """Render scenes into one uint8 array (n, H, W, 3)."""
        images = np.empty((len(scenes), self.image_size, self.image_size, 3), dtype=np.uint8)
        for i, s in enumerate(scenes):
            images[i] = self.render(s)
        return images

    def arrays(self, split: str, n: int) -> tuple[np.ndarray, list[Scene]]:
        """Images of scenes 0..n-1 as one uint8 array (n, H, W, 3), and the scenes."""
        scenes = self.scenes(split, n)
        return self.render_all(scenes), scenes

    def item(self, split: str, index: int) -> dict[str, Any]:
        """One example with every annotation.

        Keys: "image" uint8 (H, W, 3); "caption" str; "caption_matches" bool (False only for train captions
        swapped under ``mismatch_rate``); "qa" list[QA]; "boxes" int64 (n, 4) pixel boxes (x0, y0, x1, y1);
        "labels" list of (colour, shape, size); "scene" Scene; "index" int.
        """
        scene = self.scene(split, index)
        rng = self._rng(split, index, stream=1)
        matches = not (split == "train" and rng.random() < self.mismatch_rate)
        described = scene
        while not matches:  # borrow the caption of another train scene with different contents
            other = self.scene(split, int(rng.integers(2**31)))
            if sorted(other.labels()) != sorted(scene.labels()):
                described = other
                break
        return {
            "image": self.render(scene),
            "caption": caption(described, rng),
            "caption_matches": matches,
            "qa": questions(scene, rng, self.questions_per_item, self.holdout_for(split)),
            "boxes": scene.boxes(self.image_size),
            "labels": scene.labels(),
            "scene": scene,
            "index": index,
        }

    def dataset(self, split: str, n: int, transform: Transform | None = None) -> ShapesDataset:
        """A torch Dataset of items 0..n-1 of ``split`` (images precomputed once)."""
        return ShapesDataset([self.item(split, i) for i in range(n)], transform)

    def single_object_split(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray, list[Scene]]:
        """Scenes with exactly one object, for (colour, shape) classification.

        Returns uint8 images (n, H, W, 3), int64 class ids (n,) indexing :func:`class_names`, and the scenes.
        Train never shows a holdout pair (so those classes can be tested zero-shot); val/test show all 24.
        """
        scenes = [sample_scene(self._rng(split, i, stream=2), 1, self.holdout_for(split)) for i in range(n)]
        images = self.render_all(scenes)
        labels = np.array([class_id(s.objects[0].color, s.objects[0].shape) for s in scenes], dtype=np.int64)
        return images, labels, scenes

    # Phase 4: depth (stream 3) and Phase 5: rendered text (stream 4). Neither touches streams 0-2, so
    # scenes, images, captions and QA are unchanged.

    def depths(self, split: str, index: int) -> np.ndarray:
        """Depths of the objects of scene ``index`` of ``split``, float32 (n,). Introduced in Phase 4."""
        return object_depths(self.scene(split, index), self._rng(split, index, stream=3))

    def depth_map(self, split: str, index: int) -> np.ndarray:
        """Depth map float32 (H, W) of scene ``index`` of ``split``, aligned with its image. Introduced in Phase 4."""
        return render_depth(self.scene(split, index), self.depths(split, index), self.image_size)

    def depth_arrays(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray, list[Scene], list[np.ndarray]]:
        """Scenes 0..n-1 of ``split`` as uint8 images (n, H, W, 3), float32 depth maps (n, H, W), the scenes,
        and each scene's object depths. Introduced in Phase 4."""
        images, scenes = self.arrays(split, n)
        depths = [object_depths(s, self._rng(split, i, stream=3)) for i, s in enumerate(scenes)]
        maps = np.empty((n, self.image_size, self.image_size), dtype=np.float32)
        for i, (s, d) in enumerate(zip(scenes, depths)):
            maps[i] = render_depth(s, d, self.image_size)
        return images, maps, scenes, depths

    def text_item(self, split: str, index: int, length: int = 4, height: int = 32, width: int = 128) -> dict[str, Any]:
        """A rendered random string: keys "image" uint8 (height, width, 3) and "text" str. Introduced in Phase 5."""
        text = sample_text(self._rng(split, index, stream=4), length)
        return {"image": render_text(text, height, width), "text": text}


class ShapesDataset(torch.utils.data.Dataset):
    """Items of a World as a torch Dataset; each item is the :meth:`World.item` dict with "image" turned into
    a float tensor (3, H, W) in [0, 1] (then passed through ``transform``). Use :func:`collate` with a
    DataLoader, or :meth:`tensors` for full-batch work."""

    def __init__(self, items: list[dict[str, Any]], transform: Transform | None = None) -> None:
        assert items, "a ShapesDataset needs at least one item"
        self.images = torch.from_numpy(np.stack([it["image"] for it in items]))  # uint8 (N, H, W, 3), cached
        self.items = [{k: v for k, v in it.items() if k != "image"} for it in items]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = self.images[i].permute(2, 0, 1).float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, **self.items[i]}

    @property
    def captions(self) -> list[str]:
        """Every item's caption, in order."""
        return [it["caption"] for it in self.items]

    def tensors(self) -> tuple[torch.Tensor, list[str]]:
        """All images as one float tensor (N, 3, H, W) in [0, 1] (no transform), and all captions."""
        return self.images.permute(0, 3, 1, 2).float() / 255.0, self.captions


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for ShapesDataset: stacks "image" into (B, 3, H, W), "index" and
    "caption_matches" into tensors, and keeps every other field as a list."""
    out: dict[str, Any] = {k: [b[k] for b in batch] for k in batch[0]}
    out["image"] = torch.stack(out["image"])
    out["index"] = torch.tensor(out["index"], dtype=torch.long)
    out["caption_matches"] = torch.tensor(out["caption_matches"], dtype=torch.bool)
    return out


