"""Which raster bands of STAC items to load, found by common name, and the metadata odc-stac needs for them.

Private helper of :mod:`geosam.stac`. It reads band descriptions from every form in use (STAC 1.1
``bands``; STAC 1.0 ``eo:bands`` + ``raster:bands``), picks red/green/blue by common name (or a
``visual`` asset, or a lone panchromatic band), and, where an asset lacks the data type (odc-stac 0.5
would then load a multi-band asset as its first band only, as float32), reads it from the file header
once and writes ``raster:bands`` into copies of the items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pystac
import rasterio
from odc.stac._mdtools import is_raster_data

from geosam.errors import BandError, InputError

RGB = ("red", "green", "blue")

# Sentinel-2 L2A: reflectance = DN * 1e-4 + offset, offset -0.1 from processing baseline 04.00 (Jan 2022).
_S2_SCALE = 1e-4
_S2_OFFSET_FROM_BASELINE_4 = -0.1


@dataclass(frozen=True)
class BandInfo:
    """One band of one asset as the STAC metadata describes it (index is 1-based)."""

    asset: str
    index: int
    count: int | None
    name: str | None = None
    common_name: str | None = None
    data_type: str | None = None
    nodata: float | None = None
    scale: float | None = None
    offset: float | None = None

    @property
    def odc_name(self) -> str:
        """The name odc-stac loads this band by."""
        return self.asset if self.count in (None, 1) else f"{self.asset}.{self.index}"

    def labels(self) -> list[str]:
        """Every name a user may call this band by."""
        names = [self.common_name, self.name, self.odc_name]
        if self.count in (None, 1):
            names.append(self.asset)
        return [n for n in names if n]

    def describe(self) -> str:
        extra = list(
            dict.fromkeys(n for n in (self.common_name, self.name) if n and n != self.odc_name)
        )
        return f"{self.odc_name} ({', '.join(extra)})" if extra else self.odc_name


@dataclass(frozen=True)
class BandPlan:
    """Bands to load: output variable name -> band, plus items patched with the metadata odc-stac needs."""

    selection: dict[str, BandInfo]
    items: list[pystac.Item]

    @property
    def odc_names(self) -> list[str]:
        return [band.odc_name for band in self.selection.values()]


def _pick(entries: Any, index: int) -> Mapping[str, Any]:
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], Mapping):
        return entries[index]
    return {}


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def asset_bands(key: str, asset: pystac.Asset) -> list[BandInfo]:
    """The bands of one asset from STAC 1.1 ``bands`` or ``eo:bands``/``raster:bands``."""
    fields = asset.extra_fields
    stac11, eo, raster = fields.get("bands"), fields.get("eo:bands"), fields.get("raster:bands")
    lengths = [len(x) for x in (stac11, eo, raster) if isinstance(x, list)]
    count = max(lengths) if lengths else None
    bands = []
    for i in range(count or 1):
        b11, beo, bras = _pick(stac11, i), _pick(eo, i), _pick(raster, i)
        bands.append(
            BandInfo(
                asset=key,
                index=i + 1,
                count=count,
                name=_first(b11.get("name"), beo.get("name")),
                common_name=_first(
                    b11.get("eo:common_name"), beo.get("common_name"), fields.get("eo:common_name")
                ),
                data_type=_first(
                    b11.get("data_type"), bras.get("data_type"), fields.get("data_type")
                ),
                nodata=_first(b11.get("nodata"), bras.get("nodata"), fields.get("nodata")),
                scale=_first(
                    bras.get("scale"), b11.get("raster:scale"), fields.get("raster:scale")
                ),
                offset=_first(
                    bras.get("offset"), b11.get("raster:offset"), fields.get("raster:offset")
                ),
            )
        )
    return bands


def _is_visual(key: str, asset: pystac.Asset) -> bool:
    return key == "visual" or "visual" in (asset.roles or [])


def item_bands(item: pystac.Item) -> list[BandInfo]:
    """All raster bands of an item's data assets (thumbnails, overviews and metadata left out)."""
    return [
        band
        for key, asset in item.assets.items()
        if is_raster_data(asset, check_proj=False) or _is_visual(key, asset)
        for band in asset_bands(key, asset)
    ]


def _available(bands: Sequence[BandInfo]) -> str:
    return ", ".join(b.describe() for b in bands) or "none"


def _resolve(name: str, bands: Sequence[BandInfo]) -> BandInfo | None:
    for exact in (True, False):
        matches = [
            b
            for b in bands
            if any(
                (label == name) if exact else (label.lower() == name.lower())
                for label in b.labels()
            )
        ]
        if matches:
            # like odc-stac: a one-band asset wins over the same band inside a multi-band (visual) asset
            return min(matches, key=lambda b: (b.count or 1, b.asset))
    return None


def _default_selection(item: pystac.Item, bands: Sequence[BandInfo]) -> dict[str, BandInfo]:
    by_common = {c: _resolve_common(c, bands) for c in RGB}
    if all(by_common.values()):
        return {c: b for c, b in by_common.items() if b is not None}
    visual = [key for key, asset in item.assets.items() if _is_visual(key, asset)]
    if visual:
        vbands = [b for b in bands if b.asset == visual[0]]
        count = vbands[0].count
        if count is None or count >= 3:
            # band order of a visual (true colour) asset is red, green, blue by convention
            return {c: replace(vbands[0], index=i + 1, common_name=c) for i, c in enumerate(RGB)}
    if len(bands) == 1:
        band = bands[0]
        return {band.common_name or band.name or band.asset: band}
    raise BandError(
        f"item {item.id!r} has no bands with the common names red, green and blue, no 'visual' asset and "
        f"not a single band; available bands: {_available(bands)}. Pass bands=[...] to choose."
    )


def _resolve_common(common: str, bands: Sequence[BandInfo]) -> BandInfo | None:
    matches = [b for b in bands if b.common_name and b.common_name.lower() == common]
    return min(matches, key=lambda b: (b.count or 1, b.asset)) if matches else None


def _probe(item: pystac.Item, asset_key: str) -> list[BandInfo]:
    """Read band count, data type and nodata from the file header of one asset."""
    asset = item.assets[asset_key]
    href = asset.get_absolute_href() or asset.href
    try:
        with rasterio.open(href) as src:
            count, dtypes, nodata = src.count, src.dtypes, src.nodata
    except rasterio.errors.RasterioIOError as err:
        raise InputError(
            f"cannot read asset {asset_key!r} of item {item.id!r} at {href}: {err}"
        ) from err
    described = asset_bands(asset_key, asset)
    probed = []
    for i in range(count):
        known = described[i] if i < len(described) else BandInfo(asset_key, i + 1, count)
        nodata_i = _first(known.nodata, nodata)
        probed.append(
            replace(known, index=i + 1, count=count, data_type=dtypes[i], nodata=nodata_i)
        )
    return probed


def plan_bands(items: Sequence[pystac.Item], requested: Sequence[str] | str | None) -> BandPlan:
    """Resolve ``requested`` band names (None: red, green, blue) against the first item.

    >>> plan = plan_bands(items, None)            # doctest: +SKIP
    >>> plan.selection["red"].odc_name            # 'image.1' for a 4-band NAIP asset  # doctest: +SKIP
    """
    first = items[0]
    bands = item_bands(first)
    if not bands:
        raise BandError(
            f"item {first.id!r} has no raster data assets (assets: {sorted(first.assets)})"
        )
    if requested is None:
        selection = _default_selection(first, bands)
    else:
        names = [requested] if isinstance(requested, str) else list(requested)
        if not names:
            raise BandError("bands=[] selects nothing; leave it None for red, green, blue")
        resolved = {name: _resolve(name, bands) for name in names}
        unknown = [n for n, b in resolved.items() if b is None]
        if unknown:
            raise BandError(
                f"unknown band name(s) {unknown} in item {first.id!r}; available bands: {_available(bands)}"
            )
        selection = {n: b for n, b in resolved.items() if b is not None}
        seen: dict[str, str] = {}
        for name, band in selection.items():
            if band.odc_name in seen:
                raise BandError(
                    f"bands {seen[band.odc_name]!r} and {name!r} are the same band ({band.odc_name})"
                )
            seen[band.odc_name] = name
    # odc-stac needs the data type of every band it loads, and the band count of multi-band assets
    unknown_assets = sorted(
        {b.asset for b in selection.values() if b.data_type is None or b.count is None}
    )
    probed = {key: _probe(first, key) for key in unknown_assets}
    if probed:
        patched = {}
        for name, band in selection.items():
            if band.asset in probed:
                from_file = probed[band.asset]
                if band.index > len(from_file):
                    raise BandError(
                        f"asset {band.asset!r} of item {first.id!r} has {len(from_file)} band(s); "
                        f"band {band.index} was needed for {name!r}"
                    )
                band = replace(
                    from_file[band.index - 1],
                    common_name=band.common_name or from_file[band.index - 1].common_name,
                )
            patched[name] = band
        selection = patched
        items = [_with_raster_bands(item, probed) for item in items]
    return BandPlan(selection, list(items))


def _with_raster_bands(item: pystac.Item, probed: Mapping[str, list[BandInfo]]) -> pystac.Item:
    """A copy of ``item`` whose probed assets state data type and nodata in ``raster:bands``
    (keeping what the asset already said there, such as scale and offset)."""
    clone = item.clone()
    for key, bands in probed.items():
        if key not in clone.assets:
            continue
        fields = clone.assets[key].extra_fields
        old = fields.get("raster:bands")
        merged = []
        for i, band in enumerate(bands):
            entry = dict(_pick(old, i))
            entry.setdefault("data_type", band.data_type)
            if band.nodata is not None:
                entry.setdefault("nodata", band.nodata)
            merged.append(entry)
        fields["raster:bands"] = merged
    return clone


def scale_offset(item: pystac.Item, band: BandInfo) -> tuple[float, float]:
    """``(scale, offset)`` turning one item's stored values of ``band`` into physical values.

    From ``raster:bands`` scale/offset; failing that, Sentinel-2 L2A's processing baseline
    (``s2:processing_baseline`` >= 04.00 stores reflectance as DN * 1e-4 - 0.1, older ones DN * 1e-4).
    """
    asset = item.assets.get(band.asset)
    described = asset_bands(band.asset, asset)[band.index - 1] if asset is not None else band
    scale, offset = described.scale, described.offset
    if scale is None and offset is None:
        baseline = item.properties.get("s2:processing_baseline")
        if baseline is not None and (band.data_type or described.data_type) == "uint16":
            try:
                new_baseline = float(baseline) >= 4.0
            except ValueError:
                new_baseline = str(baseline) >= "04.00"
            return _S2_SCALE, _S2_OFFSET_FROM_BASELINE_4 if new_baseline else 0.0
    return (1.0 if scale is None else float(scale)), (0.0 if offset is None else float(offset))
