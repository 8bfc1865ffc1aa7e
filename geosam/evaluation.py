"""Score a model on a labelled data set, category by category (the logic of ``geosam evaluate``).

For every image, each category the image is labelled for is prompted (its name as a natural phrase,
or the text given for it) and the probability map is scored against the rasterized ground truth:

* referring segmentation: oIoU, mIoU and P@0.5 of the mask ``prob > threshold`` against the
  labels rasterized by :func:`geosam.data.rasterize` (boxes as filled boxes, polygons and masks as
  themselves);
* detection: AP50 (COCO, pycocotools) of the boxes derived from the mask (mask-to-box, NMS:
  :func:`geosam.tasks.boxes.mask_to_boxes`) against the axis-aligned bounds of the labelled objects;
* counting: the share of images whose number of derived boxes equals the number of labelled objects.

Land-cover ("stuff") classes have no objects to count or box: their AP50 and count accuracy are None.
Each negative prompt names something absent from the data; its score is the share of images
whose mask is empty (no pixel above the threshold).

Images larger than ``tile`` pixels on a side (DOTA scenes) are cut into overlapping ``tile`` x
``tile`` windows, each resized to the model input by the predictor, and the window probabilities
are blended back into one map; smaller images are predicted whole, at their own size, unless they
are elongated (one side more than :data:`geosam.tiling.MAX_STRETCH` times the other, such as
HRPlanes' 640 x 360 chips): those are predicted in square windows of their short side, because the
predictor stretches whatever it is given to its square input and objects would reach the network
distorted.

>>> table = geosam.data.read_coco("hrplanes/valid/_annotations.coco.json")  # doctest: +SKIP
>>> result = evaluate(model, table, negatives=["swimming pools"], limit=20)  # doctest: +SKIP
>>> print(result.table())                                                     # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from geosam.errors import InputError
from geosam.metrics import counting_accuracy, detection_ap, res_scores_from_counts
from geosam.tasks._probs import prompt_probabilities
from geosam.tasks._protocol import ProbabilityModel
from geosam.tasks.boxes import Split, check_split, mask_to_boxes
from geosam.tiling import MIN_TILE, blend_profile, is_elongated

if TYPE_CHECKING:
    from geosam.data.dataset import TripletDataset
    from geosam.data.instances import InstanceTable
    from geosam.model.predictor import RemoteSAM

FORMATS = ("coco", "yolo", "dota", "mask")

#: Images with a side above this many pixels are predicted in windows (see the module docstring).
DEFAULT_TILE = 1024


@dataclass
class CategoryScores:
    """Scores of one category. ``AP50`` and ``count_acc`` are None for land-cover classes."""

    prompt: str
    oIoU: float
    mIoU: float
    precision_50: float
    AP50: float | None
    count_acc: float | None
    images: int
    objects: int

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "oIoU": _clean(self.oIoU),
            "mIoU": _clean(self.mIoU),
            "P@0.5": _clean(self.precision_50),
            "AP50": _clean(self.AP50),
            "count_acc": _clean(self.count_acc),
            "images": self.images,
            "objects": self.objects,
        }


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured: scores per category and per negative prompt."""

    categories: dict[str, CategoryScores]
    negatives: dict[str, float] = field(default_factory=dict)
    images: int = 0

    def to_json(self) -> dict[str, Any]:
        """``{"categories": {name: {"prompt", "oIoU", "mIoU", "P@0.5", "AP50", "count_acc", ...}},
        "negatives": {text: {"empty_rate"}}}`` with None for undefined scores (valid JSON)."""
        return {
            "categories": {c: s.to_json() for c, s in self.categories.items()},
            "negatives": {t: {"empty_rate": _clean(r)} for t, r in self.negatives.items()},
            "images": self.images,
        }

    def table(self) -> str:
        """A readable table of the scores."""
        head = f"{'category':<22} {'prompt':<26} {'images':>6} {'objects':>7} {'oIoU':>6} {'mIoU':>6} {'P@0.5':>6} {'AP50':>6} {'count':>6}"
        lines = [head, "-" * len(head)]
        for name, s in self.categories.items():
            lines.append(
                f"{name[:22]:<22} {s.prompt[:26]:<26} {s.images:>6} {s.objects:>7} "
                f"{_fmt(s.oIoU)} {_fmt(s.mIoU)} {_fmt(s.precision_50)} {_fmt(s.AP50)} {_fmt(s.count_acc)}"
            )
        if self.negatives:
            lines += ["", f"{'negative prompt':<49} {'images':>6} {'empty':>6}"]
            for text, rate in self.negatives.items():
                lines.append(f"{text[:49]:<49} {self.images:>6} {_fmt(rate)}")
        return "\n".join(lines)


def _clean(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _fmt(value: float | None) -> str:
    clean = _clean(value)
    return f"{'-':>6}" if clean is None else f"{clean:6.3f}"


# -- data ----------------------------------------------------------------------------------------


def load_dataset(
    path: str | Path, fmt: str, *, classes: Mapping[int, str | None] | None = None
) -> InstanceTable:
    """Read a labelled data set with the importers of :mod:`geosam.data`.

    * ``coco``: a COCO json file, or a folder holding one next to its images (Roboflow export);
    * ``yolo``: a folder with ``images/``, ``labels/`` and ``data.yaml`` (or its parent);
    * ``dota``: a folder with ``images/`` and ``labelTxt/``;
    * ``mask``: iSAID (``*_instance_color_RGB.png`` + ``*_instance_id_RGB.png``) or semantic masks
      in ``img/`` + ``ann/`` (LoveDA and Vaihingen class tables are known by folder name; pass
      ``classes={value: name}`` for others).
    """
    from geosam.data.coco import read_coco
    from geosam.data.dota import read_dota
    from geosam.data.masks import LOVEDA_CLASSES, VAIHINGEN_CLASSES, read_isaid, read_semantic_masks
    from geosam.data.yolo import read_yolo

    path = Path(path)
    if not path.exists():
        raise InputError(f"data set not found: {path}")
    if fmt == "coco":
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if len(found) != 1:
                raise InputError(
                    f"{path} holds {len(found)} json files; pass the COCO annotation file itself"
                )
            path = found[0]
        return read_coco(path)
    if fmt == "yolo":
        return read_yolo(path)
    if fmt == "dota":
        return read_dota(path)
    if fmt == "mask":
        if path.is_dir() and any(path.glob("*_instance_color_RGB.png")):
            return read_isaid(path)
        img, ann = path / "img", path / "ann"
        if not (img.is_dir() and ann.is_dir()):
            raise InputError(
                f"{path} is neither an iSAID folder (*_instance_color_RGB.png) nor a semantic mask "
                "folder with img/ and ann/"
            )
        if classes is None:
            known = {"loveda": LOVEDA_CLASSES, "vaihingen": VAIHINGEN_CLASSES}
            key = next((k for k in known if k in path.name.lower()), None)
            if key is None:
                raise InputError(
                    f"no class table for the masks in {path}: pass classes (--classes VALUE=NAME ...); "
                    "LoveDA and Vaihingen folders are recognised by name"
                )
            classes = known[key]
        return read_semantic_masks(img, ann, classes, source=path.name)
    raise InputError(f"unknown data format {fmt!r}: use one of {', '.join(FORMATS)}")


def default_prompt(category: str) -> str:
    """The prompt of a category: its preferred plural phrase in the vocabulary ("small-vehicle" ->
    "cars"), or the name with ``-``/``_`` read as spaces."""
    from geosam.data.vocabulary import VOCABULARY, phrase

    if category in VOCABULARY:
        return phrase(category, plural=not VOCABULARY[category].stuff)
    return category.replace("_", " ").replace("-", " ")


def category_members(category: str, present: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The labelled classes whose objects ``category`` covers: a group class of the vocabulary
    ("vehicle", "sports-field") covers its members, unless the data labels it by that name.

    >>> category_members("sports-field", {"tennis-court"})[:2]
    ('tennis-court', 'basketball-court')
    >>> category_members("vehicle", {"vehicle"}), category_members("boat", set())
    (('vehicle',), ('boat',))
    """
    from geosam.data.vocabulary import VOCABULARY, members

    if category in present or category not in VOCABULARY:
        return (category,)
    return members(category)


def unknown_categories(names: Sequence[str], present: set[str] | frozenset[str]) -> list[str]:
    """The names in ``names`` with no labelled object in the data (group classes: no member)."""
    return sorted(c for c in names if not set(category_members(c, present)) & set(present))


def _is_stuff(category: str) -> bool:
    from geosam.data.vocabulary import VOCABULARY

    info = VOCABULARY.get(category)
    return bool(info is not None and info.stuff)


# -- prediction ----------------------------------------------------------------------------------


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Window starts from 0 to ``size - tile``, evenly spread, at most ``stride`` apart."""
    if size <= tile:
        return [0]
    n = math.ceil((size - tile) / stride) + 1
    return [int(v) for v in np.linspace(0, size - tile, n).round()]


def image_probabilities(
    model: ProbabilityModel,
    image: np.ndarray,
    prompts: Sequence[str],
    *,
    tile: int | None = DEFAULT_TILE,
    overlap: int | None = None,
) -> np.ndarray:
    """``P x H x W`` probabilities of all prompts; images above ``tile`` px are predicted in
    overlapping windows (``overlap`` default ``tile // 8``) blended with the scene pipeline's
    raised-cosine weights (:func:`geosam.tiling.blend_profile`); the last window of a row or column
    is moved inside the image instead of padding it. Elongated images (aspect above
    :data:`geosam.tiling.MAX_STRETCH`) are predicted in windows no larger than their short side;
    ``tile=None`` predicts every image whole.

    >>> image_probabilities(model, np.zeros((360, 640, 3), np.uint8), ["airplanes"]).shape  # doctest: +SKIP
    (1, 360, 640)
    """
    h, w = image.shape[:2]
    if tile is not None and is_elongated(h, w):
        tile = min(tile, h, w)
    if tile is None or (h <= tile and w <= tile):
        return prompt_probabilities(model, image, prompts)
    overlap = tile // 8 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise InputError(f"overlap must lie in [0, tile), got {overlap} for tile {tile}")
    acc = np.zeros((len(prompts), h, w), dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    for y0 in _starts(h, tile, tile - overlap):
        for x0 in _starts(w, tile, tile - overlap):
            win = np.ascontiguousarray(image[y0 : y0 + tile, x0 : x0 + tile])
            wy = blend_profile(win.shape[0], overlap if h > tile else 0)
            wx = blend_profile(win.shape[1], overlap if w > tile else 0)
            wgt = np.outer(wy, wx).astype(np.float32)
            probs = prompt_probabilities(model, win, prompts)
            acc[:, y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]] += probs * wgt
            weight[y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]] += wgt
    return acc / weight


# -- evaluation ----------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_threshold(threshold: float) -> None:
    """Refuse a threshold that is no probability below 1: masks are ``prob > threshold``, so at 1 or
    above every mask is empty and every score silently 0."""
    try:
        ok = 0.0 <= float(threshold) < 1.0  # NaN fails too
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"threshold must be a probability in [0, 1), got {threshold!r}")


@dataclass
class _Tally:
    inter: list[int] = field(default_factory=list)
    union: list[int] = field(default_factory=list)
    pred_boxes: list[dict[str, np.ndarray]] = field(default_factory=list)
    true_boxes: list[dict[str, np.ndarray]] = field(default_factory=list)
    pred_counts: list[int] = field(default_factory=list)
    true_counts: list[int] = field(default_factory=list)
    objects: int = 0


def evaluate(
    model: ProbabilityModel,
    table: InstanceTable,
    *,
    prompts: Mapping[str, str] | None = None,
    negatives: Sequence[str] = (),
    categories: Sequence[str] | None = None,
    limit: int | None = None,
    threshold: float = 0.5,
    split: Split = None,
    tile: int | None = DEFAULT_TILE,
    progress: bool = True,
) -> EvaluationResult:
    """Score ``model`` on the images of ``table`` (see the module docstring for what is measured).

    ``prompts`` maps a category to its prompt text (default :func:`default_prompt`);
    ``categories`` restricts the categories (default: every category with a labelled object);
    ``limit`` takes the first images only; ``split`` goes to :func:`geosam.tasks.boxes.mask_to_boxes`
    (None: the paper's connected components). A category is scored on the images labelled for
    it; a group class ("sports-field") on the images labelled for all its members, against their union.
    """
    from geosam.data.images import read_rgb
    from geosam.data.rasterize import rasterize

    _check_threshold(threshold)
    check_split(split, threshold)
    if tile is not None and not (_is_int(tile) and tile >= MIN_TILE):
        raise InputError(
            f"tile must be None (every image whole) or an integer >= {MIN_TILE}, got {tile!r}"
        )
    if limit is not None and not (_is_int(limit) and limit >= 1):
        raise InputError(f"limit must be a positive number of images, got {limit!r}")
    # a repeated negative would be counted twice per image (a rate above 1); a string is one prompt
    negatives = [negatives] if isinstance(negatives, str) else list(dict.fromkeys(negatives))
    images = table.images if limit is None else table.images.head(limit)
    if len(images) == 0:
        raise InputError("the data set holds no images")
    present = sorted(set(table.instances["class_name"]))
    prompts = dict(prompts or {})
    names = list(categories) if categories is not None else present + [c for c in prompts if c not in present]
    unknown = unknown_categories(list(dict.fromkeys([*names, *prompts])), set(present))
    if unknown:
        raise InputError(
            f"categories not in the data: {', '.join(unknown)}; its categories: "
            f"{', '.join(present) or 'none'}"
        )
    unscored = [c for c in prompts if c not in names]
    if unscored:  # their prompts would be silently unused
        raise InputError(
            f"prompts are given for {', '.join(unscored)}, which categories={list(names)} leaves out"
        )
    text = {c: prompts.get(c) or default_prompt(c) for c in names}
    if not names and not negatives:
        raise InputError("the data set has no labelled objects and no negative prompts were given")

    covers = {c: category_members(c, set(present)) for c in names}
    labelled_sets = [set(labelled) for labelled in images["labelled"]]
    for c in names:
        if len(covers[c]) > 1 and not any(set(covers[c]) <= labelled for labelled in labelled_sets):
            raise InputError(
                f"{c!r} groups {', '.join(covers[c])}; no image is labelled for all of them, so a "
                "mask of the group cannot be scored"
            )
    tallies = {c: _Tally() for c in names}
    empty = dict.fromkeys(negatives, 0)
    by_image = dict(tuple(table.instances.groupby("image"))) if len(table.instances) else {}
    records = images.to_dict("records")
    for row in tqdm(records, desc="evaluate", unit="image", disable=not progress):
        labelled = set(row["labelled"])
        cats = [c for c in names if set(covers[c]) <= labelled]
        asked = [text[c] for c in cats] + list(negatives)
        if not asked:
            continue
        image = read_rgb(row["image"])
        h, w = image.shape[:2]
        if (h, w) != (row["height"], row["width"]):
            raise InputError(
                f"{row['image']} is {w} x {h} pixels, its labels say {row['width']} x {row['height']}"
            )
        probs = image_probabilities(model, image, asked, tile=tile)
        inst = by_image.get(row["image"])
        for i, c in enumerate(cats):
            geoms = [] if inst is None else list(inst.geometry[inst["class_name"].isin(covers[c])])
            truth = rasterize(geoms, (h, w))
            pred = probs[i] > threshold
            t = tallies[c]
            t.inter.append(int(np.count_nonzero(pred & truth)))
            t.union.append(int(np.count_nonzero(pred | truth)))
            t.objects += len(geoms)
            if not _is_stuff(c):
                boxes = mask_to_boxes(probs[i], threshold, split=split)
                bounds = np.array([g.bounds for g in geoms], dtype=np.float64).reshape(-1, 4)
                t.pred_boxes.append({c: boxes})
                t.true_boxes.append({c: bounds})
                t.pred_counts.append(len(boxes))
                t.true_counts.append(len(geoms))
        for j, neg in enumerate(negatives):
            empty[neg] += int(not np.any(probs[len(cats) + j] > threshold))

    scores: dict[str, CategoryScores] = {}
    for c in names:
        t = tallies[c]
        if not t.inter:
            continue  # no image is labelled for it
        res = res_scores_from_counts(t.inter, t.union)
        stuff = _is_stuff(c)
        ap = None if stuff else detection_ap(t.pred_boxes, t.true_boxes)["AP50"]
        scores[c] = CategoryScores(
            prompt=text[c],
            oIoU=res["oIoU"],
            mIoU=res["mIoU"],
            precision_50=res["P@0.5"],
            AP50=ap,
            count_acc=None if stuff else counting_accuracy(t.pred_counts, t.true_counts),
            images=len(t.inter),
            objects=t.objects,
        )
    return EvaluationResult(
        categories=scores,
        negatives={n: empty[n] / len(images) for n in negatives},
        images=len(images),
    )


def evaluate_referring(
    model: RemoteSAM,
    dataset: TripletDataset,
    *,
    resolve: bool = True,
    threshold: float = 0.5,
    progress: bool = False,
) -> dict[str, float]:
    """oIoU, mIoU, P@0.5 and empty-mask accuracy on a triplet dataset, overall and per expression
    kind and source (``size/P@0.5`` ...), each sample at the network's input size without
    augmentation. ``resolve``: size/position/relation expressions through :func:`geosam.tasks.refer`
    (geometry over the class mask) and group classes as the union of their members (see
    :class:`~geosam.model.RemoteSAM`), else every expression through the network alone.

    >>> evaluate_referring(model, TripletDataset.for_network("triplets", model.network, "valid"))  # doctest: +SKIP
    {'oIoU': 0.71, ..., 'size/P@0.5': 0.66, ...}
    """
    import torch

    from geosam.tasks.referring import refer
    from geosam.train.metrics import SegmentationMeter

    _check_threshold(threshold)
    meter = SegmentationMeter()
    kinds, sources = dataset.samples["kind"].tolist(), dataset.samples["source"].tolist()
    unite_groups, model.unite_groups = model.unite_groups, resolve and model.unite_groups
    try:
        for i in tqdm(range(len(dataset)), desc="expressions", disable=not progress):
            view = dataset.view(i)
            if resolve:
                prob = refer(model, view.image, view.text, threshold=threshold)
            else:
                prob = model.predict(view.image, view.text)
            pred = torch.from_numpy(prob > threshold)[None]
            meter.update(pred, torch.from_numpy(view.mask)[None], [[kinds[i], sources[i]]])
    finally:
        model.unite_groups = unite_groups
    return meter.result()
