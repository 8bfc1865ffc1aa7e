"""Rebuild the STAC test rasters (tests/data/{naip,landsat,s2like,spacenet}) and geosam/sample_data COGs.

Run once from the repository root: ``.venv/bin/python tests/data/make_stac_data.py``. It reads the shared
real data (../shared/data, read-only) and writes small Cloud-Optimized GeoTIFF crops. Kept as the record of
how the committed files were made; tests do not run it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[2]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
TESTS = ROOT / "tests" / "data"
SAMPLE = ROOT / "geosam" / "sample_data"

NAIP_TEST_DATES = ["20090818", "20140720", "20200831"]
NAIP_SAMPLE_DATES = ["20090818", "20120731", "20160816", "20200831"]


def write_cog(
    path: Path, data: np.ndarray, *, crs: object, transform: object, nodata: float | None
) -> None:
    """A COG with 256-pixel tiles, deflate + horizontal predictor and averaged overviews."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "dtype": data.dtype.name,
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 2,
        "blocksize": 256,
        "overview_resampling": "average",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1e3:.0f} kB")


def crop(src_path: Path, dst_path: Path, window: Window) -> None:
    with rasterio.open(src_path) as src:
        data = src.read(window=window)
        write_cog(
            dst_path, data, crs=src.crs, transform=src.window_transform(window), nodata=src.nodata
        )


def naip(date: str) -> Path:
    return SHARED / "naip" / f"m_4709963_se_14_1_{date}.tif"


def main() -> None:
    # NAIP: ponds, fields and a road in the south-east of the quarter-quad (same pixel window each date)
    for date in NAIP_TEST_DATES:
        crop(naip(date), TESTS / "naip" / f"naip_{date}.tif", Window(560, 400, 256, 256))
    for date in NAIP_SAMPLE_DATES:
        crop(naip(date), SAMPLE / f"naip_{date}.tif", Window(400, 200, 512, 512))
    crop(
        SHARED / "spacenet" / "sample_geotiff.tif",
        TESTS / "spacenet" / "pan.tif",
        Window(300, 300, 256, 256),
    )
    crop(
        SHARED / "spacenet" / "sample_geotiff.tif",
        SAMPLE / "spacenet_pan.tif",
        Window(0, 0, 900, 900),
    )
    landsat_window = Window(50, 200, 256, 256)  # includes part of the nodata collar
    crop(SHARED / "landsat" / "RGB.byte.tif", TESTS / "landsat" / "rgb_byte.tif", landsat_window)

    # No real uint16 RGB exists in the shared data, so a Sentinel-2 L2A-like set is derived from the real
    # Landsat crop: reflectance = byte / 255 * 0.3, stored the L2A way (processing baseline >= 04.00) as
    # DN = reflectance * 10000 + 1000 in one uint16 file per band, nodata 0.
    with rasterio.open(SHARED / "landsat" / "RGB.byte.tif") as src:
        rgb = src.read(window=landsat_window)
        transform = src.window_transform(landsat_window)
        crs = src.crs
    for band, name in zip(rgb, ["B04", "B03", "B02"], strict=True):
        dn = np.round(band.astype(np.float64) / 255 * 0.3 * 10000 + 1000).astype(np.uint16)
        dn[band == 0] = 0  # keep the scene's nodata collar as nodata
        write_cog(
            TESTS / "s2like" / f"{name}.tif", dn[None], crs=crs, transform=transform, nodata=0
        )


if __name__ == "__main__":
    sys.exit(main())
