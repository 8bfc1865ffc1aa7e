"""Pipeline overhead and memory: ``segment(...)`` streamed to Zarr, against the model's raw speed.

Prints
1. the model's raw ``predict_batch`` speed on windows of its input size (scene pixels per second),
2. end-to-end pixels/s of ``geosam.segment(scene, prompt, overlap=0)`` written to Zarr with
   :func:`geosam.to_zarr`, and its ratio to (1) (target >= 0.85), then the same at the default overlap,
3. the peak resident memory of a fresh process that segments a scene to Zarr, for each scene size
   (each size runs in its own subprocess; target: 8192^2 <= 1.3 x 2048^2 and < 3 GB).

Raw and end-to-end runs alternate in one process, so a CPU shared with other work slows both alike.
The scenes are mosaics of a real NAIP image (geosam's sample data, flipped copies) written as tiled,
deflate-compressed GeoTIFFs with the NAIP grid and CRS, and read lazily with rioxarray.

    python benchmarks/pipeline.py                       # default: 2048^2 speed scene, memory 2048^2 and 8192^2
    python benchmarks/pipeline.py --speed-size 1024 --memory-sizes 1024 2048   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from geosam import RemoteSAM

CHUNK = 1024


def make_scene(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` RGB GeoTIFF mosaicked from the real NAIP sample (written band-window by window)."""
    import rasterio
    from rasterio.windows import Window

    from geosam.sample_data import naip_paths

    if path.exists():
        return path
    with rasterio.open(naip_paths()[-1]) as src:
        base = src.read([1, 2, 3])
        profile = src.profile
    tile = base.shape[-1]
    flips = [base, base[:, :, ::-1], base[:, ::-1, :], base[:, ::-1, ::-1]]
    profile.update(
        driver="GTiff", width=size, height=size, count=3, tiled=True, blockxsize=512, blockysize=512,
        compress="deflate", nodata=None, photometric="RGB",
    )  # fmt: skip
    for key in ("interleave", "layout"):
        profile.pop(key, None)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, tile):
            for col in range(0, size, tile):
                piece = flips[((row // tile) % 2) * 2 + (col // tile) % 2]
                h, w = min(tile, size - row), min(tile, size - col)
                dst.write(piece[:, :h, :w], window=Window(col, row, w, h))
    return path


def open_scene(path: Path) -> xr.DataArray:
    import rioxarray

    return rioxarray.open_rasterio(path, chunks={"band": -1, "y": CHUNK, "x": CHUNK}, lock=False)


def raw_speed(model: RemoteSAM, scene_path: Path, repeats: int) -> tuple[float, float]:
    """Scene pixels per wall-clock second and per CPU second of ``model.predict_batch`` on real windows."""
    image = open_scene(scene_path).transpose("y", "x", "band").values
    size = model.input_size
    batch = model.batch_size
    windows = np.stack([image[i * size : (i + 1) * size, :size] for i in range(batch)])
    model.predict_batch(windows, "ponds")  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        model.predict_batch(windows, "ponds")
    pixels = repeats * batch * size * size
    return pixels / (time.perf_counter() - wall), pixels / (time.process_time() - cpu)


def pipeline_speed(scene_path: Path, store: Path, overlap: int | None) -> tuple[float, float]:
    """Scene pixels per wall-clock second and per CPU second of segment(...) -> to_zarr(...)."""
    import shutil

    import geosam

    shutil.rmtree(store, ignore_errors=True)
    scene = open_scene(scene_path)
    wall, cpu = time.perf_counter(), time.process_time()
    geosam.to_zarr(geosam.segment(scene, "ponds", overlap=overlap), store, progress=False)
    pixels = scene.sizes["y"] * scene.sizes["x"]
    return pixels / (time.perf_counter() - wall), pixels / (time.process_time() - cpu)


def memory_child(scene_path: str, store: str) -> None:
    """Run in a subprocess: segment the scene to Zarr and print the peak RSS (bytes) as JSON."""
    import resource

    import geosam

    start = time.perf_counter()
    geosam.to_zarr(
        geosam.segment(open_scene(Path(scene_path)), "ponds"), store, progress=False, overwrite=True
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_bytes": peak, "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--speed-size", type=int, default=2048, help="scene side for the speed ratio"
    )
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[2048, 8192])
    parser.add_argument(
        "--repeats", type=int, default=4, help="raw predict_batch calls per measurement"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved raw/pipeline rounds")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where scenes and stores go (default: a temp dir)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*no trained weights.*")
    if args.child:
        memory_child(*args.child)
        return

    import torch

    import geosam
    from geosam.distributed import ModelRef, get_model

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geosam-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = get_model(ModelRef())  # the model segment() uses, cached in this process
    print(
        f"geosam {geosam.__version__}, {model}, batch_size {model.batch_size}, torch threads {torch.get_num_threads()}"
    )
    print(f"input chunks {CHUNK} x {CHUNK}; scene side {args.speed_size} px")

    scene = make_scene(workdir / f"scene_{args.speed_size}.tif", args.speed_size)
    pipeline_speed(scene, workdir / "warmup.zarr", overlap=0)  # first-call costs (imports, caches)
    default = geosam.tiling.default_overlap(model.input_size)
    # Rounds of raw, overlap 0, default overlap, raw: each pipeline run is compared with the raw runs
    # next to it, so a CPU shared with other work slows both sides of a ratio alike.
    rows: dict[str, list[tuple[float, float]]] = {"raw": [], "zero": [], "default": []}
    rows["raw"].append(raw_speed(model, scene, args.repeats))
    ratios: dict[str, list[tuple[float, float]]] = {"zero": [], "default": []}
    for _ in range(args.rounds):
        for key, overlap in (("zero", 0), ("default", None)):
            before = rows["raw"][-1]
            run = pipeline_speed(scene, workdir / f"speed_{key}.zarr", overlap=overlap)
            after = raw_speed(model, scene, args.repeats)
            rows[key].append(run)
            rows["raw"].append(after)
            wall = run[0] / ((before[0] + after[0]) / 2)
            cpu = run[1] / ((before[1] + after[1]) / 2)
            ratios[key].append((wall, cpu))

    def show(label: str, key: str) -> None:
        wall = np.median([r[0] for r in rows[key]])
        wall_ratio = np.median([r[0] for r in ratios[key]])
        cpu_ratio = np.median([r[1] for r in ratios[key]])
        print(
            f"{label:<32}{wall:12,.0f} px/s  ratio {wall_ratio:.3f} (wall clock), {cpu_ratio:.3f} (CPU time)"
        )

    raw_wall = [r[0] for r in rows["raw"]]
    print(
        f"{'raw predict_batch':<32}{np.median(raw_wall):12,.0f} px/s  (runs: {', '.join(f'{r:,.0f}' for r in raw_wall)})"
    )
    show("segment -> zarr, overlap 0", "zero")
    print("  target: ratio >= 0.85")
    show(f"segment -> zarr, overlap {default}", "default")
    tile = model.input_size
    zero_windows = geosam.tiling.WindowGrid(args.speed_size, tile, 0).count ** 2
    default_windows = geosam.tiling.WindowGrid(args.speed_size, tile, default).count ** 2
    print(
        f"  windows: {zero_windows} at overlap 0, {default_windows} at overlap {default}: "
        f"best possible ratio {zero_windows / default_windows:.3f} at this overlap"
    )

    peaks = {}
    for size in args.memory_sizes:
        path = make_scene(workdir / f"scene_{size}.tif", size)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(workdir / f"mem_{size}.zarr")],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[size] = figures["peak_bytes"]
        print(
            f"peak memory {size:>5} x {size:<5}: {peaks[size] / 2**30:6.2f} GiB  ({figures['seconds']:.0f} s)"
        )
    if len(peaks) > 1:
        sizes = sorted(peaks)
        print(
            f"peak ratio {sizes[-1]} / {sizes[0]}: {peaks[sizes[-1]] / peaks[sizes[0]]:.3f}  (target <= 1.3, and < 3 GiB)"
        )


if __name__ == "__main__":
    main()
