"""``geosam segment``: STAC search or a raster file -> lazy segmentation -> Zarr (+ GeoParquet, PNG)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geosam.errors import InputError

_EPILOG = """\
examples:
  geosam segment --stac http://127.0.0.1:7822 --collection naip --bbox -99.16 47.00 -99.13 47.03 \\
                 --datetime 2016/2020 --prompt ponds --out ponds.zarr --vectors ponds.parquet
  geosam segment --raster scene.tif --prompt ships --prompt harbor --out ships.zarr --vectors ships.parquet
  geosam segment --stac URL --collection C --prompt ships --out ships.zarr --scheduler tcp://10.0.0.5:8786

The Zarr store is written chunk by chunk: run the same command again after an interruption and it
resumes (finished chunks are skipped); its geosam_complete attribute is set only at the end.
Vectors are made from the stored result, chunk by chunk, with objects merged across chunk borders.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment a STAC search or a raster with text prompts into Zarr and GeoParquet",
        description=(
            "Load scenes from a STAC API/catalog (odc-stac) or a raster file (rioxarray), segment "
            "them with text prompts in blended windows, stream the probabilities to Zarr, and "
            "optionally write the objects as GeoParquet polygons and a PNG quicklook."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("input (one of --stac or --raster)")
    src.add_argument(
        "--stac", metavar="URL", help="STAC API URL, or a static catalog/collection file"
    )
    src.add_argument(
        "--collection", action="append", default=None, help="collection id (repeatable)"
    )
    src.add_argument(
        "--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="lon/lat box"
    )
    src.add_argument("--datetime", default=None, help="STAC datetime or range, e.g. 2016/2020")
    src.add_argument(
        "--bands", nargs="+", default=None, help="band names for red green blue (or one)"
    )
    src.add_argument("--resolution", type=float, default=None, help="output pixel size (CRS units)")
    src.add_argument(
        "--raster", metavar="PATH", help="a GeoTIFF/COG (or any GDAL raster) instead of STAC"
    )
    src.add_argument(
        "--chunks", type=int, default=2048, help="dask chunk side in pixels (default 2048)"
    )

    model = p.add_argument_group("model")
    model.add_argument("--prompt", action="append", required=True, help="text prompt (repeatable)")
    model.add_argument(
        "--model", default=None, help="model name or checkpoint (default remotesam-lite)"
    )
    model.add_argument("--weights", default=None, help="weights file for a registered model")
    model.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    model.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="run the network at this window size (previews)",
    )
    model.add_argument(
        "--tta", action="store_true", help="average with mirrored views (3x the compute; see RemoteSAM)"
    )
    model.add_argument("--tile", type=int, default=None, help="window size in scene pixels")
    model.add_argument("--overlap", type=int, default=None, help="window overlap (default tile/8)")
    model.add_argument("--batch-size", type=int, default=None, help="image-prompt pairs per pass")

    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, type=Path, help="Zarr store for the probabilities")
    out.add_argument("--vectors", type=Path, default=None, help="GeoParquet file for the objects")
    out.add_argument("--threshold", type=float, default=0.5, help="probability of objects (0.5)")
    out.add_argument(
        "--geometry",
        choices=("polygon", "box", "oriented_box"),
        default="polygon",
        help="vector shape",
    )
    out.add_argument("--quicklook", type=Path, default=None, help="PNG: RGB with the probability")
    out.add_argument("--overwrite", action="store_true", help="replace a store holding another job")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler to run on")
    p.add_argument(
        "--gpu-resource",
        action="store_true",
        help="run the model only on workers with a GPU resource (dask cuda worker --resources GPU=1)",
    )
    p.set_defaults(func=run)


def load_scene(args: argparse.Namespace) -> Any:
    """The lazy scene named by ``--stac``/``--raster``."""
    if bool(args.stac) == bool(args.raster):
        raise InputError("give exactly one of --stac URL or --raster PATH")
    if args.raster:
        import rioxarray

        path = Path(args.raster)
        if not path.exists():
            raise InputError(f"--raster {path}: no such file")
        chunks = {"band": -1, "y": args.chunks, "x": args.chunks}
        return rioxarray.open_rasterio(path, chunks=chunks, lock=False)
    from geosam.stac import open_stac

    return open_stac(
        args.stac,
        collections=args.collection,
        bbox=args.bbox,
        datetime=args.datetime,
        bands=args.bands,
        resolution=args.resolution,
        chunks={"time": 1, "x": args.chunks, "y": args.chunks},
    )


@contextlib.contextmanager
def scheduler(address: str | None) -> Iterator[None]:
    """Make a running dask.distributed scheduler the default for the block, or do nothing."""
    if not address:
        yield
        return
    from distributed import Client

    with Client(address, set_as_default=True):
        yield


def run(args: argparse.Namespace) -> int:
    import geosam
    from geosam.distributed import GPU, configure_dask, model_ref

    scene = load_scene(args)
    options = {"device": args.device}
    if args.weights:
        options["weights"] = args.weights
    if args.input_size:
        options["input_size"] = args.input_size
    if args.tta:
        options["tta"] = True
    ref = model_ref(args.model or None, **options)
    prompts = args.prompt[0] if len(args.prompt) == 1 else args.prompt
    if args.gpu_resource:
        configure_dask(gpu=True)  # low-level fusion would drop the annotation (docs/distributed.md)
    with scheduler(args.scheduler):
        result = geosam.segment(
            scene,
            prompts,
            model=ref,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            resources=GPU if args.gpu_resource else None,
        )
        print(f"segmenting {dict(result.sizes)} with {ref.name}; writing {args.out}")
        geosam.to_zarr(result, args.out, overwrite=args.overwrite)
        stored = geosam.open_result(args.out)
        if args.vectors:
            gdf = geosam.to_geodataframe(
                stored, threshold=args.threshold, geometry=args.geometry, progress=True
            )
            gdf.to_parquet(args.vectors)
            print(f"{len(gdf)} objects -> {args.vectors}")
        if args.quicklook:
            from geosam.quicklook import quicklook

            quicklook(scene, stored, args.quicklook)
            print(f"quicklook -> {args.quicklook}")
    print(f"probabilities -> {args.out} (open with geosam.open_result)")
    return 0
