"""What a scene's ground resolution does to the network, and what ``segment(gsd=...)`` gives back.

Each labelled chip of a held-out set becomes a georeferenced scene (UTM, square pixels of
``--native-gsd`` metres: a nominal size, as the chips carry no georeference) and is resampled by each
of ``--factors``, labels with it: 2 is a sensor with pixels twice as large, 0.5 one twice as fine.
Every scene is segmented with :func:`geosam.segment` in windows of the network's input (``tile``
left at its default, what a user gets without thinking of resolution) and at each ``--gsd`` (each
window resized so that the network sees the scene at that many metres per pixel; the default,
``--native-gsd``, is the chip's own scale). Printed per factor: oIoU of each, over all chips.

    python benchmarks/scene_gsd.py --data ../shared/data/hrplanes/valid --format coco --prompt airplanes --limit 80
    python benchmarks/scene_gsd.py --data ../shared/data/ships_ge/valid --format yolo --prompt ships --limit 80
"""

from __future__ import annotations

import argparse
import json

import dask
import numpy as np
import xarray as xr
from PIL import Image
from shapely.affinity import scale

import geosam
from geosam.data.images import read_rgb
from geosam.data.rasterize import rasterize
from geosam.evaluation import load_dataset


def as_scene(rgb: np.ndarray, pixel_m: float) -> xr.DataArray:
    """``rgb`` (H, W, 3) as a north-up UTM scene with square pixels of ``pixel_m`` metres."""
    height, width = rgb.shape[:2]
    x = 500_000 + (np.arange(width) + 0.5) * pixel_m
    y = 5_000_000 - (np.arange(height) + 0.5) * pixel_m
    scene = xr.DataArray(rgb.transpose(2, 0, 1), dims=("band", "y", "x"), coords={"band": [1, 2, 3], "y": y, "x": x})
    return scene.rio.write_crs("EPSG:32631")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", required=True, choices=["coco", "yolo", "dota", "mask"])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--native-gsd", type=float, default=0.5, help="nominal metres per pixel of the chips")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--gsd", type=float, nargs="+", help="metres per pixel to see the scenes at (--native-gsd)")
    args = parser.parse_args()
    model = geosam.load_model(args.model, device="cpu")
    table = load_dataset(args.data, args.format)
    images = table.images if args.limit is None else table.images.head(args.limit)
    settings: list[float | None] = [None, *(args.gsd or [args.native_gsd])]
    overlap = {(f, s): np.zeros(2, dtype=np.int64) for f in args.factors for s in settings}
    with dask.config.set(scheduler="synchronous"):
        for path, height, width in images[["image", "height", "width"]].itertuples(index=False):
            rgb = read_rgb(path)
            geoms = list(table.instances_of(path).geometry)
            for f in args.factors:
                size = (max(1, round(width / f)), max(1, round(height / f)))
                scene = as_scene(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)), args.native_gsd * f)
                truth = rasterize([scale(g, 1 / f, 1 / f, origin=(0, 0)) for g in geoms], (size[1], size[0]))
                for gsd in settings:
                    mask = geosam.segment(scene, args.prompt, model=model, gsd=gsd, threshold=0.5).values == 1
                    overlap[f, gsd] += (mask & truth).sum(), (mask | truth).sum()
    for f in args.factors:
        row = {"windows" if s is None else f"gsd={s}": round(float(overlap[f, s][0] / max(overlap[f, s][1], 1)), 3)
               for s in settings}
        print(json.dumps({"factor": f, "scene_gsd_m": args.native_gsd * f, "images": len(images), "oIoU": row}))


if __name__ == "__main__":
    main()
