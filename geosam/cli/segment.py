"""``geosam segment``: STAC search or a raster file -> lazy segmentation -> Zarr (+ GeoParquet, PNG)."""

from __future__ import annotations

import argparse
import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geosam.cli import MODEL_TERMS, add_view_arguments, reworded
from geosam.errors import InputError, MissingCRSError
from geosam.tiling import DEFAULT_CHUNK

#: Flags that only shape a STAC search or load; a raster file is read with its own grid and bands.
_STAC_ONLY = ("collection", "bbox", "datetime", "bands", "resolution")

#: The library's Python-API advice in this command's terms (see geosam.cli.reworded).
_CLI_TERMS = (
    *MODEL_TERMS,
    (
        r"choose another path, or pass overwrite=True to replace it",
        "choose another --out, or add --overwrite to replace it",
    ),
    (r"^bbox ", "--bbox "),
    (r"Pass bands=\[\.\.\.\] to choose\.", "Choose them with --bands."),
    # a raster's bands cannot be picked from here (--bands is for STAC): a 3-band copy can
    (
        r"pass bands=\(r, g, b\) labels, or give",
        "use a copy with the bands in R, G, B order (gdal_translate -b 3 -b 2 -b 1 IN OUT.tif) or give",
    ),
)

_EPILOG = """\
examples:
  geosam segment --stac http://127.0.0.1:7822 --collection naip --bbox -99.16 47.00 -99.13 47.03 \\
                 --datetime 2016/2020 --prompt ponds --out ponds.zarr --vectors ponds.parquet
  geosam segment --raster scene.tif --prompt ships --prompt harbor --out ships.zarr --vectors ships.parquet
  geosam segment --raster drone_5cm.tif --prompt airplanes --gsd 0.8 --out planes.zarr
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
    src.add_argument(
        "--resolution",
        type=float,
        default=None,
        help="load (and write) at this pixel size, CRS units; --gsd sets what the network sees",
    )
    src.add_argument(
        "--raster", metavar="PATH", help="a GeoTIFF/COG (or any GDAL raster) instead of STAC"
    )
    src.add_argument(
        "--chunks",
        type=int,
        default=DEFAULT_CHUNK,
        help=f"dask chunk side in pixels (default {DEFAULT_CHUNK})",
    )

    model = p.add_argument_group("model")
    model.add_argument("--prompt", action="append", required=True, help="text prompt (repeatable)")
    model.add_argument(
        "--model", default=None, help="model name or checkpoint (default remotesam-lite)"
    )
    model.add_argument("--weights", default=None, help="weights file for a registered model")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default)")
    model.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="run the network at this window size, a multiple of 32 of at least 64 (previews)",
    )
    add_view_arguments(model)
    model.add_argument("--tile", type=int, default=None, help="window size in scene pixels")
    model.add_argument(
        "--gsd",
        type=float,
        default=None,
        metavar="METRES",
        help="instead of --tile: the metres per pixel the network sees the scene at (windows are "
        "resized to it; the output keeps the grid), e.g. 0.8 to see 40 m aircraft 50 px long",
    )
    model.add_argument("--overlap", type=int, default=None, help="window overlap (default tile/8)")
    model.add_argument("--batch-size", type=int, default=None, help="image-prompt pairs per pass")

    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, type=Path, help="Zarr store for the probabilities")
    out.add_argument("--vectors", type=Path, default=None, help="GeoParquet file for the objects")
    out.add_argument(
        "--threshold", type=float, default=0.5, help="probability of objects, 0 to 1 (0.5)"
    )
    out.add_argument(
        "--geometry",
        choices=("polygon", "box", "oriented_box"),
        default="polygon",
        help="vector shape",
    )
    out.add_argument(
        "--split-shape",
        action="store_true",
        help="with --vectors: divide touching objects at the necks of their mask (parked aircraft)",
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


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad flags before anything is searched, loaded or computed (a bad --threshold used
    to surface only after the whole scene was written)."""
    if bool(args.stac) == bool(args.raster):
        raise InputError("give exactly one of --stac URL or --raster PATH")
    if args.raster:
        given = [f"--{name}" for name in _STAC_ONLY if getattr(args, name) is not None]
        if given:
            raise InputError(
                f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to --stac: a --raster file is read with its own grid "
                "and its first three bands as red, green, blue (choose others with a copy made by "
                "gdal_translate -b 3 -b 2 -b 1 IN OUT.tif, a grid with gdalwarp)"
            )
        if not Path(args.raster).exists():
            raise InputError(f"--raster {args.raster}: no such file")
    if not (0.0 <= args.threshold <= 1.0):  # NaN fails too
        raise InputError(f"--threshold must be a probability between 0 and 1, got {args.threshold}")
    if args.chunks < 1:
        raise InputError(f"--chunks must be at least 1, got {args.chunks}")
    # --tile, --gsd, --overlap, --batch-size, --input-size, --device and --resolution are checked by the
    # library before anything is computed
    _check_outputs(args)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that could only fail (or destroy something) once the job has run."""
    # a --out that is not a Zarr store is refused by geosam.to_zarr before anything is computed
    if args.split_shape and args.vectors is None:
        raise InputError("--split-shape divides the objects written to --vectors; give --vectors too")
    for flag, path in _outputs(args)[1:]:
        if path.is_dir():
            raise InputError(f"{flag} {path} is a folder; give a file name")
    if args.quicklook is not None:
        from matplotlib.backend_bases import FigureCanvasBase

        kinds = FigureCanvasBase.get_supported_filetypes()
        if args.quicklook.suffix.lower().lstrip(".") not in kinds:
            raise InputError(
                f"--quicklook {args.quicklook}: name an image file ending in "
                f"{', '.join('.' + k for k in sorted(kinds))}"
            )


def _outputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    given = [("--out", args.out), ("--vectors", args.vectors), ("--quicklook", args.quicklook)]
    return [(flag, Path(path)) for flag, path in given if path is not None]


def _make_folders(args: argparse.Namespace) -> None:
    """Create the folders of the outputs (as the Zarr writer would for --out), once the job is
    known to start, so that a missing folder cannot fail it at its end."""
    for flag, path in _outputs(args):
        folder = path.absolute().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(
                f"{flag} {path}: cannot create its folder {folder}: {err.strerror}"
            ) from err
        if not os.access(folder, os.W_OK):
            raise InputError(f"{flag} {path}: the folder {folder} is not writable")


def load_scene(args: argparse.Namespace) -> Any:
    """The lazy scene named by ``--stac``/``--raster`` (checked by :func:`check_args`)."""
    if args.raster:
        import rioxarray
        from rasterio.errors import NotGeoreferencedWarning

        path = Path(args.raster)
        chunks = {"band": -1, "y": args.chunks, "x": args.chunks}
        with warnings.catch_warnings():
            # the missing CRS is reported below, with what to do about it
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            scene = rioxarray.open_rasterio(path, chunks=chunks, lock=False)
        if isinstance(scene, list):  # one DataArray per subdataset (HDF, NetCDF): not an image
            raise InputError(f"--raster {path} holds subdatasets; give one of them (see gdalinfo)")
        if scene.rio.crs is None:
            raise MissingCRSError(
                f"--raster {path} has no CRS, so the results could not be georeferenced: give it one, "
                "e.g. gdal_translate -a_srs EPSG:CODE -a_ullr ULX ULY LRX LRY IN OUT.tif (a plain "
                "image such as a JPEG also needs its corner coordinates)"
            )
        return scene
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

    try:
        client = Client(address, set_as_default=True)
    except OSError as err:  # distributed's own timeout message, without its traceback
        raise InputError(f"--scheduler {address}: no dask scheduler answered: {err}") from err
    with client:
        yield


def run(args: argparse.Namespace) -> int:
    check_args(args)
    with reworded(_CLI_TERMS):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
    if args.scales != [1.0]:
        options["scales"] = tuple(args.scales)
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
            gsd=args.gsd,
            overlap=args.overlap,
            batch_size=args.batch_size,
            resources=GPU if args.gpu_resource else None,
        )
        _make_folders(args)
        print(
            f"segmenting {dict(result.sizes)} with {ref.name} in windows of {result.attrs['tile']} "
            f"px; writing {args.out}"
        )
        geosam.to_zarr(result, args.out, overwrite=args.overwrite)
        stored = geosam.open_result(args.out)
        if args.vectors:
            gdf = geosam.to_geodataframe(
                stored,
                threshold=args.threshold,
                geometry=args.geometry,
                split="shape" if args.split_shape else None,
                progress=True,
            )
            gdf.to_parquet(args.vectors)
            print(f"{len(gdf)} objects -> {args.vectors}")
        if args.quicklook:
            from geosam.quicklook import quicklook

            quicklook(scene, stored, args.quicklook)
            print(f"quicklook -> {args.quicklook}")
    print(f"probabilities -> {args.out} (open with geosam.open_result)")
    return 0
