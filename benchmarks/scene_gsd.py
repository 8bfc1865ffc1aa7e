"""What a scene's ground resolution does to the network, and what ``segment(gsd=...)`` gives back.

Scenes are resampled by each of ``--factors`` to simulate other sensors (2: pixels twice as large,
0.5: twice as fine), labels with them, and segmented with :func:`geosam.segment` in windows of the
network's input (``tile`` left at its default, what a user gets without thinking of resolution) and
at each ``--gsd`` (each window resized so that the network sees that many metres per pixel; default:
the scene's own resolution before resampling). Printed per factor: oIoU of each, over all scenes.

Two kinds of scene:

- ``--data``: the labelled chips of a held-out set, each made a georeferenced scene (UTM, square
  pixels of ``--native-gsd`` metres: a nominal size, as the chips carry no georeference);
- ``--raster`` and ``--vectors``: a real GeoTIFF and its polygon labels, resampled in its own CRS.

    python benchmarks/scene_gsd.py --data ../shared/data/hrplanes/valid --format coco --prompt airplanes --limit 80
    python benchmarks/scene_gsd.py --data ../shared/data/ships_ge/valid --format yolo --prompt ships --limit 80
    python benchmarks/scene_gsd.py --raster ../shared/data/spacenet/sample_geotiff.tif \\
        --vectors ../shared/data/spacenet/geotiff_labels.geojson --prompt buildings
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import dask
import geopandas as gpd
import numpy as np
import rioxarray
import xarray as xr
from PIL import Image
from rasterio.enums import Resampling
from rasterio.features import rasterize as burn
from shapely.affinity import scale

import geosam
from geosam.data.images import read_rgb
from geosam.data.rasterize import rasterize
from geosam.evaluation import load_dataset
from geosam.segment import scene_gsd

Scenes = Iterator[tuple[float, xr.DataArray, np.ndarray]]


def as_scene(rgb: np.ndarray, pixel_m: float) -> xr.DataArray:
    """``rgb`` (H, W, 3) as a north-up UTM scene with square pixels of ``pixel_m`` metres."""
    height, width = rgb.shape[:2]
    x = 500_000 + (np.arange(width) + 0.5) * pixel_m
    y = 5_000_000 - (np.arange(height) + 0.5) * pixel_m
    scene = xr.DataArray(rgb.transpose(2, 0, 1), dims=("band", "y", "x"), coords={"band": [1, 2, 3], "y": y, "x": x})
    return scene.rio.write_crs("EPSG:32631")


def chip_scenes(args: argparse.Namespace) -> Scenes:
    """``(factor, scene, label mask)`` for every chip of ``--data`` at every factor."""
    table = load_dataset(args.data, args.format)
    images = table.images if args.limit is None else table.images.head(args.limit)
    for path, height, width in images[["image", "height", "width"]].itertuples(index=False):
        rgb = read_rgb(path)
        geoms = list(table.instances_of(path).geometry)
        for f in args.factors:
            size = (max(1, round(width / f)), max(1, round(height / f)))
            scene = as_scene(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)), args.native_gsd * f)
            yield f, scene, rasterize([scale(g, 1 / f, 1 / f, origin=(0, 0)) for g in geoms], (size[1], size[0]))


def raster_scenes(args: argparse.Namespace) -> Scenes:
    """``(factor, scene, label mask)`` of ``--raster`` resampled by every factor in its own CRS."""
    src = rioxarray.open_rasterio(args.raster)
    labels = gpd.read_file(args.vectors).to_crs(src.rio.crs)
    xres, yres = src.rio.resolution()
    for f in args.factors:
        scene = src.rio.reproject(src.rio.crs, resolution=(abs(xres) * f, abs(yres) * f), resampling=Resampling.lanczos)
        truth = burn(((g, 1) for g in labels.geometry), out_shape=scene.shape[-2:], transform=scene.rio.transform())
        yield f, scene, truth.astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a labelled chip set (with --format)")
    parser.add_argument("--format", choices=["coco", "yolo", "dota", "mask"])
    parser.add_argument("--raster", help="a georeferenced image (with --vectors)")
    parser.add_argument("--vectors", help="polygon labels of --raster (any CRS)")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--native-gsd", type=float, default=0.5, help="nominal metres per pixel of the chips")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--gsd", type=float, nargs="+", help="metres per pixel to see the scenes at")
    args = parser.parse_args()
    if bool(args.data and args.format) == bool(args.raster and args.vectors):
        parser.error("give --data with --format, or --raster with --vectors")
    if args.raster:
        native = scene_gsd(rioxarray.open_rasterio(args.raster))
        scenes = raster_scenes(args)
    else:
        native, scenes = args.native_gsd, chip_scenes(args)
    model = geosam.load_model(args.model, device="cpu")
    settings: list[float | None] = [None, *(args.gsd or [round(native, 3)])]
    overlap = {(f, s): np.zeros(2, dtype=np.int64) for f in args.factors for s in settings}
    count = dict.fromkeys(args.factors, 0)
    with dask.config.set(scheduler="synchronous"):
        for f, scene, truth in scenes:
            count[f] += 1
            for gsd in settings:
                mask = geosam.segment(scene, args.prompt, model=model, gsd=gsd, threshold=0.5).values == 1
                overlap[f, gsd] += (mask & truth).sum(), (mask | truth).sum()
    for f in args.factors:
        row = {"windows" if s is None else f"gsd={s}": round(float(overlap[f, s][0] / max(overlap[f, s][1], 1)), 3)
               for s in settings}
        print(json.dumps({"factor": f, "scene_gsd_m": round(native * f, 3), "scenes": count[f], "oIoU": row}))


if __name__ == "__main__":
    main()
