"""Reading imagery and label rasters as arrays (PNG/JPEG through Pillow, GeoTIFF through rasterio).

Pixels are read **as stored**: an EXIF orientation tag (set by cameras and phones, honoured by image
viewers, OpenCV and most labelling tools) is not applied, as rasterio ignores it too. Image sizes and
label coordinates in geosam therefore refer to the stored pixel grid; :func:`read_header` gives that
size and the orientation tag, so importers can spot labels drawn on the rotated display.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosam.errors import InputError

#: EXIF orientations (tag 274) whose display is the stored image turned by 90 or 270 degrees.
SWAPS_AXES = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    """Size of an image as stored, and its EXIF orientation (1: displayed as stored)."""

    width: int
    height: int
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as stored, the size geosam reads."""
        return self.width, self.height

    @property
    def displayed_size(self) -> tuple[int, int]:
        """``(width, height)`` as a viewer that applies the EXIF orientation shows it."""
        return (self.height, self.width) if self.orientation in SWAPS_AXES else self.size


def read_header(path: str | Path) -> ImageHeader:
    """The stored size and EXIF orientation of an image file, reading only its header."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            return ImageHeader(src.width, src.height)
    from PIL import Image

    try:
        with Image.open(path) as im:
            # Only parse EXIF the header already holds: PNG's getexif() would decode the whole image.
            tag = im.getexif().get(_ORIENTATION_TAG, 1) if "exif" in im.info else 1
            width, height = im.size
    except OSError as err:  # includes PIL's UnidentifiedImageError
        raise InputError(f"cannot read the image header of {path}: {err}") from err
    orientation = int(tag) if isinstance(tag, int) and 1 <= tag <= 8 else 1
    return ImageHeader(width, height, orientation)


def warn_rotated(file: str | Path, rotated: Sequence[tuple[str, int]], *, stacklevel: int = 3) -> None:
    """One warning for the images of a label file that carry an EXIF rotation geosam does not apply.

    Whether their labels were drawn on the stored or the displayed image cannot be told from
    normalised (YOLO) or bare pixel (DOTA) coordinates, and OpenCV (hence Ultralytics) and most
    labelling tools show images rotated, so the user has to check.
    """
    if not rotated:
        return
    name, orientation = rotated[0]
    warnings.warn(
        f"{file}: {len(rotated)} image(s) carry an EXIF orientation that geosam does not apply (it reads "
        f"pixels as stored), e.g. {name} (orientation {orientation}). If their labels were drawn on the "
        "rotated display, they land on the wrong pixels: re-save those images with the rotation "
        "applied (PIL.ImageOps.exif_transpose) and their labels unchanged.",
        UserWarning,
        stacklevel=stacklevel,
    )


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

    Single-band images (panchromatic) are repeated to three bands; a GeoTIFF whose bands declare
    red, green and blue (colour interpretation) gives those, in that order (BGRN imagery included),
    others their first three bands (RGBN keeps RGB); data that is not uint8 (11/16-bit) is stretched
    between the percentiles of its non-zero pixels that scenes use
    (:data:`geosam.imagery.STRETCH_PERCENTILES`), so a chip looks as the same pixels do in a scene.

    >>> read_rgb("spacenet/sample_geotiff.tif").shape   # doctest: +SKIP
    (900, 900, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio
        from rasterio.enums import ColorInterp

        with rasterio.open(path) as src:
            order = [src.colorinterp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
                     if c in src.colorinterp]
            data = np.moveaxis(src.read(order if len(order) == 3 else None), 0, -1)
    else:
        from PIL import Image

        with Image.open(path) as im:
            data = np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "I") else im)
    if data.ndim == 2:
        data = data[..., None]
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    elif data.shape[-1] == 2:
        raise InputError(f"{path} has 2 bands: give a 1-band (panchromatic), RGB or RGB+ image")
    elif data.shape[-1] >= 4:
        data = data[..., :3]
    if data.dtype != np.uint8:
        from geosam.imagery import STRETCH_PERCENTILES

        valid = data[data > 0] if np.any(data > 0) else data
        lo, hi = np.percentile(valid, STRETCH_PERCENTILES)
        data = np.round(np.clip((data.astype(np.float64) - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(data)
