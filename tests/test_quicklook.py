"""The PNG quicklook frames the scene at its pixel edges, whatever the outlines drawn over it."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import box

from geosam.quicklook import _figure, quicklook
from tests.pipeline_fixtures import naip_scene


def test_quicklook_frames_the_scene_not_the_outlines(tmp_path: Path) -> None:
    scene = naip_scene()
    x, y = scene.x.values, scene.y.values
    dx, dy = x[1] - x[0], y[1] - y[0]
    prob = xr.DataArray(np.random.default_rng(0).random((y.size, x.size), dtype=np.float32),
                        coords={"y": y, "x": x}, dims=("y", "x"))
    # an outline that reaches 1 km past the scene's lower-left corner
    outline = gpd.GeoDataFrame(geometry=[box(x[0] - 1000, y[-1] - 1000, x[0] + 50, y[-1] + 50)],
                               crs=scene.rio.crs)
    fig = _figure(scene, prob, time=-1, max_pixels=256, title=None, vectors=outline)
    left, right = fig.axes[:2]
    assert right.get_xlim() == pytest.approx((x[0] - dx / 2, x[-1] + dx / 2))
    assert right.get_ylim() == pytest.approx((y[-1] + dy / 2, y[0] - dy / 2))
    fig.canvas.draw()  # constrained layout places the panels when drawn
    a, b = left.get_position(), right.get_position()
    assert a.width == pytest.approx(b.width) and a.height == pytest.approx(b.height)
    png = quicklook(scene, prob, tmp_path / "q.png", vectors=outline)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
