"""Reading imagery and label rasters as arrays (PNG/JPEG through Pillow, GeoTIFF through rasterio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geosam.errors import InputError


def read_label_raster(path: str | Path) -> np.ndarray:
    """A label image as stored: ``H x W`` (single band) or ``H x W x C``, no conversion."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            data = src.read()
        return data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image as ``H x W x 3`` uint8 RGB.

    Single-band images (panchromatic) are repeated to three bands; four-band RGBN keeps RGB; data
    that is not uint8 (11/16-bit) is stretched between its 0.5 and 99.5 percentiles.

    >>> read_rgb("spacenet/sample_geotiff.tif").shape   # doctest: +SKIP
    (900, 900, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            data = np.moveaxis(src.read(), 0, -1)
    else:
        from PIL import Image

        with Image.open(path) as im:
            data = np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "I") else im)
    if data.ndim == 2:
        data = data[..., None]
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    elif data.shape[-1] >= 4:
        data = data[..., :3]
    if data.dtype != np.uint8:
        valid = data[data > 0] if np.any(data > 0) else data
        lo, hi = np.percentile(valid, [0.5, 99.5])
        data = np.clip((data.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(data)
