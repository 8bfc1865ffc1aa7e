"""Built-in real imagery for the demo and the docs: NAIP over four dates and a SpaceNet panchromatic tile.

The rasters are Cloud-Optimized GeoTIFFs shipped with the package (about 4.5 MB, see SOURCE.md here):

- ``naip``: a 512 x 512 crop (2.56 km at 5 m, EPSG:26914, North Dakota prairie potholes: ponds, fields,
  roads) of one NAIP quarter-quad on 2009-08-18, 2012-07-31, 2016-08-16 and 2020-08-31; 4 bands
  red, green, blue, near-infrared, uint8, nodata 0. Public domain (USDA NAIP).
- ``spacenet-pan``: a 900 x 900 SpaceNet panchromatic tile (0.5 m, EPSG:32616, buildings), 1 band uint16,
  nodata 0. CC BY-SA 4.0.

:func:`demo_catalog` writes STAC metadata for them (``file:///`` hrefs to the installed files) so that a
real STAC API serves them:

>>> from geosam.sample_data import demo_catalog
>>> catalog = demo_catalog("/tmp/geosam-demo")           # doctest: +SKIP
>>> # rustac serve --addr 127.0.0.1:7822 <catalog.serve_args()>, then:
>>> ds = geosam.open_stac("http://127.0.0.1:7822", collections=["naip"])  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pystac

from geosam.stac_catalog import ApiFiles, RasterAsset, raster_item, write_api_files

__all__ = [
    "DATA_DIR",
    "NAIP_COLLECTION",
    "NAIP_DATES",
    "SPACENET_COLLECTION",
    "DemoCatalog",
    "demo_catalog",
    "demo_items",
    "naip_paths",
    "spacenet_pan_path",
]

DATA_DIR = Path(__file__).parent
NAIP_COLLECTION = "naip"
SPACENET_COLLECTION = "spacenet-pan"
NAIP_DATES: tuple[dt.date, ...] = (
    dt.date(2009, 8, 18),
    dt.date(2012, 7, 31),
    dt.date(2016, 8, 16),
    dt.date(2020, 8, 31),
)
# The SpaceNet sample carries no acquisition date; this placeholder keeps the item valid STAC.
_SPACENET_DATE = dt.date(2017, 1, 1)


def naip_paths() -> list[Path]:
    """The NAIP COGs, oldest first."""
    return [DATA_DIR / f"naip_{d:%Y%m%d}.tif" for d in NAIP_DATES]


def spacenet_pan_path() -> Path:
    """The SpaceNet panchromatic COG."""
    return DATA_DIR / "spacenet_pan.tif"


def demo_items() -> dict[str, list[pystac.Item]]:
    """STAC items for the sample rasters, by collection id."""
    naip = [
        raster_item(
            {
                "image": RasterAsset(
                    path, ("red", "green", "blue", "nir"), ("Red", "Green", "Blue", "NIR")
                )
            },
            datetime=date,
            item_id=f"naip_{date:%Y%m%d}",
            properties={"gsd": 5.0, "naip:state": "nd"},
        )
        for path, date in zip(naip_paths(), NAIP_DATES, strict=True)
    ]
    pan = raster_item(
        {"pan": RasterAsset(spacenet_pan_path(), ("pan",), ("PAN",))},
        datetime=_SPACENET_DATE,
        item_id="spacenet_pan",
        properties={"gsd": 0.5},
    )
    return {NAIP_COLLECTION: naip, SPACENET_COLLECTION: [pan]}


@dataclass(frozen=True)
class DemoCatalog:
    """STAC API load files for the sample data, one pair per collection."""

    collections: dict[str, ApiFiles]

    def serve_args(self) -> list[str]:
        """Arguments for ``rustac serve --addr HOST:PORT <these>``."""
        return [arg for files in self.collections.values() for arg in files.serve_args()]


def demo_catalog(directory: str | Path) -> DemoCatalog:
    """Write ``<directory>/<collection>/{collection.json,items.ndjson}`` for the sample data.

    >>> catalog = demo_catalog(tmp_path)                      # doctest: +SKIP
    >>> catalog.collections["naip"].collection                # .../naip/collection.json  # doctest: +SKIP
    """
    directory = Path(directory)
    descriptions = {
        NAIP_COLLECTION: "NAIP 4-band (RGBN) 5 m crops over four dates; USDA NAIP, public domain",
        SPACENET_COLLECTION: "SpaceNet 0.5 m panchromatic tile; SpaceNet via solaris test data, CC BY-SA 4.0",
    }
    licences = {NAIP_COLLECTION: "other", SPACENET_COLLECTION: "CC-BY-SA-4.0"}
    return DemoCatalog(
        {
            cid: write_api_files(
                items,
                directory / cid,
                collection_id=cid,
                description=descriptions[cid],
                license=licences[cid],
            )
            for cid, items in demo_items().items()
        }
    )
