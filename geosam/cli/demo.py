"""``geosam demo``: the whole pipeline on built-in real imagery, behind a real local STAC API.

It writes STAC metadata for the COGs shipped in ``geosam.sample_data`` (NAIP over four dates, a
SpaceNet panchromatic tile), serves them with ``rustac serve`` on 127.0.0.1, then for each collection
runs ``open_stac -> segment -> Zarr`` and writes the objects as GeoParquet and a PNG quicklook.
Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

#: Default output folder, relative to the working directory.
DEFAULT_OUT = Path("geosam-demo")


@dataclass(frozen=True)
class DemoJob:
    collection: str
    prompt: str


# Prompts the packaged weights answer on these scenes: the NAIP series is resampled to 5 m, far
# coarser than the 0.3-0.5 m the model was trained at, so it gets a land-cover prompt.
JOBS = (DemoJob("naip", "agricultural land"), DemoJob("spacenet-pan", "buildings"))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the pipeline end to end on built-in imagery behind a local STAC API",
        description=(
            "Serve the built-in sample COGs (NAIP x 4 dates, SpaceNet pan) with a real STAC API "
            "(rustac serve on 127.0.0.1), then open_stac -> segment -> Zarr + GeoParquet + PNG "
            "quicklook for each collection. Works offline."
        ),
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (./geosam-demo)")
    p.add_argument(
        "--model", default=None, help="model name or checkpoint (default remotesam-lite)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.add_argument("--input-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threshold", type=float, default=0.5, help="probability of objects (0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import geosam
    from geosam.distributed import get_model, model_ref
    from geosam.quicklook import quicklook
    from geosam.sample_data import demo_catalog
    from geosam.stac_server import serve_rustac

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    options: dict[str, object] = {"device": args.device}
    if args.input_size:
        options["input_size"] = args.input_size
    ref = model_ref(args.model or None, **options)
    model = get_model(ref)
    print(f"model: {model}")
    catalog = demo_catalog(out / "stac")
    written: list[Path] = []
    with serve_rustac(catalog.serve_args(), log_path=out / "rustac.log") as url:
        print(f"STAC API: {url} (rustac serve over {out / 'stac'})")
        for job in JOBS:
            ds = geosam.open_stac(
                url, collections=[job.collection], chunks={"time": 1, "x": 512, "y": 512}
            )
            print(f"\n{job.collection}: {dict(ds.sizes)}, CRS {ds.rio.crs}; prompt {job.prompt!r}")
            stem = f"{job.collection}_{job.prompt.replace(' ', '_')}"
            store = out / f"{stem}.zarr"
            geosam.to_zarr(geosam.segment(ds, job.prompt, model=ref), store, overwrite=True)
            prob = geosam.open_result(store)
            gdf = geosam.to_geodataframe(prob, threshold=args.threshold)
            parquet = out / f"{stem}.parquet"
            gdf.to_parquet(parquet)
            last = gdf[gdf["time"] == gdf["time"].max()] if len(gdf) and "time" in gdf else gdf
            png = quicklook(ds, prob, out / f"{stem}.png", vectors=last)
            print(f"  {len(gdf)} objects at probability >= {args.threshold}")
            written += [store, parquet, png]
    print(f"\ndone in {time.perf_counter() - started:.0f} s; outputs:")
    for path in written:
        print(f"  {path}")
    print("open them with: geosam.open_result(PATH.zarr), geopandas.read_parquet(PATH.parquet)")
    return 0
