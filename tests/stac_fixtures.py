"""STAC fixtures: real STAC APIs on loopback over real COGs in tests/data (and the built-in sample data).

Use them by importing the fixtures into a test module (or ``pytest_plugins = ["tests.stac_fixtures"]``):

- ``stac_test_catalog``: the test STAC files (collection.json + items.ndjson per collection, written into
  a session tmp dir, ``file:///`` hrefs to tests/data). Collections: ``naip-test`` (3 dates, one 4-band
  RGBN uint8 asset), ``landsat-test`` (one 3-band uint8 ``visual`` asset WITHOUT band metadata: the
  header is probed), ``s2like-test`` (B04/B03/B02 uint16 assets with raster:bands scale 1e-4,
  offset -0.1), ``spacenet-test`` (one-band uint16 panchromatic).
- ``rustac_url``: ``rustac serve`` over ``stac_test_catalog`` (session).
- ``stac_api_url``: ``$GEOSAM_PGSTAC_URL`` when set (stac-fastapi-pgstac loaded by .ci/pgstac.sh with
  the same collections), else ``rustac_url``. Tests written against it run on both servers.
- ``demo_stac_url``: ``rustac serve`` over :func:`geosam.sample_data.demo_catalog` (collections ``naip``
  and ``spacenet-pan``; session).
- ``failing_stac_server``: a loopback HTTP server answering every request with 500; ``.url``, ``.hits``.
- ``flaky_stac_proxy``: answers 503 to the first two requests, then forwards to ``rustac_url``.

``python -m tests.stac_fixtures DIR`` writes the test catalog into DIR (for .ci/pgstac.sh).
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pystac
import pytest

from geosam.sample_data import demo_catalog
from geosam.stac_catalog import ApiFiles, RasterAsset, raster_item, write_api_files
from geosam.stac_server import serve_rustac

DATA = Path(__file__).parent / "data"
NAIP_DATES = ("2009-08-18", "2014-07-20", "2020-08-31")
PGSTAC_ENV = "GEOSAM_PGSTAC_URL"


@dataclass
class StacTestCatalog:
    """The test collections: their items and the files an API loads."""

    directory: Path
    items: dict[str, list[pystac.Item]]
    files: dict[str, ApiFiles] = field(default_factory=dict)

    def serve_args(self) -> list[str]:
        return [arg for f in self.files.values() for arg in f.serve_args()]


def naip_items(collection: str | None = None) -> list[pystac.Item]:
    """The three NAIP test dates: one 4-band asset ``image`` (red, green, blue, nir)."""
    return [
        raster_item(
            {
                "image": RasterAsset(
                    DATA / "naip" / f"naip_{d.replace('-', '')}.tif",
                    ("red", "green", "blue", "nir"),
                )
            },
            datetime=d,
            item_id=f"naip_{d.replace('-', '')}",
            collection=collection,
        )
        for d in NAIP_DATES
    ]


def landsat_item() -> pystac.Item:
    """Landsat RGB as a ``visual`` asset with no eo/raster band metadata (as some catalogs publish them)."""
    item = raster_item({"visual": RasterAsset(DATA / "landsat" / "rgb_byte.tif", roles=("visual",))},
                       datetime="2001-06-01", item_id="landsat_rgb")  # fmt: skip
    for key in ("eo:bands", "raster:bands"):
        del item.assets["visual"].extra_fields[key]
    return item


def s2like_item(
    *, with_scale: bool = True, baseline: str | None = None, item_id: str = "s2like"
) -> pystac.Item:
    """Sentinel-2 L2A-like uint16 bands (tests/data/s2like, derived from the real Landsat crop).

    ``with_scale``: raster:bands scale 1e-4 / offset -0.1; else only ``s2:processing_baseline``.
    """
    scale = {"scale": 1e-4, "offset": -0.1} if with_scale else {}
    assets = {
        name: RasterAsset(DATA / "s2like" / f"{name}.tif", (common,), (name,), **scale)  # type: ignore[arg-type]
        for name, common in (("B04", "red"), ("B03", "green"), ("B02", "blue"))
    }
    props = {"s2:processing_baseline": baseline} if baseline else {}
    return raster_item(assets, datetime="2023-07-01", item_id=item_id, properties=props)


def spacenet_item() -> pystac.Item:
    return raster_item({"pan": RasterAsset(DATA / "spacenet" / "pan.tif", ("pan",))},
                       datetime="2017-01-01", item_id="spacenet_pan")  # fmt: skip


def write_test_catalog(directory: Path) -> StacTestCatalog:
    """Write collection.json + items.ndjson for each test collection under ``directory``."""
    items = {
        "naip-test": naip_items(),
        "landsat-test": [landsat_item()],
        "s2like-test": [s2like_item()],
        "spacenet-test": [spacenet_item()],
    }
    catalog = StacTestCatalog(directory, items)
    for cid, cid_items in items.items():
        catalog.files[cid] = write_api_files(
            cid_items, directory / cid, collection_id=cid, license="other"
        )
    return catalog


@pytest.fixture(scope="session")
def stac_test_catalog(tmp_path_factory: pytest.TempPathFactory) -> StacTestCatalog:
    return write_test_catalog(tmp_path_factory.mktemp("stac"))


@pytest.fixture(scope="session")
def rustac_url(stac_test_catalog: StacTestCatalog) -> Iterator[str]:
    with serve_rustac(
        stac_test_catalog.serve_args(), log_path=stac_test_catalog.directory / "rustac.log"
    ) as url:
        yield url


@pytest.fixture(scope="session")
def stac_api_url(request: pytest.FixtureRequest) -> str:
    pgstac = os.environ.get(PGSTAC_ENV)
    return pgstac.rstrip("/") if pgstac else str(request.getfixturevalue("rustac_url"))


@pytest.fixture(scope="session")
def demo_stac_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("demo-stac")
    with serve_rustac(
        demo_catalog(directory).serve_args(), log_path=directory / "rustac.log"
    ) as url:
        yield url


class _CountingServer(ThreadingHTTPServer):
    """A loopback HTTP server that counts the requests it answers."""

    daemon_threads = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        upstream: str | None = None,
        fail_first: int = 0,
    ):
        super().__init__(("127.0.0.1", 0), handler)
        self.hits = 0
        self.upstream = upstream
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def count(self) -> int:
        with self.lock:
            self.hits += 1
            return self.hits


class _ErrorHandler(BaseHTTPRequestHandler):
    server: _CountingServer

    def _answer(self) -> None:
        self.server.count()
        body = b'{"code": "InternalServerError", "description": "database unavailable"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class _FlakyProxyHandler(BaseHTTPRequestHandler):
    """503 for the first ``fail_first`` requests, then a plain forward to the upstream API."""

    server: _CountingServer

    def _answer(self) -> None:
        if self.server.count() <= self.server.fail_first:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(
            f"{self.server.upstream}{self.path}", data=body, method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, payload, ctype = (
                    response.status,
                    response.read(),
                    response.headers.get("Content-Type"),
                )
        except urllib.error.HTTPError as err:
            status, payload, ctype = err.code, err.read(), err.headers.get("Content-Type")
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class LoopbackServer:
    """A running loopback HTTP server: its URL and how many requests it has answered."""

    url: str
    server: _CountingServer

    @property
    def hits(self) -> int:
        return self.server.hits


def _run(server: _CountingServer) -> Iterator[LoopbackServer]:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def failing_stac_server() -> Iterator[LoopbackServer]:
    yield from _run(_CountingServer(_ErrorHandler))


@pytest.fixture
def flaky_stac_proxy(rustac_url: str) -> Iterator[LoopbackServer]:
    yield from _run(_CountingServer(_FlakyProxyHandler, upstream=rustac_url, fail_first=2))


if __name__ == "__main__":
    out = write_test_catalog(Path(sys.argv[1]).resolve())
    print(" ".join(out.serve_args()))
