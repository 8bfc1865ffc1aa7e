"""The PyTorch dataset over a triplet folder, with augmentation that keeps text and mask true.

Geometric augmentation (scale and crop, flips, rot90) is applied to the chip and to its instance
geometries; the mask is rasterised from the transformed geometries at the network's input size, and
attribute expressions are recomputed for the augmented view (see
:func:`geosam.data.expressions.refresh`), so "the plane on the left" becomes "the plane on the
right" after a horizontal flip, and a crop that cuts the largest ship away changes the referent.

>>> ds = TripletDataset.for_network("triplets", net, split="train", augment=True)  # doctest: +SKIP
>>> item = ds[0]; item["pixels"].shape, item["mask"].dtype                          # doctest: +SKIP
(torch.Size([3, 384, 384]), torch.int64)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from PIL import Image, ImageFilter
from shapely.affinity import affine_transform
from shapely.geometry import box

from geosam.data.builder import FORMAT
from geosam.data.expressions import Expression, Obj, refresh
from geosam.data.rasterize import rasterize, rasterize_separated
from geosam.data.vocabulary import VOCABULARY, members, phrase, register_classes
from geosam.errors import InputError
from geosam.model.base import PromptSegmenter
from geosam.model.text import tokenize
from geosam.tiling import is_elongated

#: Target value of pixels that count in no loss term (``ignore_index`` of geosam.train.loss).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Augment:
    """Augmentation settings. ``full_view``: probability of using the whole chip (stretched to the
    input size, as the predictor does; for an elongated chip, aspect above
    :data:`geosam.tiling.MAX_STRETCH`, a random square of its short side, as evaluation predicts
    it) instead of a random square crop of ``crop_scale`` of the chip's short side. ``zoom_out``:
    probability of showing the whole chip shrunk by a factor drawn
    from ``(1, max_zoom_out)`` at a random place on a canvas of its mean colour, so that objects
    appear smaller than any chip shows them (parked aircraft at 15 px); off while ``max_zoom_out``
    is 1. ``sensor_shift``: probability of showing the chip as another sensor and product would
    (:func:`_sensor_shift`: new levels, colour balance and gamma, sometimes noise, blur or JPEG), so that
    the network does not learn one source's radiometry along with its objects; off at 0."""

    full_view: float = 0.35
    crop_scale: tuple[float, float] = (0.45, 1.0)
    zoom_out: float = 0.3
    max_zoom_out: float = 1.0
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.25
    grayscale: float = 0.05
    sensor_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.max_zoom_out < 1:
            raise InputError(f"max_zoom_out must be >= 1 (1 = no zoom-out), got {self.max_zoom_out}")
        if not 0.0 <= self.sensor_shift <= 1.0:
            raise InputError(f"sensor_shift must be a probability in [0, 1], got {self.sensor_shift}")


@dataclass(frozen=True)
class View:
    """One sample as the network sees it (before normalisation)."""

    image: np.ndarray  # S x S x 3 uint8
    text: str
    mask: np.ndarray  # S x S bool
    expression: Expression
    seams: np.ndarray  # S x S bool: background separating the referred instances (not in mask)
    contact: np.ndarray  # S x S bool: pixels within ``seam_gap`` of two referred instances


class TripletDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Samples of a triplet folder written by :func:`geosam.data.build_dataset`.

    Each item is a dict with ``pixels`` (3 x S x S float, normalised with the network's mean/std),
    ``input_ids`` and ``attention_mask`` (``max_tokens``), ``mask`` (S x S long, 1 = referred),
    ``seams`` (S x S bool, the background that separates referred instances) and ``contact`` (S x S
    bool, the wider band where they touch; both from
    :func:`geosam.data.rasterize.rasterize_separated`) and ``index``. Augmentation is random but
    reproducible: it depends only on ``seed``, the epoch (see :meth:`set_epoch`) and the sample index,
    not on the worker that loads it.

    ``negative_regions`` (training only, with augmentation): the share of one-to-many samples that
    are turned into *negative regions*: the prompt becomes a look-alike class ("vehicles" for a
    ship) and the target says "not this" on the labelled objects (0) and nothing elsewhere (255,
    ignored), since the rest of the chip may hold unlabelled objects of that class.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] = "train",
        *,
        input_size: int,
        pixel_mean: Sequence[float] = (0.485, 0.456, 0.406),
        pixel_std: Sequence[float] = (0.229, 0.224, 0.225),
        max_tokens: int = 20,
        augment: bool | Augment = False,
        seed: int = 0,
        sources: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
        separate_instances: bool = True,
        seam_gap: int = 4,
        negative_regions: float = 0.0,
    ) -> None:
        self.root = Path(root)
        meta_file = self.root / "dataset.json"
        if not meta_file.is_file():
            raise InputError(f"{self.root} is not a triplet dataset (no dataset.json); build one with `geosam prepare`")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format") != FORMAT:
            raise InputError(f"{meta_file} is not a {FORMAT} dataset")
        # The classes of one's own it was built with: declared in this process (a new session, a
        # torchrun worker) before an expression names them, so training needs no vocabulary flag.
        register_classes(self.meta.get("vocabulary", ()), where=str(meta_file))
        splits = [split] if isinstance(split, str) else list(split)
        samples = pd.read_parquet(self.root / "samples.parquet")
        keep = samples["split"].isin(splits)
        if sources:
            keep &= samples["source"].isin(list(sources))
        if kinds:
            keep &= samples["kind"].isin(list(kinds))
        samples = samples[keep].reset_index(drop=True)
        if limit is not None and len(samples) > limit:
            # An evenly spread, deterministic subset (every source and kind keeps its share).
            samples = samples.iloc[np.linspace(0, len(samples) - 1, limit).round().astype(int)].reset_index(drop=True)
        if samples.empty:
            raise InputError(f"{self.root} has no samples in split(s) {splits}" + (f" of sources {list(sources)}" if sources else ""))
        self.samples = samples
        chips = pd.read_parquet(self.root / "chips.parquet").set_index("chip")
        self.chips = chips.loc[sorted(set(samples["chip"]))]
        inst = pd.read_parquet(self.root / "instances.parquet")
        inst = inst[inst["chip"].isin(set(self.chips.index))]
        geoms = shapely.from_wkb(inst["geometry"].to_numpy())
        self._objs: dict[str, list[Obj]] = {c: [] for c in self.chips.index}
        for chip, oid, cls, vis, geom in zip(inst["chip"], inst["id"], inst["class_name"], inst["visible"], geoms,
                                             strict=True):
            self._objs[chip].append(Obj(int(oid), str(cls), geom, float(vis)))
        self.input_size = int(input_size)
        self.mean = np.asarray(pixel_mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(pixel_std, np.float32).reshape(3, 1, 1)
        self.max_tokens = max_tokens
        self.augment = Augment() if augment is True else (augment or None)
        self.seed = seed
        self.epoch = 0
        # Seams between touching instances in the target mask, and in ``seams`` also the background
        # within ``seam_gap`` input pixels of two instances (see geosam.data.rasterize).
        self.separate_instances = separate_instances
        self.seam_gap = seam_gap
        if not 0.0 <= negative_regions <= 1.0:
            raise InputError(f"negative_regions must be a share in [0, 1], got {negative_regions}")
        self.negative_regions = negative_regions

    @classmethod
    def for_network(cls, root: str | Path, net: PromptSegmenter, split: str | Sequence[str] = "train",
                    **kwargs: Any) -> TripletDataset:
        """A dataset with ``net``'s input size, normalisation and token count."""
        return cls(root, split, input_size=net.input_size, pixel_mean=net.pixel_mean, pixel_std=net.pixel_std,
                   max_tokens=net.max_tokens, **kwargs)

    def __len__(self) -> int:
        return len(self.samples)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # DataLoader workers started with "spawn" (macOS, Windows) unpickle the dataset in a fresh
        # interpreter, where only the built-in classes are declared.
        self.__dict__.update(state)
        register_classes(self.meta.get("vocabulary", ()), where=str(self.root / "dataset.json"))

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating a DataLoader)."""
        self.epoch = int(epoch)

    def sample_weights(self, alpha: float = 0.5) -> np.ndarray:
        """Sampling weights that give each source a share proportional to ``n_source ** alpha``
        (1: as stored, 0: every source equally), so the few multi-class scenes are not drowned by
        the thousands of ship and plane chips."""
        counts = self.samples["source"].map(self.samples["source"].value_counts())
        w = counts.to_numpy(float) ** (alpha - 1.0)
        return w / w.sum()

    def shown_classes(self) -> set[str]:
        """The leaf classes these samples show present (every kind but one-to-zero)."""
        named = set(self.samples.loc[self.samples["kind"] != "zero", "class_name"])
        return {leaf for c in named if c in VOCABULARY for leaf in members(c)}

    def negative_only_classes(self) -> list[str]:
        """Classes that these samples name only as absent: in one-to-zero prompts, or as the
        look-alikes of negative regions, with no sample in which they are present.

        Trained on such samples a network learns to answer those classes with nothing, everywhere
        (docs/training.md, "Your own classes")."""
        kinds = self.samples["kind"]
        positive = self.shown_classes()
        named = set(self.samples.loc[kinds == "zero", "class_name"])
        if self.negative_regions:
            named |= {o for c in set(self.samples.loc[kinds == "class", "class_name"]) for o in look_alike_classes(c)}
        return sorted(c for c in named if c in VOCABULARY and not set(members(c)) & positive)

    # -- items ----------------------------------------------------------------------------------
    def view(self, index: int, rng: np.random.Generator | None = None) -> View:
        """Sample ``index`` as the network sees it; ``rng`` draws the augmentation (None: none)."""
        row = self.samples.iloc[index]
        chip = self.chips.loc[row["chip"]]
        with Image.open(self.root / chip["path"]) as im:
            image = im.convert("RGB")
        width, height = image.size
        size = self.input_size
        aug = self.augment if rng is not None else None
        draw = rng.random() if aug is not None and rng is not None else 0.0
        if aug is None or rng is None or (draw < aug.full_view and not is_elongated(height, width)):
            window = box = (0.0, 0.0, float(width), float(height))
        elif aug.max_zoom_out > 1.0 and aug.full_view <= draw < aug.full_view + aug.zoom_out:
            # whole pixels, so that the canvas and the transformed geometries line up exactly
            z = rng.uniform(1.0, aug.max_zoom_out)
            cw, ch = round(z * width), round(z * height)
            x0, y0 = -float(rng.integers(0, cw - width + 1)), -float(rng.integers(0, ch - height + 1))
            window = (x0, y0, x0 + cw, y0 + ch)
            image = _on_canvas(image, (cw, ch), (-int(x0), -int(y0)))
            box = (0.0, 0.0, float(cw), float(ch))  # the window, in canvas pixels
        else:  # a square crop; an elongated chip's whole view is its short side, as evaluation sees it
            side = min(width, height) * (1.0 if draw < aug.full_view else rng.uniform(*aug.crop_scale))
            x0 = rng.uniform(0, width - side)
            y0 = rng.uniform(0, height - side)
            window = box = (x0, y0, x0 + side, y0 + side)
        pixels = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box))
        sx, sy = size / (window[2] - window[0]), size / (window[3] - window[1])
        matrix = np.array([[sx, 0.0, -window[0] * sx], [0.0, sy, -window[1] * sy], [0, 0, 1]])
        if aug is not None and rng is not None:
            if rng.random() < aug.hflip:  # horizontal: x -> S - x
                pixels = pixels[:, ::-1]
                matrix = np.array([[-1.0, 0, size], [0, 1, 0], [0, 0, 1]]) @ matrix
            if rng.random() < aug.vflip:  # vertical: y -> S - y
                pixels = pixels[::-1]
                matrix = np.array([[1.0, 0, 0], [0, -1, size], [0, 0, 1]]) @ matrix
            k = int(rng.integers(4)) if aug.rot90 else 0
            for _ in range(k):  # np.rot90 (counter-clockwise): (x, y) -> (y, S - x)
                pixels = np.rot90(pixels)
                matrix = np.array([[0.0, 1, 0], [-1, 0, size], [0, 0, 1]]) @ matrix
            pixels = _jitter(np.ascontiguousarray(pixels), aug, rng)
            if aug.sensor_shift and rng.random() < aug.sensor_shift:  # no draw while off: runs repeat
                pixels = _sensor_shift(pixels, rng)
        objs = self._transform_objs(self._objs[row["chip"]], matrix, size)
        expr = Expression(row["text"], row["kind"], row["class_name"], tuple(int(t) for t in row["targets"]),
                          row["attr"], row["anchor"])
        if rng is not None and aug is not None:
            expr = refresh(expr, objs, size, size, rng)
        targets = set(expr.targets)
        geoms = [o.geometry for o in objs if o.id in targets]
        if self.separate_instances and len(geoms) > 1:
            mask, seams, contact = rasterize_separated(geoms, (size, size), gap=self.seam_gap)
        else:
            mask, seams = rasterize(geoms, (size, size)), np.zeros((size, size), dtype=bool)
            contact = seams
        return View(np.ascontiguousarray(pixels), expr.text, mask, expr, seams, contact)

    def _transform_objs(self, objs: list[Obj], matrix: np.ndarray, size: int) -> list[Obj]:
        frame = box(0, 0, size, size)
        params = [matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]]
        out = []
        for o in objs:
            g = affine_transform(o.geometry, params)
            full = g.area
            if full <= 0 or not g.intersects(frame):
                continue
            clipped = g.intersection(frame)
            if clipped.area <= 0:
                continue
            out.append(Obj(o.id, o.class_name, clipped, o.visible * clipped.area / full))
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)]) if self.augment else None
        v = self.view(int(index), rng)
        text, target, seams, contact = v.text, v.mask.astype(np.int64), v.seams, v.contact
        if rng is not None and self.negative_regions and v.expression.kind == "class" and v.mask.any():
            others = look_alike_classes(v.expression.class_name)
            if others and rng.random() < self.negative_regions:
                other = others[int(rng.integers(len(others)))]
                text = phrase(other, plural=True, index=int(rng.integers(8)))
                target = np.where(v.mask, 0, IGNORE_INDEX).astype(np.int64)
                seams = contact = np.zeros_like(seams)
        ids, mask = tokenize([text], self.max_tokens)
        # (x / 255 - mean) / std as one scale and one shift, in place
        pixels = v.image.transpose(2, 0, 1).astype(np.float32)
        pixels *= 1.0 / (255.0 * self.std)
        pixels -= self.mean / self.std
        return {
            "pixels": torch.from_numpy(pixels),
            "input_ids": ids[0],
            "attention_mask": mask[0],
            "mask": torch.from_numpy(target),
            "seams": torch.from_numpy(seams),
            "contact": torch.from_numpy(contact),
            "index": int(index),
        }


def look_alike_classes(name: str) -> list[str]:
    """Classes that ``name``'s objects are not, for negative regions: its look-alikes and the groups
    of those (a ship is not a large vehicle, nor a vehicle), never a class that covers ``name``.

    >>> look_alike_classes("ship")[:3]
    ['bridge', 'helicopter', 'large-vehicle']
    """
    if name not in VOCABULARY:
        return []
    out = set(VOCABULARY[name].look_alikes)
    out |= {g for g in VOCABULARY if set(members(g)) & out and len(members(g)) > 1}
    return sorted(c for c in out if name not in members(c) and c != name)


def _on_canvas(image: Image.Image, size: tuple[int, int], offset: tuple[int, int]) -> Image.Image:
    """``image`` pasted at ``offset`` onto a canvas of ``size`` filled with its mean colour."""
    fill = tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0).round())
    canvas = Image.new("RGB", size, fill)
    canvas.paste(image, offset)
    return canvas


def _sensor_shift(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (uint8 RGB) as another sensor and product might deliver them.

    The chip's 2nd..98th percentiles (:data:`geosam.imagery.STRETCH_PERCENTILES`) are moved to new
    levels drawn from dark to fully stretched (the Google Earth harbour chips are dark, 98th
    percentile 83 on median, while a stretched 12-bit product spans 0..255), each band gets its own
    gain (colour balance) and a gamma follows; each of sensor noise, a blur and JPEG compression is
    then added to a third of the samples. ``benchmarks/image_quality.py`` measures these shifts.
    """
    from geosam.imagery import STRETCH_PERCENTILES

    x = pixels.astype(np.float32)
    lo, hi = np.percentile(x, STRETCH_PERCENTILES)
    new_lo = rng.uniform(0.0, 60.0)
    new_hi = rng.uniform(new_lo + 60.0, 255.0)
    # at most 4x the contrast: a chip of open water has almost no spread to stretch
    x = (x - lo) * min((new_hi - new_lo) / max(float(hi - lo), 1.0), 4.0) + new_lo
    x *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    x = 255.0 * np.clip(x / 255.0, 0.0, 1.0) ** np.float32(np.exp(rng.uniform(-0.35, 0.35)))
    if rng.random() < 1 / 3:
        x += rng.normal(0.0, rng.uniform(2.0, 10.0), x.shape).astype(np.float32)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if rng.random() < 1 / 3:  # softer optics, or pixels resampled from a coarser product
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5))))
    if rng.random() < 1 / 3:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=int(rng.integers(20, 81)))
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def _jitter(pixels: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, then saturation (or grayscale), folded into one colour matrix.

    Each step is affine in the pixel values (contrast about the image mean, saturation about the
    per-pixel luma), so the chain is ``pixels @ M + bias``: one pass over the image instead of
    five, which matters when a GPU waits on the data loader.
    """
    if not (aug.brightness or aug.contrast or aug.saturation or aug.grayscale):
        return pixels
    gain = 1.0 + rng.uniform(-aug.brightness, aug.brightness)
    contrast = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
    # x -> (gain * x - m) * contrast + m, with m the mean after the brightness gain
    alpha = gain * contrast
    bias = gain * float(pixels.mean()) * (1.0 - contrast)
    luma = np.array([0.299, 0.587, 0.114], np.float32)  # sums to 1, so the bias passes through
    spread = np.ones(3, np.float32)
    if rng.random() < aug.grayscale:
        matrix = np.outer(luma, spread)
    else:
        sat = 1.0 + rng.uniform(-aug.saturation, aug.saturation)
        matrix = sat * np.eye(3, dtype=np.float32) + (1.0 - sat) * np.outer(luma, spread)
    # PIL applies out_c = sum_k M[k, c] * in_k + bias in C, rounding and clipping to uint8.
    coeffs = tuple(float(v) for c in range(3) for v in (*(alpha * matrix[:, c]), bias))
    return np.asarray(Image.fromarray(pixels).convert("RGB", matrix=coeffs))
