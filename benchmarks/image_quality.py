"""What the image quality of another sensor does to the network, and what a contrast stretch gives back.

Every image of a labelled chip set is degraded the way other sensors and products differ from the
Google Earth and aerial chips the weights were trained on, and scored with :func:`geosam.evaluation.evaluate`
(the ``geosam evaluate`` path) under each condition:

==============  ==========================================================================
``clean``       the chips as they are
``blur1/2``     Gaussian blur of 1 and 2 px (softer optics, imagery resampled from coarser pixels)
``noise``       Gaussian noise of 12 grey levels (low light, small sensors)
``jpeg``        JPEG at quality 25 (heavily compressed web tiles)
``haze``        55 % of the image over a bright veil of 210 (haze, thin cloud: low contrast)
``dark``        40 % of the brightness (a 12-bit product cut to 8 bits without a stretch)
``pan``         grey (a panchromatic band repeated into the three channels)
``cast``        red x 1.2, blue x 0.75 (another sensor's colour balance)
==============  ==========================================================================

``stretch`` is the clean chips after geosam's percentile stretch (2nd..98th percentile of the three
bands to 0..255, ``to_rgb8(..., stretch="percentile")`` on a scene): brighter and more contrasted
than the chips were. ``haze`` and ``dark`` are also scored after it, named ``+stretch``.
The parameters are fixed here, not tuned to the results. Printed: one JSON line per condition.

    python benchmarks/image_quality.py --data ../shared/data/ships_ge/valid --format yolo --prompt ship=ships
    python benchmarks/image_quality.py --data ../shared/data/hrplanes/valid --format coco --prompt plane=airplanes --limit 150
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import geosam
from geosam.data.images import read_rgb
from geosam.data.instances import InstanceTable
from geosam.evaluation import evaluate, load_dataset
from geosam.imagery import STRETCH_PERCENTILES

Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _blur(sigma: float) -> Degrade:
    return lambda rgb, _: np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma)))


def _noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rgb + rng.normal(0.0, 12.0, rgb.shape), 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray, _: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=25)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _linear(gain: tuple[float, float, float], offset: float = 0.0) -> Degrade:
    return lambda rgb, _: np.clip(rgb * np.asarray(gain) + offset, 0, 255).astype(np.uint8)


def _pan(rgb: np.ndarray, _: np.random.Generator) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, axis=2)


def stretch(rgb: np.ndarray) -> np.ndarray:
    """geosam's percentile stretch of an 8-bit image (what ``stretch="percentile"`` does to a scene)."""
    lo, hi = np.percentile(rgb, STRETCH_PERCENTILES)
    return np.clip((rgb - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


HAZE = _linear((0.55, 0.55, 0.55), 0.45 * 210)
DARK = _linear((0.4, 0.4, 0.4))
CONDITIONS: dict[str, Degrade] = {
    "clean": lambda rgb, _: rgb,
    "stretch": lambda rgb, _: stretch(rgb),
    "blur1": _blur(1.0),
    "blur2": _blur(2.0),
    "noise": _noise,
    "jpeg": _jpeg,
    "haze": HAZE,
    "haze+stretch": lambda rgb, rng: stretch(HAZE(rgb, rng)),
    "dark": DARK,
    "dark+stretch": lambda rgb, rng: stretch(DARK(rgb, rng)),
    "pan": _pan,
    "cast": _linear((1.2, 1.0, 0.75)),
}


def degraded_copy(table: InstanceTable, degrade: Degrade, folder: Path, limit: int | None) -> InstanceTable:
    """The first ``limit`` images of ``table`` (all: None) replaced by degraded copies, written
    losslessly to ``folder``; the same noise for every run (seed 0)."""
    rng = np.random.default_rng(0)
    images = table.images.head(limit) if limit is not None else table.images
    renamed = {}
    for i, path in enumerate(images["image"]):
        renamed[path] = str(folder / f"{i:05d}.png")
        Image.fromarray(degrade(read_rgb(path), rng)).save(renamed[path])
    instances = table.instances[table.instances["image"].isin(renamed)]
    return InstanceTable(images.assign(image=images["image"].map(renamed)).reset_index(drop=True),
                         instances.assign(image=instances["image"].map(renamed)).reset_index(drop=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a labelled chip set (with --format)")
    parser.add_argument("--format", required=True, choices=["coco", "yolo", "dota", "mask"])
    parser.add_argument("--prompt", required=True, metavar="CATEGORY=PROMPT", help="e.g. ship=ships")
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--limit", type=int, help="the first images only")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    args = parser.parse_args()
    category, _, prompt = args.prompt.partition("=")
    table = load_dataset(args.data, args.format)
    model = geosam.load_model(args.model, device="cpu")
    for name in args.conditions:
        with tempfile.TemporaryDirectory() as folder:
            copy = degraded_copy(table, CONDITIONS[name], Path(folder), args.limit)
            result = evaluate(model, copy, prompts={category: prompt}, categories=[category], progress=False)
        s = result.categories[category]
        print(json.dumps({"condition": name, "images": s.images, "oIoU": round(s.oIoU, 3),
                          "AP50": round(s.AP50, 3) if s.AP50 is not None else None}), flush=True)


if __name__ == "__main__":
    main()
